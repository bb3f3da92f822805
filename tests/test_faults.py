"""Faults: an unreachable tracking server, divergence, an exception in an analysis callback, kill -9 and resume."""

from __future__ import annotations

import socket
import time

import pytest


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again when the socket is: nothing listens there


@pytest.mark.parametrize("multirun", [False, True], ids=["run", "multirun"])
def test_unreachable_tracking_server_fails_fast_with_one_line(tmp_path, data_cache, cli, multirun):
    uri = f"http://127.0.0.1:{_closed_port()}"
    args = ["experiment=smoke", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path}/out",
            f"hydra.sweep.dir={tmp_path}/sw"]  # fmt: skip
    if multirun:
        args = ["-m", *args, "seed=0,1"]
    start = time.monotonic()
    proc = cli(args, tmp_path, {"DBN_DATA_DIR": str(data_cache)}, timeout=120)
    elapsed = time.monotonic() - start
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert elapsed < 30
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith(f"error: tracking.uri={uri} is not reachable"), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert not list(tmp_path.rglob("state.npz")) and not list(tmp_path.rglob("mlflow.db"))  # nothing trained
