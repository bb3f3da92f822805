"""The DBN weights as a layered network: hand-computed values on a 3-2-2 network, and the vectorised statistics
against networkx on random thresholded graphs."""

from __future__ import annotations

import gzip
import io
import math

import networkx as nx
import numpy as np
import pytest

from analysis.graph import (
    Threshold,
    block_adjacency,
    degree_assortativity,
    degrees,
    graph_stats,
    graphml_gz_bytes,
    layer_names,
    neighbour_degrees,
    strengths,
    threshold_masks,
    threshold_values,
    to_networkx,
)

# A 3-2-2 network. Pooled weights sorted: -0.7 -0.4 -0.2 -0.1 0.1 0.2 0.3 0.5 0.6 0.8
W1 = np.array([[0.5, -0.2], [0.1, 0.8], [-0.4, 0.3]])
W2 = np.array([[0.6, -0.7], [-0.1, 0.2]])
WS = [W1, W2]


def edges_of(masks) -> list[set[tuple[int, int]]]:
    return [{(int(i), int(j)) for i, j in zip(*np.nonzero(m), strict=True)} for m in masks]


# ------------------------------------------------------------------------------------------------ hand computed


def test_layer_names():
    assert layer_names(4) == ["v", "h1", "h2", "h3"]
    assert layer_names(1) == ["v"]
    with pytest.raises(ValueError, match="n_layers"):
        layer_names(0)


def test_strengths_by_hand():
    s = strengths(WS)
    assert [sorted(d) for d in s] == [["out", "total"], ["in", "out", "total"], ["in", "total"]]
    np.testing.assert_allclose(s[0]["out"], [0.3, 0.9, -0.1])
    np.testing.assert_allclose(s[0]["total"], [0.3, 0.9, -0.1])
    np.testing.assert_allclose(s[1]["in"], [0.2, 0.9])
    np.testing.assert_allclose(s[1]["out"], [-0.1, 0.1])
    np.testing.assert_allclose(s[1]["total"], [0.1, 1.0])
    np.testing.assert_allclose(s[2]["in"], [0.5, -0.5])
    np.testing.assert_allclose(s[2]["total"], [0.5, -0.5])
    assert all(v.dtype == np.float64 for d in s for v in d.values())


def test_degrees_knn_assortativity_components_by_hand():
    masks, thetas = threshold_masks(WS, Threshold(value=0.15))
    assert thetas == [0.15, 0.15]
    # edges v0-h1_0, v1-h1_1, v2-h1_1 | h1_0-h2_0, h1_1-h2_1
    assert edges_of(masks) == [{(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1)}]
    k = degrees(masks)
    assert [x.tolist() for x in k] == [[1, 1, 1], [2, 3], [1, 1]]
    assert all(x.dtype == np.int64 for x in k)
    knn = neighbour_degrees(masks)
    assert [x.tolist() for x in knn] == [[2.0, 3.0, 3.0], [1.0, 1.0], [2.0, 3.0]]
    # edge-end degree pairs (1,2) (1,3) (1,3) (2,1) (3,1), both ways: E[x]=1.8, E[x²]=4, E[xy]=2.6
    assert degree_assortativity(masks) == -16 / 19  # = -0.64 / 0.76, computed exactly
    st = graph_stats(masks)
    expected = {
        "v/mean_degree": 1.0, "v/mean_knn": 8 / 3, "v/isolated": 0.0, "v/max_degree": 1.0,
        "h1/mean_degree": 2.5, "h1/mean_knn": 1.0, "h1/isolated": 0.0, "h1/max_degree": 3.0,
        "h2/mean_degree": 1.0, "h2/mean_knn": 2.5, "h2/isolated": 0.0, "h2/max_degree": 1.0,
        "v_h1/density": 0.5, "h1_h2/density": 0.5,
        "all/mean_degree": 10 / 7, "all/density": 0.5, "all/assortativity": -16 / 19,
        "all/n_components": 2.0, "all/largest_component_fraction": 4 / 7, "all/n_edges": 5.0, "all/isolated": 0.0,
    }  # fmt: skip
    assert st == pytest.approx(expected, abs=1e-12)


def test_isolated_units_by_hand():
    masks, _ = threshold_masks(WS, Threshold(sign="absolute", value=0.55))
    # |w| > 0.55: v1-h1_1 | h1_0-h2_0, h1_0-h2_1
    assert edges_of(masks) == [{(1, 1)}, {(0, 0), (0, 1)}]
    k = degrees(masks)
    assert [x.tolist() for x in k] == [[0, 1, 0], [2, 1], [1, 1]]
    knn = neighbour_degrees(masks)
    np.testing.assert_array_equal(knn[0], [np.nan, 1.0, np.nan])
    assert [x.tolist() for x in knn[1:]] == [[1.0, 1.0], [2.0, 2.0]]
    assert neighbour_degrees(masks, isolated=0.0)[0].tolist() == [0.0, 1.0, 0.0]
    st = graph_stats(masks)
    assert st["v/isolated"] == 2.0 and st["v/mean_knn"] == 1.0 and st["v/mean_degree"] == pytest.approx(1 / 3)
    assert st["all/n_components"] == 4.0  # {v0} {v2} {v1, h1_1} {h1_0, h2_0, h2_1}
    assert st["all/largest_component_fraction"] == pytest.approx(3 / 7)
    assert st["all/isolated"] == 2.0 and st["all/n_edges"] == 3.0


# ------------------------------------------------------------------------------------------------- thresholds

# (threshold, θ per matrix, kept edges of W1, kept edges of W2) — all worked out by hand from the sorted weights
CASES = [
    (Threshold("positive", value=0.15), [0.15, 0.15], {(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1)}),
    (Threshold("positive", quantile=0.8), [0.52, 0.52], {(1, 1)}, {(0, 0)}),
    (Threshold("positive", density=0.3), [0.36, 0.36], {(0, 0), (1, 1)}, {(0, 0)}),
    (Threshold("absolute", value=0.45), [0.45, 0.45], {(0, 0), (1, 1)}, {(0, 0), (0, 1)}),
    (Threshold("absolute", quantile=0.5), [0.35, 0.35], {(0, 0), (1, 1), (2, 0)}, {(0, 0), (0, 1)}),
    (Threshold("absolute", density=0.2), [0.62, 0.62], {(1, 1)}, {(0, 1)}),
    (Threshold("negative", value=0.15), [0.15, 0.15], {(0, 1), (2, 0)}, {(0, 1)}),
    (Threshold("negative", quantile=0.9), [0.43, 0.43], set(), {(0, 1)}),
    (Threshold("negative", density=0.3), [0.13, 0.13], {(0, 1), (2, 0)}, {(0, 1)}),
    # scope="layer": a θ per matrix from that matrix's weights
    (Threshold("positive", value=0.15, scope="layer"), [0.15, 0.15], {(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1)}),
    (Threshold("positive", quantile=0.5, scope="layer"), [0.2, 0.05], {(0, 0), (1, 1), (2, 1)}, {(0, 0), (1, 1)}),
    (Threshold("positive", density=0.25, scope="layer"), [0.45, 0.3], {(0, 0), (1, 1)}, {(0, 0)}),
    (Threshold("absolute", value=0.45, scope="layer"), [0.45, 0.45], {(0, 0), (1, 1)}, {(0, 0), (0, 1)}),
    (Threshold("absolute", quantile=0.5, scope="layer"), [0.35, 0.4], {(0, 0), (1, 1), (2, 0)}, {(0, 0), (0, 1)}),
    (Threshold("absolute", density=0.5, scope="layer"), [0.35, 0.4], {(0, 0), (1, 1), (2, 0)}, {(0, 0), (0, 1)}),
    (Threshold("negative", value=0.15, scope="layer"), [0.15, 0.15], {(0, 1), (2, 0)}, {(0, 1)}),
    (
        Threshold("negative", quantile=0.5, scope="layer"),
        [-0.2, -0.05],
        {(0, 1), (1, 0), (2, 0)},
        {(0, 1), (1, 0)},
    ),
    (Threshold("negative", density=0.25, scope="layer"), [0.125, 0.25], {(0, 1), (2, 0)}, {(0, 1)}),
]


@pytest.mark.parametrize("threshold, thetas, e1, e2", CASES, ids=[repr(c[0]) for c in CASES])
def test_threshold_modes_by_hand(threshold, thetas, e1, e2):
    masks, got = threshold_masks(WS, threshold)
    assert got == pytest.approx(thetas, abs=1e-12)
    assert threshold_values(WS, threshold) == got
    assert edges_of(masks) == [e1, e2]
    assert all(m.dtype == np.bool_ and m.shape == w.shape for m, w in zip(masks, WS, strict=True))


@pytest.mark.parametrize("sign", ["positive", "absolute", "negative"])
@pytest.mark.parametrize("scope", ["global", "layer"])
@pytest.mark.parametrize("how", ["quantile", "density"])
def test_threshold_keeps_the_requested_fraction(sign, scope, how):
    rng = np.random.default_rng(0)
    ws = [rng.normal(-0.01, 0.1, s) for s in [(40, 30), (30, 30), (30, 60)]]
    frac = 0.1
    t = Threshold(sign=sign, scope=scope, **{how: 1 - frac if how == "quantile" else frac})
    masks, thetas = threshold_masks(ws, t)
    score = {"positive": lambda w: w, "absolute": np.abs, "negative": lambda w: -w}[sign]
    for m, w, th in zip(masks, ws, thetas, strict=True):
        np.testing.assert_array_equal(m, score(w) > th)
    kept = [m.mean() for m in masks]
    total = sum(m.sum() for m in masks) / sum(m.size for m in masks)
    assert total == pytest.approx(frac, abs=0.01)
    if scope == "layer":
        assert kept == pytest.approx([frac] * 3, abs=0.01)
    else:
        assert len(set(thetas)) == 1


def test_density_one_keeps_everything():
    for sign in ("positive", "absolute", "negative"):
        masks, thetas = threshold_masks(WS, Threshold(sign=sign, density=1.0))
        assert thetas == [-math.inf, -math.inf] and all(m.all() for m in masks)


@pytest.mark.parametrize(
    "kwargs, key",
    [
        ({}, "invalid threshold: None; allowed: exactly one of"),
        ({"value": 0.1, "quantile": 0.9}, "invalid threshold: .*'value': 0.1, 'quantile': 0.9"),
        ({"quantile": 0.5, "density": 0.1}, "invalid threshold: .*'quantile': 0.5, 'density': 0.1"),
        ({"value": -0.1}, "invalid threshold.value: -0.1"),
        ({"quantile": 0.0}, "threshold.quantile"),
        ({"quantile": 1.0}, "threshold.quantile"),
        ({"quantile": -0.1}, "threshold.quantile"),
        ({"density": 0.0}, "threshold.density"),
        ({"density": 1.5}, "threshold.density"),
        ({"value": float("nan")}, "threshold.value"),
        ({"value": "0.1"}, "threshold.value"),
        ({"value": 0.1, "sign": "both"}, "threshold.sign"),
        ({"value": 0.1, "scope": "pair"}, "threshold.scope"),
    ],
)
def test_invalid_threshold(kwargs, key):
    with pytest.raises(ValueError, match=key):
        Threshold(**kwargs)


def test_threshold_is_frozen():
    t = Threshold(quantile=0.9)
    with pytest.raises(AttributeError):
        t.quantile = 0.5  # type: ignore[misc]


def test_invalid_inputs():
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        strengths([W1, np.zeros((3, 2))])
    with pytest.raises(ValueError, match="weights"):
        strengths([])
    with pytest.raises(ValueError, match="weights"):
        strengths(W1)
    with pytest.raises(ValueError, match=r"weights\[0\].*finite"):
        threshold_masks([np.array([[np.nan]])], Threshold(value=0.0))
    with pytest.raises(ValueError, match=r"masks\[0\].*boolean"):
        degrees([W1])
    with pytest.raises(ValueError, match=r"degs\[1\]"):
        neighbour_degrees([W1 > 0], degs=[np.zeros(3, np.int64), np.zeros(3, np.int64)])
    with pytest.raises(ValueError, match=r"degs\[0\].*integer"):
        neighbour_degrees([W1 > 0], degs=[np.zeros(3), np.zeros(2)])
    with pytest.raises(ValueError, match="threshold"):
        threshold_masks(WS, {"value": 0.1})
    with pytest.raises(ValueError, match="masks"):
        to_networkx(WS, [W1 > 0])


# -------------------------------------------------------------------------------------------- against networkx


def random_case(seed: int):
    rng = np.random.default_rng(seed)
    sizes = rng.integers(5, 31, size=rng.integers(4, 6))  # 3-4 weight matrices
    ws = [rng.normal(-0.01, 0.1, (a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True)]
    t = Threshold(
        sign=["positive", "absolute", "negative"][seed % 3],
        quantile=float(rng.uniform(0.6, 0.95)) if seed < 8 else 0.97,  # the last ones: sparse, many components
        scope=["global", "layer"][seed % 2],
    )
    masks, _ = threshold_masks(ws, t)
    return ws, masks


@pytest.mark.parametrize("seed", range(12))
def test_vectorised_statistics_equal_networkx(seed):
    ws, masks = random_case(seed)
    g = to_networkx(ws, masks)
    n = sum(w.shape[0] for w in ws) + ws[-1].shape[1]
    assert g.number_of_nodes() == n and g.number_of_edges() == sum(int(m.sum()) for m in masks)

    k = np.concatenate(degrees(masks))
    np.testing.assert_array_equal(k, [d for _, d in sorted(g.degree())])

    knn0 = np.concatenate(neighbour_degrees(masks, isolated=0.0))
    nx_knn = nx.average_neighbor_degree(g)
    np.testing.assert_allclose(knn0, [nx_knn[i] for i in range(n)], rtol=1e-12, atol=0)
    knn = np.concatenate(neighbour_degrees(masks))
    assert np.array_equal(np.isnan(knn), k == 0)

    r = degree_assortativity(masks)
    assert r == pytest.approx(nx.degree_assortativity_coefficient(g), abs=1e-10)

    st = graph_stats(masks)
    comps = list(nx.connected_components(g))
    assert st["all/n_components"] == len(comps)
    assert st["all/largest_component_fraction"] == pytest.approx(max(map(len, comps)) / n)
    assert st["all/assortativity"] == pytest.approx(r, abs=1e-12)
    assert st["all/n_edges"] == g.number_of_edges()
    assert st["all/mean_degree"] == pytest.approx(2 * g.number_of_edges() / n)
    assert st["all/isolated"] == nx.number_of_isolates(g)
    names = layer_names(len(ws) + 1)
    for name in names:
        ids = [i for i, d in g.nodes(data=True) if d["layer"] == name]
        kk = np.array([g.degree(i) for i in ids])
        assert st[f"{name}/mean_degree"] == pytest.approx(kk.mean())
        assert st[f"{name}/max_degree"] == kk.max()
        assert st[f"{name}/isolated"] == (kk == 0).sum()
        nz = [nx_knn[i] for i in ids if g.degree(i) > 0]
        assert st[f"{name}/mean_knn"] == pytest.approx(np.mean(nz)) if nz else math.isnan(st[f"{name}/mean_knn"])

    a = block_adjacency(masks)
    assert (a != a.T).nnz == 0
    np.testing.assert_array_equal(a.toarray(), nx.to_numpy_array(g, nodelist=range(n), weight=None))


def test_graph_stats_keys():
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=s) for s in [(8, 5), (5, 5), (5, 12)]]
    masks, _ = threshold_masks(ws, Threshold(quantile=0.9))
    st = graph_stats(masks)
    keys = {
        f"{n}/{s}" for n in ["v", "h1", "h2", "h3"] for s in ["mean_degree", "mean_knn", "isolated", "max_degree"]
    }
    keys |= {"v_h1/density", "h1_h2/density", "h2_h3/density"}
    keys |= {f"all/{s}" for s in ["mean_degree", "density", "assortativity", "n_components"]}
    keys |= {"all/largest_component_fraction", "all/n_edges"}
    assert keys <= set(st)
    assert all(isinstance(v, float) for v in st.values())
    assert graph_stats(masks, degs=degrees(masks)) == pytest.approx(st, nan_ok=True)


def test_regular_graph_has_nan_assortativity():
    masks = [np.ones((2, 2), bool), np.ones((2, 2), bool)]  # K_{2,2} + K_{2,2}: v 2, h1 4, h2 2 - not regular
    assert degree_assortativity(masks) == pytest.approx(
        nx.degree_assortativity_coefficient(to_networkx([1.0 * m for m in masks], masks))
    )
    masks = [np.eye(3, dtype=bool), np.zeros((3, 1), bool)]  # three disjoint edges: every end has degree 1
    assert math.isnan(degree_assortativity(masks))


def test_empty_graph_stats():
    masks = [np.zeros((3, 2), bool), np.zeros((2, 2), bool)]
    st = graph_stats(masks)
    assert st["all/n_edges"] == 0 and st["all/n_components"] == 7 and st["all/isolated"] == 7
    assert math.isnan(st["all/assortativity"]) and math.isnan(st["v/mean_knn"])


def test_full_weighted_export_and_block_adjacency():
    g = to_networkx(WS)
    assert g.number_of_edges() == 10
    assert g.nodes[3] == {"layer": "h1", "index": 0} and g.nodes[6] == {"layer": "h2", "index": 1}
    assert g.edges[0, 3]["weight"] == 0.5 and g.edges[4, 6]["weight"] == 0.2
    a = block_adjacency(WS)
    np.testing.assert_array_equal(a.toarray(), nx.to_numpy_array(g, nodelist=range(7)))
    assert a[1, 4] == 0.8 and a[4, 1] == 0.8 and a[0, 5] == 0.0


def test_graphml_round_trip():
    ws, masks = random_case(3)
    g = to_networkx(ws, masks)
    data = graphml_gz_bytes(g)
    assert data[:2] == b"\x1f\x8b"
    assert graphml_gz_bytes(g) == data  # deterministic
    back = nx.read_graphml(gzip.open(io.BytesIO(data)), node_type=int)
    assert sorted(back.nodes) == sorted(g.nodes)
    assert {frozenset(e) for e in back.edges} == {frozenset(e) for e in g.edges}
    for u, v, w in g.edges(data="weight"):
        assert back.edges[u, v]["weight"] == w
    assert back.nodes[0]["layer"] == "v" and back.nodes[0]["index"] == 0
