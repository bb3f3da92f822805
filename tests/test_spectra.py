"""Spectra, power-law tails, rich club, k-cores and bipartite clustering: known answers."""

from __future__ import annotations

import dataclasses
import math

import networkx as nx
import numpy as np
import pytest
from scipy import stats

from analysis.graph import to_networkx
from analysis.spectra import (
    PowerLawFit,
    bipartite_clustering_per_layer,
    kcore_per_layer,
    normalized_rich_club,
    powerlaw_tail_fit,
    rich_club_coefficients,
    singular_values,
)


def _pareto(seed: int, n: int, alpha: float, xmin: float) -> np.ndarray:
    """Inverse-CDF sample of ``p(x) ∝ x^-alpha``, ``x >= xmin``: ``x = xmin (1 - u)^(-1/(alpha-1))``."""
    u = np.random.default_rng(seed).random(n)
    return xmin * (1.0 - u) ** (-1.0 / (alpha - 1.0))


def _layered(edges: list[tuple[int, int]], layer_of: dict[int, tuple[str, int]]) -> nx.Graph:
    g = nx.Graph()
    for node, (layer, index) in layer_of.items():
        g.add_node(node, layer=layer, index=index)
    g.add_edges_from(edges)
    return g


# ------------------------------------------------------------------------------------------------ singular values


def test_singular_values_of_diagonal_matrix():
    w = np.zeros((4, 6))
    w[np.arange(4), np.arange(4)] = [3.0, -1.0, 2.0, 0.5]
    s = singular_values(w)
    assert s.dtype == np.float64
    np.testing.assert_allclose(s, [3.0, 2.0, 1.0, 0.5], rtol=0, atol=1e-14)
    np.testing.assert_allclose(singular_values(w.T), [3.0, 2.0, 1.0, 0.5], rtol=0, atol=1e-14)


def test_singular_values_of_random_matrix_match_numpy():
    w = np.random.default_rng(0).normal(size=(30, 50))
    s = singular_values(w)
    assert s.shape == (30,)
    assert np.all(np.diff(s) <= 0)
    np.testing.assert_allclose(s, np.linalg.svd(w)[1], rtol=1e-12)
    assert math.isclose(float(np.sum(s**2)), float(np.sum(w**2)), rel_tol=1e-12)  # Frobenius norm


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((0, 3)), np.array([[1.0, np.nan]])])
def test_singular_values_rejects(bad):
    with pytest.raises(ValueError, match="w: must be"):
        singular_values(bad)


# ------------------------------------------------------------------------------------------------------ power law


def test_powerlaw_mle_literal():
    # x = e^0, e^1, e^2, e^3 above xmin=1: Σ ln(x/xmin) = 6, alpha = 1 + 4/6, se = (2/3)/√4
    x = np.exp([0.0, 1.0, 2.0, 3.0, -1.0]).tolist() + [0.0, -2.0]  # values < xmin and <= 0 are ignored
    fit = powerlaw_tail_fit(x, xmin=1.0, min_tail=2)
    assert isinstance(fit, PowerLawFit)
    assert fit.n_tail == 4
    assert fit.xmin == 1.0
    assert math.isclose(fit.alpha, 5.0 / 3.0, rel_tol=1e-12)
    assert math.isclose(fit.alpha_std_err, 1.0 / 3.0, rel_tol=1e-12)
    # KS by hand: P(x_i) = 1 - e^{-(2/3) i}, i = 0..3; S jumps 0 -> 1/4 -> ... -> 1
    p = 1.0 - np.exp(-(2.0 / 3.0) * np.arange(4))
    d = max(np.max(np.arange(1, 5) / 4 - p), np.max(p - np.arange(4) / 4))
    assert math.isclose(fit.ks_distance, d, rel_tol=1e-12)
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.alpha = 2.0  # type: ignore[misc]


def test_powerlaw_recovers_pareto_alpha_at_known_xmin():
    x = _pareto(seed=0, n=5000, alpha=2.5, xmin=1.0)
    fit = powerlaw_tail_fit(x, xmin=1.0)
    assert fit.n_tail == 5000
    assert math.isclose(fit.alpha_std_err, (fit.alpha - 1.0) / math.sqrt(5000), rel_tol=1e-12)
    assert abs(fit.alpha - 2.5) < 3 * fit.alpha_std_err
    # the KS distance is scipy's one-sample KS statistic against the fitted Pareto (b = alpha - 1)
    ref = stats.kstest(x, stats.pareto(b=fit.alpha - 1.0, scale=1.0).cdf).statistic
    assert math.isclose(fit.ks_distance, ref, rel_tol=1e-9)


def test_powerlaw_chooses_xmin_by_ks():
    x = _pareto(seed=0, n=5000, alpha=2.5, xmin=1.0)
    fit = powerlaw_tail_fit(x)
    assert 1.0 <= fit.xmin < 1.25
    assert fit.xmin in set(x.tolist())
    assert fit.n_tail == int(np.count_nonzero(x >= fit.xmin))
    assert abs(fit.alpha - 2.5) < 3 * fit.alpha_std_err
    # it is the minimum of the KS distance over the candidates (spot check against a few fixed-xmin fits)
    for q in (0.0, 0.1, 0.3, 0.6, 0.9):
        other = powerlaw_tail_fit(x, xmin=float(np.quantile(x, q, method="lower")))
        assert fit.ks_distance <= other.ks_distance + 1e-15
    ref = stats.kstest(x[x >= fit.xmin], stats.pareto(b=fit.alpha - 1.0, scale=fit.xmin).cdf).statistic
    assert math.isclose(fit.ks_distance, ref, rel_tol=1e-9)


def test_powerlaw_finds_the_cutoff_of_a_mixture():
    rng = np.random.default_rng(1)
    x = np.concatenate([_pareto(seed=1, n=3000, alpha=2.5, xmin=5.0), rng.uniform(0.5, 5.0, 2000)])
    fit = powerlaw_tail_fit(x)
    assert abs(math.log(fit.xmin / 5.0)) < 0.1
    assert abs(fit.alpha - 2.5) < 3 * fit.alpha_std_err


@pytest.mark.parametrize(
    ("x", "kwargs", "match"),
    [
        (np.ones((3, 4)), {}, "invalid x: shape"),
        ([1.0, np.inf] * 10, {}, "invalid x: contains NaN or inf"),
        ([1.0, 2.0, -3.0], {}, "invalid x: has 2 positive values"),
        ([2.0] * 20, {}, "invalid x: all positive values are equal"),
        (np.arange(1.0, 21.0), {"xmin": 0.0}, "invalid xmin"),
        (np.arange(1.0, 21.0), {"xmin": math.nan}, "invalid xmin"),
        (np.arange(1.0, 21.0), {"xmin": True}, "invalid xmin"),
        (np.arange(1.0, 21.0), {"xmin": 15.0}, "xmin: leaves 6 values"),
        (np.arange(1.0, 21.0), {"xmin": 20.0, "min_tail": 2}, "xmin: leaves 1 values"),
        ([1.0, 3.0, 3.0, 3.0], {"xmin": 3.0, "min_tail": 2}, "every value >= 3.0 equals it"),
        (np.arange(1.0, 21.0), {"min_tail": 1}, "invalid min_tail"),
    ],
)
def test_powerlaw_rejects(x, kwargs, match):
    with pytest.raises(ValueError, match=match):
        powerlaw_tail_fit(x, **kwargs)


# ------------------------------------------------------------------------------------------------------ rich club

# 5 nodes, degrees 0:3, 1:3, 2:2, 3:3, 4:1
RC_EDGES = [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (3, 4)]
# phi(k) = 2 E_k / (N_k (N_k - 1)) over the nodes of degree > k:
#   k=0: all 5 nodes, 6 edges           -> 12 / 20 = 0.6
#   k=1: {0, 1, 2, 3}, 5 edges          -> 10 / 12
#   k=2: {0, 1, 3}, edges 01 03 13      ->  6 / 6  = 1
#   k=3: no node of degree > 3          -> undefined, left out
RC_BY_HAND = {0: 12 / 20, 1: 10 / 12, 2: 6 / 6}


def test_rich_club_by_hand():
    rc = rich_club_coefficients(nx.Graph(RC_EDGES))
    assert set(rc) == set(RC_BY_HAND)
    for k, v in RC_BY_HAND.items():
        assert math.isclose(rc[k], v, rel_tol=1e-12)
    assert all(type(k) is int and type(v) is float for k, v in rc.items())


def test_rich_club_drops_self_loops_and_matches_networkx_doc_example():
    g = nx.Graph(RC_EDGES)
    g.add_edge(4, 4)
    rc = rich_club_coefficients(g)
    assert g.has_edge(4, 4)  # the input is left alone
    # with the loop dropped the graph is RC_EDGES again
    assert rc == pytest.approx(RC_BY_HAND, rel=1e-12)
    # networkx's docstring: rc[0] = 0.4 (6 edges among 6 nodes: 12 / 30)
    assert rich_club_coefficients(nx.Graph([(0, 1), (0, 2), (1, 2), (1, 3), (1, 4), (4, 5)]))[0] == 0.4
    assert rich_club_coefficients(nx.empty_graph(3)) == {}


def test_rich_club_on_layered_graph():
    # K_{2,3} from to_networkx: degrees v: 3, 3; h1: 2, 2, 2
    g = to_networkx([np.ones((2, 3))], [np.ones((2, 3), dtype=bool)])
    # k=0, 1: all 5 nodes, 6 edges -> 0.6; k=2: the 2 v units, no edge between them -> 0
    assert rich_club_coefficients(g) == pytest.approx({0: 0.6, 1: 0.6, 2: 0.0}, rel=1e-12)


def test_rich_club_rejects():
    with pytest.raises(ValueError, match="invalid normalized"):
        rich_club_coefficients(nx.Graph(RC_EDGES), normalized=True)
    with pytest.raises(ValueError, match="invalid graph: DiGraph"):
        rich_club_coefficients(nx.DiGraph(RC_EDGES))
    with pytest.raises(ValueError, match="invalid graph: MultiGraph"):
        rich_club_coefficients(nx.MultiGraph(RC_EDGES))


def test_normalized_rich_club_literal():
    phi = {0: 0.6, 1: 0.8, 2: 1.0, 3: 0.5, 4: 0.9}
    nulls = [
        {0: 0.5, 1: 0.4, 2: 0.0, 3: 0.25, 4: 0.3},
        {0: 0.7, 1: 0.8, 2: 0.0, 3: 0.75},  # no k=4: left out
    ]
    # means: k=0: 0.6, k=1: 0.6, k=2: 0 (left out), k=3: 0.5
    out = normalized_rich_club(phi, nulls)
    assert list(out) == [0, 1, 3]
    assert out == pytest.approx({0: 1.0, 1: 0.8 / 0.6, 3: 1.0}, rel=1e-12)
    assert normalized_rich_club({2: 0.3}, [{2: 0.1}]) == pytest.approx({2: 3.0})
    assert normalized_rich_club({5: 0.3}, [{2: 0.1}]) == {}


@pytest.mark.parametrize(
    ("phi", "nulls", "match"),
    [
        ({0: 0.5}, [], "invalid phi_null_list"),
        ({0: 0.5}, {0: 0.5}, "invalid phi_null_list"),
        ([0.5], [{0: 0.5}], "invalid phi:"),
        ({-1: 0.5}, [{0: 0.5}], "invalid phi: key -1"),
        ({1.0: 0.5}, [{0: 0.5}], "invalid phi: key 1.0"),
        ({0: math.nan}, [{0: 0.5}], r"invalid phi\[0\]"),
        ({0: 0.5}, [{0: 0.5}, {0: -0.1}], r"invalid phi_null_list\[1\]\[0\]"),
    ],
)
def test_normalized_rich_club_rejects(phi, nulls, match):
    with pytest.raises(ValueError, match=match):
        normalized_rich_club(phi, nulls)


# ---------------------------------------------------------------------------------------------------------- k-core


def test_kcore_triangle_with_pendant_path():
    # triangle 0-1-2, path 2-3-4, isolated node 5, self-loop on 3 (dropped):
    # core numbers 0, 1, 2 -> 2; 3, 4 -> 1; 5 -> 0
    layer_of = {0: ("a", 0), 1: ("a", 1), 2: ("b", 1), 3: ("a", 2), 4: ("b", 0), 5: ("c", 0)}
    g = _layered([(0, 1), (1, 2), (0, 2), (2, 3), (3, 4), (3, 3)], layer_of)
    cores = kcore_per_layer(g)
    assert list(cores) == ["a", "b", "c"]
    np.testing.assert_array_equal(cores["a"], [2, 2, 1])
    np.testing.assert_array_equal(cores["b"], [1, 2])  # index order: node 4 then node 2
    np.testing.assert_array_equal(cores["c"], [0])
    assert all(c.dtype == np.int64 for c in cores.values())


def test_kcore_on_to_networkx_graph():
    # v (2) - h1 (3) - h2 (2), complete between layers: degrees 3 / 4 / 3, so everything is the 3-core;
    # the edge v0-h1_2 removed: v0 has degree 2 and falls to the 2-core, the others stay in the 3-core
    w = [np.ones((2, 3)), np.ones((3, 2))]
    masks = [np.ones((2, 3), dtype=bool), np.ones((3, 2), dtype=bool)]
    cores = kcore_per_layer(to_networkx(w, masks))
    assert list(cores) == ["v", "h1", "h2"]
    for c, n in zip(cores.values(), (2, 3, 2), strict=True):
        np.testing.assert_array_equal(c, np.full(n, 3))
    masks[0][0, 2] = False
    cores = kcore_per_layer(to_networkx(w, masks))
    np.testing.assert_array_equal(cores["v"], [2, 3])
    np.testing.assert_array_equal(cores["h1"], [3, 3, 3])
    np.testing.assert_array_equal(cores["h2"], [3, 3])


@pytest.mark.parametrize(
    ("layer_of", "match"),
    [
        ({0: ("a", 0), 1: ("a", 2)}, "not 0..1"),
        ({0: ("a", 0), 1: ("a", 0)}, "index 0 repeated"),
        ({0: ("a", 0), 1: ("a", 1.0)}, "has index 1.0"),
    ],
)
def test_kcore_rejects_bad_layer_attributes(layer_of, match):
    with pytest.raises(ValueError, match=match):
        kcore_per_layer(_layered([(0, 1)], layer_of))


def test_kcore_rejects_graphs():
    with pytest.raises(ValueError, match="lacks the 'layer' / 'index'"):
        kcore_per_layer(nx.path_graph(3))
    with pytest.raises(ValueError, match="invalid graph: DiGraph"):
        kcore_per_layer(nx.DiGraph())


# ------------------------------------------------------------------------------------------- bipartite clustering


def test_bipartite_clustering_complete_bipartite_is_one():
    g = _layered(
        [(u, v) for u in (0, 1) for v in (2, 3, 4)],
        {0: ("a", 0), 1: ("a", 1), 2: ("b", 0), 3: ("b", 1), 4: ("b", 2)},
    )
    assert bipartite_clustering_per_layer(g, "a", "b") == 1.0
    full = to_networkx([np.ones((2, 3)), np.ones((3, 4))], [np.ones((2, 3), bool), np.ones((3, 4), bool)])
    assert bipartite_clustering_per_layer(full, "v", "h1") == 1.0
    assert bipartite_clustering_per_layer(full, "h2", "h1") == 1.0
    assert bipartite_clustering_per_layer(full, "v", "h2") == 0.0  # not adjacent: no edges


def test_bipartite_clustering_of_paths_by_hand():
    # c(u) = mean over v at distance 2 of |N(u) ∩ N(v)| / |N(u) ∪ N(v)|.
    # Path 0-1-2-3 (networkx's documented example: c[0] = 0.5): every node has one node at distance 2, sharing
    # 1 of 2 neighbours -> 0.5 each, average 0.5.
    alt = {i: ("ab"[i % 2], i // 2) for i in range(5)}
    p4 = _layered([(0, 1), (1, 2), (2, 3)], {i: alt[i] for i in range(4)})
    assert math.isclose(bipartite_clustering_per_layer(p4, "a", "b"), 0.5, rel_tol=1e-12)
    # Path 0-1-2-3-4: c(0) = c(4) = 1/2 (with 2: {1} / {1,3}); c(1) = c(3) = 1/3 (with 3: {2} / {0,2,4});
    # c(2) = (1/2 + 1/2) / 2 (with 0 and 4) -> average (3 * 1/2 + 2 * 1/3) / 5 = 13/30
    p5 = _layered([(0, 1), (1, 2), (2, 3), (3, 4)], alt)
    assert math.isclose(bipartite_clustering_per_layer(p5, "b", "a"), 13 / 30, rel_tol=1e-12)
    # star with 3 leaves (networkx's documented average 0.75): leaves 1, centre 0
    star = _layered([(0, 1), (0, 2), (0, 3)], {0: ("a", 0), 1: ("b", 0), 2: ("b", 1), 3: ("b", 2)})
    assert math.isclose(bipartite_clustering_per_layer(star, "a", "b"), 0.75, rel_tol=1e-12)


def test_bipartite_clustering_uses_only_the_two_layers():
    # a third layer c hanging off b must not change the a-b value (P4 again)
    layer_of = {0: ("a", 0), 1: ("b", 0), 2: ("a", 1), 3: ("b", 1), 4: ("c", 0), 5: ("c", 1)}
    g = _layered([(0, 1), (1, 2), (2, 3), (3, 4), (3, 5), (1, 5)], layer_of)
    assert math.isclose(bipartite_clustering_per_layer(g, "a", "b"), 0.5, rel_tol=1e-12)


def test_bipartite_clustering_rejects():
    layer_of = {0: ("a", 0), 1: ("a", 1), 2: ("b", 0)}
    g = _layered([(0, 2), (1, 2)], layer_of)
    with pytest.raises(ValueError, match="invalid layer_b: 'z'"):
        bipartite_clustering_per_layer(g, "a", "z")
    with pytest.raises(ValueError, match="invalid layer_b: 'a' equals layer_a"):
        bipartite_clustering_per_layer(g, "a", "a")
    g.add_edge(0, 1)
    with pytest.raises(ValueError, match="joins two nodes of layer 'a'"):
        bipartite_clustering_per_layer(g, "a", "b")
