"""A real `mlflow server` on 127.0.0.1: a two-job sweep logs to it over HTTP and is read back."""

from __future__ import annotations

import os

import pytest
from mlflow.tracking import MlflowClient


@pytest.mark.slow  # a server and a sweep; test_postgres.py covers the same path on PostgreSQL
def test_sweep_logs_to_a_tracking_server(mlflow_server, tmp_path, data_cache, cli):
    proc = cli(
        ["-m", "experiment=smoke", "analysis=none", "readout.enabled=false", "train.epochs=1", "seed=0,1",
         f"tracking.uri={mlflow_server}", f"hydra.sweep.dir={tmp_path}/sweep"],
        tmp_path, {"DBN_DATA_DIR": str(data_cache)},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not (tmp_path / "mlflow.db").exists()  # nothing went to a local store
    client = MlflowClient(mlflow_server)
    exp = client.get_experiment_by_name("dbn-complex-networks")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert parents[0].info.status == "FINISHED"
    assert sorted(c.data.params["seed"] for c in children) == ["0", "1"]
    for c in children:
        assert c.info.status == "FINISHED"
        assert c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert [m.step for m in client.get_metric_history(c.info.run_id, "train/h2/recon_error")] == [0, 1]
        assert "model/model.json" in {a.path for a in client.list_artifacts(c.info.run_id, "model")}
        local = client.download_artifacts(c.info.run_id, "model/model.json", str(tmp_path / c.info.run_id))
        assert '"format": "dbn-complex-networks/model"' in open(local).read()
    assert os.path.isdir(tmp_path / "sweep" / "0") and os.path.isdir(tmp_path / "sweep" / "1")
