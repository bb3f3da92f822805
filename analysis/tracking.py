"""The one writer: every metric, param, tag, figure, table and artifact of a run goes through a tracker.

* :class:`MlflowTracker` — MLflow through ``MlflowClient`` with explicit run ids (safe in worker processes),
  batched writes within MLflow's limits, JAX / numpy scalars converted, retries with back-off on
  ``database is locked`` and transient HTTP errors.
* :class:`NullTracker` — same interface, keeps everything in memory (``tracking=off``; tests, quick looks).

This is the only module of the project that imports mlflow.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import gc
import logging
import math
import os
import queue
import re
import shlex
import shutil
import tempfile
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from analysis.callbacks import LazyFiles

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_PARAMS_PER_BATCH = 100
MAX_TAGS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 5000
TERMINAL = ("FINISHED", "FAILED", "KILLED")


def to_float(value: Any) -> float:
    """Python float of a number, 0-d numpy array or JAX array."""
    return float(np.asarray(value))


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}} -> {"a.b": 1}``; lists stay values (logged as their text)."""
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, Mapping):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def default_tracking_uri(launch_dir: str | os.PathLike) -> str:
    return f"sqlite:///{Path(launch_dir).resolve() / 'mlflow.db'}"


_CREDENTIALS = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s'\"]+):[^@\s'\"]+@")
_TEXT_SUFFIXES = {".yaml", ".yml", ".log", ".txt", ".json", ".csv", ".md"}


def redact(text: str) -> str:
    """Mask the password of every ``scheme://user:password@host`` in ``text``: ``scheme://user:***@host``."""
    return _CREDENTIALS.sub(r"\g<head>:***@", text)


def _redacted_copy(src: Path, dst: Path) -> None:
    if src.suffix in _TEXT_SUFFIXES:
        try:
            dst.write_text(redact(src.read_text()))
            return
        except UnicodeDecodeError:
            pass
    shutil.copyfile(src, dst)


class TrackingUnavailable(RuntimeError):
    """The tracking server cannot be reached; ``str(err)`` is one line naming the URI."""


def check_reachable(uri: str, attempts: int = 3, timeout: float = 4.0, pause: float = 2.0) -> None:
    """For an ``http(s)://`` tracking URI: raise :class:`TrackingUnavailable` unless the server answers an HTTP
    request (any status) within ``attempts`` tries of ``timeout`` seconds, ``pause`` seconds apart (worst case
    about 16 s). Other URIs pass. MLflow's own client would retry a dead server for minutes."""
    import urllib.error
    import urllib.request

    if not uri.startswith(("http://", "https://")):
        return
    reason = ""
    for i in range(attempts):
        try:
            with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout):
                return
        except urllib.error.HTTPError:  # it answered: reachable (a proxy or server without /health)
            return
        except (urllib.error.URLError, OSError) as err:
            reason = str(getattr(err, "reason", err))
        if i < attempts - 1:
            time.sleep(pause)
    raise TrackingUnavailable(
        f"tracking.uri={redact(uri)} is not reachable ({reason}; {attempts} tries): start the tracking server, "
        "fix tracking.uri (or MLFLOW_TRACKING_URI), or use tracking.uri=null for a local SQLite store"
    )


def _transient(err: BaseException) -> bool:
    text = str(err).lower()
    needles = ("database is locked", "connection", "timed out", "temporarily", "503", "502", "429")
    return any(n in text for n in needles)


# A signal handler that raises (SIGTERM, SIGINT) must not interrupt a store call half-way: an exception thrown
# between SQLite's BEGIN and COMMIT leaves this process holding the write lock, and the call that would mark the
# run KILLED then waits on its own lock. ``interrupt`` defers the exception to the end of the store call.
_STORE = {"depth": 0, "pending": None}


def interrupt(exc: BaseException) -> None:
    """Raise ``exc`` now, or, inside a store call, as soon as that call returns (for signal handlers)."""
    if _STORE["depth"]:
        _STORE["pending"] = exc
        return
    raise exc


def _store_call(fn: Callable[[], T]) -> T:
    # Signal handlers run on the main thread, and only a store call of the main thread can be cut short by them;
    # the background writer's calls always complete.
    if threading.current_thread() is not threading.main_thread():
        return fn()
    _STORE["depth"] += 1
    try:
        return fn()
    finally:
        _STORE["depth"] -= 1
        if not _STORE["depth"] and _STORE["pending"] is not None:
            exc, _STORE["pending"] = _STORE["pending"], None
            raise exc


def retry(fn: Callable[[], T], *, attempts: int = 8, base_delay: float = 0.1) -> T:
    """Call ``fn``; on a transient store error wait ``base_delay * 2**i`` (capped at 5 s) and try again.

    Each call is a store call: a signal handler's exception passed to :func:`interrupt` waits for it to end."""
    for i in range(attempts):
        try:
            return _store_call(fn)
        except Exception as err:  # noqa: BLE001 - filtered by _transient
            if i == attempts - 1 or not _transient(err):
                raise
            delay = min(base_delay * 2**i, 5.0)
            log.warning("tracking store busy (%s); retrying in %.1f s", str(err).splitlines()[0], delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def _chunks(items: list[T], size: int) -> Iterable[list[T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def write_table_csv(path: str | Path, table: Mapping[str, Any]) -> None:
    """Write a column table ``{name: 1-d array}`` as CSV."""
    cols = {k: np.asarray(v).reshape(-1) for k, v in table.items()}
    n = {len(v) for v in cols.values()}
    if len(n) > 1:
        raise ValueError(f"table columns differ in length: { {k: len(v) for k, v in cols.items()} }")
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for row in zip(*cols.values(), strict=True):
            w.writerow([x.item() if hasattr(x, "item") else x for x in row])


def _close(figure: Any) -> None:
    """Free a figure's memory once logged (OO-API figures are not tracked by pyplot; clearing is enough)."""
    clear = getattr(figure, "clear", None)
    if clear is not None:
        clear()


_PNG = {"pil_kwargs": {"compress_level": 1}}


def _write_npz(path: Path, arrays: Mapping[str, Any]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **{k: np.asarray(v) for k, v in arrays.items()})


def _write_bytes(path: Path, data: bytes | Callable[[], bytes]) -> None:
    path.write_bytes(data() if callable(data) else data)


def _png(figure: Any) -> bytes:
    import io

    buf = io.BytesIO()
    figure.savefig(buf, format="png", **_PNG)
    return buf.getvalue()


class _Render:
    """A figure's PNG, made by whichever of the writer thread and the waiting job claims it first."""

    def __init__(self, figure: Any) -> None:
        self.figure = figure
        self.claimed = False
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._png: bytes | None = None

    def claim(self) -> bool:
        """For the writer thread: True if it is first (the writer process renders the figure), else False (then
        :meth:`result` gives the job's PNG)."""
        with self._lock:
            if self.claimed:
                return False
            self.claimed = True
            return True

    def take(self) -> None:
        """For the waiting job: claim the figure and render its PNG here, unless the writer claimed it first. If
        the rendering fails, or is cut short, the PNG is None and the writer renders the figure itself (so an error
        is reported by the write, as for any figure); a signal's exception is raised."""
        claimed = False
        try:
            with self._lock:
                if self.claimed:
                    return
                claimed = self.claimed = True  # in this order: the writer never waits for a render not begun
            self._png = _png(self.figure)
        except Exception:  # noqa: BLE001 - left to the writer, which reports it
            self._png = None
        finally:
            if claimed:
                self._done.set()

    def result(self) -> bytes | None:
        """Wait for the job's :meth:`take`: the PNG, or None if it failed."""
        self._done.wait()
        return self._png


# ------------------------------------------------------------------------------------------ store calls


class _Store:
    """The store calls of one tracker, made where its MLflow client lives: in the job, or in the tracker's writer
    process (:class:`_StoreProcess`, which gets them by name with picklable arguments). Every call retries
    transient errors (:func:`retry`)."""

    def __init__(self) -> None:
        self.client: Any = None

    def connect(self, uri: str, experiment: str, artifact_location: str | None) -> str:
        """Open the store; return the id of ``experiment``, created if missing."""
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient(tracking_uri=uri)
        return retry(lambda: self._get_or_create_experiment(experiment, artifact_location))

    def _get_or_create_experiment(self, name: str, artifact_location: str | None) -> str:
        exp = self.client.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=artifact_location)
        except Exception:  # noqa: BLE001 - created concurrently by another process
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def create_run(
        self, experiment_id: str, run_name: str, params: dict[str, Any], tags: dict[str, Any], parent: str | None
    ) -> str:
        """Create a run (a child of ``parent`` if given) with its params (values over MLflow's limit truncated,
        tagged ``params_truncated``) and tags, in batches; return its id."""
        from mlflow.entities import Param, RunTag

        client = self.client
        run_tags = {"mlflow.parentRunId": parent} if parent else None
        run = retry(lambda: client.create_run(experiment_id, run_name=run_name, tags=run_tags))
        run_id = run.info.run_id
        truncated = []
        plist = []
        for k, v in params.items():
            text = redact(str(v))
            if len(text) > MAX_PARAM_VALUE:
                truncated.append(k)
                text = text[: MAX_PARAM_VALUE - 3] + "..."
            plist.append(Param(k, text))
        if truncated:
            tags = {**tags, "params_truncated": ",".join(truncated)}
        for chunk in _chunks(plist, MAX_PARAMS_PER_BATCH):
            retry(lambda c=chunk: client.log_batch(run_id, params=c))
        tag_list = [RunTag(k, redact(str(v))[:MAX_TAG_VALUE]) for k, v in tags.items()]
        for chunk in _chunks(tag_list, MAX_TAGS_PER_BATCH):
            retry(lambda c=chunk: client.log_batch(run_id, tags=c))
        return run_id

    def log_metrics(self, run_id: str, items: list[tuple[str, float, int, int]]) -> None:
        """``items``: (key, value, timestamp in ms, step), written in batches of <= 1000."""
        from mlflow.entities import Metric

        metrics = [Metric(k, x, ts, step) for k, x, ts, step in items]
        for chunk in _chunks(metrics, MAX_METRICS_PER_BATCH):
            retry(lambda c=chunk: self.client.log_batch(run_id, metrics=c))

    def set_tags(self, run_id: str, items: list[tuple[str, str]]) -> None:
        from mlflow.entities import RunTag

        for chunk in _chunks([RunTag(k, v) for k, v in items], MAX_TAGS_PER_BATCH):
            retry(lambda c=chunk: self.client.log_batch(run_id, tags=c))

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        # zlib level 1: PNGs ~10% larger, encoded 2-4x faster (the 500 x 500 distance images)
        retry(lambda: self.client.log_figure(run_id, figure, artifact_file, save_kwargs=_PNG))

    def log_file(self, run_id: str, artifact_file: str, write: Callable[[Path, Any], None], data: Any) -> None:
        """Store what ``write(path, data)`` writes at ``artifact_file`` (a table, arrays, bytes)."""
        with tempfile.TemporaryDirectory() as tmp:
            local = Path(tmp) / Path(artifact_file).name
            write(local, data)
            parent = str(Path(artifact_file).parent)
            self.log_artifact(run_id, local, None if parent == "." else parent)

    def log_artifact(self, run_id: str, src: Path, artifact_path: str | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            if src.suffix in _TEXT_SUFFIXES:
                _redacted_copy(src, Path(tmp) / src.name)
                src = Path(tmp) / src.name
            retry(lambda: self.client.log_artifact(run_id, str(src), artifact_path))

    def log_artifacts(self, run_id: str, src: Path, artifact_path: str | None) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            if any(f.suffix in _TEXT_SUFFIXES for f in src.rglob("*") if f.is_file()):
                copy = Path(tmp) / src.name
                shutil.copytree(src, copy, copy_function=lambda a, b: _redacted_copy(Path(a), Path(b)))
                src = copy
            retry(lambda: self.client.log_artifacts(run_id, str(src), artifact_path))

    def continue_run(self, old_id: str, new_id: str, skip: set[tuple[str, int]]) -> list[tuple[str, int]]:
        """Copy the metric histories of ``old_id`` into ``new_id`` (but the (key, step) in ``skip``), link both by
        tags and mark ``old_id`` KILLED if it is still RUNNING; return the (key, step) copied. Raises
        ``ValueError`` if ``old_id`` FINISHED."""
        from mlflow.entities import Metric

        client = self.client
        old = retry(lambda: client.get_run(old_id))
        if old.info.status == "FINISHED":
            raise ValueError(f"run {old_id} FINISHED: there is nothing to resume")
        copied: list[Metric] = []
        seen = set(skip)
        for key in old.data.metrics:
            for m in retry(lambda k=key: client.get_metric_history(old_id, k)):
                if (m.key, m.step) not in seen:
                    seen.add((m.key, m.step))
                    copied.append(Metric(m.key, m.value, m.timestamp, m.step))
        for chunk in _chunks(copied, MAX_METRICS_PER_BATCH):
            retry(lambda c=chunk: client.log_batch(new_id, metrics=c))
        retry(lambda: client.set_tag(new_id, "resumed_from_run", old_id))
        retry(lambda: client.set_tag(old_id, "resumed_by", new_id))
        if old.info.status == "RUNNING":
            retry(lambda: client.set_tag(old_id, "error", f"process died; resumed by run {new_id}"))
            retry(lambda: client.set_terminated(old_id, status="KILLED"))
        return [(m.key, m.step) for m in copied]

    def end_run(self, run_id: str, status: str, message: str | None) -> None:
        if message:
            retry(lambda: self.client.set_tag(run_id, "error", redact(message)[:MAX_TAG_VALUE]))
        retry(lambda: self.client.set_terminated(run_id, status=status))


class StoreProcessLost(RuntimeError):
    """The tracker's writer process died, or a call to it was cut short; nothing more can be written through it."""


class _Unpicklable(TypeError):
    """The arguments of a store call cannot be sent to the writer process (nothing was sent)."""


class _StoreProcess:
    """A :class:`_Store` in a child Python process: the tracker's writer process.

    The job never imports MLflow, and the store's Python work (MLflow's import, SQLAlchemy, figure rendering,
    GraphML) does not share the job's interpreter lock: measured on 2 cores, the writer thread's ~8.6 CPU-s of
    store work cost the job about 5 s of wall time when they ran in its interpreter. Calls go one at a time over a
    pipe (send, then wait for the answer; ``store.<op>(*args)`` as for :class:`_Store`); an error of the call is
    raised here with its type. The child ignores SIGINT and SIGTERM (the job ends its run on them, through the
    child) and exits when the pipe closes: on :meth:`close`, or when the job dies.
    """

    def __init__(self, nice: int = 0) -> None:
        import subprocess
        import sys
        from multiprocessing.connection import Pipe

        ours, theirs = Pipe()
        fd = theirs.fileno()
        paths = [p for p in sys.path if p]
        code = f"import sys; sys.path[:0] = {paths!r}; from analysis.tracking import _serve; _serve({fd}, {nice})"
        try:
            self._proc = subprocess.Popen([sys.executable, "-c", code], pass_fds=(fd,), stdin=subprocess.DEVNULL)
        finally:
            theirs.close()
        self._conn = ours
        self._lock = threading.Lock()
        self.cpu = 0.0  # CPU seconds the child spent on calls
        self.lost: BaseException | None = None

    @property
    def pid(self) -> int:
        return self._proc.pid

    def __getattr__(self, op: str) -> Callable[..., Any]:
        if op.startswith("_") or not callable(getattr(_Store, op, None)):
            raise AttributeError(op)
        return functools.partial(self.call, op)

    def call(self, op: str, *args: Any) -> Any:
        """Run ``_Store.<op>(*args)`` in the child and return its result (or raise its error)."""
        from multiprocessing.reduction import ForkingPickler  # the pickler of multiprocessing's pipes

        try:
            data = ForkingPickler.dumps((op, args))
        except Exception as err:  # noqa: BLE001 - e.g. a figure holding an unpicklable object
            raise _Unpicklable(f"{op}: {type(err).__name__}: {err}") from err
        with self._lock:
            if self.lost is not None:
                raise StoreProcessLost(f"the tracking writer process is gone ({self.lost})")
            # a signal's exception passed to interrupt() waits for the answer (the pipe stays in step)
            reply = _store_call(lambda: self._rpc(op, data))
        ok, value, cpu = ForkingPickler.loads(reply)
        self.cpu += cpu
        if not ok:
            raise value
        return value

    def _rpc(self, op: str, data: Any) -> bytes:
        try:
            self._conn.send_bytes(data)
            return self._conn.recv_bytes()
        except BaseException as err:
            # the child is dead, or the call was cut short and the pipe is out of step: stop using it
            self.lost = RuntimeError("it exited") if isinstance(err, EOFError | OSError) else err
            self._kill()
            if isinstance(err, EOFError | OSError):
                raise StoreProcessLost(
                    f"the tracking writer process exited (code {self._proc.poll()}) during {op}"
                ) from err
            raise

    def _kill(self) -> None:
        with contextlib.suppress(OSError):
            self._proc.kill()
        with contextlib.suppress(Exception):
            self._proc.wait(timeout=10)

    def close(self, timeout: float = 30.0) -> None:
        """Let the child exit (it finishes the call in progress, if any); kill it after ``timeout`` seconds."""
        with contextlib.suppress(OSError):
            self._conn.close()
        try:
            self._proc.wait(timeout=timeout)
        except Exception:  # noqa: BLE001 - subprocess.TimeoutExpired
            self._kill()


def _serve(fd: int, nice: int = 0) -> None:
    """The writer process's loop: answer ``(op, args)`` calls on connection ``fd`` until it closes."""
    import signal
    import sys
    from multiprocessing.connection import Connection
    from multiprocessing.reduction import ForkingPickler

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    if nice:
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, 0, max(nice, os.getpriority(os.PRIO_PROCESS, 0)))
    logging.basicConfig(level=logging.WARNING, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s")
    conn = Connection(fd)
    store = _Store()
    # No garbage collection while MLflow, SQLAlchemy and matplotlib are imported (~0.6 CPU-s of collections that
    # find next to nothing); after the warm-up their objects are frozen out of every later collection.
    gc.disable()
    while True:
        try:
            data = conn.recv_bytes()
        except (EOFError, OSError):
            break
        c0, op = time.process_time(), None
        try:
            op, args = ForkingPickler.loads(data)
            reply: tuple[bool, Any] = (True, getattr(store, op)(*args))
        except BaseException as err:  # noqa: BLE001 - sent to the job
            reply = (False, err)
        if not gc.isenabled():  # after the first call, the connect: the one-time work, counted as its CPU
            if op == "connect" and reply[0]:
                _warm_up()
            gc.enable()
            gc.freeze()
        cpu = time.process_time() - c0
        try:
            out = ForkingPickler.dumps((*reply, cpu))
            if not reply[0]:
                ForkingPickler.loads(out)  # an error the job could not rebuild is sent as its text
        except Exception:  # noqa: BLE001
            err = reply[1]
            out = ForkingPickler.dumps((False, RuntimeError(f"{type(err).__name__}: {err}"), cpu))
        try:
            conn.send_bytes(out)
        except OSError:
            break
    # Every call has completed (the store commits each one): skip the interpreter's teardown of MLflow, SQLAlchemy
    # and matplotlib (~1 s), which the job would wait for in close().
    logging.shutdown()
    with contextlib.suppress(Exception):
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(0)


def _warm_up() -> None:
    """Do the one-time work of the writer process's later calls as part of its connect (its CPU is counted
    there): at the job's start-up, which leaves a core idle, rather than during its analysis, which keeps both
    busy. Imports matplotlib's Agg backend, networkx and the GraphML writer; renders a figure that fills the font,
    text, mathtext and tick caches (constrained layout, log axes, legend, image and colour bar, as the analysis
    figures have). Measured: the analysis's figures and GraphML then take ~0.4 CPU-s less in the writer."""
    import io

    with contextlib.suppress(Exception):
        from matplotlib.figure import Figure

        fig = Figure(figsize=(6.0, 2.5), layout="constrained")
        hist, loglog, image = fig.subplots(1, 3)
        hist.stairs([1.0, 3.0, 2.0], [0.0, 1.0, 2.0, 3.0], label="trained")
        hist.axvline(1.5, linestyle="--", label="mean = 1.5")
        hist.set_yscale("log")
        hist.set_title(r"h1 (n = 500), $\bar{k}$")
        hist.legend(fontsize="small")
        loglog.plot([1.0, 10.0, 100.0], [1.0, 0.1, 0.01], "o-", markersize=4)
        loglog.set_xscale("log")
        loglog.set_yscale("log")
        loglog.set_xlabel("degree k")
        fig.colorbar(image.imshow(np.eye(3), cmap="RdBu_r"), ax=image)
        fig.suptitle("warm-up")
        fig.savefig(io.BytesIO(), format="png", **_PNG)
    with contextlib.suppress(Exception):
        from analysis import graph

        graph.graphml_gz_bytes(graph.to_networkx([np.ones((2, 2))], [np.eye(2, dtype=bool)]))


# ------------------------------------------------------------------------------------------ the writer thread


class _Writer:
    """One daemon thread that runs a tracker's store writes, in the order they were submitted.

    The job that submits a write goes on at once: the store and artifact copies overlap with training and
    analysis. With a writer process (the default) this thread only hands each call over and waits for it, with
    the interpreter lock released. The first write that fails stops the writer (the later writes are dropped:
    they depend on it) and its exception is raised in the job at its next tracker call.
    """

    def __init__(
        self, name: str = "mlflow-writer", nice: int = 0, cpu_elsewhere: Callable[[], float] | None = None
    ):
        self._queue: queue.Queue[tuple[str, Callable[[], Any]] | None] = queue.Queue()
        self.error: BaseException | None = None
        self.busy: dict[str, float] = defaultdict(float)  # wall seconds spent per kind of job
        self.cpu: dict[str, float] = defaultdict(float)  # CPU seconds per kind of job (this thread + the process)
        self.nice = nice
        self._cpu_elsewhere = cpu_elsewhere or (lambda: 0.0)
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        if self.nice:
            # Linux: a thread is a task with its own nice value, so the writer takes the cores the job leaves idle
            with contextlib.suppress(AttributeError, OSError):
                os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), self.nice)
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                kind, fn = item
                if self.error is None:
                    t0, c0, e0 = time.perf_counter(), time.thread_time(), self._cpu_elsewhere()
                    try:
                        fn()
                    finally:
                        self.busy[kind] += time.perf_counter() - t0
                        self.cpu[kind] += time.thread_time() - c0 + self._cpu_elsewhere() - e0
            except BaseException as err:  # noqa: BLE001 - handed to the job (raise_error)
                self.error = err
            finally:
                self._queue.task_done()

    def on_thread(self) -> bool:
        """Whether the caller is this writer's thread (running one of its jobs)."""
        return threading.current_thread() is self._thread

    def submit(self, kind: str, fn: Callable[[], Any]) -> None:
        self.raise_error()
        self._queue.put((kind, fn))

    def wait(self) -> None:
        """Block until every submitted write is done; raise the first one's error, if any."""
        self._queue.join()
        self.raise_error()

    def raise_error(self) -> None:
        if self.error is not None:
            raise self.error

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=60)


class NullTracker:
    """Keeps what would be logged in memory: ``params``, ``tags``, ``metrics[key] -> [(step, value)]``,
    ``figures``, ``tables``, ``artifacts``, ``status``."""

    def __init__(self, uri: str | None = None, experiment: str = "dbn-complex-networks", **_: Any):
        self.seconds = 0.0  # wall time spent in this tracker (the cost of logging), see _timed
        self.seconds_by: dict[str, float] = defaultdict(float)  # the same per method ("connect": the store)
        self._timing = 0
        self.uri = uri
        self.experiment = experiment
        self.run_id: str | None = None
        self.params: dict[str, str] = {}
        self.tags: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = defaultdict(list)
        self.figures: dict[str, Any] = {}
        self.tables: dict[str, dict[str, np.ndarray]] = {}
        self.artifacts: list[tuple[str, str | None]] = []
        self.arrays: dict[str, dict[str, np.ndarray]] = {}
        self.files: LazyFiles = LazyFiles()
        self.status: str | None = None
        self.message: str | None = None

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        self.run_id = None
        self.run_name = run_name
        self.params = {k: str(v) for k, v in params.items()}
        self.tags = {k: str(v) for k, v in tags.items()}
        self.status = "RUNNING"

    def interrupt(self, exc: BaseException) -> None:
        """For signal handlers: raise ``exc`` once no store call is in progress."""
        interrupt(exc)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        for k, v in metrics.items():
            self.metrics[k].append((int(step), to_float(v)))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.tags.update({k: str(v) for k, v in tags.items()})

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        self.figures[artifact_file] = figure

    def log_table(self, table: Mapping[str, Any], artifact_file: str) -> None:
        self.tables[artifact_file] = {k: np.asarray(v) for k, v in table.items()}

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_path), artifact_path))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        self.artifacts.append((str(local_dir), artifact_path))

    def log_result(self, result: Any, step: int) -> None:
        """Log an analysis result: ``metrics`` at ``step``; ``figures``, ``tables``, ``arrays`` (``.npz``) and
        ``files`` (raw bytes, or callables producing them) as artifacts at their paths."""
        if result.metrics:
            self.log_metrics(result.metrics, step)
        for name, fig in result.figures.items():
            self.log_figure(fig, name)
        for name, table in result.tables.items():
            self.log_table(table, name)
        for name, arrays in getattr(result, "arrays", {}).items():
            self.log_arrays(arrays, name)
        # dict.items: the values as logged (a callable stays unserialised until the writer or a reader needs it)
        for name, data in dict.items(getattr(result, "files", {})):
            self.log_bytes(data, name)

    def log_arrays(self, arrays: Mapping[str, Any], artifact_file: str) -> None:
        self.arrays[artifact_file] = {k: np.asarray(v) for k, v in arrays.items()}

    def log_bytes(self, data: bytes | Callable[[], bytes], artifact_file: str) -> None:
        """Keep raw bytes at ``artifact_file``; ``data`` may be a callable that produces them, called when
        ``files[artifact_file]`` is first read (:class:`LazyFiles`)."""
        self.files[artifact_file] = data

    def flush(self) -> None:
        """Nothing is buffered here."""

    def wait(self) -> None:
        """Nothing is pending here."""

    def then(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` once everything logged so far is stored: here, at once."""
        fn()

    @property
    def background_seconds(self) -> dict[str, float]:
        return {}

    @property
    def background_cpu_seconds(self) -> dict[str, float]:
        return {}

    def continue_from(self, run_id: str | None, uri: str | None) -> None:
        """Nothing to link to without a store (see :meth:`MlflowTracker.continue_from`)."""

    def end_run(self, status: str = "FINISHED", message: str | None = None) -> None:
        self.status = status
        self.message = message


class MlflowTracker(NullTracker):
    """Writes to an MLflow tracking store.

    Args:
        uri: tracking URI; ``None`` = ``sqlite:///<cwd>/mlflow.db`` with artifacts in ``<cwd>/mlartifacts``.
            The ``MLFLOW_TRACKING_URI`` environment variable, when set, wins.
        experiment: experiment name (created if missing).
        artifact_location: where a newly created experiment stores artifacts (default: beside the database
            for the default SQLite store, the server's choice otherwise).
        flush_seconds: metrics are buffered (each keeps the time it was logged at) and written in one batch when
            this many seconds have passed since the last write, when 1000 are waiting, before any other write and
            when the run ends; 0 writes every call at once.
        background: do the writes on one background thread (:class:`_Writer`), in order, so the job does not
            wait for them; :meth:`then` runs a function once everything logged before it is stored, and
            :meth:`end_run` waits for all of them. ``False``: every call writes before it returns.
        writer_process: with ``background``, the MLflow client lives in a child process (:class:`_StoreProcess`)
            and the background thread only hands it the calls: the job never imports MLflow and its interpreter
            lock is not shared with the store's Python work. ``False``: the client lives on the writer thread.
        writer_nice: the writer's nice value (Linux; 0..19): at 19 it runs on what the job leaves idle and yields
            to the job's own threads and processes (measured: never slower than 0).
    """

    def __init__(
        self,
        uri: str | None = None,
        experiment: str = "dbn-complex-networks",
        artifact_location: str | None = None,
        flush_seconds: float = 5.0,
        background: bool = True,
        writer_process: bool = True,
        writer_nice: int = 19,
        **_: Any,
    ):
        t0 = time.perf_counter()
        super().__init__(uri, experiment)
        if not (isinstance(flush_seconds, int | float) and flush_seconds >= 0):
            raise ValueError(f"invalid flush_seconds: {flush_seconds!r}; allowed: a number >= 0")
        if not (isinstance(writer_nice, int) and 0 <= writer_nice <= 19):
            raise ValueError(f"invalid writer_nice: {writer_nice!r}; allowed: an integer in [0, 19]")
        self.flush_seconds = float(flush_seconds)
        self._pending: list[tuple[str, float, int, int]] = []  # (key, value, timestamp ms, step)
        self._flushed_at = time.monotonic()
        self._copied: set[tuple[str, int]] = set()  # (key, step) taken over from the run this one resumes
        self._renders: deque[_Render] = deque()  # figures handed to the writer process, oldest first
        self._client: Any = None  # an MLflow client in this process, made on first use of .client
        self._run_id: str | None = None
        self.experiment_id: str | None = None
        env_uri = os.environ.get("MLFLOW_TRACKING_URI")
        if env_uri:
            uri = env_uri
        elif uri is None:
            uri = default_tracking_uri(os.getcwd())
            artifact_location = artifact_location or (Path.cwd() / "mlartifacts").resolve().as_uri()
        self.uri = uri
        self.artifact_location = artifact_location
        try:
            check_reachable(uri)  # at once: a dead server is a clear error before any compute
            self._store: _Store | _StoreProcess
            if background and writer_process:
                self._store = _StoreProcess(nice=writer_nice)
                cpu = lambda: self._store.cpu  # type: ignore[union-attr]  # noqa: E731
                # the thread too: it runs the checkpoint writes of then()
                self._writer: _Writer | None = _Writer(nice=writer_nice, cpu_elsewhere=cpu)
            else:
                self._store = _Store()
                self._writer = _Writer(nice=writer_nice) if background else None
            self._busy = self._writer.busy if self._writer is not None else {}
            self._cpu = self._writer.cpu if self._writer is not None else {}
            self._submit("connect", self._connect)
        finally:
            self.seconds += time.perf_counter() - t0
            self.seconds_by["connect"] += time.perf_counter() - t0

    # ------------------------------------------------------------------------------------------ the writer
    def _submit(self, kind: str, fn: Callable[[], Any]) -> None:
        if self._writer is None:
            fn()
        else:
            self._writer.submit(kind, fn)

    def wait(self) -> None:
        """Block until everything logged so far is in the store (raises a write's error)."""
        if self._writer is not None:
            if not self._writer.on_thread():
                self._render_waiting()
            self._writer.wait()

    @property
    def background_seconds(self) -> dict[str, float]:
        """Seconds the background writer spent per kind of write (empty without one)."""
        return dict(self._busy)

    @property
    def background_cpu_seconds(self) -> dict[str, float]:
        """CPU seconds of the background writer (its thread and its process) per kind of write (empty without
        one): the cost of logging on the machine, which its priority and the job's load do not change."""
        return dict(self._cpu)

    @property
    def writer_pid(self) -> int | None:
        """The writer process's id (``None`` without one)."""
        return self._store.pid if isinstance(self._store, _StoreProcess) else None

    @property
    def client(self) -> Any:
        """An ``MlflowClient`` on this tracker's store, in this process (for reading back; writes go through the
        tracker). Waits for the store to be open."""
        if self._client is None:
            if self._writer is None or not self._writer.on_thread():  # the writer's own jobs: it is open
                self.wait()
            if isinstance(self._store, _StoreProcess):
                from mlflow.tracking import MlflowClient

                self._client = MlflowClient(tracking_uri=self.uri)
            else:
                self._client = self._store.client
        return self._client

    @property
    def run_id(self) -> str | None:  # type: ignore[override]
        if self._run_id is None and getattr(self, "_writer", None) is not None and self.status is not None:
            self.wait()
        return self._run_id

    @run_id.setter
    def run_id(self, value: str | None) -> None:
        self._run_id = value

    def then(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` once every metric, tag and artifact logged before this call is in the store (on the writer
        thread when there is one, so the job does not wait): e.g. write a checkpoint only after the metrics it
        covers are stored, so a job killed at any point and resumed from it loses none."""
        self.flush()
        self._submit("then", fn)

    # ------------------------------------------------------------------------------------------ store writes
    def _connect(self) -> None:
        self.experiment_id = self._store.connect(self.uri, self.experiment, self.artifact_location)

    def start_run(self, run_name: str, params: Mapping[str, Any], tags: Mapping[str, Any]) -> None:
        """Create the run (as a child of the sweep's parent inside a multirun) with its params and tags; the run
        id is ``self.run_id`` (which waits for the writer to have created it)."""
        parent = _JOB.get("parent_run_id")
        run_name = redact(run_name)
        params, tags = dict(params), dict(tags)
        self.status = "RUNNING"

        def create() -> None:
            self._run_id = self._store.create_run(self.experiment_id, run_name, params, tags, parent)
            if parent:
                _JOB["run_id"] = self._run_id

        self._submit("start_run", create)

    def log_metrics(self, metrics: Mapping[str, Any], step: int) -> None:
        if self._writer is not None:
            self._writer.raise_error()
        ts = int(time.time() * 1000)
        bad = {}
        for k, v in metrics.items():
            if (k, int(step)) in self._copied:  # a resumed epoch recomputes the value the dead run logged
                continue
            x = to_float(v)
            if math.isfinite(x):
                self._pending.append((k, x, ts, int(step)))
            else:
                log.warning("metric %s = %s at step %d is not finite; logged as a tag", k, x, step)
                bad[f"nonfinite/{k}"] = f"{x} at step {step}"
        if bad:
            self.set_tags(bad)
        due = time.monotonic() - self._flushed_at >= self.flush_seconds
        if due or len(self._pending) >= MAX_METRICS_PER_BATCH:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered metrics to the store (batches of <= 1000)."""
        self._flushed_at = time.monotonic()
        if self._pending:
            pending, self._pending = self._pending, []
            self._submit("metrics", lambda: self._store.log_metrics(self._run_id, pending))

    def continue_from(self, run_id: str | None, uri: str | None) -> None:
        """Make this run the continuation of ``run_id``, an earlier run of the same job whose process died.

        Its metric histories are copied here, so this run holds the whole record; a metric this run logs again at
        a ``(key, step)`` already copied is skipped (a resumed epoch recomputes the same value), so no step is
        duplicated. The earlier run, if still RUNNING (kill -9 leaves it so), is marked KILLED; both are tagged
        (``resumed_by`` / ``resumed_from_run``). Raises ``ValueError`` if the earlier run FINISHED (nothing to
        resume). Without a ``run_id`` in the same store only the tag is set. Synchronous.
        """
        if run_id is None or uri != self.uri:
            if run_id is not None:
                log.warning("run %s was tracked in another store (%s): not linked", run_id, redact(str(uri)))
            return
        self.flush()
        self.wait()  # the new run exists, and the store is not used by two threads at once
        self._copied.update(self._store.continue_run(run_id, self._run_id, self._copied))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        self.flush()
        items = [(k, redact(str(v))[:MAX_TAG_VALUE]) for k, v in tags.items()]
        self._submit("tags", lambda: self._store.set_tags(self._run_id, items))

    def log_figure(self, figure: Any, artifact_file: str) -> None:
        """Render and store a matplotlib figure (on the writer: the job must not touch it afterwards). With a
        writer process, a figure still waiting when the job waits for the tracker is rendered by the job."""
        self.flush()
        render = _Render(figure)

        def write() -> None:
            try:
                png = None if render.claim() else render.result()
                if png is None:  # rendered in the writer process
                    self._store.log_figure(self._run_id, figure, artifact_file)
                else:
                    self._store.log_file(self._run_id, artifact_file, _write_bytes, png)
            except _Unpicklable:  # rendered here, stored by the writer process
                self._store.log_file(self._run_id, artifact_file, _write_bytes, _png(figure))
            finally:
                _close(figure)

        if isinstance(self._store, _StoreProcess):
            while self._renders and self._renders[0].claimed:
                self._renders.popleft()
            self._renders.append(render)
        self._submit("figures", write)

    def _render_waiting(self) -> None:
        """Render, in the job, the figures the writer has not started on, last first (the writer process works
        from the first): called while the job would wait for the writer anyway, it puts the core the job leaves
        idle to use. The writer stores them, in their order, as PNG bytes."""
        while self._renders:
            # a signal's exception waits for the end of the rendering (as for a store call)
            _store_call(self._renders.pop().take)

    def _log_file(self, kind: str, artifact_file: str, write: Callable[[Path, Any], None], data: Any) -> None:
        self.flush()
        self._submit(kind, lambda: self._store.log_file(self._run_id, artifact_file, write, data))

    def log_table(self, table: Mapping[str, Any], artifact_file: str) -> None:
        self._log_file("tables", artifact_file, write_table_csv, dict(table))

    def log_arrays(self, arrays: Mapping[str, Any], artifact_file: str) -> None:
        self._log_file("arrays", artifact_file, _write_npz, dict(arrays))

    def log_bytes(self, data: bytes | Callable[[], bytes], artifact_file: str) -> None:
        """Log raw bytes at ``artifact_file``. ``data`` may be a callable that produces them (e.g. a file
        format to serialise): it is called by the writer, so the job does not wait for the serialisation (with a
        writer process it must be picklable, e.g. a ``functools.partial`` of a module-level function; else it is
        called on the writer thread)."""

        def write() -> None:
            try:
                self._store.log_file(self._run_id, artifact_file, _write_bytes, data)
            except _Unpicklable:
                self._store.log_file(self._run_id, artifact_file, _write_bytes, data())  # type: ignore[operator]

        self.flush()
        self._submit("files", write)

    def log_artifact(self, local_path: str | Path, artifact_path: str | None = None) -> None:
        """Log a file; a text file (config, log) goes through :func:`redact` on the way. The file is read when
        the writer gets to it: do not change or delete it before :meth:`wait` (or :meth:`then`)."""
        self.flush()
        self._submit("artifacts", lambda: self._store.log_artifact(self._run_id, Path(local_path), artifact_path))

    def log_artifacts(self, local_dir: str | Path, artifact_path: str | None = None) -> None:
        """Log a folder; its text files (config, log) go through :func:`redact` on the way (read when the writer
        gets to them, as for :meth:`log_artifact`)."""
        self.flush()
        self._submit("artifacts", lambda: self._store.log_artifacts(self._run_id, Path(local_dir), artifact_path))

    def end_run(self, status: str = "FINISHED", message: str | None = None) -> None:
        """Wait for every pending write, then end the run. A write that failed turns FINISHED into FAILED with its
        error as the message; the run is closed whatever happened before (by this process if the writer process
        is gone)."""
        if self.status in TERMINAL:
            return
        if self.status is None:  # no run was started: only let the writer go
            self._stop_writer()
            return
        try:
            self.flush()
            self.wait()
        except BaseException as err:  # noqa: BLE001 - the run must still be closed
            log.error("tracking: a write failed: %s: %s", type(err).__name__, err)
            if status == "FINISHED":
                status, message = "FAILED", f"tracking write failed: {type(err).__name__}: {err}"
        try:
            if self._run_id is None:
                log.error("tracking: the run was never created; nothing to close")
            else:
                try:
                    self._store.end_run(self._run_id, status, message)
                except StoreProcessLost:
                    store = _Store()
                    store.connect(self.uri, self.experiment, self.artifact_location)
                    store.end_run(self._run_id, status, message)
        finally:
            self._stop_writer()
            self.status = status
            self.message = message

    def _stop_writer(self) -> None:
        """Stop the writer thread (after the writes it was given) and let the writer process exit."""
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if isinstance(self._store, _StoreProcess):
            self._store.close()


# ------------------------------------------------------------------------------------------ Hydra run lifecycle

# What the Hydra callback tells the job's tracker, in the job's own process (set in on_job_start; a joblib or
# submitit worker gets it from the pickled callback, never from the launching process's globals).
_JOB: dict[str, Any] = {}


def _timed(method: Callable[..., T]) -> Callable[..., T]:
    """Add the wall time of a tracker method (outermost call only) to ``tracker.seconds``."""

    @functools.wraps(method)
    def wrapper(self: NullTracker, *args: Any, **kwargs: Any) -> T:
        if self._timing:
            return method(self, *args, **kwargs)
        self._timing += 1
        t0 = time.perf_counter()
        try:
            return method(self, *args, **kwargs)
        finally:
            spent = time.perf_counter() - t0
            self.seconds += spent
            self.seconds_by[method.__name__] += spent
            self._timing -= 1

    return wrapper


for _name in ("start_run", "log_metrics", "flush", "continue_from", "set_tags", "log_figure", "log_table",
              "log_arrays", "log_bytes", "log_artifact", "log_artifacts", "end_run", "wait", "then"):  # fmt: skip
    setattr(MlflowTracker, _name, _timed(MlflowTracker.__dict__[_name]))


def _tracking_settings(config: Any) -> tuple[bool, str | None, str, str | None]:
    """(enabled, uri, experiment, artifact location) from a composed config, resolved as the app resolves them."""
    from omegaconf import OmegaConf

    tracking = OmegaConf.select(config, "tracking", default=None)
    if tracking is None:
        return False, None, "", None
    target = str(OmegaConf.select(tracking, "_target_", default=""))
    uri = OmegaConf.select(tracking, "uri", default=None)
    experiment = str(OmegaConf.select(tracking, "experiment", default="dbn-complex-networks"))
    artifacts = None
    if uri is None:
        launch = OmegaConf.select(config, "hydra.runtime.cwd", default=None) or os.getcwd()
        uri = default_tracking_uri(launch)
        artifacts = (Path(launch) / "mlartifacts").resolve().as_uri()
    return target.endswith("MlflowTracker"), uri, experiment, artifacts


try:
    from hydra.experimental.callback import Callback as _HydraCallback
except ImportError:  # pragma: no cover - hydra is a dependency
    _HydraCallback = object  # type: ignore[assignment,misc]


class MlflowRunCallback(_HydraCallback):
    """Hydra callback that gives a multirun sweep one MLflow **parent run** with one **child run** per job.

    * ``on_multirun_start`` (launching host, before any worker): creates the store and the experiment once (no
      SQLite migration or experiment-creation races between workers) and the parent run.
    * ``on_job_start`` (in the job's process, local or remote): hands the parent run id to the job's tracker, which
      attaches its run as a child (``mlflow.parentRunId``).
    * ``on_job_end``: a job that failed before its run existed (invalid config, unreadable data) is recorded as a
      FAILED child with the error, so every job of a sweep is visible.
    * ``on_multirun_end`` (or at exit, when the sweep raised because a job failed): the parent ends FINISHED if
      every child finished, else FAILED, with the counts as tags.

    Single runs are left to the app, which owns its run's status (FINISHED / FAILED / KILLED).
    """

    def __init__(self) -> None:
        self.parent_run_id: str | None = None
        self.uri: str | None = None
        self.experiment: str = "dbn-complex-networks"
        self.artifact_location: str | None = None
        self._closed = False

    def on_multirun_start(self, config: Any, **kwargs: Any) -> None:
        import atexit

        from omegaconf import OmegaConf

        enabled, uri, experiment, artifacts = _tracking_settings(config)
        if not enabled:
            return
        try:
            tracker = MlflowTracker(uri, experiment, artifacts, background=False)  # the launcher waits anyway
        except TrackingUnavailable as err:  # before any job: one clear line, no traceback
            import sys

            print(f"error: {err}", file=sys.stderr)
            raise SystemExit(2) from None
        sweep_dir = str(OmegaConf.select(config, "hydra.sweep.dir", default=""))
        overrides = [str(o) for o in OmegaConf.select(config, "hydra.overrides.task", default=[]) or []]
        tracker.start_run(
            f"sweep {' '.join(overrides)}".strip(),
            {},
            {
                "sweep_dir": sweep_dir,
                "overrides": " ".join(overrides),
                "role": "sweep parent",
                "command": shlex.join(["dbn-experiment", "-m", *overrides]),
            },
        )
        self.parent_run_id, self.uri = tracker.run_id, tracker.uri
        self.experiment, self.artifact_location = experiment, artifacts
        self._closed = False
        atexit.register(self._close_parent)

    def on_job_start(self, config: Any, **kwargs: Any) -> None:
        _JOB.clear()
        if self.parent_run_id is not None:
            _JOB["parent_run_id"] = self.parent_run_id

    def on_job_end(self, config: Any, job_return: Any, **kwargs: Any) -> None:
        try:
            if self.parent_run_id is None or _JOB.get("run_id") is not None:
                return
            from hydra.core.utils import JobStatus

            if job_return.status != JobStatus.FAILED:
                return
            err = job_return._return_value
            overrides = list(job_return.overrides or [])
            tracker = MlflowTracker(self.uri, self.experiment, self.artifact_location, background=False)
            tracker.start_run(",".join(overrides) or "job", {}, {"overrides": " ".join(overrides)})
            tracker.end_run("FAILED", f"{type(err).__name__}: {err}")
        except Exception as err:  # noqa: BLE001 - Hydra would turn it into a warning; say what failed
            log.error("could not record the failed job in MLflow: %s", err)
        finally:
            _JOB.clear()

    def on_multirun_end(self, config: Any, **kwargs: Any) -> None:
        self._close_parent()

    def _close_parent(self) -> None:
        if self.parent_run_id is None or self._closed:
            return
        self._closed = True
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.uri)
        parent = retry(lambda: client.get_run(self.parent_run_id))
        query = f"tags.mlflow.parentRunId = '{self.parent_run_id}'"
        children = retry(lambda: client.search_runs([parent.info.experiment_id], query, max_results=50000))
        counts = {
            s: sum(r.info.status == s for r in children) for s in ("FINISHED", "FAILED", "KILLED", "RUNNING")
        }
        from mlflow.entities import RunTag

        tags = [RunTag("n_jobs", str(len(children)))] + [
            RunTag(f"n_{k.lower()}", str(v)) for k, v in counts.items()
        ]
        retry(lambda: client.log_batch(self.parent_run_id, tags=tags))
        ok = len(children) > 0 and counts["FINISHED"] == len(children)
        if not ok:
            msg = f"{len(children) - counts['FINISHED']} of {len(children)} jobs did not finish: {counts}"
            retry(lambda: client.set_tag(self.parent_run_id, "error", msg))
        retry(lambda: client.set_terminated(self.parent_run_id, "FINISHED" if ok else "FAILED"))
