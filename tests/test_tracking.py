"""The tracker: MLflow limits, conversions, retries, the environment override, the in-memory tracker."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis import tracking
from analysis.tracking import MlflowTracker, NullTracker, flatten, retry


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def test_params_are_batched_and_long_values_truncated(store):
    t = MlflowTracker(uri=store, experiment="e")
    params = {f"p.{i:03d}": i for i in range(250)}
    params["long"] = "x" * 7000
    t.start_run("r", params, {"seed": 0})
    t.end_run()
    run = MlflowClient(store).get_run(t.run_id)
    assert len(run.data.params) == 251
    assert run.data.params["p.249"] == "249"
    assert len(run.data.params["long"]) == tracking.MAX_PARAM_VALUE
    assert run.data.tags["params_truncated"] == "long"
    assert run.info.status == "FINISHED"


def test_metrics_batched_and_converted(store):
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.log_metrics({f"m/{i}": np.float32(i) for i in range(1500)}, step=3)
    t.log_metrics({"jax": jnp.asarray(0.25), "np0d": np.array(2.0), "bad": float("nan")}, step=4)
    t.end_run("FAILED", "boom")
    client = MlflowClient(store)
    run = client.get_run(t.run_id)
    assert len([k for k in run.data.metrics if k.startswith("m/")]) == 1500
    assert run.data.metrics["jax"] == 0.25 and run.data.metrics["np0d"] == 2.0
    assert client.get_metric_history(t.run_id, "m/7")[0].step == 3
    assert "bad" not in run.data.metrics and "nonfinite/bad" in run.data.tags
    assert run.info.status == "FAILED" and run.data.tags["error"] == "boom"


def test_end_run_is_idempotent(store):
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.end_run("KILLED", "signal")
    t.end_run("FINISHED")  # a later close does not overwrite the first terminal status
    assert MlflowClient(store).get_run(t.run_id).info.status == "KILLED"


def test_environment_variable_wins(tmp_path, monkeypatch):
    env_store = f"sqlite:///{tmp_path / 'env.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", env_store)
    t = MlflowTracker(uri=f"sqlite:///{tmp_path / 'cfg.db'}", experiment="e")
    assert t.uri == env_store
    t.start_run("r", {}, {})
    t.end_run()
    assert (tmp_path / "env.db").exists() and not (tmp_path / "cfg.db").exists()


def test_tables_and_figures(store, tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.log_table({"unit": np.arange(3), "degree": np.array([1.5, 2.0, 0.0])}, "tables/h1_units.csv")
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    t.log_figure(fig, "figures/line.png")
    t.end_run()
    client = MlflowClient(store)
    local = client.download_artifacts(t.run_id, "tables/h1_units.csv", str(tmp_path))
    assert open(local).read().splitlines() == ["unit,degree", "0,1.5", "1,2.0", "2,0.0"]
    assert [a.path for a in client.list_artifacts(t.run_id, "figures")] == ["figures/line.png"]


def test_retry_backs_off_on_locked_database_only(monkeypatch):
    monkeypatch.setattr(tracking.time, "sleep", lambda s: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(sqlite3.OperationalError) database is locked")
        return "ok"

    assert retry(flaky) == "ok" and len(calls) == 3

    def broken():
        raise ValueError("bad value")

    with pytest.raises(ValueError):
        retry(broken)


def test_null_tracker_keeps_everything():
    t = NullTracker()
    t.start_run("r", {"a": 1}, {"seed": 0})
    t.log_metrics({"x": jnp.asarray(1.5)}, 0)
    t.log_metrics({"x": 2}, 1)
    t.end_run()
    assert t.metrics["x"] == [(0, 1.5), (1, 2.0)] and t.params == {"a": "1"} and t.status == "FINISHED"


def test_null_tracker_makes_deferred_files_when_read():
    calls = []

    def serialise() -> bytes:
        calls.append(1)
        return b"graph"

    t = NullTracker()
    t.log_bytes(serialise, "graph/g.graphml.gz")
    t.log_bytes(b"raw", "raw.bin")
    assert calls == [] and set(t.files) == {"graph/g.graphml.gz", "raw.bin"}  # nothing serialised yet
    assert t.files["graph/g.graphml.gz"] == b"graph" and t.files.get("graph/g.graphml.gz") == b"graph"
    assert dict(t.files.items()) == {"graph/g.graphml.gz": b"graph", "raw.bin": b"raw"}
    assert calls == [1]  # once, then kept
    assert t.files.get("missing") is None


def test_flatten():
    assert flatten({"a": {"b": 1, "c": {"d": [1, 2]}}, "e": None}) == {"a.b": 1, "a.c.d": [1, 2], "e": None}


def test_signal_during_a_store_call_is_delivered_after_it(store):
    """A SIGTERM that lands inside a store write must not abort it half-way (that would leave this process holding
    SQLite's write lock); it is raised as soon as the write returns, and the run can then be closed."""
    import os
    import signal

    tracker = MlflowTracker(uri=store, experiment="e")
    tracker.start_run("r", {}, {})

    class Stop(BaseException):
        pass

    previous = signal.signal(signal.SIGTERM, lambda *_: tracker.interrupt(Stop()))
    completed = []

    def write():
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the store call
        tracker.client.log_batch(tracker.run_id, tags=[])
        tracker.client.set_tag(tracker.run_id, "after_signal", "written")
        completed.append(True)

    try:
        with pytest.raises(Stop):
            retry(write)
        assert completed == [True]
        with pytest.raises(Stop):  # outside a store call the exception is raised at once
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    tracker.end_run("KILLED", "Stop")
    run = MlflowClient(store).get_run(tracker.run_id)
    assert run.info.status == "KILLED"
    assert run.data.tags["after_signal"] == "written"


def test_metrics_are_buffered_with_their_own_time_and_written_by_end_run(store, monkeypatch):
    # the client on the writer thread, so its calls can be counted here
    t = MlflowTracker(uri=store, experiment="e", flush_seconds=3600, writer_process=False)
    t.start_run("r", {}, {})
    client = MlflowClient(store)
    clock = iter([1_000_000.0, 1_000_005.0])
    monkeypatch.setattr(tracking.time, "time", lambda: next(clock))
    t.log_metrics({"loss": 1.0}, step=1)
    t.log_metrics({"loss": 0.5}, step=2)
    monkeypatch.undo()
    assert client.get_metric_history(t.run_id, "loss") == []  # still buffered
    calls = []
    real = t.client.log_batch
    monkeypatch.setattr(t.client, "log_batch", lambda *a, **k: calls.append(k) or real(*a, **k))
    t.end_run("FAILED", "boom")  # any end flushes first
    history = client.get_metric_history(t.run_id, "loss")
    assert [(m.step, m.value, m.timestamp) for m in history] == [(1, 1.0, 1_000_000_000), (2, 0.5, 1_000_005_000)]
    assert len([c for c in calls if c.get("metrics")]) == 1  # both epochs in one write


def test_metrics_flush_after_flush_seconds_and_before_artifacts(store, tmp_path):
    t = MlflowTracker(uri=store, experiment="e", flush_seconds=0, background=False)  # each call writes at once
    t.start_run("r", {}, {})
    client = MlflowClient(store)
    t.log_metrics({"a": 1.0}, step=0)
    assert [m.value for m in client.get_metric_history(t.run_id, "a")] == [1.0]  # 0 s: written at once
    t.flush_seconds = 3600
    t.log_metrics({"a": 2.0}, step=1)
    assert len(client.get_metric_history(t.run_id, "a")) == 1
    (tmp_path / "f.txt").write_text("x")
    t.log_artifact(tmp_path / "f.txt")  # an artifact is never newer than the metrics logged before it
    assert [m.value for m in client.get_metric_history(t.run_id, "a")] == [1.0, 2.0]
    with pytest.raises(ValueError, match="flush_seconds"):
        MlflowTracker(uri=store, experiment="e", flush_seconds=-1)
    t.end_run()


def test_no_credentials_reach_the_store(store, tmp_path):
    """Passwords in URIs are masked in run names, params, tags and text artifacts (config, .hydra, logs)."""
    secret = "postgresql+psycopg2://alice:hunter2@db.example/mlflow"
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run(f"tracking.uri={secret}", {"tracking.uri": secret}, {"overrides": f"tracking.uri={secret}"})
    hydra_dir = tmp_path / "hydra_dir"
    hydra_dir.mkdir()
    (hydra_dir / "overrides.yaml").write_text(f"- tracking.uri={secret}\n")
    (hydra_dir / "weights.npz").write_bytes(b"\x00binary")
    t.log_artifacts(hydra_dir, "hydra")
    (tmp_path / "job.log").write_text(f"connecting to {secret}\n")
    t.log_artifact(tmp_path / "job.log", "logs")
    t.set_tags({"error": f"cannot reach {secret}"})
    t.end_run("FAILED")
    run = MlflowClient(store).get_run(t.run_id)
    assert run.data.params["tracking.uri"] == "postgresql+psycopg2://alice:***@db.example/mlflow"
    assert "alice:***@" in run.info.run_name and "alice:***@" in run.data.tags["error"]
    written = [tmp_path / "mlflow.db", *(p for p in (tmp_path / "mlruns").rglob("*") if p.is_file())]
    assert any(p.name == "overrides.yaml" for p in written) and any(p.name == "job.log" for p in written)
    for path in written:
        assert b"hunter2" not in path.read_bytes(), path
    assert (hydra_dir / "overrides.yaml").read_text().count("hunter2") == 1  # the original is left alone


def test_tracker_measures_its_own_time_once_per_outer_call(store, monkeypatch):
    t = MlflowTracker(uri=store, experiment="e")
    assert t.seconds > 0  # connecting: the mlflow import and the store
    t.start_run("r", {}, {})
    before = t.seconds
    clock = iter(range(0, 1000, 10))
    monkeypatch.setattr(tracking.time, "perf_counter", lambda: float(next(clock)))
    t.log_table({"a": np.arange(3)}, "tables/a.csv")  # log_table -> _log_local -> log_artifact: timed once
    monkeypatch.undo()
    assert t.seconds == before + 10.0
    t.end_run()


def test_background_writer_keeps_the_order_and_then_runs_after_the_writes(store, tmp_path):
    """Writes go through one background thread in order: what ``then`` runs sees every metric logged before it
    (the app writes each epoch's checkpoint this way), and ``end_run`` waits for all of them."""
    t = MlflowTracker(uri=store, experiment="e", flush_seconds=3600)
    t.start_run("r", {"p": 1}, {})
    seen = []
    for epoch in range(1, 6):
        t.log_metrics({"loss": 1.0 / epoch}, step=epoch)
        t.then(lambda e=epoch: seen.append((e, len(t.client.get_metric_history(t.run_id, "loss")))))
    (tmp_path / "f.txt").write_text("x")
    t.log_artifact(tmp_path / "f.txt")
    t.end_run()
    assert seen == [(e, e) for e in range(1, 6)]
    run = MlflowClient(store).get_run(t.run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"p": "1"}
    assert [a.path for a in MlflowClient(store).list_artifacts(t.run_id)] == ["f.txt"]
    assert set(t.background_seconds) >= {"connect", "start_run", "metrics", "then", "artifacts"}
    assert set(t.background_cpu_seconds) == set(t.background_seconds)
    assert 0 < t.background_cpu_seconds["connect"] <= t.background_seconds["connect"] + 0.01


def test_a_failed_background_write_fails_the_run_and_stops_the_writes(store, tmp_path):
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.log_artifact(tmp_path / "missing.txt")  # fails on the writer thread
    with pytest.raises(FileNotFoundError):
        t.wait()
    with pytest.raises(FileNotFoundError):  # every later call reports it, nothing more is written
        t.log_metrics({"x": 1.0}, 0)
    t.end_run()  # FINISHED asked, but a write failed
    run = MlflowClient(store).get_run(t.run_id)
    assert run.info.status == "FAILED"
    assert "missing.txt" in run.data.tags["error"] and run.data.metrics == {}


_JOB_WITH_A_TRACKER = """
import functools, io, os, sys
import numpy as np
from matplotlib.figure import Figure
from analysis.tracking import MlflowTracker

t = MlflowTracker(uri=sys.argv[1], experiment="e")
print(t.writer_pid, flush=True)
t.start_run("r", {"p": 1}, {"seed": 0})
t.log_metrics({"loss": np.float32(0.5)}, step=1)
fig = Figure()
fig.add_subplot().plot([0, 1], [1, 0])
t.log_figure(fig, "figures/line.png")
t.log_table({"unit": np.arange(2), "k": np.array([3, 4])}, "tables/u.csv")
t.log_arrays({"d": np.eye(2)}, "arrays/d.npz")
t.log_bytes(functools.partial(bytes, b"graph"), "graph/g.bin")
t.end_run()
print(t.run_id, "mlflow" in sys.modules, flush=True)
"""


def test_the_writer_process_stores_everything_and_the_job_never_imports_mlflow(store, tmp_path):
    """The default tracker hands every write to its writer process: the job's interpreter never imports MLflow,
    the run is complete in the store, and the writer process is gone once the run ended."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _JOB_WITH_A_TRACKER, store], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "MPLBACKEND": "Agg"}, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    pid, (run_id, imported) = int(proc.stdout.split()[0]), proc.stdout.split()[1:3]
    assert imported == "False"
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()
    client = MlflowClient(store)
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.params == {"p": "1"} and run.data.tags["seed"] == "0"
    assert run.data.metrics == {"loss": 0.5}
    paths = {a.path for d in ("figures", "tables", "arrays", "graph") for a in client.list_artifacts(run_id, d)}
    assert paths == {"figures/line.png", "tables/u.csv", "arrays/d.npz", "graph/g.bin"}
    graph = client.download_artifacts(run_id, "graph/g.bin", str(tmp_path))
    assert open(graph, "rb").read() == b"graph"
    png = client.download_artifacts(run_id, "figures/line.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_the_writer_process_ends_with_the_job(store, tmp_path):
    """A job killed with SIGKILL cannot close its writer process: the process sees the pipe close and exits."""
    import os
    import signal
    import subprocess
    import sys
    import time

    code = (
        "import os, signal, sys; from analysis.tracking import MlflowTracker; "
        "t = MlflowTracker(uri=sys.argv[1], experiment='e'); t.start_run('r', {}, {}); t.wait(); "
        "print(t.writer_pid, flush=True); os.kill(os.getpid(), signal.SIGKILL)"
    )
    proc = subprocess.run([sys.executable, "-c", code, store], capture_output=True, text=True, timeout=120)
    assert proc.returncode == -signal.SIGKILL
    pid = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 20
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        if "zombie" in open(f"/proc/{pid}/status").read().lower():
            break
        time.sleep(0.1)
    alive = os.path.exists(f"/proc/{pid}") and "zombie" not in open(f"/proc/{pid}/status").read().lower()
    assert not alive
    client = MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("e").experiment_id])
    assert [r.info.status for r in runs] == ["RUNNING"]  # left for a resume to mark KILLED


def test_a_dead_writer_process_fails_the_run_which_the_job_closes_itself(store):
    import os
    import signal

    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    run_id = t.run_id
    os.kill(t.writer_pid, signal.SIGKILL)
    t.log_metrics({"x": 1.0}, 0)
    t.flush()
    with pytest.raises(tracking.StoreProcessLost, match="exited"):
        t.wait()
    t.end_run()
    run = MlflowClient(store).get_run(run_id)
    assert run.info.status == "FAILED" and "StoreProcessLost" in run.data.tags["error"]


def test_what_cannot_be_sent_to_the_writer_process_is_made_in_the_job(store, tmp_path):
    """A figure holding an unpicklable object is rendered in the job, a file made by a lambda is made in the job;
    both are stored all the same. A store error comes back with its own type."""
    import threading

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    fig.lock = threading.Lock()
    t.log_figure(fig, "figures/locked.png")
    t.log_bytes(lambda: b"made here", "files/lambda.bin")
    stored = threading.Event()
    t.then(stored.set)
    assert stored.wait(60)  # by the writer thread (a waiting job would have rendered the figure itself)
    t.end_run()
    client = MlflowClient(store)
    png = client.download_artifacts(t.run_id, "figures/locked.png", str(tmp_path))
    assert open(png, "rb").read(4) == b"\x89PNG"
    made = client.download_artifacts(t.run_id, "files/lambda.bin", str(tmp_path))
    assert open(made, "rb").read() == b"made here"
    assert client.get_run(t.run_id).info.status == "FINISHED"
    with pytest.raises(ValueError, match="FINISHED: there is nothing to resume"):
        t2 = MlflowTracker(uri=store, experiment="e")
        t2.start_run("r2", {}, {})
        try:
            t2.continue_from(t.run_id, t2.uri)
        finally:
            t2.end_run("FAILED", "resume refused")


def test_background_cpu_counts_the_writer_process(store):
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.end_run()
    cpu = t.background_cpu_seconds
    assert cpu["connect"] > 0.2  # MLflow's import and the store, measured in the writer process


def test_a_tracker_without_a_run_lets_its_writer_process_go(store):
    import os

    t = MlflowTracker(uri=store, experiment="e")
    pid = t.writer_pid
    t.end_run()  # no run was started: nothing to close in the store
    assert t.status is None and t.writer_pid == pid
    assert not os.path.exists(f"/proc/{pid}") or "zombie" in open(f"/proc/{pid}/status").read().lower()


def _figures(n: int) -> list:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figs = []
    for i in range(n):
        fig = Figure(figsize=(3, 2), layout="constrained")
        ax = fig.add_subplot()
        ax.plot(np.arange(10), np.arange(10) ** (i + 1), "o-")
        ax.set_yscale("log")
        ax.set_title(f"figure {i}")
        figs.append(fig)
    return figs


def _spy_ops(tracker: MlflowTracker) -> list[str]:
    ops: list[str] = []
    call = tracker._store.call

    def spy(op, *args):
        ops.append(op)
        return call(op, *args)

    tracker._store.call = spy
    return ops


def _busy_tracker(store: str) -> tuple[MlflowTracker, list[str]]:
    """A tracker with a started run whose writer is busy for 1 s (figures logged now wait), and its store calls."""
    import time

    t = MlflowTracker(uri=store, experiment="e")
    ops = _spy_ops(t)
    t.start_run("r", {}, {})
    t.then(lambda: time.sleep(1.0))
    return t, ops


def test_a_waiting_job_renders_the_figures_the_writer_has_not_started(store, tmp_path):
    """While the writer is busy, the job that waits for it renders the figures still queued (last first), and the
    writer stores those PNG bytes in their place: the same files as the writer process would have made."""
    t, ops = _busy_tracker(store)
    expected = [tracking._png(f) for f in _figures(3)]
    for i, fig in enumerate(_figures(3)):
        t.log_figure(fig, f"figures/f{i}.png")
    t.wait()
    assert ops.count("log_file") == 3 and "log_figure" not in ops
    assert not t._renders
    t.end_run()
    client = MlflowClient(store)
    for i, png in enumerate(expected):
        path = client.download_artifacts(t.run_id, f"figures/f{i}.png", str(tmp_path))
        assert open(path, "rb").read() == png
    assert client.get_run(t.run_id).info.status == "FINISHED"


def test_a_figure_the_job_fails_to_render_is_rendered_by_the_writer_process(store, tmp_path, monkeypatch):
    """A signal that cuts the job's rendering short reaches the job; the figure goes to the writer process as if
    the job had not touched it, and is stored."""
    t, ops = _busy_tracker(store)
    (fig,) = _figures(1)
    t.log_figure(fig, "figures/cut.png")

    def interrupted(figure):
        raise KeyboardInterrupt

    monkeypatch.setattr(tracking, "_png", interrupted)  # in the job only: the writer process renders for real
    with pytest.raises(KeyboardInterrupt):
        t.wait()
    t.end_run("KILLED", "KeyboardInterrupt")
    assert ops.count("log_figure") == 1
    client = MlflowClient(store)
    path = client.download_artifacts(t.run_id, "figures/cut.png", str(tmp_path))
    assert open(path, "rb").read(4) == b"\x89PNG"
    assert client.get_run(t.run_id).info.status == "KILLED"


def test_a_figure_that_cannot_be_rendered_fails_its_write_as_without_the_waiting_job(store):
    """The job's rendering of a broken figure fails quietly; the writer process tries it as usual and its error
    (with its type) fails the write and then the run, as it does when the job does not help."""
    t, ops = _busy_tracker(store)
    (fig,) = _figures(1)
    fig.axes[0].set_title(r"$\frac{$")  # mathtext that does not parse: an error when drawn, in either process
    t.log_figure(fig, "figures/broken.png")
    with pytest.raises(ValueError, match="frac"):
        t.wait()
    assert ops.count("log_figure") == 1
    t.end_run()
    run = MlflowClient(store).get_run(t.run_id)
    assert run.info.status == "FAILED"


def test_a_signal_during_the_jobs_rendering_waits_for_its_end(store, tmp_path, monkeypatch):
    """A SIGTERM whose handler goes through the tracker lands while the waiting job renders a figure: the PNG is
    finished and stored, then the signal's exception is raised."""
    import os
    import signal
    t, ops = _busy_tracker(store)
    (fig,) = _figures(1)
    t.log_figure(fig, "figures/signalled.png")

    class Stop(BaseException):
        pass

    real_png, rendered = tracking._png, []

    def png_then_signal(figure):
        os.kill(os.getpid(), signal.SIGTERM)  # the handler runs here, inside the job's rendering
        rendered.append(real_png(figure))
        return rendered[-1]

    monkeypatch.setattr(tracking, "_png", png_then_signal)
    previous = signal.signal(signal.SIGTERM, lambda *_: t.interrupt(Stop()))
    try:
        with pytest.raises(Stop):
            t.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
    t.end_run("KILLED", "Stop")
    assert len(rendered) == 1 and ops.count("log_file") == 1 and "log_figure" not in ops
    path = MlflowClient(store).download_artifacts(t.run_id, "figures/signalled.png", str(tmp_path))
    assert open(path, "rb").read() == rendered[0]
