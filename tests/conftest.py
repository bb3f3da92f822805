from __future__ import annotations

import os
import subprocess
import sys
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
