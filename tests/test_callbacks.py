"""Analysis callbacks on real training events: the documented metric keys, figures, tables and files."""

from __future__ import annotations

import gzip
import io

import jax
import networkx as nx
import numpy as np
import pytest

from analysis.callbacks import AnalysisResult, ClusterCallback, GraphCallback, WeightStatsCallback
from analysis.tracking import NullTracker
from dbn_jax.train import EpochEnd, LayerEnd, TrainEnd, TrainSettings, train_dbn


@pytest.fixture(scope="module")
def events():
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 784)) < 0.2).astype(np.float32)
    x = np.clip(protos[rng.integers(0, 4, 400)] + (rng.random((400, 784)) < 0.05), 0, 1).astype(np.float32)
    settings = TrainSettings(epochs=2, batch_size=50)
    return list(train_dbn(jax.random.key(0), x, [24, 16, 20], settings, x[:100], n_monitor=100))


def _run(callback, events, every=1):
    tracker = NullTracker()
    tracker.start_run("t", {}, {})
    for ev in events:
        if isinstance(ev, EpochEnd) and (every == 0 or ev.epoch % every):
            continue
        res = callback(ev)
        if res is not None:
            assert isinstance(res, AnalysisResult)
            tracker.log_result(res, ev.epoch if isinstance(ev, EpochEnd) else 2)
    return tracker


def test_weight_stats_dynamics_and_final(events):
    t = _run(WeightStatsCallback(every_n_epochs=1), events)
    assert [s for s, _ in t.metrics["weights/w1/skewness"]] == [0, 1, 2]  # the last epoch is the final value
    assert [s for s, _ in t.metrics["strength/h3/in/mean"]] == [0, 1, 2]
    final = {k: v[-1][1] for k, v in t.metrics.items()}
    for key in (
        "weights/all/mean",
        "weights/w2/excess_kurtosis",
        "weights/w3/frac_negative",
        "weights/w1/mean_shift",
        "weights/w1/initial_sd",
        "strength/v/out/mean",
        "strength/h1/total/sd",
    ):
        assert key in final, key  # fmt: skip
    # The initial weights are N(0, 0.1²): their sd is about 0.1; the shift is trained minus initial.
    assert abs(final["weights/w1/initial_sd"] - 0.1) < 0.01
    assert final["weights/w1/mean_shift"] == pytest.approx(
        final["weights/w1/mean"] - final["weights/w1/initial_mean"]
    )
    w1 = np.asarray(events[-1].layers[0].w, np.float64)
    assert final["strength/v/out/mean"] == pytest.approx(w1.sum(axis=1).mean())
    assert set(t.figures) == {"figures/weights_histograms.png", "figures/strength_histograms.png"}
    assert set(t.tables["tables/strength_h1.csv"]) == {"unit", "out", "in", "total"}


def test_graph_callback(events):
    thr = {"sign": "absolute", "quantile": 0.8}
    t = _run(GraphCallback(threshold=thr, every_n_epochs=1), events)
    final = {k: v[-1][1] for k, v in t.metrics.items()}
    for key in (
        "graph/w2/density",
        "graph/h1/mean_degree",
        "graph/h3/mean_knn",
        "graph/all/assortativity",
        "graph/all/n_components",
        "graph/v_h1/density",
        "graph/threshold/w1",
    ):
        assert key in final, key  # fmt: skip
    # Global quantile 0.8 of |w| keeps 20% of all edges.
    assert final["graph/all/density"] == pytest.approx(0.2, abs=1e-3)
    units = t.tables["tables/units_h2.csv"]
    assert set(units) >= {"unit", "degree", "knn", "strength_out", "strength_in", "strength_total"}
    g = nx.read_graphml(io.BytesIO(gzip.decompress(t.files["graph/thresholded.graphml.gz"])))
    assert g.number_of_edges() == final["graph/all/n_edges"]
    assert "figures/degree_distributions.png" in t.figures


def test_cluster_callback(events):
    cb = ClusterCallback(n_clusters=4, cluster_layers=[1, 2, 3], emd={"method": "sliced", "n_projections": 32},
                         threshold={"sign": "positive", "density": 0.3}, mosaic_units=16)  # fmt: skip
    t = _run(cb, events, every=0)
    final = {k: v[-1][1] for k, v in t.metrics.items()}
    for layer in ("h1", "h2", "h3"):
        assert final[f"clusters/{layer}/n_clusters"] == 4
        for k in ("pearson_k_s", "pearson_k_s_p", "pearson_k_knn", "pearson_k_knn_p"):
            assert f"clusters/{layer}/{k}" in final
        table = t.tables[f"tables/clusters_{layer}.csv"]
        assert table["size"].sum() == {"h1": 24, "h2": 16, "h3": 20}[layer]
        d = t.arrays[f"arrays/emd_{layer}.npz"]["distances"]
        assert d.shape[0] == d.shape[1] and np.allclose(d, d.T) and np.all(np.diag(d) == 0)
        for fig in ("receptive_fields", "dendrogram", "emd_matrix"):
            assert f"figures/{fig}_{layer}.png" in t.figures
    assert "figures/structure_vs_function.png" in t.figures


def test_callbacks_ignore_layer_end(events):
    layer_end = next(e for e in events if isinstance(e, LayerEnd))
    assert WeightStatsCallback()(layer_end) is None and GraphCallback()(layer_end) is None
    assert ClusterCallback()(layer_end) is None
    assert isinstance(events[-1], TrainEnd)
