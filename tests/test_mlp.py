"""The supervised baseline (dbn_jax.mlp); the analysis of any weight stack (analysis.callbacks.analyze_weights)."""

from __future__ import annotations

import gzip
import io

import jax
import jax.numpy as jnp
import networkx as nx
import numpy as np
import pytest
from conftest import store_runs

from analysis.callbacks import ClusterCallback, GraphCallback, WeightStatsCallback, analyze_weights
from dbn_jax import mlp
from dbn_jax.train import EpochEnd, LayerEnd, TrainEnd, TrainSettings


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes of 12-pixel binary images, each a noisy copy of its own prototype."""
    rng = np.random.default_rng(seed)
    protos = np.random.default_rng(99).random((3, 12)) < 0.5
    y = rng.integers(0, 3, n)
    x = np.where(rng.random((n, 12)) < 0.1, ~protos[y], protos[y]).astype(np.float32)
    return x, y.astype(np.int32)


def _events(epochs: int = 8, seed: int = 0):
    x, y = _blobs(600, 1)
    xv, yv = _blobs(200, 2)
    settings = TrainSettings(epochs=epochs, batch_size=20, learning_rate=0.5)
    return list(mlp.train_mlp(jax.random.key(seed), x, y, [16, 8], settings, xv, yv, n_monitor=200))


def test_mlp_learns_and_yields_the_dbn_events():
    events = _events()
    epochs = [e for e in events if isinstance(e, EpochEnd)]
    assert [e.epoch for e in epochs] == list(range(9)) and isinstance(events[-2], LayerEnd)
    end = events[-1]
    assert isinstance(end, TrainEnd)
    assert [p.w.shape for p in end.layers] == [(12, 16), (16, 8)]  # the hidden layers; the output is left out
    assert [p.w.shape for p in end.initial] == [(12, 16), (16, 8)]
    assert epochs[0].metrics["test_accuracy"] < 0.6 and epochs[-1].metrics["test_accuracy"] > 0.85
    assert epochs[-1].metrics["loss"] < epochs[1].metrics["loss"]
    # the final state holds every layer, output included; biases are trained, b_vis stays zero (unused)
    state = epochs[-1].state.current.params
    assert [p.w.shape for p in state] == [(12, 16), (16, 8), (8, 3)]
    assert all(float(jnp.abs(p.b_vis).max()) == 0.0 for p in state)
    assert float(jnp.abs(state[-1].b_hid).max()) > 0


def test_mlp_is_deterministic():
    a, b = _events(3)[-1], _events(3)[-1]
    for p, q in zip(a.layers, b.layers, strict=True):
        np.testing.assert_array_equal(np.asarray(p.w), np.asarray(q.w))


def test_mlp_gradients_match_finite_differences():
    x, y = _blobs(10, 3)
    params = mlp.init_mlp(jax.random.key(1), [12, 5, 3], 0.5)
    grads = jax.grad(mlp.loss)(params, x, y)
    eps = 1e-2  # float32: central differences with a step this size are accurate to ~1e-4 here
    for layer, (i, j) in ((0, (2, 1)), (1, (4, 2))):
        w = params[layer].w
        up = list(params)
        up[layer] = params[layer]._replace(w=w.at[i, j].add(eps))
        down = list(params)
        down[layer] = params[layer]._replace(w=w.at[i, j].add(-eps))
        fd = (mlp.loss(tuple(up), x, y) - mlp.loss(tuple(down), x, y)) / (2 * eps)
        assert float(grads[layer].w[i, j]) == pytest.approx(float(fd), rel=2e-2, abs=1e-5)


class _FakeTensor:
    """The PyTorch tensor interface analyze_weights uses (detach / cpu / numpy)."""

    def __init__(self, a: np.ndarray):
        self._a = a

    def detach(self):
        return self

    def cpu(self):
        return self

    def numpy(self):
        return self._a


def test_analyze_weights_takes_any_array_stack():
    rng = np.random.default_rng(0)
    ws = [rng.normal(0, 0.1, (784, 30)), rng.normal(0, 0.1, (30, 25)), rng.normal(0, 0.1, (25, 40))]
    callbacks = [WeightStatsCallback(), GraphCallback(export_graphml=False), ClusterCallback(n_clusters=4)]
    ref = analyze_weights(ws, initial=[w * 0.5 for w in ws], callbacks=callbacks).metrics
    for stack in ([jnp.asarray(w) for w in ws], [_FakeTensor(w) for w in ws], [w.tolist() for w in ws]):
        again = analyze_weights(stack, initial=[w * 0.5 for w in ws], callbacks=callbacks).metrics
        assert again.keys() == ref.keys()
        for k, v in ref.items():
            assert again[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k  # JAX holds float32
    for key in ("weights/w1/mean", "weights/w1/mean_shift", "graph/all/assortativity",
                "clusters/h2/out/pearson_k_s"):
        assert key in ref
    default = analyze_weights(ws[1:])  # not images: no EMD clusters by default
    assert "graph/all/assortativity" in default.metrics
    assert not any(k.startswith("clusters/") for k in default.metrics)
    # the GraphML is serialised when read, and is the thresholded graph
    assert callable(dict.get(default.files, "graph/thresholded.graphml.gz"))
    g = nx.read_graphml(gzip.open(io.BytesIO(default.files["graph/thresholded.graphml.gz"])))
    assert g.number_of_edges() == default.metrics["graph/all/n_edges"] > 0
    assert isinstance(dict.get(default.files, "graph/thresholded.graphml.gz"), bytes)  # made once, kept


@pytest.mark.parametrize(
    "weights, match",
    [
        ([], "empty stack"),
        ([np.zeros((3, 4)), np.zeros((5, 2))], r"weights\[1\]"),
        ([np.zeros(3)], r"weights\[0\]"),
        ([np.full((2, 2), np.nan)], "NaN"),
    ],
)
def test_analyze_weights_rejects_bad_stacks(weights, match):
    with pytest.raises(ValueError, match=match):
        analyze_weights(weights)


@pytest.mark.slow  # ~25 s through the CLI; CI runs the slow tests too
def test_mlp_run_end_to_end(cli, tmp_path):
    """`model.kind=mlp` through the app: backprop metrics per epoch, the paper's analysis of its hidden layers."""
    from mlflow.tracking import MlflowClient

    from dbn_jax import load_dbn

    overrides = ["experiment=smoke", "model.kind=mlp", "analysis.cluster_layers=[1]"]
    proc = cli([*overrides, f"hydra.run.dir={tmp_path}/out"], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = store_runs(client.tracking_uri)
    assert run.data.params["model.kind"] == "mlp"
    history = client.get_metric_history(run.info.run_id, "train/mlp/test_accuracy")
    assert sorted(m.step for m in history) == [0, 1, 2]
    for key in ("train/mlp/loss", "graph/all/assortativity", "clusters/h1/out/pearson_k_s", "readout/h3/accuracy"):
        assert key in run.data.metrics, key
    # the hidden layers and the output layer (the pyfunc model predicts class probabilities with it)
    shapes = [layer.w.shape for layer in load_dbn(tmp_path / "out" / "model")]
    assert shapes == [(784, 64), (64, 32), (32, 64), (64, 10)]
