from __future__ import annotations

import os
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
    """Run ``python -m dbn_jax ARGS`` as a user would, in ``cwd``; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "dbn_jax", *args],
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
