"""`dbn-experiment model=weights` end to end: a network from a file is analysed and logged as a trained one; every
bad weight file is one line on stderr, exit 2 and no run (or a FAILED run when only the analysis finds it out).

The CLI runs of the default set start together (a thread pool over subprocesses); the other bad files through the
CLI, the FAILED run and the worked example (PyTorch MLP, then a DBN, then dbn-compare) are marked slow."""

from __future__ import annotations

import csv
import gzip
import hashlib
import pickle
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from conftest import REPO, run_cli, store_runs
from mlflow.tracking import MlflowClient
from safetensors.numpy import save_file
from test_app import _compose

from analysis.callbacks import analyze_weights
from dbn_experiment.config import ConfigError, make_callbacks, validate
from dbn_jax import load_dbn
from dbn_jax.weights_file import WeightFileError

RNG = np.random.default_rng(0)
# A 784-32-16 network stored as PyTorch's nn.Linear stores it: (out, in), with biases; and its initial weights.
TRAINED = {
    "0.weight": RNG.normal(-0.01, 0.1, (32, 784)),
    "0.bias": np.zeros(32),
    "2.weight": RNG.normal(0, 0.2, (16, 32)),
}
INITIAL = {"0.weight": RNG.normal(0, 0.1, (32, 784)), "2.weight": RNG.normal(0, 0.1, (16, 32))}
# Cheap analysis settings for the runs of the default test set (the callbacks are the default `analysis=paper`).
CHEAP = ["analysis.n_clusters=4", "analysis.label_null.n_permutations=20", "analysis.emd.n_jobs=1"]
GOOD = ["model=weights", "model.path=mlp.safetensors", "model.initial_path=mlp_init.safetensors",
        "model.transpose=true", *CHEAP]  # fmt: skip


def _save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    save_file({k: np.asarray(v, dtype=np.float32) for k, v in tensors.items()}, str(path))
    return path


DEAD = ["model=weights", "model.path=mlp.safetensors", "model.transpose=true", *CHEAP]


def _save_dead(path: Path) -> None:
    """The test network with a dead unit (unit 5 of h1 has no input weight): its receptive field has no mass,
    which EMD cannot compare; only the analysis finds it out, after the run exists."""
    w = dict(TRAINED)
    w["0.weight"] = w["0.weight"].copy()
    w["0.weight"][5] = 0.0
    _save(path, w)


class _Marker:
    """Unpickling this creates ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


# The bad files through the CLI in the default test set (the others: slow; every one is refused in-process by
# tests/test_weights_file.py, and the CLI path of the error is the same for all).
DEFAULT_BAD = ("missing", "pickle as safetensors")
SLOW_BAD = ("unknown format", "layer absent", "shapes do not chain", "NaN", "PyTorch zip as npz")


def _bad_folder(bad: Path, name: str) -> Path:
    """A run folder of its own for one bad case, with the files of ``bad`` linked in."""
    folder = bad / name.replace(" ", "_")
    folder.mkdir()
    for f in bad.iterdir():
        if f.is_file():
            (folder / f.name).symlink_to(f)
    return folder


def _bad_files(folder: Path) -> dict[str, tuple[list[str], str]]:
    """Each bad case: (its overrides, the fragment its error line holds); the files are written in ``folder``."""
    _save(folder / "mlp.safetensors", TRAINED)
    (folder / "w.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    w1 = TRAINED["0.weight"].T.copy()
    w1[3, :5] = np.nan
    np.savez(folder / "nan.npz", w1=w1, w2=TRAINED["2.weight"].T)
    (folder / "pickle.safetensors").write_bytes(pickle.dumps({"w": _Marker(folder / "unpickled")}))
    import torch

    torch.save({"w": torch.zeros(3, 3)}, folder / "torch.npz")
    return {
        "missing": (["model.path=absent.safetensors"], "absent.safetensors: no such file"),
        "unknown format": (["model.path=w.h5"], "unknown format '.h5'; allowed: .safetensors, .npz, .pt"),
        "layer absent": (
            ["model.path=mlp.safetensors", "model.transpose=true", "model.layers=[0.weight,3.weight]"],
            "layer '3.weight' not in mlp.safetensors; its 2-D tensors: 0.weight (32, 784), 2.weight (16, 32)",
        ),
        "shapes do not chain": (["model.path=mlp.safetensors"], "set transpose=true"),
        "NaN": (["model.path=nan.npz"], "layer 'w1' of nan.npz holds 5 NaN/Inf values"),
        "pickle as safetensors": (
            ["model.path=pickle.safetensors"],
            "is a pickle, not a safetensors file: refused",
        ),
        "PyTorch zip as npz": (["model.path=torch.npz"], "is a PyTorch zip file (a pickle inside), not a NumPy"),
    }


@pytest.fixture(scope="module")
def cli_runs(tmp_path_factory, data_cache) -> dict:
    """Every CLI run of the default set, started together: name -> (folder, CompletedProcess)."""
    root = tmp_path_factory.mktemp("weights")
    jobs: dict[str, tuple[Path, list[str]]] = {}
    good = root / "good"
    good.mkdir()
    _save(good / "mlp.safetensors", TRAINED)
    _save(good / "mlp_init.safetensors", INITIAL)
    jobs["good"] = (good, [*GOOD, "hydra.run.dir=out"])
    # A network whose inputs are no image: no receptive fields, no EMD clusters.
    flat = root / "flat"
    flat.mkdir()
    np.savez(flat / "net.npz", a=RNG.normal(0, 0.1, (100, 16)), b=RNG.normal(0, 0.1, (16, 8)))
    jobs["no image"] = (flat, ["model=weights", "model.path=net.npz", "model.input_shape=null", "tracking=off",
                               "hydra.run.dir=out"])  # fmt: skip
    bad = root / "bad"
    bad.mkdir()
    cases = _bad_files(bad)
    for name in DEFAULT_BAD:
        jobs[name] = (_bad_folder(bad, name), ["model=weights", *cases[name][0], "hydra.run.dir=out"])
    env = {"DBN_DATA_DIR": str(data_cache)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_cli, args, cwd, env) for name, (cwd, args) in jobs.items()}
        done = {name: (jobs[name][0], f.result()) for name, f in futures.items()}
    return {"runs": done, "cases": cases, "bad": bad}


def test_a_weight_file_is_analysed_and_logged_like_a_trained_network(cli_runs):
    folder, proc = cli_runs["runs"]["good"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{folder / 'mlflow.db'}")
    (run,) = store_runs(client.tracking_uri)
    assert run.info.status == "FINISHED"
    tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
    path = folder / "mlp.safetensors"
    assert tags["weights_path"] == str(path.resolve())
    assert tags["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert tags["weights_sizes"] == "784-32-16" and tags["weights_layers"] == "0.weight, 2.weight"
    assert (
        tags["weights_initial_sha256"]
        == hashlib.sha256((folder / "mlp_init.safetensors").read_bytes()).hexdigest()
    )
    assert tags["dataset_source"].startswith("none")
    assert params["model.kind"] == "weights" and params["model.path"] == "mlp.safetensors"
    assert params["model.transpose"] == "True" and params["analysis.n_clusters"] == "4"
    # The nodes a file's run does not read are not its params.
    assert not any(k.startswith(("train.", "dataset.", "readout.", "monitor.")) for k in params)
    assert "model.hidden" not in params
    # The same metrics, with the same values, as the end-of-training analysis of a trained network of these
    # shapes with the same callbacks (what a trained run logs at its TrainEnd).
    cfg = _compose(GOOD)
    c = validate(cfg)
    callbacks = make_callbacks(cfg, c.model, n_visible=784, sizes=[784, 32, 16])
    weights = [TRAINED["0.weight"].astype(np.float32).T, TRAINED["2.weight"].astype(np.float32).T]
    initial = [INITIAL["0.weight"].astype(np.float32).T, INITIAL["2.weight"].astype(np.float32).T]
    expected = analyze_weights(weights, initial, callbacks=callbacks).metrics
    logged = {k: v for k, v in metrics.items() if not k.startswith(("time/", "system/"))}
    assert set(logged) == set(expected)
    for key, value in expected.items():
        assert np.isclose(logged[key], value, rtol=1e-9, equal_nan=True), key
    for key in ("weights/w1/mean_shift", "weights/all/skewness", "strength/v/out/frac_negative",
                "graph/all/assortativity", "graph/threshold/w2", "clusters/h1/out/pearson_k_s",
                "clusters/h2/in/pearson_k_knn/perm_z", "structure/h1/out/pearson_k_s"):  # fmt: skip
        assert key in logged, key
    assert {"time/run_seconds", "time/analysis/clusters_seconds"} <= set(metrics)
    assert not any(k.startswith(("train/", "readout/")) for k in metrics)
    # Figures, tables, arrays, GraphML and the model, as for a trained network.
    rid = run.info.run_id
    figures = {a.path for a in client.list_artifacts(rid, "figures")}
    for name in ("weights_histograms", "strength_histograms", "degree_distributions", "receptive_fields_h1",
                 "dendrogram_h2", "structure_vs_function"):  # fmt: skip
        assert f"figures/{name}.png" in figures, name
    assert {"tables/clusters_h1.csv", "tables/units_h2.csv"} <= {
        a.path for a in client.list_artifacts(rid, "tables")
    }
    graphml = client.download_artifacts(rid, "graph/thresholded.graphml.gz", str(folder / "dl"))
    g = nx.read_graphml(gzip.open(graphml))
    assert g.number_of_nodes() == 784 + 32 + 16 and g.number_of_edges() == metrics["graph/all/n_edges"] > 0
    model = load_dbn(client.download_artifacts(rid, "model", str(folder / "dl")))
    assert [p.w.shape for p in model] == [(784, 32), (32, 16)]
    assert np.array_equal(model[0].w, weights[0]) and not model[0].b_hid.any()
    log = (folder / "out" / "app.log").read_text()
    assert "784-32-16, layers 0.weight, 2.weight (model.layers=null: every 2-D tensor" in log
    assert "readout skipped: model.kind=weights" in log


def test_without_an_image_shape_the_image_analyses_are_skipped_with_one_line(cli_runs):
    folder, proc = cli_runs["runs"]["no image"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    log = (folder / "out" / "app.log").read_text()
    skipped = [line for line in log.splitlines() if "skipped: model.input_shape=null" in line]
    assert len(skipped) == 1 and "analysis.callbacks.clusters" in skipped[0]
    assert not (folder / "mlflow.db").exists()  # tracking=off


def _check_refused(folder: Path, proc: subprocess.CompletedProcess, fragment: str) -> None:
    """Exit 2, one error line naming the key and holding ``fragment``, no traceback, no store, no run."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: model.path: ") and fragment in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    # Read before the tracker is even set up: no store, so no run.
    assert not (folder / "mlflow.db").exists() and not (folder / "out" / "model").exists()
    assert not (folder.parent / "unpickled").exists()


@pytest.mark.parametrize("name", DEFAULT_BAD)
def test_a_bad_weight_file_is_one_line_exit_2_and_no_run(cli_runs, name):
    folder, proc = cli_runs["runs"][name]
    _check_refused(folder, proc, cli_runs["cases"][name][1])


@pytest.mark.slow  # one CLI start each; the same files are refused in-process in tests/test_weights_file.py
@pytest.mark.parametrize("name", SLOW_BAD)
def test_every_other_bad_weight_file_is_one_line_exit_2_and_no_run(tmp_path, data_cache, name):
    cases = _bad_files(tmp_path)
    folder = _bad_folder(tmp_path, name)
    proc = run_cli(
        ["model=weights", *cases[name][0], "hydra.run.dir=out"], folder, {"DBN_DATA_DIR": str(data_cache)}
    )
    _check_refused(folder, proc, cases[name][1])


def _check_failed_by_the_analysis(proc: subprocess.CompletedProcess) -> None:
    assert proc.returncode == 2, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "the analysis of mlp.safetensors failed" in errors[0], proc.stderr
    assert "all zero" in errors[0] and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=weights"], "invalid config: model.path=???; allowed: the weight file"),
        (["model=weights", "model.path=null"], "invalid config: model.path=None"),
        (["model=weights", "model.path=w.npz", "model.layers=[]"], "invalid config: model.layers=[]"),
        (
            ["model=weights", "model.path=w.npz", "model.input_shape=[784]"],
            "invalid config: model.input_shape=[784]",
        ),
        (["model=weights", "model.path=w.npz", "model.input_shape=[27,27]"], "invalid config: model.input_shape="),
        (
            ["model=weights", "model.path=w.npz", "+model.hidden=[5]"],
            "invalid config: model.hidden=[5]; allowed: unset",
        ),
        (
            ["model=tiny", "+model.path=w.npz"],
            "invalid config: model.path='w.npz'; allowed: unset with model.kind=dbn",
        ),
        (["model=weights", "model.path=w.npz", "resume=/tmp"], "invalid config: resume='/tmp'"),
    ],
)
def test_weights_config_errors_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as err:
        validate(_compose(overrides))
    assert str(err.value).startswith(message) and "\n" not in str(err.value)


def test_input_shape_must_fit_the_files_input_layer():
    cfg = _compose(["model=weights", "model.path=w.npz", "analysis.n_clusters=4"])
    c = validate(cfg)
    with pytest.raises(ConfigError) as err:
        make_callbacks(cfg, c.model, n_visible=100, sizes=[100, 16, 8])
    assert str(err.value) == (
        "invalid config: model.input_shape=[28, 28]; allowed: null (no image) or [height, width] with height * "
        "width = 100 (the input units)"
    )
    cfg = _compose(["model=weights", "model.path=w.npz", "model.input_shape=[10,10]", "analysis.n_clusters=4"])
    (clusters,) = [cb for cb in make_callbacks(cfg, validate(cfg).model, 100, [100, 16, 8]).values()
                   if hasattr(cb, "emd")]  # fmt: skip
    assert clusters.input_shape == [10, 10]


def test_initial_weights_of_another_network_are_refused(tmp_path):
    from dbn_experiment.app import _read_weights

    _save(tmp_path / "a.safetensors", TRAINED)
    _save(tmp_path / "b.safetensors", {"0.weight": np.zeros((8, 784)), "2.weight": np.zeros((16, 8))})
    cfg = _compose(["model=weights", f"model.path={tmp_path / 'a.safetensors'}", "model.transpose=true",
                    f"model.initial_path={tmp_path / 'b.safetensors'}"])  # fmt: skip
    with pytest.raises(WeightFileError) as err:
        _read_weights(validate(cfg))
    assert str(err.value).startswith("model.initial_path: layer '0.weight' is (784, 8) in ")
    assert "allowed: the same network before training" in str(err.value)


@pytest.mark.slow  # PyTorch trains the example MLP, the app analyses it, a DBN trains, dbn-compare reads both
def test_worked_example_torch_mlp_then_dbn_then_compare(tmp_path, data_cache):
    env = {"DBN_DATA_DIR": str(data_cache)}
    example = subprocess.run(
        [sys.executable, str(REPO / "examples" / "torch_mlp.py"), "mlp_init.safetensors", "mlp.safetensors"],
        cwd=tmp_path, env={**_env(), **env}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert example.returncode == 0, example.stderr[-3000:]
    assert "test accuracy" in example.stdout
    layers = "model.layers=[0.weight,2.weight,4.weight]"
    weights = run_cli(["model=weights", "model.path=mlp.safetensors", "model.initial_path=mlp_init.safetensors",
                       "model.transpose=true", layers, "hydra.run.dir=out_mlp"], tmp_path, env)  # fmt: skip
    assert weights.returncode == 0, weights.stderr[-3000:]
    dbn = run_cli(["experiment=smoke", "hydra.run.dir=out_dbn"], tmp_path, env)
    assert dbn.returncode == 0, dbn.stderr[-3000:]
    runs = store_runs(f"sqlite:///{tmp_path / 'mlflow.db'}")
    assert sorted(r.data.params["model.kind"] for r in runs) == ["dbn", "weights"]
    mlp_keys, dbn_keys = ({k for k in r.data.metrics if not k.startswith(("time/", "system/"))} for r in
                          sorted(runs, key=lambda r: r.data.params["model.kind"], reverse=True))  # fmt: skip
    # Same depth (three matrices): every analysis metric of the file's run is one a trained DBN has.
    assert mlp_keys <= dbn_keys and "clusters/h2/out/pearson_k_s" in mlp_keys
    compare = subprocess.run(
        [str(Path(sys.executable).parent / "dbn-compare"), "--experiment", "dbn-complex-networks",
         "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--group-by", "model.kind", "--out", "cmp"],
        cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert compare.returncode == 0, compare.stderr[-3000:]
    with open(tmp_path / "cmp" / "summary.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["group"] for r in rows} == {"model.kind=dbn", "model.kind=weights"}
    shift = {r["group"]: r for r in rows if r["metric"] == "weights/w1/mean_shift"}
    assert set(shift) == {"model.kind=dbn", "model.kind=weights"} and all(r["n"] == "1" for r in shift.values())
    # A file only the analysis can refuse (a dead unit) leaves a FAILED run with the error line as its tag,
    # and the network it saved before the analysis.
    dead = tmp_path / "dead"
    dead.mkdir()
    _save_dead(dead / "mlp.safetensors")
    failed = run_cli([*DEAD, "hydra.run.dir=out"], dead, env)
    _check_failed_by_the_analysis(failed)
    (run,) = store_runs(f"sqlite:///{dead / 'mlflow.db'}")
    assert run.info.status == "FAILED" and "all zero" in run.data.tags["error"]
    assert load_dbn(dead / "out")[0].w.shape == (784, 32)


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
