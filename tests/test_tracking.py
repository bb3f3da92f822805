"""The tracker: MLflow limits, conversions, retries, the environment override, the in-memory tracker."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from analysis.callbacks import AnalysisResult
from dbn_experiment import store as mlflow_store
from dbn_experiment.store import retry
from dbn_experiment.tracking import MlflowTracker, NullTracker


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
    assert len(run.data.params["long"]) == mlflow_store.MAX_PARAM_VALUE
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
    fig = Figure()
    fig.add_subplot().plot([0, 1], [1, 0])
    result = AnalysisResult(
        metrics={"m": 1.0},
        figures={"figures/line.png": fig},
        tables={"tables/h1_units.csv": {"unit": np.arange(3), "degree": np.array([1.5, 2.0, 0.0])}},
        arrays={"arrays/d.npz": {"d": np.eye(2)}},
    )
    result.files["graph/g.bin"] = lambda: b"graph"
    t.log_result(result, step=7)
    t.end_run()
    client = MlflowClient(store)
    local = client.download_artifacts(t.run_id, "tables/h1_units.csv", str(tmp_path))
    assert open(local).read().splitlines() == ["unit,degree", "0,1.5", "1,2.0", "2,0.0"]
    assert [a.path for a in client.list_artifacts(t.run_id, "figures")] == ["figures/line.png"]
    png = client.download_artifacts(t.run_id, "figures/line.png", str(tmp_path))
    assert open(png, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    with np.load(client.download_artifacts(t.run_id, "arrays/d.npz", str(tmp_path)), allow_pickle=False) as z:
        assert np.array_equal(z["d"], np.eye(2))
    assert open(client.download_artifacts(t.run_id, "graph/g.bin", str(tmp_path)), "rb").read() == b"graph"
    assert client.get_metric_history(t.run_id, "m")[0].step == 7


def test_retry_backs_off_on_locked_database_only(monkeypatch):
    monkeypatch.setattr(mlflow_store.time, "sleep", lambda s: None)
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
    result = AnalysisResult()
    result.files["graph/g.graphml.gz"] = serialise
    result.files["raw.bin"] = b"raw"
    t.log_result(result, 0)
    assert calls == [] and set(t.files) == {"graph/g.graphml.gz", "raw.bin"}  # nothing serialised yet
    assert t.files["graph/g.graphml.gz"] == b"graph" and t.files.get("graph/g.graphml.gz") == b"graph"
    assert dict(t.files.items()) == {"graph/g.graphml.gz": b"graph", "raw.bin": b"raw"}
    assert calls == [1]  # once, then kept
    assert t.files.get("missing") is None


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


def test_writes_keep_their_order_on_the_writer_thread_and_wait_returns_when_all_are_stored(store, tmp_path):
    """The job does not wait for the store: a slow store holds the writes back, in order, and ``wait`` (like
    ``end_run``) returns once all are stored."""
    import threading
    import time

    gate = threading.Event()
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {"p": 1}, {})
    t.wait()  # the run exists
    real = t.client.log_batch

    def slow_log_batch(*args, **kwargs):
        gate.wait(30)  # the store is slow until the test opens the gate
        return real(*args, **kwargs)

    t.client.log_batch = slow_log_batch
    t0 = time.perf_counter()
    for epoch in range(1, 6):
        t.log_metrics({"loss": 1.0 / epoch}, step=epoch)
    assert time.perf_counter() - t0 < 1.0  # queued, not written
    client = MlflowClient(store)
    assert client.get_metric_history(t.run_id, "loss") == []
    gate.set()
    t.wait()
    assert [m.step for m in client.get_metric_history(t.run_id, "loss")] == [1, 2, 3, 4, 5]
    t.end_run()
    assert client.get_run(t.run_id).info.status == "FINISHED"


def test_a_failed_write_fails_the_run_and_stops_the_writes(store, tmp_path):
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


def test_sigterm_while_the_writer_stores_leaves_a_store_the_run_can_be_closed_in(store):
    """Only the writer thread calls the store, and a signal's handler runs on the main thread: an exception it
    raises while the writer is in the middle of a write cannot leave the store half-written or locked."""
    import os
    import signal
    import threading

    class Stop(BaseException):
        pass

    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {})
    t.wait()
    writing, release = threading.Event(), threading.Event()
    real = t.client.log_batch

    def slow_log_batch(*args, **kwargs):  # a write the signal lands in the middle of
        writing.set()
        release.wait(10)
        return real(*args, **kwargs)

    t.client.log_batch = slow_log_batch
    t.set_tags({"written": "yes"})
    assert writing.wait(10)
    previous = signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(Stop()))
    try:
        with pytest.raises(Stop):
            os.kill(os.getpid(), signal.SIGTERM)
    finally:
        signal.signal(signal.SIGTERM, previous)
    release.set()
    t.end_run("KILLED", "Stop")
    run = MlflowClient(store).get_run(t.run_id)
    assert run.info.status == "KILLED" and run.data.tags["written"] == "yes" and run.data.tags["error"] == "Stop"


def test_resuming_links_the_runs_and_kills_the_dead_one(store, tmp_path):
    job_dir = str(tmp_path / "job")
    dead = MlflowTracker(uri=store, experiment="e")
    dead.start_run("r", {}, {"output_dir": job_dir})
    dead.wait()  # then the process "dies": the run stays RUNNING
    other = MlflowTracker(uri=store, experiment="e")
    other.start_run("another job", {}, {"output_dir": str(tmp_path / "other")})
    other.wait()
    t = MlflowTracker(uri=store, experiment="e")
    t.start_run("r", {}, {"output_dir": str(tmp_path / "resumed")})
    t.continue_from(job_dir)
    t.end_run()
    client = MlflowClient(store)
    old, new = client.get_run(dead.run_id), client.get_run(t.run_id)
    assert old.info.status == "KILLED" and old.data.tags["resumed_by"] == t.run_id
    assert new.info.status == "FINISHED" and new.data.tags["resumed_from_run"] == dead.run_id
    assert client.get_run(other.run_id).info.status == "RUNNING"  # another dir's run is left alone
    refused = MlflowTracker(uri=store, experiment="e")
    refused.start_run("r2", {}, {})
    with pytest.raises(ValueError, match="FINISHED: there is nothing to resume"):
        refused.continue_from(str(tmp_path / "resumed"))
    refused.end_run("FAILED", "resume refused")


def test_a_tracker_without_a_run_stops_its_writer(store):
    import threading

    def writers() -> int:
        return sum(th.name == "mlflow-writer" for th in threading.enumerate())

    before = writers()
    t = MlflowTracker(uri=store, experiment="e")
    assert writers() == before + 1
    t.end_run()
    assert t.status is None and writers() == before
