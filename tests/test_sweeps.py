"""Hydra multirun sweeps: one MLflow parent run per sweep, one child per job (basic and joblib launchers)."""

from __future__ import annotations

import pytest
from conftest import store_runs
from mlflow.tracking import MlflowClient

FAST = ["experiment=smoke", "analysis=none", "readout.enabled=false", "train.epochs=1"]


def _runs(root):
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    runs = store_runs(f"sqlite:///{root / 'mlflow.db'}")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


@pytest.mark.parametrize(
    "launcher",
    [[], pytest.param(["hydra/launcher=joblib", "hydra.launcher.n_jobs=2"], marks=pytest.mark.slow)],
    ids=["basic", "joblib"],
)
def test_sweep_with_a_failing_job(tmp_path, data_cache, cli, launcher):
    """One job with an invalid value: that child FAILED with the reason, the other FINISHED, the parent FAILED."""
    proc = cli(["-m", *FAST, *launcher, "train.batch_size=10,0", f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path,
               {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode != 0  # the sweep reports the failed job
    assert "invalid config: train.batch_size=0; allowed: an integer >= 1" in proc.stderr
    assert "Traceback" not in proc.stderr  # one line, as in a single run
    client, parents, children = _runs(tmp_path)
    (parent,) = parents
    assert parent.info.status == "FAILED"
    assert (parent.data.tags["n_jobs"], parent.data.tags["n_finished"], parent.data.tags["n_failed"]) == (
        "2",
        "1",
        "1",
    )
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    by_size = {c.data.params.get("train.batch_size", c.info.run_name.rsplit("=", 1)[-1]): c for c in children}
    assert by_size["10"].info.status == "FINISHED"
    assert by_size["0"].info.status == "FAILED"
    assert "invalid config: train.batch_size=0" in by_size["0"].data.tags["error"]
    assert client.get_metric_history(by_size["10"].info.run_id, "train/h1/recon_error")


def test_joblib_sweep_on_one_sqlite_store(tmp_path, data_cache, cli):
    """Four jobs at once (joblib, four processes) on one SQLite file: four complete children, nothing lost."""
    proc = cli(["-m", *FAST, "seed=0,1,2,3", "hydra/launcher=joblib", "hydra.launcher.n_jobs=4",
                f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client, parents, children = _runs(tmp_path)
    (parent,) = parents
    assert parent.info.status == "FINISHED" and parent.data.tags["n_finished"] == "4"
    assert sorted(c.data.params["seed"] for c in children) == [str(i) for i in range(4)]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["mlflow.parentRunId"] == parent.info.run_id
        for layer in (1, 2, 3):
            assert [m.step for m in client.get_metric_history(c.info.run_id, f"train/h{layer}/recon_error")] == [
                0,
                1,
            ]


@pytest.mark.slow  # submitit in separate processes; also in test_postgres.py
def test_submitit_local_sweep(tmp_path, data_cache, cli):
    """submitit's local executor (the path to SLURM): jobs in separate processes attach to the parent."""
    proc = cli(["-m", *FAST, "seed=0,1", "hydra/launcher=submitit_local", f"hydra.sweep.dir={tmp_path}/sweep"],
               tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, parents, children = _runs(tmp_path)
    (parent,) = parents
    assert parent.info.status == "FINISHED" and len(children) == 2
    assert all(c.info.status == "FINISHED" for c in children)
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
