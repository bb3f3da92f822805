"""`experiment=tune_readout`: an Optuna study (hydra-optuna-sweeper, in the dev extra) that maximises the read-out
accuracy the app returns; one MLflow parent run, one child per trial."""

from __future__ import annotations

import json
import re

import pytest
from mlflow.tracking import MlflowClient
from omegaconf import OmegaConf


@pytest.mark.slow  # an 8-trial study through the CLI (CI runs the slow tests)
def test_tune_readout_study(tmp_path, data_cache, cli):
    """Two trials of the preset: parent + 2 FINISHED children; Optuna's best value is the best child's accuracy."""
    proc = cli(["-m", "experiment=tune_readout", "hydra.sweeper.n_trials=2", "train.epochs=1",
                f"hydra.sweep.dir={tmp_path}/sweep"], tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dbn-complex-networks")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    (parent,) = parents
    assert len(children) == 2
    assert parent.info.status == "FINISHED" and parent.data.tags["n_finished"] == "2"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}

    accuracy = {}
    for c in children:
        assert c.info.status == "FINISHED"
        p = c.data.params
        # The preset's search space reached the jobs.
        assert 0.01 <= float(p["train.learning_rate"]) <= 0.2
        assert p["train.cd_steps"] in {"1", "2", "3"}
        assert 0.0 <= float(p["train.momentum"]) <= 0.9
        top = len(json.loads(p["model.hidden"]))
        assert top == 3  # the tiny model of smoke-size training
        layers = [int(m.group(1)) for k in c.data.metrics if (m := re.fullmatch(r"readout/h(\d+)/accuracy", k))]
        assert max(layers) == top
        accuracy[c.info.run_id] = c.data.metrics[f"readout/h{top}/accuracy"]

    # The objective reached Optuna: its best value is the best child's top-layer read-out accuracy.
    results = OmegaConf.load(tmp_path / "sweep" / "optimization_results.yaml")
    assert results.best_value == pytest.approx(max(accuracy.values()), rel=1e-9)
    best = next(c for c in children if c.info.run_id == max(accuracy, key=accuracy.get))
    assert set(results.best_params) == {"train.learning_rate", "train.cd_steps", "train.momentum"}
    for key, value in results.best_params.items():
        assert best.data.params[key] == str(value)
