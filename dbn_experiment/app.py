"""The Hydra app ``dbn-experiment``, the composition root: check the config once, then wire data, model,
analysis callbacks and tracker, and run the loop.

    dbn-experiment                                   # 784-500-500-2000 on the embedded 5k MNIST digits
    dbn-experiment experiment=smoke tracking=off     # seconds
    dbn-experiment -m seed=0,1,2,3,4                 # a sweep

Progress does not depend on the tracker: at the end of every epoch the job itself writes the checkpoint
(``<output dir>/checkpoint/state.npz``, atomically), holding the training state and every metric logged so far,
so that ``resume=<output dir>`` continues bit-identically and gives the new MLflow run the whole record, whatever
the store had received when the job died.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import hydra
import jax
import jax.numpy as jnp
import numpy as np
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from analysis import events as AE
from analysis.callbacks import dispatch, due
from dbn_experiment.config import ConfigError, ExperimentConfig, _config_error, make_callbacks, validate
from dbn_experiment.events import to_analysis
from dbn_experiment.store import TrackingUnavailable, default_tracking_uri
from dbn_experiment.tracking import DataInput, ModelInput
from dbn_jax import checkpoint, data
from dbn_jax.metrics import linear_readout_accuracy
from dbn_jax.mlp import train_mlp
from dbn_jax.rbm import RBMParams
from dbn_jax.train import Diverged, EpochEnd, LayerEnd, TrainEnd, propagate, restore_train_state, train_dbn
from dbn_jax.weights_file import WeightFileError, WeightStack, read_weight_stack

log = logging.getLogger("dbn_experiment")
# POT (the EMD solver) imports PyTorch, when installed, for a backend the analysis never uses (it passes numpy
# arrays): ~2 s at every start, and in every EMD worker process (they inherit this). An explicit setting wins.
os.environ.setdefault("POT_BACKEND_DISABLE_PYTORCH", "1")


class Terminated(BaseException):
    """Raised from the SIGTERM handler so the run is closed as KILLED and the checkpoint kept."""


@contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` (SIGINT raises ``KeyboardInterrupt`` anyway). Store calls run on the
    tracker's own thread, which a signal never interrupts."""

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"received signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. some launchers): leave handling to the parent
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _git_info() -> dict[str, str]:
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=5)  # fmt: skip
        if commit.returncode != 0:
            return {"git_commit": "unknown", "git_dirty": "unknown"}
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5)  # fmt: skip
        return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(dirty.stdout.strip()))}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for dist in ("dbn-complex-networks", "jax", "jaxlib", "optax", "mlflow", "hydra-core", "pot", "networkx",
                 "scipy"):  # fmt: skip
        try:
            out[f"version/{dist}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _fingerprint(c: ExperimentConfig) -> str:
    """Hash of everything that determines the trained weights (checked on resume)."""
    model = asdict(c.model)
    if c.model.kind != "weights":  # model.kind=weights's keys change no trained weight, nor older fingerprints
        model = {k: model[k] for k in ("hidden", "kind")}
    key = {
        "seed": c.seed,
        "model": model,
        "train": asdict(c.train),
        "dataset": {k: getattr(c.dataset, k) for k in ("name", "n_train", "binarize")},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


# Keys that do not change what a run computes: left out of its `config_hash` (runs of one setting share it).
HASH_EXCLUDED = ("seed", "resume", "tracking", "dataset.mirrors", "model.path", "model.initial_path")


def config_hash(resolved: dict[str, Any], extra: dict[str, Any] | None = None) -> str:
    """Digest (16 hex digits) of a setting: the resolved config without :data:`HASH_EXCLUDED` (seed, resume, the
    tracking store, download mirrors, weight-file paths) plus ``extra`` (e.g. the layer shapes of a weight file),
    so that runs differing only in seed share it and any other difference changes it."""
    doc = json.loads(json.dumps(resolved, default=str))
    for key in HASH_EXCLUDED:
        *parents, leaf = key.split(".")
        node = doc
        for p in parents:
            node = node.get(p) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node.pop(leaf, None)
    doc["_extra"] = extra or {}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _hydra_context() -> tuple[Path, Path, list[str]]:
    """(output dir, launch dir, task overrides); sensible values outside Hydra."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        return Path(hc.runtime.output_dir), Path(hc.runtime.cwd), list(hc.overrides.task)
    return Path.cwd() / "outputs" / time.strftime("%Y-%m-%d/%H-%M-%S"), Path.cwd(), []


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The job's config without the ``hydra`` node, interpolations resolved, as plain containers."""
    return {k: OmegaConf.to_container(cfg[k], resolve=True) if OmegaConf.is_config(cfg[k]) else cfg[k]
            for k in cfg if k != "hydra"}  # fmt: skip


def _params(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as flat ``a.b.c`` params, without the values that only repeat another key (a callback's
    ``threshold: ${analysis.threshold}`` is logged once, as ``analysis.threshold.*``)."""
    raw = {k: OmegaConf.to_container(cfg[k], resolve=False) if OmegaConf.is_config(cfg[k]) else cfg[k]
           for k in cfg if k != "hydra"}  # fmt: skip

    def flat(t: Any, r: Any, prefix: str) -> dict[str, Any]:
        if not isinstance(t, dict):
            return {prefix[:-1]: t}
        out: dict[str, Any] = {}
        for k, v in t.items():
            rk = r.get(k) if isinstance(r, dict) else None
            if not (isinstance(rk, str) and re.fullmatch(r"\$\{[\w.]+\}", rk)):
                out.update(flat(v, rk, f"{prefix}{k}."))
        return out

    out = flat(_resolved(cfg), raw, "")
    if OmegaConf.select(cfg, "model.kind", default=None) == "weights":  # no training, data or read-out: unread
        unread = ("train", "dataset", "readout", "monitor")
        out = {k: v for k, v in out.items() if k.split(".", 1)[0] not in unread}
    return out


def _readout(layers: tuple, ds: data.Dataset, l2: float, max_iter: int) -> dict[str, float]:
    """Test accuracy of a linear read-out from pixels and from each hidden layer's probabilities."""
    x_tr, x_te = jnp.asarray(ds.x_train), jnp.asarray(ds.x_test)
    y_tr, y_te = jnp.asarray(ds.y_train), jnp.asarray(ds.y_test)
    out, name = {}, "pixels"
    for i in range(len(layers) + 1):
        out[f"readout/{name}/accuracy"] = float(linear_readout_accuracy(x_tr, y_tr, x_te, y_te, l2=l2,
                                                                        max_iter=max_iter))  # fmt: skip
        if i < len(layers):
            x_tr, x_te = propagate(layers[i], x_tr), propagate(layers[i], x_te)
            name = f"h{i + 1}"
    return out


def _make_tracker(cfg: DictConfig, launch_dir: Path) -> Any:
    """The tracker of ``tracking`` (``_target_`` + its parameters); the default store lives in the launch dir."""
    node = OmegaConf.to_container(cfg.tracking, resolve=True) if cfg.get("tracking") else {}
    node = node or {"_target_": "dbn_experiment.tracking.NullTracker"}
    if node.get("uri") is None and str(node["_target_"]).endswith("MlflowTracker"):
        node["uri"], node["artifact_location"] = default_tracking_uri(launch_dir)
    try:
        return instantiate(node)
    except Exception as err:  # instantiate wraps the tracker's own error
        if isinstance(err.__cause__, TrackingUnavailable):
            raise err.__cause__ from None
        if isinstance(err.__cause__, ValueError):
            raise _config_error("tracking", err.__cause__) from None
        raise


class _Job:
    """One run: the tracker, the record of every metric logged (saved in each checkpoint) and the timings."""

    def __init__(self, c: ExperimentConfig, tracker: Any, output_dir: Path, fingerprint: str) -> None:
        self.c, self.tracker, self.output_dir, self.fingerprint = c, tracker, output_dir, fingerprint
        self.record: list[list[Any]] = []  # [key, step, value] of every metric logged, in order
        self.replayed: set[tuple[str, int]] = set()  # (key, step) taken over from an earlier process
        self.seconds: dict[str, float] = defaultdict(float)

    def _fresh(self, metrics: dict[str, float], step: int) -> dict[str, float]:
        """The metrics not logged yet at ``step`` (a resumed run recomputes some the earlier process logged)."""
        fresh = {k: v for k, v in metrics.items() if (k, int(step)) not in self.replayed}
        self.record.extend([k, int(step), float(v)] for k, v in fresh.items())
        return fresh

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.tracker.log_metrics(self._fresh(metrics, step), step)

    def log_result(self, result: Any, step: int) -> None:
        self.tracker.log_result(dataclasses.replace(result, metrics=self._fresh(result.metrics, step)), step)

    def replay(self, record: list[list[Any]]) -> None:
        """Log the metrics of an earlier process of this run (from its checkpoint), step by step."""
        by_step: dict[int, dict[str, float]] = defaultdict(dict)
        for key, step, value in record:
            by_step[int(step)][key] = value
        for step, metrics in by_step.items():
            self.log_metrics(metrics, step)
        self.replayed = {(key, int(step)) for key, step, _ in record}

    def note_run(self) -> None:
        """``tracking.json``, which run this output dir belongs to (a resumed job's new run replaces the dead
        one's): the tracker calls it once the run exists (``start_run(on_created=...)``)."""
        if self.tracker.run_id is not None:
            where = {"run_id": self.tracker.run_id, "uri": self.tracker.uri}
            checkpoint.atomic_write_bytes(self.output_dir / "tracking.json", json.dumps(where).encode())

    def save_checkpoint(self, event: EpochEnd) -> None:
        """The training state after ``event`` and the record so far, written atomically by the job itself."""
        checkpoint.save_state(
            self.output_dir / "checkpoint" / "state.npz",
            layer=event.layer,
            epoch=event.epoch,
            done=event.state.done,
            leaves=jax.tree_util.tree_leaves(event.state.current),
            meta={"fingerprint": self.fingerprint, "seed": self.c.seed, "metrics": self.record},
        )


def run(cfg: DictConfig) -> float | None:
    """Train, analyse, log. Returns the top layer's read-out accuracy (the sweep objective), if computed.

    Raises:
        ConfigError, data.DataError, TrackingUnavailable, WeightFileError: bad input (a bad weight file) or an
            unreachable tracking server, before any training and before a run is created (WeightFileError also
            when the analysis cannot take the file's weights: the run is FAILED).
    """
    t_run = time.perf_counter()
    c = validate(cfg)
    output_dir, launch_dir, overrides = _hydra_context()
    # The composed, resolved config of this job (what `--cfg job` prints): from now on `resume=<output dir>` works.
    checkpoint.atomic_write_bytes(output_dir / "config.yaml", OmegaConf.to_yaml(_resolved(cfg)).encode())
    stacks = _read_weights(c) if c.model.kind == "weights" else None  # a bad file: one line, no store set up
    tracker = _make_tracker(cfg, launch_dir)  # MLflow's import and the store's set-up overlap with the loading
    try:
        ds = _NoData(stacks[0].sizes[0]) if stacks else c.dataset.load(seed=c.seed)
        if stacks is None and c.train.batch_size > ds.x_train.shape[0]:
            raise ConfigError(f"invalid config: train.batch_size={c.train.batch_size}; allowed: an integer in "
                              f"[1, {ds.x_train.shape[0]}] (the number of training images)")  # fmt: skip
        sizes = stacks[0].sizes if stacks else None
        callbacks = make_callbacks(cfg, c.model, n_visible=ds.x_train.shape[1], sizes=sizes)
        if c.model.kind != "dbn":
            for name in [n for n, cb in callbacks.items() if getattr(cb, "needs_rbm", False)]:
                log.info("analysis.callbacks.%s skipped: model.kind=%s has no RBMs", name, c.model.kind)
                del callbacks[name]
        if c.model.input_shape is None:
            for name in [n for n, cb in callbacks.items() if getattr(cb, "needs_input_shape", False)]:
                log.info("analysis.callbacks.%s skipped: model.input_shape=null (no image: no receptive fields)",
                         name)  # fmt: skip
                del callbacks[name]
        job = _Job(c, tracker, output_dir, _fingerprint(c))
        start, record = _resume_point(c, job.fingerprint, ds)
        tags = {
            "seed": c.seed, "overrides": " ".join(overrides),
            "command": shlex.join(["dbn-experiment", *overrides]),
            "jax_backend": jax.default_backend(), "jax_devices": ", ".join(str(d) for d in jax.devices()),
            "jax_version": jax.__version__, "dataset_source": ds.source, "dataset_digest": ds.digest(),
            "dataset_n_train": ds.x_train.shape[0], "dataset_n_test": ds.x_test.shape[0],
            "output_dir": os.path.abspath(output_dir), "config_fingerprint": job.fingerprint,
            "config_hash": config_hash(_resolved(cfg), _weights_extra(stacks)), **_git_info(),
            **_package_versions(), **({"resumed_from": c.resume} if c.resume else {}),
        }  # fmt: skip
        tags.update(_weights_tags(stacks))
        # tracking.json names the run as soon as it exists, whatever the job is doing then.
        tracker.start_run(",".join(overrides) or "default", _params(cfg), tags, on_created=job.note_run)
        if stacks is None:  # a weight file's run reads no data
            tracker.log_inputs(_data_inputs(ds))
    except BaseException:
        tracker.end_run()  # no run yet: only lets the tracker's writer go
        raise
    try:
        if c.resume is not None:
            try:
                tracker.continue_from(os.path.abspath(c.resume))
            except ValueError as err:
                raise ConfigError(f"invalid config: resume={c.resume!r}: {err}") from None
        job.replay(record)
        with _sigterm_raises():
            _log_config_files(tracker, output_dir)
            if stacks is not None:
                objective = _analyse_and_log(job, cfg, stacks, callbacks)
            else:
                objective = _train_and_log(job, cfg, ds, callbacks, start)
            _log_job_log(tracker, output_dir)
            job.log_metrics({"time/run_seconds": time.perf_counter() - t_run}, 0)
    except (KeyboardInterrupt, Terminated) as err:
        tracker.end_run("KILLED", f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:
        tracker.end_run("FAILED", f"{type(err).__name__}: {err}")
        raise
    tracker.end_run("FINISHED")
    return objective


def _log_config_files(tracker: Any, output_dir: Path) -> None:
    """Hydra's copy of the config and overrides (``hydra/``) and the resolved ``config.yaml``."""
    hydra_dir = output_dir / ".hydra"
    if hydra_dir.is_dir():
        tracker.log_artifacts(hydra_dir, "hydra")
    tracker.log_artifact(output_dir / "config.yaml")


def _log_job_log(tracker: Any, output_dir: Path) -> None:
    """The job's log file (``logs/``), once the run's work is done."""
    log_file = output_dir / f"{HydraConfig.get().job.name}.log" if HydraConfig.initialized() else None
    if log_file is not None and log_file.exists():
        tracker.log_artifact(log_file, "logs")


def _data_inputs(ds: data.Dataset) -> list[DataInput]:
    """The run's training and test data as MLflow dataset inputs (name ``idx:<folder name>`` for ``idx``)."""
    name = f"idx:{Path(ds.source).name}" if ds.name == "idx" else ds.name
    return [
        DataInput(name, context, ds.digest(split), ds.source, getattr(ds, f"x_{split}"), getattr(ds, f"y_{split}"))
        for context, split in (("training", "train"), ("test", "test"))
    ]


class _NoData:
    """The data set of a run that reads none (``model.kind=weights``), as the run's ``dataset_*`` tags show it."""

    name, source = "none", "none (model.kind=weights reads no data)"

    def __init__(self, n_inputs: int) -> None:
        self.x_train = self.x_test = np.zeros((0, n_inputs), dtype=np.float32)

    def digest(self, split: str | None = None) -> str:
        return "none"


def _read_weights(c: ExperimentConfig) -> tuple[WeightStack, WeightStack | None]:
    """The network of ``model.path`` and, with ``model.initial_path``, the same network before training: read
    and checked whole before any run exists. Raises WeightFileError, one line naming the key and the file."""
    m = c.model
    try:
        trained = read_weight_stack(m.path, m.layers, m.transpose)
    except WeightFileError as err:
        raise WeightFileError(f"model.path: {err}") from None
    how = "model.layers" if not trained.chosen else "model.layers=null: every 2-D tensor, in natural name order"
    log.info("model.path=%s (%s): %s, layers %s (%s)", m.path, trained.format, "-".join(map(str, trained.sizes)),
             ", ".join(trained.names), how)  # fmt: skip
    if m.initial_path is None:
        return trained, None
    try:
        initial = read_weight_stack(m.initial_path, trained.names, m.transpose)
    except WeightFileError as err:
        raise WeightFileError(f"model.initial_path: {err}") from None
    for name, a, b in zip(trained.names, trained.weights, initial.weights, strict=True):
        if a.shape != b.shape:
            raise WeightFileError(
                f"model.initial_path: layer {name!r} is {b.shape} in {initial.path} but {a.shape} in "
                f"{trained.path}; allowed: the same network before training"
            )
    return trained, initial


def _weights_extra(stacks: tuple[WeightStack, WeightStack | None] | None) -> dict[str, Any] | None:
    """What a weight file adds to its run's ``config_hash``: the layer sizes (two files of one config can
    differ); None for other runs."""
    return None if stacks is None else {"weights_sizes": "-".join(map(str, stacks[0].sizes))}


def _weights_tags(stacks: tuple[WeightStack, WeightStack | None] | None) -> dict[str, Any]:
    """The weight file(s) of a ``model.kind=weights`` run: absolute path, SHA-256, format, layers and sizes.
    Empty for other runs."""
    if stacks is None:
        return {}
    trained, initial = stacks
    tags = {
        "weights_path": str(trained.path.resolve()), "weights_sha256": trained.sha256,
        "weights_format": trained.format, "weights_layers": ", ".join(trained.names),
        "weights_sizes": "-".join(map(str, trained.sizes)),
    }  # fmt: skip
    if initial is not None:
        tags["weights_initial_path"] = str(initial.path.resolve())
        tags["weights_initial_sha256"] = initial.sha256
    return tags


def _analyse_and_log(
    job: _Job, cfg: DictConfig, stacks: tuple[WeightStack, WeightStack | None], callbacks: dict[str, Any]
) -> None:
    """``model.kind=weights``: no training. The network saved as the run's ``model/`` (biases zero: a weight
    file's are not read), then one ``TrainEnd`` through the analysis callbacks, logged as a trained run's final
    results; no read-out (the file gives no activation functions or biases to propagate data with)."""
    c, tracker, output_dir = job.c, job.tracker, job.output_dir
    trained, initial = stacks
    layers = [RBMParams(w.astype(np.float32), np.zeros(w.shape[0], np.float32), np.zeros(w.shape[1], np.float32))
              for w in trained.weights]  # fmt: skip
    meta = {"seed": c.seed, "config": OmegaConf.to_container(cfg.model), "fingerprint": job.fingerprint,
            "kind": "weights", "source": str(trained.path.resolve()), "sha256": trained.sha256,
            "layers": list(trained.names), "biases": "not read from the file (zeros)"}  # fmt: skip
    tracker.log_artifacts(checkpoint.save_model(output_dir / "model", layers, meta=meta), "model")
    if c.readout.enabled:
        log.info("readout skipped: model.kind=weights (the file gives no activation functions or biases)")
    event = AE.TrainEnd(trained.weights, initial.weights if initial is not None else ())
    results = dispatch(callbacks, event, dataset=None, seed=c.seed)
    while True:
        try:
            name, result, seconds = next(results)
        except StopIteration:
            break
        except ValueError as err:  # e.g. an all-zero receptive field (a dead unit), which EMD cannot normalise
            msg = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise WeightFileError(f"model.path: the analysis of {trained.path} failed: {msg}") from None
        job.log_result(result, 0)
        job.seconds[name] += seconds
    if job.seconds:
        job.log_metrics({f"time/analysis/{k}_seconds": v for k, v in job.seconds.items()}, 0)


def _resume_point(c: ExperimentConfig, fingerprint: str, ds: data.Dataset) -> tuple[Any, list]:
    """(the training state to start from, or None; the metric record of the earlier process)."""
    if c.resume is None:
        return None, []
    state_path = Path(c.resume) / "checkpoint" / "state.npz"
    if not state_path.is_file():
        log.warning("resume=%s holds no checkpoint yet (stopped before its first epoch ended): starting it "
                    "from scratch", c.resume)  # fmt: skip
        return None, []
    meta, done, leaves = checkpoint.load_state(state_path)
    if meta.get("fingerprint") != fingerprint:
        raise ConfigError(
            f"invalid config: resume={c.resume!r}; its checkpoint was written with another seed/model/train/"
            "dataset config; allowed: the output dir of a run with the same config"
        )
    steps = ds.x_train.shape[0] // c.train.batch_size
    start = restore_train_state(meta["layer"], meta["epoch"], done, leaves, ds.x_train.shape[1], c.model.hidden,
                                c.train, steps)  # fmt: skip
    return start, list(meta.get("metrics", []))


def _train_and_log(job: _Job, cfg: DictConfig, ds: data.Dataset, callbacks: dict[str, Any], start: Any) -> Any:
    c, tracker, output_dir = job.c, job.tracker, job.output_dir
    n_mon = c.monitor.n_samples
    key = jax.random.key(c.seed)
    if c.model.kind == "mlp":  # the supervised baseline: same architecture, data and update rule, backprop
        events = train_mlp(
            key, ds.x_train, ds.y_train, c.model.hidden, c.train, ds.x_test, ds.y_test, n_monitor=n_mon
        )
    else:
        events = train_dbn(
            key, ds.x_train, c.model.hidden, c.train, ds.x_test[:n_mon], n_monitor=n_mon, start=start
        )
    bar, layers, head, t_layer = None, (), (), time.perf_counter()
    for event in events:
        if isinstance(event, EpochEnd):
            h = "mlp" if c.model.kind == "mlp" else f"h{event.layer}"
            if bar is None:
                bar = tqdm(total=event.n_epochs, initial=event.epoch, desc=f"train {h}", unit="epoch",
                           disable=None, file=sys.stderr)  # fmt: skip
            else:
                bar.update(1)
            shown = "recon_error" if "recon_error" in event.metrics else "loss"
            bar.set_postfix({shown: f"{event.metrics[shown]:.4f}"})
            job.log_metrics({f"train/{h}/{k}": v for k, v in event.metrics.items()}, event.epoch)
        elif isinstance(event, LayerEnd) and bar is not None:
            bar.close()
            bar = None
        elif isinstance(event, TrainEnd):
            layers, head = event.layers, event.head
        probe = (
            AE.EpochEnd(event.layer, event.epoch, event.n_epochs, None) if isinstance(event, EpochEnd) else None
        )
        if probe is None or any(due(cb, probe) for cb in callbacks.values()):
            step = event.epoch if isinstance(event, EpochEnd) else c.train.epochs
            for name, result, seconds in dispatch(callbacks, to_analysis(event), dataset=ds, seed=c.seed):
                job.log_result(result, step)
                job.seconds[name] += seconds
        if isinstance(event, EpochEnd):
            if event.epoch == event.n_epochs and event.epoch > 0:  # the layer's last epoch: its time, checkpointed
                elapsed = time.perf_counter() - t_layer
                job.log_metrics({f"time/h{event.layer}/train_seconds": elapsed}, 0)
                log.info("layer h%d trained in %.1f s", event.layer, elapsed)
                t_layer = time.perf_counter()
            job.save_checkpoint(event)
    if job.seconds:
        job.log_metrics({f"time/analysis/{k}_seconds": v for k, v in job.seconds.items()}, 0)
    meta = {"seed": c.seed, "config": OmegaConf.to_container(cfg.model), "fingerprint": job.fingerprint,
            "kind": c.model.kind}  # fmt: skip
    folder = checkpoint.save_model(output_dir / "model", (*layers, *head), meta=meta)
    tracker.log_artifacts(folder, "model")
    # The same files as an MLflow pyfunc model: a DBN gives its top layer's probabilities, the MLP its classes'.
    tracker.log_model(ModelInput(folder, "network", ds.x_test[:5], len(layers) + len(head)))
    objective = None
    if c.readout.enabled:
        t0 = time.perf_counter()
        acc = _readout(layers, ds, c.readout.l2, c.readout.max_iter)
        job.log_metrics({**acc, "time/readout_seconds": time.perf_counter() - t0}, 0)
        objective = acc[f"readout/h{len(layers)}/accuracy"]
        log.info("read-out accuracy: %s", {k: round(v, 4) for k, v in acc.items()})
    return objective


class JobInputError(CompactHydraException):
    """A job of a multirun stopped by bad input or divergence: Hydra reports it as one line, no traceback."""


def _fail_job(err: BaseException, exit_code: int) -> NoReturn:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # The launcher records the failed job (its child run FAILED with this message) and goes on with the others.
        raise JobInputError(str(err)) from None
    print(f"error: {err}", file=sys.stderr)
    sys.exit(exit_code)


@hydra.main(version_base="1.3", config_path="pkg://dbn_experiment.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Console script ``dbn-experiment``; ``python -m dbn_experiment`` does the same."""
    try:
        return run(cfg)
    except (ConfigError, data.DataError, TrackingUnavailable, WeightFileError) as err:
        _fail_job(err, 2)
    except Diverged as err:  # the run is already FAILED with this message; the last good checkpoint is kept
        _fail_job(err, 1)
    except Terminated:
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    main()
