"""The Hydra app ``dbn-experiment``: read and validate the config once, wire data, model, callbacks and tracker,
run the loop.

    dbn-experiment                                   # 784-500-500-2000 on the embedded 5k MNIST digits
    dbn-experiment experiment=smoke tracking=off     # seconds
    dbn-experiment -m seed=0,1,2,3,4                 # a sweep
"""

from __future__ import annotations

import atexit
import functools
import gc
import hashlib
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, NoReturn

import hydra
import jax
import jax.numpy as jnp
from hydra.core.hydra_config import HydraConfig
from hydra.errors import CompactHydraException, InstantiationException
from hydra.types import RunMode
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from analysis.callbacks import AnalysisResult, CallbackContext
from analysis.tracking import TrackingUnavailable
from dbn_jax import checkpoint, data
from dbn_jax.config import ConfigError, ExperimentConfig, check_data_size, validate
from dbn_jax.metrics import linear_readout_accuracy
from dbn_jax.mlp import train_mlp
from dbn_jax.train import (
    Diverged,
    EpochEnd,
    LayerEnd,
    TrainEnd,
    TrainSettings,
    propagate,
    restore_train_state,
    train_dbn,
)

log = logging.getLogger("dbn_jax")


def _skip_final_collections() -> None:
    """At interpreter exit (after every job and every atexit flush registered after this module), move all
    objects out of the garbage collector's reach: the collections the interpreter would run while tearing down
    the modules of JAX, MLflow, SQLAlchemy and matplotlib cost ~0.8 s and free nothing the exit does not."""
    gc.freeze()


atexit.register(_skip_final_collections)


class Terminated(BaseException):
    """Raised from the SIGTERM handler so the run is closed as KILLED and the checkpoint kept."""


@contextmanager
def _signals_raise(tracker: Any) -> Iterator[None]:
    """SIGTERM raises :class:`Terminated` and SIGINT ``KeyboardInterrupt``, through the tracker's ``interrupt`` so
    that a store write in progress completes first (otherwise the run could not be closed as KILLED)."""
    deliver = getattr(tracker, "interrupt", None)

    def handler(signum, frame):
        err = Terminated(f"received signal {signum}") if signum == signal.SIGTERM else KeyboardInterrupt()
        if deliver is None:
            raise err
        deliver(err)

    previous = {}
    try:
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.getsignal(signum)
            signal.signal(signum, handler)
    except ValueError:  # not the main thread (e.g. some launchers): leave handling to the parent
        previous = {}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _git_info() -> dict[str, str]:
    src = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0:
            return {"git_commit": "unknown", "git_dirty": "unknown"}
        dirty = subprocess.run(
            ["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        return {"git_commit": commit.stdout.strip(), "git_dirty": str(bool(dirty.stdout.strip()))}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": "unknown", "git_dirty": "unknown"}


def _package_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    names = ("dbn-complex-networks", "jax", "jaxlib", "optax", "mlflow", "hydra-core", "pot", "networkx", "scipy")
    for dist in names:
        try:
            out[f"version/{dist}"] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return out


def _fingerprint(c: ExperimentConfig) -> str:
    """Hash of everything that determines the trained weights (checked on resume)."""
    key = {
        "seed": c.seed,
        "model": asdict(c.model),
        "train": asdict(c.train),
        "dataset": {k: getattr(c.dataset, k) for k in ("name", "n_train", "binarize")},
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]


def _hydra_context() -> tuple[Path, Path, list[str]]:
    """(output dir, launch dir, task overrides); sensible values outside Hydra."""
    if HydraConfig.initialized():
        hc = HydraConfig.get()
        return (
            Path(hc.runtime.output_dir),
            Path(hc.runtime.cwd),
            list(hc.overrides.task),
        )
    out = Path.cwd() / "outputs" / time.strftime("%Y-%m-%d/%H-%M-%S")
    return out, Path.cwd(), []


def _resolved(cfg: DictConfig) -> dict[str, Any]:
    """The job's config without the ``hydra`` node, interpolations resolved, as plain containers."""
    tree = {k: cfg[k] for k in cfg if k != "hydra"}
    return {k: OmegaConf.to_container(v, resolve=True) if OmegaConf.is_config(v) else v for k, v in tree.items()}


def _params(cfg: DictConfig) -> dict[str, Any]:
    resolved = _resolved(cfg)

    def flat(t: Any, prefix: str) -> dict[str, Any]:
        if isinstance(t, dict):
            out: dict[str, Any] = {}
            for k, v in t.items():
                out.update(flat(v, f"{prefix}{k}."))
            return out
        return {prefix[:-1]: t}

    return flat(resolved, "")


def _load_data(c: ExperimentConfig) -> data.Dataset:
    d = c.dataset
    return data.load(
        d.name,
        path=d.path,
        n_train=d.n_train,
        binarize_mode=d.binarize,
        seed=c.seed,
        mirrors=list(d.mirrors) or None,
    )


def _readout(layers: tuple, ds: data.Dataset, l2: float, max_iter: int) -> dict[str, float]:
    """Test accuracy of a linear read-out from pixels and from each hidden layer's probabilities."""
    x_tr, x_te = jnp.asarray(ds.x_train), jnp.asarray(ds.x_test)
    y_tr, y_te = jnp.asarray(ds.y_train), jnp.asarray(ds.y_test)
    out = {}
    name = "pixels"
    for i in range(len(layers) + 1):
        acc = linear_readout_accuracy(x_tr, y_tr, x_te, y_te, l2=l2, max_iter=max_iter)
        out[f"readout/{name}/accuracy"] = float(acc)
        if i < len(layers):
            x_tr, x_te = propagate(layers[i], x_tr), propagate(layers[i], x_te)
            name = f"h{i + 1}"
    return out


def run(cfg: DictConfig) -> float | None:
    """Train, analyse, log. Returns the top layer's read-out accuracy (the sweep objective), if computed.

    Raises:
        ConfigError, data.DataError: invalid input, raised before any training and before a run is created.
    """
    c = validate(cfg)
    output_dir, launch_dir, overrides = _hydra_context()
    start_state = None
    settings = TrainSettings(**asdict(c.train))
    ds = _load_data(c)
    check_data_size(c, ds.x_train.shape[0])
    steps_per_epoch = ds.x_train.shape[0] // settings.batch_size
    fingerprint = _fingerprint(c)
    if c.resume is not None:
        meta, done, leaves = checkpoint.load_state(Path(c.resume) / "checkpoint" / "state.npz")
        if meta.get("fingerprint") != fingerprint:
            raise ConfigError(
                f"invalid config: resume={c.resume!r}; its checkpoint was written with another "
                "seed/model/train/dataset config; allowed: the output dir of a run with the same config"
            )
        start_state = restore_train_state(
            meta["layer"], meta["epoch"], done, leaves, ds.x_train.shape[1],
            c.model.hidden, settings, steps_per_epoch,
        )  # fmt: skip

    tracking_cfg = OmegaConf.to_container(cfg.tracking, resolve=True)
    if tracking_cfg.get("uri") is None and tracking_cfg["_target_"].endswith("MlflowTracker"):
        tracking_cfg["uri"] = f"sqlite:///{launch_dir.resolve() / 'mlflow.db'}"
        tracking_cfg["artifact_location"] = (launch_dir / "mlartifacts").resolve().as_uri()
    try:
        tracker = instantiate(tracking_cfg)
    except InstantiationException as err:
        if isinstance(err.__cause__, TrackingUnavailable):
            raise err.__cause__ from None
        raise
    callbacks = [instantiate(cb) for cb in c.analysis.callbacks]

    run_name = ",".join(overrides) or "default"
    tags = {
        "seed": c.seed,
        "overrides": " ".join(overrides),
        "jax_backend": jax.default_backend(),
        "jax_devices": ", ".join(str(d) for d in jax.devices()),
        "jax_version": jax.__version__,
        "dataset_source": ds.source,
        "dataset_digest": ds.digest(),
        "dataset_n_train": ds.x_train.shape[0],
        "dataset_n_test": ds.x_test.shape[0],
        "command": shlex.join(["dbn-experiment", *overrides]),
        "output_dir": str(output_dir),
        "config_fingerprint": fingerprint,
        **_git_info(),
        **_package_versions(),
    }
    if c.resume is not None:
        tags["resumed_from"] = str(c.resume)
    previous = None
    if c.resume is not None and (Path(c.resume) / "tracking.json").is_file():
        previous = json.loads((Path(c.resume) / "tracking.json").read_text())
    tracker.start_run(run_name, _params(cfg), tags)
    # Which run this output dir belongs to, so that `resume=<this dir>` can link the next run to it (written by
    # the tracker's writer once the run exists: the job does not wait for the store).
    output_dir.mkdir(parents=True, exist_ok=True)
    tracker.then(
        lambda: checkpoint.atomic_write_bytes(
            output_dir / "tracking.json",
            json.dumps({"run_id": tracker.run_id, "uri": getattr(tracker, "uri", None)}).encode(),
        )
    )
    try:
        if previous is not None:
            try:
                tracker.continue_from(previous.get("run_id"), previous.get("uri"))
            except ValueError as err:
                raise ConfigError(f"invalid config: resume={c.resume!r}: {err}") from None
        with _signals_raise(tracker):
            objective = _train_and_log(c, cfg, ds, settings, tracker, callbacks, output_dir,
                                       fingerprint, start_state)  # fmt: skip
            # The cost of logging: the time the job waited for the tracker (time/tracking_seconds, per method), and
            # what the background writer spent per kind of write (import, store, metrics, figures, artifacts).
            tracker.wait()
            spent = {f"time/tracking/{k}_seconds": v for k, v in getattr(tracker, "seconds_by", {}).items()}
            spent.update({f"time/tracking/background/{k}_seconds": v
                          for k, v in getattr(tracker, "background_seconds", {}).items()})  # fmt: skip
            spent.update({f"time/tracking/background_cpu/{k}_seconds": v
                          for k, v in getattr(tracker, "background_cpu_seconds", {}).items()})  # fmt: skip
            tracker.log_metrics({"time/tracking_seconds": getattr(tracker, "seconds", 0.0), **spent}, 0)
    except (KeyboardInterrupt, Terminated) as err:
        tracker.end_run("KILLED", f"{type(err).__name__}: {err}")
        raise
    except BaseException as err:
        tracker.end_run("FAILED", f"{type(err).__name__}: {err}")
        raise
    tracker.end_run("FINISHED")
    return objective


def _train_and_log(
    c: ExperimentConfig,
    cfg: DictConfig,
    ds: data.Dataset,
    settings: TrainSettings,
    tracker: Any,
    callbacks: list[Callable],
    output_dir: Path,
    fingerprint: str,
    start_state: Any,
) -> float | None:
    output_dir.mkdir(parents=True, exist_ok=True)
    state_path = output_dir / "checkpoint" / "state.npz"
    hydra_dir = output_dir / ".hydra"
    if hydra_dir.is_dir():
        tracker.log_artifacts(hydra_dir, "hydra")
    # The composed, resolved config of this job (what `--cfg job` prints), at the top of the run's artifacts.
    resolved = output_dir / "config.yaml"
    checkpoint.atomic_write_bytes(resolved, OmegaConf.to_yaml(_resolved(cfg)).encode())
    tracker.log_artifact(resolved)
    n_mon = c.monitor.n_samples
    bar = None
    t_layer = time.perf_counter()
    if c.model.kind == "mlp":  # the supervised baseline: same architecture, data and update rule, backprop
        events = train_mlp(
            jax.random.key(c.seed), ds.x_train, ds.y_train, c.model.hidden, settings, ds.x_test, ds.y_test,
            n_monitor=n_mon,
        )  # fmt: skip
    else:
        events = train_dbn(
            jax.random.key(c.seed), ds.x_train, c.model.hidden, settings, ds.x_test[:n_mon],
            n_monitor=n_mon, start=start_state,
        )  # fmt: skip
    layers: tuple = ()
    analysis_seconds: dict[str, float] = {}
    for event in events:
        if isinstance(event, EpochEnd):
            h = "mlp" if c.model.kind == "mlp" else f"h{event.layer}"
            if bar is None:
                bar = tqdm(total=event.n_epochs, initial=event.epoch, desc=f"train {h}",
                           unit="epoch", disable=None, file=sys.stderr)  # fmt: skip
            else:
                bar.update(1)
            shown = "recon_error" if "recon_error" in event.metrics else "loss"
            bar.set_postfix({shown: f"{event.metrics[shown]:.4f}"})
            tracker.log_metrics({f"train/{h}/{k}": v for k, v in event.metrics.items()}, event.epoch)
        elif isinstance(event, LayerEnd):
            if bar is not None:
                bar.close()
                bar = None
            elapsed = time.perf_counter() - t_layer
            tracker.log_metrics({f"time/h{event.layer}/train_seconds": elapsed}, 0)
            log.info("layer h%d trained in %.1f s", event.layer, elapsed)
            t_layer = time.perf_counter()
        elif isinstance(event, TrainEnd):
            layers = event.layers
        so_far = AnalysisResult()  # what the callbacks produced at this event (for those that want context)
        for cb in callbacks:
            if not _due(cb, event):
                continue
            t0 = time.perf_counter()
            if getattr(cb, "wants_context", False):
                result = cb(event, CallbackContext(so_far, ds, c.seed, c.model.kind))
            else:
                result = cb(event)
            analysis_seconds[type(cb).__name__] = (
                analysis_seconds.get(type(cb).__name__, 0.0) + time.perf_counter() - t0
            )
            if result is not None:
                step = event.epoch if isinstance(event, EpochEnd) else settings.epochs
                tracker.log_result(result, step)
                so_far.update(result)
        if isinstance(event, EpochEnd):
            # Everything of this epoch is in the store before its checkpoint exists (the tracker writes it after
            # them): a job killed at any point and resumed from the checkpoint loses no metric (one logged again
            # after it is skipped as a copy).
            tracker.then(
                functools.partial(
                    checkpoint.save_state,
                    state_path,
                    layer=event.layer,
                    epoch=event.epoch,
                    done=event.state.done,
                    leaves=jax.tree_util.tree_leaves(event.state.current),
                    meta={"fingerprint": fingerprint, "seed": c.seed},
                )
            )
    if analysis_seconds:
        tracker.log_metrics({f"time/analysis/{k}_seconds": v for k, v in analysis_seconds.items()}, 0)

    model_dir = checkpoint.save_model(
        output_dir / "model",
        layers,
        meta={
            "seed": c.seed,
            "config": OmegaConf.to_container(cfg.model),
            "fingerprint": fingerprint,
        },
    )
    tracker.log_artifacts(model_dir, "model")
    objective = None
    if c.readout.enabled:
        t0 = time.perf_counter()
        acc = _readout(layers, ds, c.readout.l2, c.readout.max_iter)
        acc["time/readout_seconds"] = time.perf_counter() - t0
        tracker.log_metrics(acc, 0)
        objective = acc[f"readout/h{len(layers)}/accuracy"]
        log.info("read-out accuracy: %s", {k: round(v, 4) for k, v in acc.items()})
    log_file = output_dir / f"{HydraConfig.get().job.name}.log" if HydraConfig.initialized() else None
    if log_file is not None and log_file.exists():
        tracker.log_artifact(log_file, "logs")
    return objective


def _due(callback: Any, event: Any) -> bool:
    """Epoch events reach a callback every ``every_n_epochs`` epochs (and at epoch 0 and a layer's last epoch);
    ``every_n_epochs: 0`` means layer/train end only. Layer and train end events reach every callback."""
    if not isinstance(event, EpochEnd):
        return True
    every = int(getattr(callback, "every_n_epochs", 0) or 0)
    return every > 0 and (event.epoch % every == 0 or event.epoch == event.n_epochs)


def _report(err: BaseException) -> None:
    print(f"error: {err}", file=sys.stderr)


class JobInputError(CompactHydraException):
    """A job of a multirun stopped by bad input or divergence: Hydra reports it as one line, no traceback."""


def _fail_job(err: BaseException, exit_code: int) -> NoReturn:
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        # The launcher records the failed job (its child run FAILED with this message) and goes on with the others.
        raise JobInputError(str(err)) from None
    _report(err)
    sys.exit(exit_code)


@hydra.main(version_base="1.3", config_path="pkg://dbn_jax.conf", config_name="config")
def main(cfg: DictConfig) -> float | None:
    """Console script ``dbn-experiment``; ``python -m dbn_jax`` does the same."""
    try:
        return run(cfg)
    except (ConfigError, data.DataError, TrackingUnavailable) as err:
        _fail_job(err, 2)
    except Diverged as err:  # the run is already FAILED with this message; the last good checkpoint is kept
        _fail_job(err, 1)
    except Terminated:
        sys.exit(128 + signal.SIGTERM)


if __name__ == "__main__":
    os.environ.setdefault("HYDRA_FULL_ERROR", "0")
    main()
