"""The Hydra app end to end: config composition and validation, the CLI, the MLflow run, the model artifact."""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from conftest import store_runs
from hydra import compose, initialize_config_dir, initialize_config_module
from mlflow.tracking import MlflowClient

from dbn_experiment.config import ConfigError, validate
from dbn_jax import load_dbn


def _compose(overrides: list[str]):
    with initialize_config_module("dbn_experiment.conf", version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["model.hidden=[]"], "model.hidden"),
        (["model.hidden=[500,0]"], "model.hidden[1]"),
        (["model.hidden=[-3]"], "model.hidden[0]"),
        (["train.cd_steps=0"], "train.cd_steps"),
        (["train.batch_size=0"], "train.batch_size"),
        (["experiment=smoke", "train.batch_size=1001"], "train.batch_size"),
        (["train.learning_rate=0"], "train.learning_rate"),
        (["train.learning_rate=-0.1"], "train.learning_rate"),
        (["train.momentum=1.0"], "train.momentum"),
        (["train.final_momentum=-0.1"], "train.final_momentum"),
        (["train.weight_decay=-1e-4"], "train.weight_decay"),
        (["train.epochs=-1"], "train.epochs"),
        (["train.epochs=ten"], "train.epochs"),
        (["train.init_std=0"], "train.init_std"),
        (["train.momentum_switch_epoch=-2"], "train.momentum_switch_epoch"),
        (["dataset.binarize=maybe"], "dataset.binarize"),
        (["dataset.n_train=0"], "dataset.n_train"),
        (["dataset.name=cifar"], "dataset.name"),
        (["dataset=idx"], "dataset.path"),
        (["dataset=idx", "dataset.path=/no/such/folder"], "dataset.path"),
        (["seed=-1"], "seed"),
        (["tracking.uri=mlruns"], "tracking.uri"),
        (["tracking.experiment="], "tracking.experiment"),
        (["readout.l2=-1"], "readout.l2"),
        (["monitor.n_samples=0"], "monitor.n_samples"),
        (["resume=/no/such/run"], "resume"),
        (["analysis.threshold.value=0.5"], "analysis.threshold="),  # two of value / quantile / density
        (["analysis.threshold.quantile=1.5"], "analysis.threshold.quantile"),
        (["analysis.threshold.quantile=null", "analysis.threshold.density=2"], "analysis.threshold.density"),
        (["analysis.threshold.quantile=null", "analysis.threshold.value=-0.1"], "analysis.threshold.value"),
        (["analysis.threshold.sign=both"], "analysis.threshold.sign"),
        (["analysis.n_clusters=1"], "analysis.n_clusters"),
        (["analysis.n_clusters=501"], "analysis.n_clusters"),  # larger than the 500 units of h1
        (["analysis.cluster_layers=[4]"], "analysis.cluster_layers"),
        (["analysis.cluster_layers=[0]"], "analysis.cluster_layers"),
        (["analysis.emd.method=fast"], "analysis.emd.method"),
        (["analysis.emd.metric=chebyshev"], "analysis.emd.metric"),
        (["analysis.linkage=ward"], "analysis.linkage"),
        (["analysis.cluster_sides=[out,up]"], "analysis.cluster_sides"),
        (["analysis.cluster_sides=[]"], "analysis.cluster_sides"),
        (["analysis.cluster_sides=[in,in]"], "analysis.cluster_sides"),
        (["analysis.label_null.n_permutations=-1"], "analysis.label_null.n_permutations"),
        (["analysis.every_n_epochs=-1"], "analysis.every_n_epochs"),
        (["model.kind=rbm"], "model.kind"),
        (["model.kind=mlp", "resume=/tmp"], "resume"),
        (["analysis=beyond", "analysis.null.n_samples=1"], "analysis.null.n_samples"),
        (["analysis=beyond", "analysis.null.kinds=[swap]"], "analysis.null.kinds"),
        (["analysis=beyond", "analysis.null.n_jobs=0"], "analysis.null.n_jobs"),
        (["analysis=beyond", "analysis.rich_club_quantile=1.5"], "analysis.rich_club_quantile"),
        (["analysis=beyond", "analysis.communities.resolution=0"], "analysis.communities.resolution"),
        (["analysis=beyond", "analysis.ais.n_betas=1"], "analysis.ais.n_betas"),
        (["analysis=beyond", "analysis.samples.n=-1"], "analysis.samples.n"),
    ],
)
def test_invalid_config_names_the_key(overrides, key):
    cfg = _compose(overrides)
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"invalid config: {key}")


def test_valid_presets_compose_and_validate():
    assert validate(_compose([])).model.hidden == [500, 500, 2000]
    smoke = validate(_compose(["experiment=smoke"]))
    assert smoke.train.epochs == 2 and smoke.dataset.n_train == 1000
    paper = validate(_compose(["experiment=testolin2018"]))
    assert (paper.train.epochs, paper.dataset.name, paper.model.hidden) == (50, "mnist", [500, 500, 2000])
    beyond = validate(_compose(["analysis=beyond"]))
    targets = {name: cb["_target_"] for name, cb in beyond.analysis.callbacks.items()}
    assert targets == {
        "weights": "analysis.callbacks.WeightStatsCallback",
        "graph": "analysis.callbacks.GraphCallback",
        "clusters": "analysis.callbacks.ClusterCallback",
        "images": "analysis.epoch_images.EpochImagesCallback",
        "beyond": "analysis.beyond.BeyondPaperCallback",
        "quality": "dbn_experiment.quality.ModelQualityCallback",
    }
    assert beyond.analysis.null.n_samples == 20 and beyond.analysis.threshold.quantile == 0.9
    mlp = validate(_compose(["experiment=mlp_mnist"]))
    assert (mlp.model.kind, mlp.model.hidden, mlp.dataset.name) == ("mlp", [500, 500, 2000], "mnist5k")
    assert validate(_compose([])).model.kind == "dbn"
    pcd = validate(_compose(["train=pcd"]))
    assert pcd.train.persistent and pcd.train.cd_steps == 1
    # Experiment presets win over the primary config's values; the command line wins over both.
    assert validate(_compose(["experiment=smoke", "train.epochs=7"])).train.epochs == 7


def test_defaults_match_the_published_recipe():
    t = validate(_compose([])).train
    assert (t.batch_size, t.cd_steps, t.learning_rate) == (100, 1, 0.1)
    assert (t.momentum, t.final_momentum, t.momentum_switch_epoch) == (0.5, 0.9, 5)
    assert (t.weight_decay, t.init_std, t.persistent) == (2e-4, 0.1, False)


def test_other_hydra_apps_compose_our_groups(tmp_path):
    """Another Hydra app reaches our config groups through `hydra.searchpath` (the plugin does the same for
    a regular install; see test_install.py)."""
    (tmp_path / "app.yaml").write_text(
        "defaults:\n  - model: dbn_paper\n  - train: pcd\n  - _self_\n"
        "hydra:\n  searchpath:\n    - pkg://dbn_experiment.conf\nmine: 1\n"
    )
    with initialize_config_dir(str(tmp_path), version_base="1.3"):
        cfg = compose("app")
    assert list(cfg.model.hidden) == [500, 500, 2000]
    assert cfg.train.persistent is True and cfg.mine == 1


@pytest.mark.parametrize(
    ("args", "key"),
    [
        (["train.batch_size=0"], "train.batch_size"),
        (["train.batch_size=4001"], "train.batch_size"),  # larger than the 4,000 embedded training digits
        (["dataset=idx", "dataset.path=/no/such/folder"], "dataset.path"),
        (["analysis.n_clusters=501"], "analysis.n_clusters"),
        (["analysis.emd.method=fast"], "analysis.emd.method"),
    ],
)
def test_cli_rejects_bad_values_before_any_run(tmp_path, data_cache, cli, args, key):
    proc = cli([*args, f"hydra.run.dir={tmp_path}/out"], tmp_path, {"DBN_DATA_DIR": str(data_cache)})
    assert proc.returncode == 2, proc.stderr
    assert f"error: invalid config: {key}" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out" / "model").exists()
    # No MLflow run was created, so none can be left RUNNING or FINISHED.
    if (tmp_path / "mlflow.db").exists():
        client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
        exp = client.get_experiment_by_name("dbn-complex-networks")
        assert exp is None or not client.search_runs([exp.experiment_id])


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory, data_cache, cli):
    """One real `experiment=smoke` run logged to a fresh SQLite store."""
    root = tmp_path_factory.mktemp("smoke")
    out = root / "out"
    proc = cli(["experiment=smoke", f"hydra.run.dir={out}"], root, {"DBN_DATA_DIR": str(data_cache)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return root, out, proc


def test_smoke_run_is_logged_to_mlflow(smoke_run):
    root, out, _ = smoke_run
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    exp = client.get_experiment_by_name("dbn-complex-networks")
    assert exp.artifact_location == (root / "mlartifacts").resolve().as_uri()
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.info.run_name == "experiment=smoke"
    p = run.data.params
    assert p["train.epochs"] == "2" and p["model.hidden"] == "[64, 32, 64]" and p["seed"] == "0"
    assert p["dataset.name"] == "mnist5k" and p["train.learning_rate"] == "0.1"
    assert not any(k.startswith("hydra") for k in p)
    tags = run.data.tags
    assert tags["seed"] == "0" and tags["jax_backend"] == "cpu" and tags["git_commit"]
    assert "jax_devices" in tags and tags["version/jax"] and tags["version/mlflow"]
    for layer in (1, 2, 3):
        history = client.get_metric_history(run.info.run_id, f"train/h{layer}/recon_error")
        assert [m.step for m in history] == [0, 1, 2]
        # Training lowers the reconstruction error.
        assert history[-1].value < history[0].value
    assert client.get_metric_history(run.info.run_id, "train/h1/pseudo_log_likelihood")
    assert client.get_metric_history(run.info.run_id, "train/h2/free_energy_gap")
    for name in ("pixels", "h1", "h2", "h3"):
        acc = run.data.metrics[f"readout/{name}/accuracy"]
        assert 0.1 < acc <= 1.0
    # The paper's analysis (analysis=paper, the default) is logged to the same run.
    m = run.data.metrics
    for key in (
        "weights/w1/skewness",
        "weights/all/mean",
        "weights/w2/mean_shift",
        "strength/v/out/frac_negative",
        "strength/h3/in/max",
        "graph/h1/mean_degree",
        "graph/all/assortativity",
        "graph/threshold/w1",
        "clusters/h1/out/pearson_k_s",
        "clusters/h1/out/pearson_k_s/perm_z",
        "clusters/h1/out/pearson_k_s/perm_p",
        "clusters/h1/out/pearson_k_s_weighted",
        "clusters/h2/in/pearson_k_knn",
        "clusters/h2/total/pearson_s_knn/perm_p",
        "structure/h2/out/pearson_k_s",
        "clusters/h1/n_clusters",
        "clusters/h1/largest_fraction",
        "clusters/h2/n_singletons",
        "graph/kept_fraction/w1",
        "graph/kept_fraction/w3",
        "graph/scope_global/kept_fraction/w2",
        "graph/scope_layer/kept_fraction/w2",
    ):
        assert key in m, key
    assert m["clusters/h1/n_clusters"] == 20
    # Learning dynamics: the cheap statistics are metric histories over the epochs.
    assert [x.step for x in client.get_metric_history(run.info.run_id, "weights/w1/skewness")] == [0, 2]
    history = client.get_metric_history(run.info.run_id, "graph/per_matrix/w3/kept_fraction")
    assert [x.step for x in history] == [0, 2]
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {
        "figures/structure_vs_function.png",
        "figures/dendrogram_h1.png",
        "figures/receptive_fields_h2.png",
        "figures/weights_histograms.png",
        "figures/degree_distributions.png",
    } <= figures
    tables = {a.path for a in client.list_artifacts(run.info.run_id, "tables")}
    assert {"tables/clusters_h1.csv", "tables/units_h2.csv"} <= tables
    assert [a.path for a in client.list_artifacts(run.info.run_id, "graph")] == ["graph/thresholded.graphml.gz"]
    # serialised on the tracker's writer: the whole thresholded graph of the run
    graphml = client.download_artifacts(run.info.run_id, "graph/thresholded.graphml.gz", str(out.parent / "g"))
    g = nx.read_graphml(gzip.open(graphml))
    assert g.number_of_edges() == m["graph/all/n_edges"] > 0
    assert g.number_of_nodes() == 784 + 64 + 32 + 64
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "model")}
    assert {"model/model.json", "model/layer_1.npz", "model/layer_3.npz"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "hydra")} >= {"hydra/config.yaml"}
    assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    local = client.download_artifacts(run.info.run_id, "config.yaml", str(out.parent / "dl"))
    text = open(local).read()
    assert "hidden:\n  - 64\n  - 32\n  - 64\n" in text and "epochs: 2\n" in text


def test_model_artifact_loads(smoke_run, tmp_path):
    root, out, _ = smoke_run
    layers = load_dbn(out)
    assert [p.w.shape for p in layers] == [(784, 64), (64, 32), (32, 64)]
    assert all(p.w.dtype == np.float32 for p in layers)
    # The copy logged to MLflow is the same model.
    client = MlflowClient(f"sqlite:///{root / 'mlflow.db'}")
    (run,) = store_runs(client.tracking_uri)
    local = client.download_artifacts(run.info.run_id, "model", str(tmp_path))
    for a, b in zip(load_dbn(local), layers, strict=True):
        assert np.array_equal(a.w, b.w) and np.array_equal(a.b_hid, b.b_hid)


@pytest.mark.slow  # four CLI runs; in-process determinism is tests/test_train.py, CLI bit-identity the kill tests
def test_same_config_and_seed_give_identical_weights(smoke_run, tmp_path, data_cache, cli):
    run_cli = cli
    # The weights do not depend on the analysis or the read-out: leave them out of the repeat runs.
    QUIET = ["tracking=off", "analysis=none", "readout.enabled=false"]  # noqa: N806
    _, out, _ = smoke_run
    env = {"DBN_DATA_DIR": str(data_cache)}
    again = run_cli(["experiment=smoke", *QUIET, f"hydra.run.dir={tmp_path}/a"], tmp_path, env)
    assert again.returncode == 0, again.stderr[-3000:]
    for a, b in zip(load_dbn(out), load_dbn(tmp_path / "a"), strict=True):
        assert np.array_equal(a.w, b.w) and np.array_equal(a.b_vis, b.b_vis) and np.array_equal(a.b_hid, b.b_hid)
    other = run_cli(["experiment=smoke", *QUIET, "seed=1", f"hydra.run.dir={tmp_path}/b"], tmp_path, env)
    assert other.returncode == 0, other.stderr[-3000:]
    assert not np.array_equal(load_dbn(out)[0].w, load_dbn(tmp_path / "b")[0].w)
    # Resuming from a checkpoint written with another seed is refused, naming the key.
    bad = run_cli(["experiment=smoke", *QUIET, f"resume={out}", f"hydra.run.dir={tmp_path}/c"], tmp_path,
                  {**env, "DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert bad.returncode == 0, bad.stderr[-3000:]  # same config: resumes (nothing left to train)
    for a, b in zip(load_dbn(out), load_dbn(tmp_path / "c"), strict=True):
        assert np.array_equal(a.w, b.w)


def test_resuming_with_another_seed_is_refused(smoke_run, tmp_path, data_cache, cli):
    _, out, _ = smoke_run
    refused = cli(["experiment=smoke", "tracking=off", "analysis=none", "seed=3", f"resume={out}",
                   f"hydra.run.dir={tmp_path}/d"], tmp_path, {"DBN_DATA_DIR": str(data_cache)})  # fmt: skip
    assert refused.returncode == 2 and "invalid config: resume=" in refused.stderr
    assert "its checkpoint was written with another seed/model/train/dataset config" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_console_script_is_installed():
    script = Path(sys.executable).parent / "dbn-experiment"
    assert script.exists()


@pytest.mark.slow  # the message itself: tests/test_data.py::test_load_mnist_offline_message
def test_offline_download_names_the_offline_options(tmp_path, cli):
    """`dataset=mnist` with no reachable mirror fails fast, pointing at the offline datasets."""
    proc = cli(
        ["dataset=mnist", "dataset.mirrors=[http://127.0.0.1:9/]", f"hydra.run.dir={tmp_path}/out"],
        tmp_path,
        {"DBN_DATA_DIR": str(tmp_path / "cache")},
    )
    assert proc.returncode == 2
    assert "dataset=mnist5k" in proc.stderr and "dataset=idx dataset.path=" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any((tmp_path / "cache").rglob("*ubyte*"))


FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.slow  # 60,000 Fashion-MNIST images through the app
@pytest.mark.skipif(not FASHION.is_dir(), reason="Debian package dataset-fashion-mnist not installed")
def test_full_size_idx_dataset_through_the_app(tmp_path, cli):
    """The IDX path end to end on real full-size files (Fashion-MNIST, 60,000 + 10,000)."""
    proc = cli(
        ["experiment=smoke", "dataset=idx", f"dataset.path={FASHION}", "analysis=none", "tracking=off",
         f"hydra.run.dir={tmp_path}/out"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert [p.w.shape for p in load_dbn(tmp_path / "out")] == [(784, 64), (64, 32), (32, 64)]
    assert "readout/pixels/accuracy" in (tmp_path / "out" / "app.log").read_text()


def test_sigterm_marks_the_run_killed_and_keeps_the_checkpoint(tmp_path, data_cache):
    import os
    import signal
    import subprocess
    import time

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["DBN_DATA_DIR"] = str(data_cache)
    proc = subprocess.Popen(
        [sys.executable, "-m", "dbn_experiment", "experiment=smoke", "train.epochs=500", "analysis=none",
         f"hydra.run.dir={tmp_path}/out"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # Wait for training to be under way (a checkpoint is written after every epoch) without touching the store
    # while the app creates its schema.
    state = tmp_path / "out" / "checkpoint" / "state.npz"
    deadline = time.time() + 120
    while not state.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert state.exists(), proc.stderr.read() if proc.poll() is not None else "no checkpoint after 120 s"
    time.sleep(2.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = store_runs(client.tracking_uri)
    assert run.info.status == "KILLED"
    assert "signal" in run.data.tags["error"]
    assert (tmp_path / "out" / "checkpoint" / "state.npz").exists()


def test_every_option_has_one_value_the_yaml_and_the_dataclasses_agree():
    """conf/ sets each option to the default of the dataclass that takes it: every callback built from the
    composed config equals the one built with no arguments, and each typed node equals its schema's defaults."""
    from dbn_experiment.config import ModelConfig, MonitorConfig, ReadoutConfig, make_callbacks
    from dbn_jax.data import DataConfig
    from dbn_jax.train import TrainSettings

    cfg = _compose(["analysis=beyond"])
    c = validate(cfg)
    callbacks = make_callbacks(cfg, c.model, n_visible=784)
    assert list(callbacks) == ["weights", "graph", "clusters", "images", "beyond", "quality"]
    for name, callback in callbacks.items():
        assert callback == type(callback)(), name
    assert (c.model, c.train, c.dataset) == (ModelConfig(), TrainSettings(), DataConfig())
    assert (c.readout, c.monitor) == (ReadoutConfig(), MonitorConfig())


def test_callbacks_are_removed_and_added_by_name():
    from dbn_experiment.config import make_callbacks

    cfg = _compose(["analysis=beyond", "~analysis.callbacks.clusters"])
    assert list(make_callbacks(cfg, validate(cfg).model, n_visible=784)) == [
        "weights",
        "graph",
        "images",
        "beyond",
        "quality",
    ]
    cfg = _compose(["analysis=none", "+analysis.callbacks.graph={_target_: analysis.callbacks.GraphCallback}"])
    (graph,) = make_callbacks(cfg, validate(cfg).model, n_visible=784).values()
    assert type(graph).__qualname__ == "GraphCallback" and graph.threshold.quantile == 0.9
