from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One data cache for the whole session (the embedded digits are parsed once)."""
    return tmp_path_factory.mktemp("data-cache")


def run_cli(args: list[str], cwd: Path, env_extra: dict[str, str] | None = None, timeout: float = 300):
    """Run ``python -m dbn_experiment ARGS`` as a user would, in ``cwd``; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dbn_experiment", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def cli():
    """``cli(args, cwd, env_extra)``: run the app as a subprocess (see :func:`run_cli`)."""
    return run_cli


def wait_for_mlflow_server(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    """Wait until ``mlflow server`` answers ``/health`` at ``url``; RuntimeError (with its log) if it exits or
    does not answer within ``timeout`` seconds."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
        if proc.poll() is not None:
            raise RuntimeError(f"mlflow server exited: {log.read_text()[-3000:]}")
    raise RuntimeError(f"mlflow server did not start within {timeout:.0f} s: {log.read_text()[-3000:]}")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_mlflow_server(
    backend_uri: str, artifacts_dir: Path, log_path: Path, timeout: float
) -> tuple[str, subprocess.Popen]:
    """Start ``mlflow server`` (the venv's) on 127.0.0.1:<free port> with one worker, the backend store
    ``backend_uri`` and proxied artifacts under ``artifacts_dir``, its stderr in ``log_path``, in its own session
    (stop it and its workers together with :func:`stop_mlflow_server`), and wait until it answers ``/health``.

    Returns:
        ``(url, process)``.

    Raises:
        RuntimeError: it exited or did not answer within ``timeout`` seconds (it is stopped; the message holds its
            log).
    """
    port = free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    with open(log_path, "w") as log:  # the server keeps its own copy of the file
        proc = subprocess.Popen(
            [str(mlflow), "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
             "--backend-store-uri", backend_uri, "--artifacts-destination", str(artifacts_dir)],
            cwd=Path(log_path).parent, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_mlflow_server(url, proc, Path(log_path), timeout)
    except BaseException:
        stop_mlflow_server(proc)
        raise
    return url, proc


def stop_mlflow_server(proc: subprocess.Popen, timeout: float = 20) -> None:
    """Stop a server from :func:`start_mlflow_server` and the workers it spawned (its process group): SIGTERM,
    then SIGKILL after ``timeout`` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=timeout)
    except ProcessLookupError:
        proc.wait()
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()


def store_runs(store: str, query: str = "") -> list:
    """Every run of every experiment of the MLflow store at URI ``store`` (matching ``query``), newest first."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, query, order_by=["start_time DESC"]) if experiments else []


def metric_histories(store: str, run_id: str) -> dict[str, list[tuple[int, float]]]:
    """``{key: sorted [(step, value)]}`` of every metric of a run."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    keys = client.get_run(run_id).data.metrics
    return {k: sorted((m.step, m.value) for m in client.get_metric_history(run_id, k)) for k in keys}


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    """The URL of an ``mlflow server`` on a SQLite backend for the module's tests (stopped after them)."""
    root = tmp_path_factory.mktemp("server")
    url, proc = start_mlflow_server(f"sqlite:///{root / 'server.db'}", root / "artifacts", root / "server.log", 90)
    try:
        yield url
    finally:
        stop_mlflow_server(proc)
