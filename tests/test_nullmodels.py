"""Null models (weight shuffling, degree-preserving rewiring, z-scores) and communities (Louvain, NMI / ARI)."""

from __future__ import annotations

import collections
import math

import networkx as nx
import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

from analysis.communities import Communities, graph_abs_weights, louvain, partition_agreement
from analysis.graph import Threshold, graph_stats, threshold_masks
from analysis.nullmodels import _rewire_cols, null_samples, null_zscores, rewire_bipartite, shuffle_weights


def _mask(shape, density, seed):
    return np.random.default_rng(seed).random(shape) < density


def _stack(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(12, 9)), rng.normal(size=(9, 7)), rng.normal(size=(7, 5))]


# ------------------------------------------------------------------------------------------------------ shuffle


def test_shuffle_keeps_multiset_changes_order():
    w = np.random.default_rng(0).normal(size=(30, 20))
    before = w.copy()
    s = shuffle_weights(w, np.random.default_rng(1))
    assert s.shape == w.shape and s.dtype == np.float64
    np.testing.assert_array_equal(np.sort(s.ravel()), np.sort(w.ravel()))
    assert not np.array_equal(s, w)
    assert np.mean(s == w) < 0.05  # a random permutation of 600 entries fixes ~1 of them
    np.testing.assert_array_equal(w, before)  # input untouched
    np.testing.assert_array_equal(s, shuffle_weights(w, np.random.default_rng(1)))
    assert not np.array_equal(s, shuffle_weights(w, np.random.default_rng(2)))


def test_shuffle_rejects_bad_input():
    with pytest.raises(ValueError, match="w"):
        shuffle_weights(np.ones(5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="rng"):
        shuffle_weights(np.ones((2, 2)), "seed")


# ------------------------------------------------------------------------------------------------------- rewire


def test_rewire_keeps_degrees_changes_edges():
    m = _mask((60, 80), 0.1, 0)
    r = rewire_bipartite(m, np.random.default_rng(3))
    assert r.dtype == np.bool_ and r.shape == m.shape
    np.testing.assert_array_equal(r.sum(axis=1), m.sum(axis=1))
    np.testing.assert_array_equal(r.sum(axis=0), m.sum(axis=0))
    assert np.count_nonzero(r) == np.count_nonzero(m)
    # well mixed: the overlap with the original is close to the density (0.1), far from 1
    assert np.count_nonzero(r & m) / np.count_nonzero(m) < 0.3
    np.testing.assert_array_equal(r, rewire_bipartite(m, np.random.default_rng(3)))
    assert not np.array_equal(r, rewire_bipartite(m, np.random.default_rng(4)))


@pytest.mark.parametrize("density", [0.05, 0.3, 0.8])
def test_rewire_edge_list_never_duplicates(density):
    m = _mask((40, 30), density, 1)
    work = ~m if density > 0.5 else m  # rewire_bipartite works on the sparser side
    rows, cols = np.nonzero(work)
    new_cols, done = _rewire_cols(
        rows.astype(np.int64), cols.astype(np.int64), m.shape, np.random.default_rng(0), 5000
    )
    assert done > 500
    cells = rows * m.shape[1] + new_cols
    assert np.unique(cells).size == cells.size  # no duplicate edge
    np.testing.assert_array_equal(np.bincount(new_cols, minlength=m.shape[1]), work.sum(axis=0))
    r = rewire_bipartite(m, 7)
    np.testing.assert_array_equal(r.sum(axis=1), m.sum(axis=1))
    np.testing.assert_array_equal(r.sum(axis=0), m.sum(axis=0))
    assert not np.array_equal(r, m)


def test_rewire_known_answers():
    eye = np.eye(2, dtype=bool)
    # the only other graph with these degrees; a held proposal (1/8) or none: some seed must swap
    swapped = [rewire_bipartite(eye, s, n_swaps=1) for s in range(10)]
    assert all(np.array_equal(x, eye) or np.array_equal(x, ~eye) for x in swapped)
    assert any(np.array_equal(x, ~eye) for x in swapped)
    # degrees with a single realisation: full, empty, nested (Ferrers) masks come back unchanged
    nested = np.add.outer(np.arange(8), np.arange(6)) < 6
    for m in (np.ones((4, 5), bool), np.zeros((4, 5), bool), nested, np.ones((1, 7), bool)):
        np.testing.assert_array_equal(rewire_bipartite(m, 0), m)
    np.testing.assert_array_equal(rewire_bipartite(~eye, 0, n_swaps=0), ~eye)
    with pytest.raises(ValueError, match="mask"):
        rewire_bipartite(np.ones((3, 3)), 0)
    with pytest.raises(ValueError, match="n_swaps"):
        rewire_bipartite(eye, 0, n_swaps=-1)


def test_rewire_batch_is_an_involution():
    """The batch applied by the same draw to the graph it produced gives the original back: the symmetry that
    makes the batched chain sample uniformly."""
    m = _mask((30, 40), 0.2, 5)
    rows, cols = (x.astype(np.int64) for x in np.nonzero(m))
    for seed in range(20):
        once, done = _rewire_cols(rows, cols, m.shape, np.random.default_rng(seed), 60, batch=60)
        assert done > 5
        back, again = _rewire_cols(rows, once, m.shape, np.random.default_rng(seed), 60, batch=60)
        assert again == done
        np.testing.assert_array_equal(back, cols)


def test_rewire_batched_samples_uniformly():
    # rows (3, 3, 2), columns (2, 2, 1, 1, 1, 1): 80 graphs; two swaps per batch
    m = np.array([[1, 1, 1, 0, 0, 0], [1, 1, 0, 1, 0, 0], [0, 0, 0, 0, 1, 1]], dtype=bool)
    rows, cols = (x.astype(np.int64) for x in np.nonzero(m))
    gen = np.random.default_rng(11)
    seen = collections.Counter(
        tuple(rows * 6 + _rewire_cols(rows, cols, m.shape, gen, 40, batch=2)[0]) for _ in range(2400)
    )
    seen = collections.Counter({tuple(sorted(k)): v for k, v in seen.items()})  # as edge sets
    assert len(seen) == 80
    assert stats.chisquare(list(seen.values())).pvalue > 1e-3


def test_rewire_is_aperiodic():
    # on a permutation matrix every proposal is a valid transposition: without the random holds an even number
    # of proposals would always give an even permutation
    eye = np.eye(6, dtype=bool)
    odd = [
        np.linalg.det(rewire_bipartite(eye, s, n_swaps=60).astype(float)) < 0 for s in range(200)
    ]  # det = sign of the permutation
    assert 0.35 < np.mean(odd) < 0.65


# ------------------------------------------------------------------------------------------------------ z-scores


def test_null_zscores_literal():
    samples = [1.0, 2.0, 3.0]
    out = null_zscores(lambda x: {"a": x, "b": 4.0, "extra": 0.0}, {"a": 5.0, "b": 4.0}, samples)
    assert list(out) == ["a", "b"]
    assert out["a"] == {"value": 5.0, "null_mean": 2.0, "null_std": 1.0, "z": 3.0}
    assert out["b"]["null_std"] == 0.0 and math.isnan(out["b"]["z"])  # constant null: z undefined
    one = null_zscores(lambda x: {"a": x}, {"a": 0.0}, [2.0])
    assert one["a"]["null_mean"] == 2.0 and math.isnan(one["a"]["null_std"]) and math.isnan(one["a"]["z"])
    with pytest.raises(ValueError, match="samples"):
        null_zscores(lambda x: {"a": x}, {"a": 0.0}, [])
    with pytest.raises(ValueError, match="'c'"):
        null_zscores(lambda x: {"a": x}, {"c": 0.0}, [1.0, 2.0])


# ------------------------------------------------------------------------------------------------------ samples


@pytest.mark.parametrize("kind", ["shuffle", "rewire"])
def test_null_samples_independent_of_n_jobs(kind):
    ws = _stack()
    masks, _ = threshold_masks(ws, Threshold(sign="absolute", density=0.3))
    serial = null_samples(ws, masks, kind, 4, seed=42)
    parallel = null_samples(ws, masks, kind, 4, seed=42, n_jobs=2)
    assert len(serial) == len(parallel) == 4
    for a, b in zip(serial, parallel, strict=True):
        assert len(a) == len(b) == 3
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    assert not np.array_equal(serial[0][0], serial[1][0])  # each sample its own stream
    assert not np.array_equal(serial[0][0], null_samples(ws, masks, kind, 4, seed=43)[0][0])
    for sample in serial:
        for layer, x in enumerate(sample):
            if kind == "shuffle":
                np.testing.assert_array_equal(np.sort(x.ravel()), np.sort(ws[layer].ravel()))
            else:
                assert x.dtype == np.bool_
                np.testing.assert_array_equal(x.sum(axis=0), masks[layer].sum(axis=0))
                np.testing.assert_array_equal(x.sum(axis=1), masks[layer].sum(axis=1))


def test_null_samples_zscores_end_to_end_and_errors():
    ws = _stack(1)
    masks, _ = threshold_masks(ws, Threshold(sign="absolute", density=0.3))
    observed = graph_stats(masks)
    z = null_zscores(graph_stats, observed, null_samples(None, masks, "rewire", 5, seed=0))
    assert math.isnan(z["v/mean_degree"]["z"])  # degrees are what rewiring keeps
    assert z["all/n_edges"]["null_std"] == 0.0
    assert math.isfinite(z["all/assortativity"]["null_std"])
    samples = null_samples(None, masks, "rewire", 5, seed=0)
    # evaluated in worker processes (a lambda, as the callback passes): the same numbers, in the same order
    assert null_zscores(lambda x: graph_stats(x), observed, samples, n_jobs=2) == z
    with pytest.raises(ValueError, match="n_jobs"):
        null_zscores(graph_stats, observed, samples, n_jobs=0)
    with pytest.raises(ValueError, match="kind"):
        null_samples(ws, masks, "permute", 2, seed=0)
    with pytest.raises(ValueError, match="masks"):
        null_samples(ws, None, "rewire", 2, seed=0)
    with pytest.raises(ValueError, match="weights"):
        null_samples(None, masks, "shuffle", 2, seed=0)
    with pytest.raises(ValueError, match="n_jobs"):
        null_samples(ws, masks, "shuffle", 2, seed=0, n_jobs=0)
    with pytest.raises(ValueError, match="n_samples"):
        null_samples(ws, masks, "shuffle", 0, seed=0)


# --------------------------------------------------------------------------------------------------- communities


def _two_cliques():
    g = nx.disjoint_union(nx.complete_graph(5), nx.complete_graph(5))
    g.add_edge(4, 5)
    return g


def test_louvain_two_cliques():
    g = _two_cliques()
    c = louvain(g, seed=0)
    assert isinstance(c, Communities)
    np.testing.assert_array_equal(c.labels, [0] * 5 + [1] * 5)
    assert c.n_communities == 2
    expected = nx.community.modularity(g, [set(range(5)), set(range(5, 10))])
    assert c.modularity == pytest.approx(expected, abs=1e-12)
    assert c.modularity == pytest.approx(1 - 2 * (21 / 42) ** 2 - 1 / 21)  # 2 * (20/42 - (21/42)^2)
    with pytest.raises(ValueError):
        c.labels[0] = 3  # read-only
    # a weighted version: the bridge is weak, still two communities
    nx.set_edge_attributes(g, 1.0, "weight")
    g.edges[4, 5]["weight"] = 0.1
    np.testing.assert_array_equal(louvain(g, weight="weight", seed=1).labels, [0] * 5 + [1] * 5)
    g.edges[4, 5]["weight"] = -1.0
    with pytest.raises(ValueError, match="weight"):
        louvain(g, weight="weight")
    with pytest.raises(ValueError, match="resolution"):
        louvain(g, resolution=0.0)
    empty = louvain(nx.empty_graph(3))
    np.testing.assert_array_equal(empty.labels, [0, 1, 2])
    assert math.isnan(empty.modularity)


def test_graph_abs_weights():
    ws = [np.array([[1.0, -2.0], [0.5, -0.25], [3.0, 0.0]]), np.array([[-1.0], [2.0]])]
    g = graph_abs_weights(ws)
    assert g.number_of_nodes() == 6 and g.number_of_edges() == 8
    assert g.edges[0, 4]["weight"] == 2.0 and g.edges[2, 4]["weight"] == 0.0 and g.edges[3, 5]["weight"] == 1.0
    assert g.nodes[4] == {"layer": "h1", "index": 1} and g.nodes[5]["layer"] == "h2"
    c = louvain(g, weight="weight", seed=0)
    assert c.labels.shape == (6,) and c.labels.dtype == np.int64 and c.labels[0] == 0
    assert c.modularity == pytest.approx(
        nx.community.modularity(g, [set(np.flatnonzero(c.labels == k)) for k in range(c.n_communities)])
    )


# ---------------------------------------------------------------------------------------------------- agreement


def test_partition_agreement_identical_and_relabelled():
    a = np.array([0, 0, 1, 1, 2, 2, 2])
    assert partition_agreement(a, a) == (1.0, 1.0)
    assert partition_agreement(a, np.array([7, 7, 3, 3, 5, 5, 5])) == (1.0, 1.0)
    assert partition_agreement(a, np.array(["x", "x", "y", "y", "z", "z", "z"])) == (1.0, 1.0)
    nmi, ari = partition_agreement(a, np.array([0, 0, 1, 1, 2, 2, 0]))  # one item moved
    assert 0.0 < nmi < 1.0 and 0.0 < ari < 1.0
    # literal: ARI([0,0,1,1], [0,1,0,1]) = -1/2, NMI = 0
    assert partition_agreement([0, 0, 1, 1], [0, 1, 0, 1]) == (0.0, -0.5)
    with pytest.raises(ValueError, match="b"):
        partition_agreement([0, 1], [0, 1, 1])
    with pytest.raises(ValueError, match="a"):
        partition_agreement([], [])


def test_partition_agreement_matches_sklearn():
    rng = np.random.default_rng(0)
    cases = [
        (rng.integers(0, ka, n), rng.integers(0, kb, n)) for n, ka, kb in [(50, 3, 4), (200, 10, 2), (7, 7, 1)]
    ]
    base = rng.integers(0, 5, 300)
    noisy = np.where(rng.random(300) < 0.2, rng.integers(0, 5, 300), base)
    cases += [(base, noisy), (np.zeros(5, int), np.zeros(5, int)), (np.arange(6), np.arange(6))]
    cases += [(np.zeros(4, int), np.arange(4)), (np.array([3]), np.array([1]))]
    for a, b in cases:
        nmi, ari = partition_agreement(a, b)
        assert nmi == pytest.approx(normalized_mutual_info_score(a, b), abs=1e-12)
        assert ari == pytest.approx(adjusted_rand_score(a, b), abs=1e-12)
