"""The configuration schema and its one-time validation.

Hydra composes ``conf/``; :func:`validate` merges the result into the structured dataclasses below (OmegaConf
checks the types), then checks every range. Any problem raises :class:`ConfigError` with one line that names the
key, the value and what is allowed. Nothing below the app sees a ``DictConfig``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

MODEL_KINDS = ("dbn", "mlp")
DATASETS = ("mnist5k", "mnist", "fashion_mnist", "idx")
THRESHOLD_SIGNS = ("positive", "absolute", "negative")
THRESHOLD_SCOPES = ("global", "layer")
NULL_KINDS = ("rewire", "shuffle")
EMD_METHODS = ("exact", "pooled", "sliced")
EMD_METRICS = ("euclidean", "cityblock")
CLUSTER_SIDES = ("out", "in", "total")
LINKAGES = ("average", "complete", "weighted", "single")
BINARIZE = ("none", "threshold", "sample")


class ConfigError(ValueError):
    """An invalid configuration value; ``str(err)`` is one line naming the key."""


@dataclass
class ModelConfig:
    hidden: list[int] = field(default_factory=lambda: [500, 500, 2000])
    kind: str = "dbn"


@dataclass
class TrainConfig:
    epochs: int = 20
    batch_size: int = 100
    cd_steps: int = 1
    persistent: bool = False
    learning_rate: float = 0.1
    momentum: float = 0.5
    final_momentum: float = 0.9
    momentum_switch_epoch: int = 5
    weight_decay: float = 2e-4
    init_std: float = 0.1


@dataclass
class DatasetConfig:
    name: str = "mnist5k"
    path: str | None = None
    n_train: int | None = None
    binarize: str = "none"
    mirrors: list[str] = field(default_factory=list)


@dataclass
class TrackingConfig:
    _target_: str = "analysis.tracking.MlflowTracker"
    uri: str | None = None
    experiment: str = "dbn-complex-networks"
    flush_seconds: float = 5.0
    background: bool = True
    writer_process: bool = True
    writer_nice: int = 19


@dataclass
class ReadoutConfig:
    enabled: bool = True
    l2: float = 1e-4
    max_iter: int = 100


@dataclass
class MonitorConfig:
    n_samples: int = 1000


@dataclass
class ThresholdConfig:
    sign: str = "positive"
    value: float | None = None
    quantile: float | None = 0.9
    density: float | None = None
    scope: str = "global"


@dataclass
class EmdConfig:
    method: str = "pooled"
    metric: str = "euclidean"
    n_jobs: int | None = None
    n_projections: int = 64


@dataclass
class NullConfig:
    n_samples: int = 20
    kinds: list[str] = field(default_factory=lambda: ["rewire", "shuffle"])
    n_jobs: int = 1
    modularity: bool = False


@dataclass
class LabelNullConfig:
    n_permutations: int = 1000


@dataclass
class CommunitiesConfig:
    resolution: float = 1.0
    abs_weights: bool = True


@dataclass
class AisConfig:
    enabled: bool = True
    n_chains: int = 100
    n_betas: int = 2000


@dataclass
class SamplesConfig:
    n: int = 64
    gibbs_steps: int = 1000


@dataclass
class AnalysisConfig:
    every_n_epochs: int = 5
    threshold: ThresholdConfig = field(default_factory=ThresholdConfig)
    n_clusters: int = 20
    cluster_layers: list[int] = field(default_factory=lambda: [1, 2])
    emd: EmdConfig = field(default_factory=EmdConfig)
    linkage: str = "average"
    cluster_sides: list[str] = field(default_factory=lambda: ["out", "in", "total"])
    label_null: LabelNullConfig = field(default_factory=LabelNullConfig)
    mosaic_units: int = 100
    export_graphml: bool = True
    null: NullConfig = field(default_factory=NullConfig)
    communities: CommunitiesConfig = field(default_factory=CommunitiesConfig)
    rich_club_quantile: float = 0.9
    ais: AisConfig = field(default_factory=AisConfig)
    samples: SamplesConfig = field(default_factory=SamplesConfig)
    callbacks: list[Any] = field(default_factory=list)


@dataclass
class ExperimentConfig:
    seed: int = 0
    resume: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)


def _fail(key: str, value: Any, allowed: str) -> None:
    raise ConfigError(f"invalid config: {key}={value!r}; allowed: {allowed}")


def _check(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        _fail(key, value, allowed)


def _typed(cfg: DictConfig) -> ExperimentConfig:
    """Resolve and merge into the schema: unknown keys and wrong types become ConfigError."""
    try:
        user = {
            k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v
            for k, v in ((k, cfg[k]) for k in cfg if k != "hydra")
        }
        merged = OmegaConf.merge(OmegaConf.structured(ExperimentConfig), OmegaConf.create(user))
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        if "Missing mandatory value" in msg:
            raise ConfigError(f"invalid config: {key} is required but not set") from None
        raise ConfigError(f"invalid config: {key}: {msg}") from None


def validate(cfg: DictConfig) -> ExperimentConfig:
    """Type- and range-check the composed config.

    Args:
        cfg: the config Hydra composed (``hydra`` node ignored).

    Returns:
        The typed :class:`ExperimentConfig`.

    Raises:
        ConfigError: on the first invalid value, with a one-line message naming the key.
    """
    c = _typed(cfg)
    _check(c.seed >= 0, "seed", c.seed, "an integer >= 0")
    _check(len(c.model.hidden) >= 1, "model.hidden", c.model.hidden, "a non-empty list of sizes >= 1")
    _check(c.model.kind in MODEL_KINDS, "model.kind", c.model.kind, " | ".join(MODEL_KINDS))
    _check(
        c.resume is None or c.model.kind == "dbn",
        "resume",
        c.resume,
        "null with model.kind=mlp (resume continues the layer-wise DBN training only)",
    )
    for i, n in enumerate(c.model.hidden):
        _check(n >= 1, f"model.hidden[{i}]", n, "an integer >= 1")

    t = c.train
    _check(t.epochs >= 0, "train.epochs", t.epochs, "an integer >= 0")
    _check(t.batch_size >= 1, "train.batch_size", t.batch_size, "an integer >= 1")
    _check(t.cd_steps >= 1, "train.cd_steps", t.cd_steps, "an integer >= 1")
    _check(t.learning_rate > 0, "train.learning_rate", t.learning_rate, "a float > 0")
    _check(0 <= t.momentum < 1, "train.momentum", t.momentum, "a float in [0, 1)")
    _check(0 <= t.final_momentum < 1, "train.final_momentum", t.final_momentum, "a float in [0, 1)")
    _check(
        t.momentum_switch_epoch >= 0,
        "train.momentum_switch_epoch",
        t.momentum_switch_epoch,
        "an integer >= 0",
    )
    _check(t.weight_decay >= 0, "train.weight_decay", t.weight_decay, "a float >= 0")
    _check(t.init_std > 0, "train.init_std", t.init_std, "a float > 0")

    d = c.dataset
    _check(d.name in DATASETS, "dataset.name", d.name, " | ".join(DATASETS))
    _check(d.binarize in BINARIZE, "dataset.binarize", d.binarize, " | ".join(BINARIZE))
    if d.n_train is not None:
        _check(d.n_train >= 1, "dataset.n_train", d.n_train, "null or an integer >= 1")
    if d.name == "idx":
        _check(bool(d.path), "dataset.path", d.path, "a folder holding the four IDX files")
    if d.path is not None and d.name in ("idx", "mnist"):
        _check(os.path.isdir(d.path), "dataset.path", d.path, "an existing folder")
    if d.n_train is not None:
        _check(
            t.batch_size <= d.n_train,
            "train.batch_size",
            t.batch_size,
            f"an integer in [1, dataset.n_train={d.n_train}]",
        )

    tr = c.tracking
    if tr.uri is not None:
        scheme = tr.uri.split(":", 1)[0] if ":" in tr.uri else ""
        allowed = ("sqlite", "http", "https", "postgresql", "mysql", "databricks", "file")
        _check(scheme in allowed, "tracking.uri", tr.uri, "a URI with scheme " + " | ".join(allowed))
    _check(bool(tr.experiment), "tracking.experiment", tr.experiment, "a non-empty name")
    _check(tr.flush_seconds >= 0, "tracking.flush_seconds", tr.flush_seconds, "a number of seconds >= 0")
    _check(0 <= tr.writer_nice <= 19, "tracking.writer_nice", tr.writer_nice, "an integer in [0, 19]")

    _validate_analysis(c)
    _check(c.readout.l2 >= 0, "readout.l2", c.readout.l2, "a float >= 0")
    _check(c.readout.max_iter >= 1, "readout.max_iter", c.readout.max_iter, "an integer >= 1")
    _check(c.monitor.n_samples >= 1, "monitor.n_samples", c.monitor.n_samples, "an integer >= 1")
    if c.resume is not None:
        _check(
            os.path.isdir(os.path.join(c.resume, "checkpoint")),
            "resume",
            c.resume,
            "null or the output dir of an earlier run (a folder holding checkpoint/)",
        )
    return c


def _validate_analysis(c: ExperimentConfig) -> None:
    a = c.analysis
    _check(a.every_n_epochs >= 0, "analysis.every_n_epochs", a.every_n_epochs, "an integer >= 0 (0 = at the end)")
    th = a.threshold
    _check(th.sign in THRESHOLD_SIGNS, "analysis.threshold.sign", th.sign, " | ".join(THRESHOLD_SIGNS))
    _check(th.scope in THRESHOLD_SCOPES, "analysis.threshold.scope", th.scope, " | ".join(THRESHOLD_SCOPES))
    given = [k for k in ("value", "quantile", "density") if getattr(th, k) is not None]
    _check(
        len(given) == 1,
        "analysis.threshold",
        {k: getattr(th, k) for k in ("value", "quantile", "density")},
        "exactly one of value, quantile, density (set the others to null)",
    )
    if th.value is not None:
        _check(th.value >= 0, "analysis.threshold.value", th.value, "a float >= 0 (the sign mode sets the side)")
    if th.quantile is not None:
        _check(0 < th.quantile < 1, "analysis.threshold.quantile", th.quantile, "a float in (0, 1)")
    if th.density is not None:
        _check(0 < th.density <= 1, "analysis.threshold.density", th.density, "a float in (0, 1]")
    n_layers = len(c.model.hidden)
    for layer in a.cluster_layers:
        _check(
            1 <= layer <= n_layers,
            "analysis.cluster_layers",
            a.cluster_layers,
            f"hidden layers in [1, {n_layers}] (model.hidden has {n_layers})",
        )
        size = c.model.hidden[layer - 1]
        _check(
            2 <= a.n_clusters <= size,
            "analysis.n_clusters",
            a.n_clusters,
            f"an integer in [2, {size}] (the {size} units of clustered layer h{layer})",
        )
    e = a.emd
    _check(e.method in EMD_METHODS, "analysis.emd.method", e.method, " | ".join(EMD_METHODS))
    _check(e.metric in EMD_METRICS, "analysis.emd.metric", e.metric, " | ".join(EMD_METRICS))
    if e.n_jobs is not None:
        _check(e.n_jobs >= 1 or e.n_jobs == -1, "analysis.emd.n_jobs", e.n_jobs, "null, -1 or an integer >= 1")
    _check(e.n_projections >= 1, "analysis.emd.n_projections", e.n_projections, "an integer >= 1")
    _check(
        bool(a.cluster_sides)
        and all(x in CLUSTER_SIDES for x in a.cluster_sides)
        and len(set(a.cluster_sides)) == len(a.cluster_sides),
        "analysis.cluster_sides",
        a.cluster_sides,
        "a non-empty list of distinct " + " | ".join(CLUSTER_SIDES) + " (the top layer has only in)",
    )
    _check(
        a.linkage in LINKAGES,
        "analysis.linkage",
        a.linkage,
        " | ".join(LINKAGES) + " (ward assumes Euclidean distances; EMD between receptive fields is not)",
    )
    _check(
        a.label_null.n_permutations >= 0,
        "analysis.label_null.n_permutations",
        a.label_null.n_permutations,
        "an integer >= 0 (0 = no label-permutation null)",
    )
    _check(a.mosaic_units >= 1, "analysis.mosaic_units", a.mosaic_units, "an integer >= 1")
    nl = a.null
    _check(nl.n_samples >= 2, "analysis.null.n_samples", nl.n_samples, "an integer >= 2")
    _check(
        bool(nl.kinds) and all(k in NULL_KINDS for k in nl.kinds),
        "analysis.null.kinds",
        nl.kinds,
        "a non-empty list of " + " | ".join(NULL_KINDS),
    )
    _check(nl.n_jobs >= 1 or nl.n_jobs == -1, "analysis.null.n_jobs", nl.n_jobs, "-1 or an integer >= 1")
    _check(
        a.communities.resolution > 0, "analysis.communities.resolution", a.communities.resolution, "a float > 0"
    )
    _check(0 < a.rich_club_quantile < 1, "analysis.rich_club_quantile", a.rich_club_quantile, "a float in (0, 1)")
    _check(a.ais.n_chains >= 1, "analysis.ais.n_chains", a.ais.n_chains, "an integer >= 1")
    _check(a.ais.n_betas >= 2, "analysis.ais.n_betas", a.ais.n_betas, "an integer >= 2")
    _check(a.samples.n >= 0, "analysis.samples.n", a.samples.n, "an integer >= 0 (0 = no samples figure)")
    _check(a.samples.gibbs_steps >= 1, "analysis.samples.gibbs_steps", a.samples.gibbs_steps, "an integer >= 1")


def check_data_size(c: ExperimentConfig, n_train: int) -> None:
    """Checks that depend on the loaded data (run after loading, before training)."""
    _check(
        c.train.batch_size <= n_train,
        "train.batch_size",
        c.train.batch_size,
        f"an integer in [1, {n_train}] (the number of training images)",
    )
