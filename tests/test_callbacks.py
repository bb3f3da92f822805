"""Analysis callbacks on real training events: the documented metric keys, figures, tables and files; the
scheduling (``due``, ``dispatch``) and the bridge from the model's events (``to_analysis``)."""

from __future__ import annotations

import gzip
import io
from dataclasses import dataclass, field
from typing import Any, ClassVar

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
    dispatch,
    due,
)
from analysis.events import EpochEnd, LayerEnd, TrainEnd
from dbn_experiment.events import to_analysis
from dbn_jax import train as T


@pytest.fixture(scope="module")
def model_events():
    rng = np.random.default_rng(0)
    protos = (rng.random((4, 784)) < 0.2).astype(np.float32)
    x = np.clip(protos[rng.integers(0, 4, 400)] + (rng.random((400, 784)) < 0.05), 0, 1).astype(np.float32)
    settings = T.TrainSettings(epochs=2, batch_size=50)
    return list(T.train_dbn(jax.random.key(0), x, [24, 16, 20], settings, x[:100], n_monitor=100))


@pytest.fixture(scope="module")
def events(model_events):
    return [to_analysis(e) for e in model_events]


@dataclass
class _Log:
    """What a tracker would store: every metric's ``(step, value)`` history, the latest artifacts."""

    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def log(self, result: AnalysisResult, step: int) -> None:
        for k, v in result.metrics.items():
            self.metrics.setdefault(k, []).append((step, v))
        self.figures.update(result.figures)
        self.tables.update(result.tables)
        self.arrays.update(result.arrays)
        self.files.update(dict(result.files.items()))


def _run(callback, events) -> _Log:
    """Every event through :func:`dispatch` (so the callback's own ``every_n_epochs``), logged at the epoch (the
    layer's last epoch for the end events)."""
    out, step = _Log(), 0
    for ev in events:
        if isinstance(ev, EpochEnd):
            step = ev.epoch
        for name, res, seconds in dispatch({"cb": callback}, ev):
            assert name == "cb" and isinstance(res, AnalysisResult) and seconds >= 0
            out.log(res, step)
    return out


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
    w1 = events[-1].weights[0]
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
    t = _run(cb, events)  # every_n_epochs 0: the end of training only
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
    single = ClusterCallback(**base, linkage="single")(end)
    assert single.tables["tables/cluster_labels_h1.csv"]["cluster"].shape == (24,)
    # the labels, in memory for the callbacks after it, are the logged ones
    np.testing.assert_array_equal(single.labels["h1"], single.tables["tables/cluster_labels_h1.csv"]["cluster"])
    assert set(single.labels) == {"h1"} and single.labels["h1"].dtype == np.int64
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


def test_callbacks_ignore_the_model_events(model_events):
    """The callbacks take the analysis events only: the model's own end of training is not one."""
    end = model_events[-1]
    assert isinstance(end, T.TrainEnd)
    assert WeightStatsCallback()(end) is None and GraphCallback()(end) is None and ClusterCallback()(end) is None


# ----------------------------------------------------------------------------------------------- events bridge


def test_to_analysis_converts_every_event_kind(model_events):
    converted = [to_analysis(e) for e in model_events]
    kinds = {T.EpochEnd: EpochEnd, T.LayerEnd: LayerEnd, T.TrainEnd: TrainEnd}
    assert [type(c) for c in converted] == [kinds[type(e)] for e in model_events]
    first = model_events[0]
    ep = converted[0]
    assert (ep.layer, ep.epoch, ep.n_epochs) == (first.layer, first.epoch, first.n_epochs) == (1, 0, 2)
    assert ep.weights.dtype == np.float64 and isinstance(ep.weights, np.ndarray)
    np.testing.assert_array_equal(ep.weights, np.asarray(first.params.w, np.float64))
    last_epoch = next(c for c, e in zip(converted, model_events, strict=True)
                      if isinstance(e, T.EpochEnd) and e.layer == 3 and e.epoch == 2)  # fmt: skip
    assert last_epoch.weights.shape == (16, 20)
    layer_ends = [c.layer for c in converted if isinstance(c, LayerEnd)]
    assert layer_ends == [1, 2, 3]
    end, model_end = converted[-1], model_events[-1]
    assert [w.shape for w in end.weights] == [(784, 24), (24, 16), (16, 20)]
    assert [w.shape for w in end.initial] == [(784, 24), (24, 16), (16, 20)]
    assert all(isinstance(w, np.ndarray) and w.dtype == np.float64 for w in end.weights + end.initial)
    for w, p in zip(end.weights, model_end.layers, strict=True):
        np.testing.assert_array_equal(w, np.asarray(p.w, np.float64))
    for w, p in zip(end.initial, model_end.initial, strict=True):
        np.testing.assert_array_equal(w, np.asarray(p.w, np.float64))
    assert end.model == tuple(model_end.layers)  # the trained RBMs, for model-specific callbacks
    assert isinstance(end.model, tuple) and end.model[0] is model_end.layers[0]
    assert to_analysis(object()) is None and to_analysis(end) is None  # not a model event


# -------------------------------------------------------------------------------------------------- scheduling


@dataclass
class _Every:
    every_n_epochs: Any = 1

    def __call__(self, event):
        return None


@pytest.mark.parametrize(
    "every, epoch, n_epochs, expected",
    [
        (1, 0, 5, True),  # the initial weights
        (1, 3, 5, True),
        (2, 0, 5, True),
        (2, 1, 5, False),
        (2, 2, 5, True),
        (2, 5, 5, True),  # the layer's last epoch, though 5 % 2 != 0
        (3, 4, 5, False),
        (3, 5, 5, True),
        (10, 7, 20, False),
        (10, 20, 20, True),
        (0, 0, 5, False),  # 0: never on epochs
        (0, 5, 5, False),
        (None, 5, 5, False),
    ],
)
def test_due_on_epochs(every, epoch, n_epochs, expected):
    assert due(_Every(every), EpochEnd(1, epoch, n_epochs, np.zeros((2, 2)))) is expected


@pytest.mark.parametrize("every", [0, 1, 3, None])
def test_due_at_layer_and_train_end_for_every_callback(every):
    assert due(_Every(every), LayerEnd(2)) is True
    assert due(_Every(every), TrainEnd((np.zeros((2, 2)),))) is True


def test_due_without_every_n_epochs_is_end_only():
    def plain(event):
        return None

    assert due(plain, EpochEnd(1, 0, 5, np.zeros((2, 2)))) is False
    assert due(plain, TrainEnd((np.zeros((2, 2)),))) is True


@dataclass
class _Producer:
    """Order 0: produces labels and a metric at the end of training."""

    calls: list
    every_n_epochs: int = 0

    def __call__(self, event):
        self.calls.append(("producer", event))
        if not isinstance(event, TrainEnd):
            return None
        return AnalysisResult(metrics={"p/x": 1.0}, labels={"h1": np.array([0, 1, 1])})


@dataclass
class _Reader:
    """Order 1: reads what the callbacks before it produced."""

    calls: list
    every_n_epochs: int = 0
    wants_context: ClassVar[bool] = True
    order: ClassVar[int] = 1

    def __call__(self, event, context):
        self.calls.append(("reader", event, context, dict(context.results.metrics)))
        labels = context.results.labels.get("h1")
        return AnalysisResult(metrics={"r/n_labels": float(len(labels)) if labels is not None else -1.0})


@dataclass
class _Silent:
    calls: list
    every_n_epochs: int = 1

    def __call__(self, event):
        self.calls.append(("silent", event))
        return None


def test_dispatch_runs_higher_order_after_and_hands_it_the_results():
    calls: list = []
    callbacks = {"reader": _Reader(calls), "silent": _Silent(calls), "producer": _Producer(calls)}
    end = TrainEnd((np.zeros((3, 3)),))
    dataset = object()
    out = list(dispatch(callbacks, end, dataset=dataset, seed=7))
    # order 0 in the given order (silent, producer), then the order-1 reader, though listed first
    assert [c[0] for c in calls] == ["silent", "producer", "reader"]
    assert [name for name, _, _ in out] == ["producer", "reader"]  # a None result yields nothing
    assert all(seconds >= 0 for _, _, seconds in out)
    context = calls[-1][2]
    assert isinstance(context, CallbackContext) and context.dataset is dataset and context.seed == 7
    np.testing.assert_array_equal(context.results.labels["h1"], [0, 1, 1])
    assert calls[-1][3] == {"p/x": 1.0}  # what the callbacks before it produced, when it ran
    assert out[1][1].metrics == {"r/n_labels": 3.0}


def test_dispatch_keeps_the_given_order_among_equal_orders():
    calls: list = []
    list(dispatch({"b": _Producer(calls), "a": _Silent(calls)}, TrainEnd((np.zeros((3, 3)),))))
    assert [c[0] for c in calls] == ["producer", "silent"]
    calls.clear()
    list(dispatch({"a": _Silent(calls), "b": _Producer(calls)}, TrainEnd((np.zeros((3, 3)),))))
    assert [c[0] for c in calls] == ["silent", "producer"]


def test_dispatch_skips_callbacks_not_due():
    calls: list = []
    callbacks = {"reader": _Reader(calls), "silent": _Silent(calls), "producer": _Producer(calls)}
    assert list(dispatch(callbacks, EpochEnd(1, 1, 2, np.zeros((3, 3))))) == []
    assert [c[0] for c in calls] == ["silent"]  # every_n_epochs 1; the others 0
    calls.clear()
    out = list(dispatch(callbacks, LayerEnd(1)))
    assert [c[0] for c in calls] == ["silent", "producer", "reader"]
    # at a layer end the producer returns nothing: the reader sees no labels
    assert [(n, r.metrics) for n, r, _ in out] == [("reader", {"r/n_labels": -1.0})]


def test_dispatch_feeds_the_cluster_labels_to_the_beyond_callback(events):
    from analysis.beyond import BeyondPaperCallback

    callbacks = {
        "beyond": BeyondPaperCallback(null={"n_samples": 3}, communities={"abs_weights": False}),
        "cluster": ClusterCallback(n_clusters=4, cluster_layers=[1], emd={"method": "sliced", "n_projections": 16},
                                   label_null={"n_permutations": 0}),
    }  # fmt: skip
    out = list(dispatch(callbacks, events[-1], seed=1))
    assert [name for name, _, _ in out] == ["cluster", "beyond"]
    m = out[1][1].metrics
    assert 0 <= m["communities/h1/nmi"] <= 1 and "communities/h1/ari" in m
    assert "clusters/h1/total/pearson_k_knn/null_z" in m  # the nulls keep the EMD labels fixed
    assert "communities/h2/nmi" not in m  # h2 was not clustered
    # alone (no labels before it) it has no cluster agreement
    (alone,) = dispatch({"beyond": callbacks["beyond"]}, events[-1], seed=1)
    assert not any(k.startswith(("communities/h1/", "clusters/")) for k in alone[1].metrics)


def test_analyze_weights_dispatches_a_list_or_a_mapping_in_declared_order(events):
    from analysis.beyond import BeyondPaperCallback
    from analysis.callbacks import analyze_weights

    def make():
        return [
            BeyondPaperCallback(null={"n_samples": 2, "kinds": ["shuffle"]}, communities={"abs_weights": False}),
            ClusterCallback(n_clusters=3, cluster_layers=[2], emd={"method": "sliced", "n_projections": 8},
                            label_null={"n_permutations": 0}),
        ]  # fmt: skip

    weights = [w.tolist() for w in events[-1].weights]  # any array-like
    listed = analyze_weights(weights, callbacks=make())
    assert "communities/h2/nmi" in listed.metrics  # the EMD labels reached the order-1 callback listed first
    assert set(listed.labels) == {"h2"} and listed.labels["h2"].shape == (16,)
    mapped = analyze_weights(weights, callbacks=dict(zip(("beyond", "cluster"), make(), strict=True)))
    np.testing.assert_equal(mapped.metrics, listed.metrics)  # NaN == NaN here (3 clusters: no p-values)
