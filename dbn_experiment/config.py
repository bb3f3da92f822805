"""The config of ``dbn-experiment``: each node's schema is the dataclass of the code that takes it, checked once.

=============  ===========================================================  ======================================
node           schema (validates itself in ``__post_init__``)               taken by
=============  ===========================================================  ======================================
``model``      :class:`ModelConfig`                                         the app (which trainer, layer sizes)
``train``      :class:`dbn_jax.train.TrainSettings`                         ``train_dbn`` / ``train_mlp``
``dataset``    :class:`dbn_jax.data.DataConfig`                             ``DataConfig.load``
``readout``    :class:`ReadoutConfig`                                       the read-out
``monitor``    :class:`MonitorConfig`                                       the trainers' monitors
``tracking``   ``_target_`` + the tracker class's own parameters            :mod:`dbn_experiment.tracking`
``analysis``   ``callbacks.<name>``: ``_target_`` + the callback dataclass  :func:`make_callbacks`
=============  ===========================================================  ======================================

The other keys under ``analysis`` (``threshold``, ``n_clusters``, ``emd``, ...) are values shared by several
callbacks, which take them by interpolation (``threshold: ${analysis.threshold}``): their one schema is the
parameter of the callbacks that take them, and an invalid value is reported under the key the user sets. Any
problem raises :class:`ConfigError` with one line that names the key, the value and what is allowed.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from dbn_jax.data import DataConfig
from dbn_jax.train import TrainSettings

MODEL_KINDS = ("dbn", "mlp", "weights")
WEIGHTS_KEYS = ("path", "layers", "transpose", "initial_path")  # read by model.kind=weights only
WEIGHT_FORMATS = "a .safetensors, .npz or PyTorch .pt/.pth/.bin file"


class ConfigError(ValueError):
    """An invalid configuration value; ``str(err)`` is one line naming the key."""


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ValueError(f"invalid {name}: {value!r}; allowed: {allowed}")


@dataclass
class ModelConfig:
    """``kind``: ``dbn`` (stacked RBMs, greedy CD), ``mlp`` (the supervised baseline) or ``weights`` (no training:
    a network read from a file); ``hidden``: the layer sizes (``dbn``, ``mlp``; a file gives its own).

    ``kind=weights`` (``model=weights``, ``dbn_jax.weights_file``): ``path`` the weight file (``.safetensors``,
    ``.npz``, ``.pt``/``.pth``/``.bin``), ``layers`` the matrices to take, bottom first (null: every 2-D tensor in
    natural name order), ``transpose`` for ``(out, in)`` storage (PyTorch's ``Linear``), ``initial_path`` the same
    network before training (null: no "initial vs trained"). ``input_shape`` (every kind): the image shape
    ``[height, width]`` of the input layer, for the receptive fields and EMD clusters; null: no image, those
    analyses are skipped."""

    hidden: list[int] = field(default_factory=lambda: [500, 500, 2000])
    kind: str = "dbn"
    path: str | None = None
    layers: list[str] | None = None
    transpose: bool = False
    initial_path: str | None = None
    input_shape: list[int] | None = field(default_factory=lambda: [28, 28])

    def __post_init__(self) -> None:
        _require(len(self.hidden) >= 1, "hidden", self.hidden, "a non-empty list of sizes >= 1")
        for i, n in enumerate(self.hidden):
            _require(n >= 1, f"hidden[{i}]", n, "an integer >= 1")
        _require(self.kind in MODEL_KINDS, "kind", self.kind, " | ".join(MODEL_KINDS))
        shape = self.input_shape
        shape_ok = shape is None or (len(shape) == 2 and min(shape) >= 1)
        _require(shape_ok, "input_shape", shape, "null (no image) or [height, width], integers >= 1")
        if self.kind == "weights":
            _require(bool(self.path), "path", self.path, f"the weight file: {WEIGHT_FORMATS}")
            layers_ok = self.layers is None or len(self.layers) >= 1
            allowed = "null (every 2-D tensor, in natural name order) or the matrices' names, bottom first"
            _require(layers_ok, "layers", self.layers, allowed)
        else:
            for key in WEIGHTS_KEYS:
                value = getattr(self, key)
                allowed = f"unset with model.kind={self.kind} (a network from a file: model=weights)"
                _require(value is None or value is False, key, value, allowed)


@dataclass
class ReadoutConfig:
    """Linear read-out (multinomial logistic regression on pixels and on each hidden layer, test accuracy):
    ``l2`` penalty, L-BFGS ``max_iter``; ``enabled: false`` skips it."""

    enabled: bool = True
    l2: float = 1e-4
    max_iter: int = 100

    def __post_init__(self) -> None:
        _require(self.l2 >= 0, "l2", self.l2, "a float >= 0")
        _require(self.max_iter >= 1, "max_iter", self.max_iter, "an integer >= 1")


@dataclass
class MonitorConfig:
    """Samples of train and test data used for the per-epoch free-energy gap and pseudo-log-likelihood."""

    n_samples: int = 1000

    def __post_init__(self) -> None:
        _require(self.n_samples >= 1, "n_samples", self.n_samples, "an integer >= 1")


@dataclass
class ExperimentConfig:
    seed: int = 0
    resume: str | None = None
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainSettings = field(default_factory=TrainSettings)
    dataset: DataConfig = field(default_factory=DataConfig)
    readout: ReadoutConfig = field(default_factory=ReadoutConfig)
    monitor: MonitorConfig = field(default_factory=MonitorConfig)
    tracking: Any = None  # the node itself (instantiated by the app)
    analysis: Any = None  # the node itself (callbacks instantiated by make_callbacks)


_INVALID = re.compile(r"^invalid ([\w.\[\]]+): (.*)$", re.S)


def _config_error(key: str, err: Exception) -> ConfigError:
    """``invalid <param>: <rest>`` raised by a schema, as ``invalid config: <key>.<param>=<rest>``."""
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    m = _INVALID.match(text)
    if m is None:
        return ConfigError(f"invalid config: {key}: {text}")
    return ConfigError(f"invalid config: {key}.{m.group(1)}={m.group(2)}")


def _section(cfg: DictConfig, key: str, schema: type) -> Any:
    try:
        node = OmegaConf.select(cfg, key, default=None)
        merged = OmegaConf.merge(OmegaConf.structured(schema), node if node is not None else {})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as err:
        sub = getattr(err, "full_key", None) or getattr(err, "key", None) or "?"
        msg = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ConfigError(f"invalid config: {key}.{sub}: {msg}") from None
    except ValueError as err:
        raise _config_error(key, err) from None


def validate(cfg: DictConfig) -> ExperimentConfig:
    """Check the composed config (``hydra`` node ignored) against each node's schema.

    Returns:
        The typed :class:`ExperimentConfig` (``tracking`` and ``analysis`` as their config nodes).

    Raises:
        ConfigError: on the first invalid value, with a one-line message naming the key.
    """
    seed, resume = cfg.get("seed", 0), cfg.get("resume", None)
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ConfigError(f"invalid config: seed={seed!r}; allowed: an integer >= 0")
    _check_weights_node(cfg)
    c = ExperimentConfig(
        seed=seed,
        resume=None if resume is None else str(resume),
        model=_section(cfg, "model", ModelConfig),
        train=_section(cfg, "train", TrainSettings),
        dataset=_section(cfg, "dataset", DataConfig),
        readout=_section(cfg, "readout", ReadoutConfig),
        monitor=_section(cfg, "monitor", MonitorConfig),
        tracking=cfg.get("tracking"),
        analysis=cfg.get("analysis"),
    )
    if c.dataset.n_train is not None and c.train.batch_size > c.dataset.n_train:
        raise ConfigError(
            f"invalid config: train.batch_size={c.train.batch_size}; allowed: an integer in "
            f"[1, dataset.n_train={c.dataset.n_train}]"
        )
    if c.resume is not None:
        if c.model.kind != "dbn":
            raise ConfigError(
                f"invalid config: resume={c.resume!r}; allowed: null with model.kind={c.model.kind} (resume "
                "continues the layer-wise DBN training only)"
            )
        marks = ("checkpoint", "config.yaml", os.path.join(".hydra", "config.yaml"))
        if not any(os.path.exists(os.path.join(c.resume, m)) for m in marks):
            raise ConfigError(
                f"invalid config: resume={c.resume!r}; allowed: null or the output dir of an earlier run (a folder"
                " holding its config.yaml and, once an epoch ended, checkpoint/)"
            )
    tracking = cfg.get("tracking")
    uri = OmegaConf.select(cfg, "tracking.uri", default=None)
    if uri is not None:
        allowed = ("sqlite", "http", "https", "postgresql", "mysql", "databricks", "file")
        if str(uri).split(":", 1)[0] not in allowed or ":" not in str(uri):
            raise ConfigError(
                f"invalid config: tracking.uri={uri!r}; allowed: a URI with scheme {' | '.join(allowed)}"
            )
    if tracking is not None and not OmegaConf.select(cfg, "tracking.experiment", default="x"):
        raise ConfigError("invalid config: tracking.experiment=''; allowed: a non-empty name")
    make_callbacks(cfg, c.model, n_visible=None)  # every callback's parameters, checked before any compute
    return c


def _check_weights_node(cfg: DictConfig) -> None:
    """``model.kind=weights``: a weight file given, and no ``model.hidden`` (the file has its own layer sizes)."""
    model = cfg.get("model")
    if model is None or OmegaConf.select(cfg, "model.kind", default=None) != "weights":
        return
    if OmegaConf.is_missing(model, "path"):
        raise ConfigError(
            f"invalid config: model.path=???; allowed: the weight file: {WEIGHT_FORMATS}, e.g. "
            "model.path=mlp.safetensors"
        )
    if "hidden" in model:
        raise ConfigError(
            f"invalid config: model.hidden={OmegaConf.to_container(model.hidden)}; allowed: unset with "
            "model.kind=weights (the layer sizes are the weight file's)"
        )


def make_callbacks(
    cfg: DictConfig, model: ModelConfig, n_visible: int | None, sizes: Sequence[int] | None = None
) -> dict[str, Any]:
    """Instantiate ``analysis.callbacks`` (a dict: name -> ``_target_`` and parameters), in their order, and
    check each against the network (``check_network(sizes)`` where a callback has it): ``sizes`` the layer sizes,
    input first, by default ``[n_visible, *model.hidden]`` (``n_visible`` None: 0, the input layer's size
    unchecked); with ``model.kind=weights`` and no ``sizes`` (the file not read yet), unchecked. A callback with an
    ``input_shape`` parameter takes ``model.input_shape``. An invalid parameter is a :class:`ConfigError` naming
    the key the user sets: the shared key (``analysis.n_clusters``, ``model.input_shape``) when the parameter
    takes one, else ``analysis.callbacks.<name>.<parameter>``."""
    nodes = OmegaConf.select(cfg, "analysis.callbacks", default=None) or {}
    if not OmegaConf.is_dict(nodes) and not isinstance(nodes, dict):
        raise ConfigError(
            "invalid config: analysis.callbacks; allowed: a dict of name -> {_target_: ..., parameters}"
        )
    out = {}
    if sizes is None and model.kind != "weights":
        sizes = [n_visible or 0, *model.hidden]
    for name in nodes:
        node = nodes[name]
        if node is None:  # removed by an override (analysis.callbacks.<name>=null)
            continue
        try:
            callback = instantiate(node, _convert_="all")
            if dataclasses.is_dataclass(callback) and "input_shape" in _field_names(callback):
                callback = dataclasses.replace(callback, input_shape=model.input_shape)
            check = getattr(callback, "check_network", None)
            if check is not None and sizes is not None:
                check(list(sizes))
        except Exception as err:  # noqa: BLE001 - instantiate wraps the callback's ValueError
            cause = err
            while cause.__cause__ is not None and not isinstance(cause, ValueError):
                cause = cause.__cause__
            raise _callback_error(name, node, cause) from None
        out[str(name)] = callback
    return out


def _field_names(obj: Any) -> set[str]:
    return {f.name for f in dataclasses.fields(obj) if f.init}


def _callback_error(name: str, node: Any, err: Exception) -> ConfigError:
    text = str(err).splitlines()[0] if str(err) else type(err).__name__
    m = _INVALID.match(text)
    if m is None:
        return ConfigError(f"invalid config: analysis.callbacks.{name}: {text}")
    param, rest = m.groups()
    head = re.split(r"[.\[]", param, maxsplit=1)[0]
    if head == "input_shape":  # the app sets it from model.input_shape (make_callbacks)
        return ConfigError(f"invalid config: model.{param}={rest}")
    raw = OmegaConf.to_container(node, resolve=False).get(head) if OmegaConf.is_dict(node) else None
    if isinstance(raw, str) and re.fullmatch(r"\$\{[\w.]+\}", raw):
        key = raw[2:-1] + param[len(head) :]
    else:
        key = f"analysis.callbacks.{name}.{param}"
    return ConfigError(f"invalid config: {key}={rest}")
