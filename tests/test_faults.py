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


def _only_run(store: str):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(store)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
    assert len(runs) == 1
    return runs[0]


def test_divergence_fails_the_run_naming_layer_epoch_and_cause_and_keeps_the_good_checkpoint(
    tmp_path, data_cache, cli
):
    import numpy as np

    from dbn_jax.checkpoint import load_state

    out = tmp_path / "out"
    proc = cli(["experiment=smoke", "train.learning_rate=1e38", "analysis=none", f"hydra.run.dir={out}"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 1, proc.stderr[-2000:]
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("error: layer h1 diverged in epoch 1: non-finite w"), line
    assert "train.learning_rate=1e+38 is too large" in line and "Traceback" not in proc.stderr
    run = _only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"].startswith("Diverged: layer h1 diverged in epoch 1")
    meta, done, leaves = load_state(out / "checkpoint" / "state.npz")
    assert (meta["layer"], meta["epoch"]) == (1, 0)  # the last good state, not the diverged one
    assert all(np.isfinite(leaf).all() for leaf in leaves if np.issubdtype(leaf.dtype, np.floating))
    assert not (out / "model").exists()


def test_an_exception_in_an_analysis_callback_fails_the_run_with_its_message(tmp_path, data_cache, cli):
    (tmp_path / "broken_callback.py").write_text(
        "class Boom:\n"
        "    every_n_epochs = 0\n"
        "    def __call__(self, event):\n"
        "        if type(event).__name__ == 'TrainEnd':\n"
        "            raise RuntimeError('statistic exploded')\n"
    )
    proc = cli(["experiment=smoke", "readout.enabled=false", f"hydra.run.dir={tmp_path}/out",
                "analysis=none", "analysis.callbacks=[{_target_: broken_callback.Boom}]"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache), "PYTHONPATH": str(tmp_path)})  # fmt: skip
    assert proc.returncode != 0
    assert "statistic exploded" in proc.stderr
    run = _only_run(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert run.info.status == "FAILED"
    assert run.data.tags["error"] == "RuntimeError: statistic exploded"
    assert run.data.metrics["train/h1/recon_error"] > 0  # what was logged before the failure is kept
