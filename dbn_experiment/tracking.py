"""The one writer: every metric, param, tag and artifact of a run goes through a tracker.

* :class:`MlflowTracker` — MLflow through ``MlflowClient`` with explicit run ids (safe in launcher workers). Its
  store calls run on one background thread, in the order they were made, so training and analysis do not wait
  for the store; :meth:`~MlflowTracker.wait` and :meth:`~MlflowTracker.end_run` wait for them. Batches stay
  within MLflow's limits; ``database is locked`` and transient HTTP errors are retried with back-off.
* :class:`NullTracker` — the same interface, keeping everything in memory (``tracking=off``; tests).
* :class:`MlflowRunCallback` — the Hydra callback giving a multirun sweep one parent run with a child run per job.

During a run only the background thread calls the store, so a signal handler (which runs on the main thread)
never cuts a store call short: ``end_run("KILLED")`` after SIGTERM finds the store usable.
"""

from __future__ import annotations

import atexit
import csv
import functools
import io
import logging
import math
import os
import queue
import re
import shlex
import shutil
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from hydra.experimental.callback import Callback

from analysis.callbacks import LazyFiles

log = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PARAMS_PER_BATCH, MAX_TAGS_PER_BATCH, MAX_METRICS_PER_BATCH = 100, 100, 1000
MAX_PARAM_VALUE, MAX_TAG_VALUE = 6000, 5000
TERMINAL = ("FINISHED", "FAILED", "KILLED")
_TEXT_SUFFIXES = {".yaml", ".yml", ".log", ".txt", ".json", ".csv", ".md"}
_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]+):[^@\s'\"]+@")


def default_tracking_uri(launch_dir: str | os.PathLike) -> tuple[str, str]:
    """``(uri, artifact location)`` of the default store: ``<launch dir>/mlflow.db``, ``<launch dir>/mlartifacts``
    (so ``mlflow ui`` started in the launch dir shows everything)."""
    root = Path(launch_dir).resolve()
    return f"sqlite:///{root / 'mlflow.db'}", (root / "mlartifacts").as_uri()


def redact(text: str) -> str:
    """Mask the password of every ``scheme://user:password@host`` in ``text``: ``scheme://user:***@host``."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be reached; ``str(err)`` is one line naming the URI."""


def check_reachable(uri: str, attempts: int = 3, timeout: float = 4.0, pause: float = 2.0) -> None:
    """For an ``http(s)://`` URI: raise :class:`TrackingUnavailable` unless the server answers within ``attempts``
    tries (about 16 s at worst; MLflow's own client would retry for minutes). Other URIs pass."""
    if not uri.startswith(("http://", "https://")):
        return
    reason = ""
    for i in range(attempts):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                return
        except urllib.error.HTTPError:  # it answered: reachable (a proxy or a server without /health)
            return
        except (urllib.error.URLError, OSError) as err:
            reason = str(getattr(err, "reason", err))
        if i < attempts - 1:
            time.sleep(pause)
    raise TrackingUnavailable(
        f"tracking.uri={redact(uri)} is not reachable ({reason}; {attempts} tries): start the tracking server, "
        "fix tracking.uri (or MLFLOW_TRACKING_URI), or use tracking.uri=null for a local SQLite store"
    )


def retry(fn: Callable[[], T], *, attempts: int = 8, base_delay: float = 0.1) -> T:
    """Call ``fn``; on a transient store error (``database is locked``, a dropped connection, HTTP 429/502/503)
    wait ``base_delay * 2**i`` seconds (at most 5) and try again."""
    transient = ("database is locked", "connection", "timed out", "temporarily", "503", "502", "429")
    for i in range(attempts):
        try:
            return fn()
        except Exception as err:  # noqa: BLE001 - filtered below
            if i == attempts - 1 or not any(n in str(err).lower() for n in transient):
                raise
            delay = min(base_delay * 2**i, 5.0)
            log.warning("tracking store busy (%s); retrying in %.1f s", str(err).splitlines()[0], delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def csv_bytes(table: Mapping[str, Any]) -> bytes:
    """A column table ``{name: 1-d array}`` as CSV."""
    cols = {k: np.asarray(v).reshape(-1) for k, v in table.items()}
    if len({len(v) for v in cols.values()}) > 1:
        raise ValueError(f"table columns differ in length: { {k: len(v) for k, v in cols.items()} }")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows([x.item() for x in row] for row in zip(*cols.values(), strict=True))
    return out.getvalue().encode()


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", pil_kwargs={"compress_level": 1})  # ~10% larger, 2-4x faster than 6
    finally:
        fig.clear()  # free the figure's memory once rendered
    return buf.getvalue()


def _npz(arrays: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


def _redacted_bytes(src: str | Path) -> bytes:
    """A file's bytes; a text file (config, log) with the passwords of its URIs masked."""
    data = Path(src).read_bytes()
    if Path(src).suffix in _TEXT_SUFFIXES:
        try:
            return redact(data.decode()).encode()
        except UnicodeDecodeError:
            pass
    return data


class NullTracker:
    """Keeps what would be logged in memory: ``params``, ``tags``, ``metrics[key] -> [(step, value)]``,
    ``figures``, ``tables``, ``arrays``, ``files`` (callables made into bytes on first read), ``artifacts``."""

    def __init__(self, uri: str | None = None, experiment: str = "dbn-complex-networks", **_: Any):
        self.uri, self.experiment, self.run_id = uri, experiment, None
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.figures: dict[str, Any] = {}
        self.tables: dict[str, dict[str, np.ndarray]] = {}
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.files: LazyFiles = LazyFiles()
        self.artifacts: list[tuple[str, str | None]] = []
        self.status: str | None = None
        self.message: str | None = None

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.params = {k: str(v) for k, v in params.items()}
        self.tags = {k: str(v) for k, v in tags.items()}
        self.status = "RUNNING"

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

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_path), artifact_path))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_dir), artifact_path))

    def continue_from(self, run_id: str | None, uri: str | None) -> None:
        """Nothing to link without a store (see :meth:`MlflowTracker.continue_from`)."""

    def wait(self) -> None:
        """Nothing is pending here."""

    def end_run(self, status: str = "FINISHED", message: str | None = None) -> None:
        if self.status not in TERMINAL:
            self.status, self.message = status, message


class MlflowTracker(NullTracker):
    """Writes to an MLflow tracking store from one background thread.

    Args:
        uri: tracking URI; ``None`` = the default store (:func:`default_tracking_uri` of the working dir). The
            ``MLFLOW_TRACKING_URI`` environment variable, when set, wins.
        experiment: experiment name (created if missing).
        artifact_location: where a newly created experiment stores artifacts (default: beside the default
            SQLite store, the server's choice otherwise).

    An unreachable ``http(s)://`` server is an error at once. A store write that fails stops the writes after it
    (they depend on it); its error is raised at the job's next call and fails the run at :meth:`end_run`.
    """

    def __init__(self, uri: str | None = None, experiment: str = "dbn-complex-networks",
                 artifact_location: str | None = None, **_: Any):  # fmt: skip
        super().__init__(uri, experiment)
        if os.environ.get("MLFLOW_TRACKING_URI"):
            uri = os.environ["MLFLOW_TRACKING_URI"]
        elif uri is None:
            uri, default_artifacts = default_tracking_uri(os.getcwd())
            artifact_location = artifact_location or default_artifacts
        self.uri, self.artifact_location = uri, artifact_location
        check_reachable(uri)
        self.client: Any = None
        self.experiment_id: str | None = None
        self._error: BaseException | None = None
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="mlflow-writer", daemon=True)
        self._thread.start()
        self._submit(self._connect)  # MLflow's import and the store's set-up overlap with the job's start

    def _loop(self) -> None:
        while (fn := self._queue.get()) is not None:
            try:
                if self._error is None:
                    self._write(fn)
            except BaseException as err:  # noqa: BLE001 - handed to the job
                self._error = err
            finally:
                self._queue.task_done()
        self._queue.task_done()

    def _write(self, fn: Callable[[], Any]) -> None:
        """Make one store write (on the writer thread)."""
        fn()

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

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        """Create the run (a child of the sweep's parent inside a multirun) with its params (values over MLflow's
        limit truncated, tagged ``params_truncated``) and tags; returns once ``self.run_id`` exists."""
        parent = _JOB.get("parent_run_id")
        self.status = "RUNNING"

        def create() -> None:
            self.run_id = create_run(self.client, self.experiment_id, run_name, params, tags, parent)
            if parent:
                _JOB["run_id"] = self.run_id

        self._submit(create)
        self.wait()

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
        """Its metrics at ``step``; figures as PNG, tables as CSV, arrays as ``.npz`` (made on the writer)."""
        self.log_metrics(result.metrics, step)
        for kind, make in ((result.figures, _png), (result.tables, csv_bytes), (result.arrays, _npz)):
            for path, value in kind.items():
                self.log_bytes(functools.partial(make, value), path)
        for path, data in dict.items(result.files):
            self.log_bytes(data, path)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file, text files (config, log) with their passwords masked. It is read when the writer gets to
        it: do not change or delete it before :meth:`wait`."""
        name = f"{artifact_path or '.'}/{Path(local_path).name}"
        self.log_bytes(functools.partial(_redacted_bytes, local_path), name)

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Log a folder (read when the writer gets to it, as for :meth:`log_artifact`)."""

        def store() -> None:
            with tempfile.TemporaryDirectory() as tmp:
                copy = Path(tmp) / Path(local_dir).name
                shutil.copytree(
                    local_dir, copy, copy_function=lambda a, b: Path(b).write_bytes(_redacted_bytes(a))
                )
                retry(lambda: self.client.log_artifacts(self.run_id, str(copy), artifact_path))

        self._submit(store)

    def continue_from(self, run_id: str | None, uri: str | None) -> None:
        """Link this run to ``run_id``, the run of an earlier process of the same job (tags ``resumed_from_run`` /
        ``resumed_by``), and mark that run KILLED if it is still RUNNING (``kill -9`` leaves it so). Raises
        ``ValueError`` if it FINISHED. A run of another store is only named in a warning."""
        if run_id is None or uri != self.uri:
            if run_id is not None:
                log.warning("run %s was tracked in another store (%s): not linked", run_id, redact(str(uri)))
            return
        self.wait()
        old = retry(lambda: self.client.get_run(run_id))
        if old.info.status == "FINISHED":
            raise ValueError(f"run {run_id} FINISHED: there is nothing to resume")
        self.set_tags({"resumed_from_run": run_id})

        def link() -> None:
            retry(lambda: self.client.set_tag(run_id, "resumed_by", self.run_id))
            if old.info.status == "RUNNING":
                close_run(self.client, run_id, "KILLED", f"process died; resumed by run {self.run_id}")

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
        if self.run_id is not None:
            close_run(self.client, self.run_id, status, message)
        if self.status is not None:
            self.status, self.message = status, message


def get_or_create_experiment(client: Any, name: str, artifact_location: str | None) -> str:
    exp = retry(lambda: client.get_experiment_by_name(name))
    if exp is not None:
        return exp.experiment_id
    try:
        return retry(lambda: client.create_experiment(name, artifact_location=artifact_location))
    except Exception:  # noqa: BLE001 - created at the same moment by another process
        exp = retry(lambda: client.get_experiment_by_name(name))
        if exp is None:
            raise
        return exp.experiment_id


def log_batch(client: Any, run_id: str, metrics: Iterable[tuple[str, float, int, int]] = (),
              params: Mapping[str, str] | None = None, tags: Mapping[str, str] | None = None) -> None:  # fmt: skip
    """Write metrics ``(key, value, timestamp ms, step)``, params and tags in batches within MLflow's limits."""
    from mlflow.entities import Metric, Param, RunTag

    def chunks(items: list[Any], size: int) -> list[list[Any]]:
        return [items[i : i + size] for i in range(0, len(items), size)]

    batches = [{"metrics": c} for c in chunks([Metric(*m) for m in metrics], MAX_METRICS_PER_BATCH)]
    batches += [{"params": c} for c in chunks([Param(*p) for p in (params or {}).items()], MAX_PARAMS_PER_BATCH)]
    batches += [{"tags": c} for c in chunks([RunTag(*t) for t in (tags or {}).items()], MAX_TAGS_PER_BATCH)]
    for batch in batches:
        retry(lambda b=batch: client.log_batch(run_id, **b))


def create_run(client: Any, experiment_id: str, name: str, params: Mapping[str, Any], tags: Mapping[str, Any],
               parent: str | None = None) -> str:  # fmt: skip
    """Create a run with its params and tags, credentials masked; return its id."""
    parent_tag = {"mlflow.parentRunId": parent} if parent else None
    run_id = retry(lambda: client.create_run(experiment_id, run_name=redact(name), tags=parent_tag)).info.run_id
    texts = {k: redact(str(v)) for k, v in params.items()}
    truncated = [k for k, text in texts.items() if len(text) > MAX_PARAM_VALUE]
    texts.update({k: texts[k][: MAX_PARAM_VALUE - 3] + "..." for k in truncated})
    tags = {**tags, "params_truncated": ",".join(truncated)} if truncated else tags
    log_batch(client, run_id, params=texts, tags={k: redact(str(v))[:MAX_TAG_VALUE] for k, v in tags.items()})
    return run_id


def close_run(client: Any, run_id: str, status: str, message: str | None = None) -> None:
    if message:
        retry(lambda: client.set_tag(run_id, "error", redact(message)[:MAX_TAG_VALUE]))
    retry(lambda: client.set_terminated(run_id, status=status))


# ------------------------------------------------------------------------------------------ Hydra run lifecycle

# What the sweep callback tells the job's tracker, in the job's own process (set in on_job_start; a joblib or
# submitit worker gets it from the pickled callback, never from the launching process's globals).
_JOB: dict[str, Any] = {}


def tracking_settings(config: Any) -> tuple[bool, str, str, str | None]:
    """(enabled, uri, experiment, artifact location) of a composed config, resolved as the app resolves them."""
    from omegaconf import OmegaConf

    target = str(OmegaConf.select(config, "tracking._target_", default="") or "")
    uri = os.environ.get("MLFLOW_TRACKING_URI") or OmegaConf.select(config, "tracking.uri", default=None)
    experiment = str(OmegaConf.select(config, "tracking.experiment", default="dbn-complex-networks"))
    artifacts = None
    if uri is None:
        uri, artifacts = default_tracking_uri(OmegaConf.select(config, "hydra.runtime.cwd", default=None) or ".")
    return target.endswith("MlflowTracker"), uri, experiment, artifacts


class MlflowRunCallback(Callback):
    """Hydra callback that gives a multirun sweep one MLflow **parent run** with one **child run** per job.

    * ``on_multirun_start`` (launching host, before any worker): creates the experiment once (no SQLite migration
      or experiment-creation races between workers) and the parent run.
    * ``on_job_start`` (in the job's process, local or remote): hands the parent run id to the job's tracker.
    * ``on_job_end``: a job that failed before its run existed (invalid config, unreadable data) is recorded as a
      FAILED child with its error, so every job of a sweep is visible.
    * ``on_multirun_end`` (or at exit, when the sweep raised because a job failed): the parent ends FINISHED if
      every child finished, else FAILED, with the counts as tags.

    Single runs are left to the app, which owns its run's status (FINISHED / FAILED / KILLED).
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.uri, self.experiment_id = "", ""

    def _client(self) -> Any:
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.uri)

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        from omegaconf import OmegaConf

        enabled, self.uri, experiment, artifacts = tracking_settings(config)
        if not enabled:
            return
        try:
            check_reachable(self.uri)
        except TrackingUnavailable as err:  # before any job: one clear line, no traceback
            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        client = self._client()
        self.experiment_id = get_or_create_experiment(client, experiment, artifacts)
        overrides = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
        command = shlex.join(["dbn-experiment", "-m", *overrides])
        tags = {"sweep_dir": OmegaConf.select(config, "hydra.sweep.dir", default=""), "role": "sweep parent",
                "overrides": " ".join(overrides), "command": command}  # fmt: skip
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
