"""Analysis callbacks on real training events: the documented metric keys, figures, tables and files."""

from __future__ import annotations

import gzip
import io

import jax
import networkx as nx
import numpy as np
import pytest

from analysis.callbacks import (
    AnalysisResult,
    CallbackContext,
    ClusterCallback,
    GraphCallback,
    WeightStatsCallback,
)
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
        "graph/per_matrix/w2/kept_fraction",
        "graph/kept_fraction/w3",
        "graph/scope_layer/kept_fraction/w1",
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
                         threshold={"sign": "positive", "density": 0.3}, mosaic_units=16,
                         label_null={"n_permutations": 200})  # fmt: skip
    t = _run(cb, events, every=0)
    final = {k: v[-1][1] for k, v in t.metrics.items()}
    for layer in ("h1", "h2", "h3"):
        assert final[f"clusters/{layer}/n_clusters"] == 4
        sides = ("out", "in", "total") if layer != "h3" else ("in",)  # the top layer has only in
        for side in ("out", "in", "total"):
            for k in ("pearson_k_s", "pearson_k_s_p", "pearson_k_knn_weighted", "pearson_s_knn/perm_z",
                      "pearson_k_s/perm_p", "pearson_k_s_weighted/perm_p"):  # fmt: skip
                assert (f"clusters/{layer}/{side}/{k}" in final) == (side in sides), (layer, side, k)
            assert (f"structure/{layer}/{side}/pearson_k_knn" in final) == (side in sides)
        for side in sides:
            p = final[f"clusters/{layer}/{side}/pearson_k_s/perm_p"]
            assert 1 / 201 <= p <= 1
        table = t.tables[f"tables/clusters_{layer}.csv"]
        assert table["size"].sum() == {"h1": 24, "h2": 16, "h3": 20}[layer]
        assert {f"mean_strength_{s}" for s in sides} <= set(table)
        sizes = table["size"]
        assert final[f"clusters/{layer}/largest_fraction"] == sizes.max() / sizes.sum()
        assert final[f"clusters/{layer}/n_singletons"] == np.sum(sizes == 1)
        d = t.arrays[f"arrays/emd_{layer}.npz"]["distances"]
        assert d.shape[0] == d.shape[1] and np.allclose(d, d.T) and np.all(np.diag(d) == 0)
        for fig in ("receptive_fields", "dendrogram", "emd_matrix"):
            assert f"figures/{fig}_{layer}.png" in t.figures
    assert "figures/structure_vs_function.png" in t.figures


def test_cluster_callback_options(events):
    end = events[-1]
    base = {"n_clusters": 4, "cluster_layers": [1], "emd": {"method": "sliced", "n_projections": 16}}
    off = ClusterCallback(**base, cluster_sides=["total"], label_null={"n_permutations": 0})(end).metrics
    assert not any(k.endswith(("/perm_z", "/perm_p")) for k in off)
    assert {k.split("/")[2] for k in off if k.startswith("clusters/h1/") and k.count("/") >= 3} == {"total"}
    # the label null is seeded from the run's seed (context) and reproducible
    a = ClusterCallback(**base, label_null={"n_permutations": 50})(end, CallbackContext(AnalysisResult(), seed=3))
    b = ClusterCallback(**base, label_null={"n_permutations": 50})(end, CallbackContext(AnalysisResult(), seed=3))
    c = ClusterCallback(**base, label_null={"n_permutations": 50})(end, CallbackContext(AnalysisResult(), seed=4))
    key = "clusters/h1/out/pearson_k_s/perm_mean"
    assert a.metrics[key] == b.metrics[key] != c.metrics[key]
    single = ClusterCallback(**base, linkage="single")(end).tables["tables/cluster_labels_h1.csv"]["cluster"]
    assert single.shape == (24,)
    with pytest.raises(ValueError, match="linkage.*ward"):
        ClusterCallback(linkage="ward")
    with pytest.raises(ValueError, match="cluster_sides"):
        ClusterCallback(cluster_sides=["up"])
    with pytest.raises(ValueError, match="n_permutations"):
        ClusterCallback(label_null={"n_permutations": -1})


def test_callbacks_ignore_layer_end(events):
    layer_end = next(e for e in events if isinstance(e, LayerEnd))
    assert WeightStatsCallback()(layer_end) is None and GraphCallback()(layer_end) is None
    assert ClusterCallback()(layer_end) is None
    assert isinstance(events[-1], TrainEnd)
