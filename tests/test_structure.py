"""Structure vs function: per-cluster means and their correlations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from analysis import graph as G
from analysis.structure import (
    cluster_structure,
    label_permutation_null,
    layer_sides,
    structure_function_stats,
    unit_stats,
    unit_structure,
)

LABELS = np.array([0, 0, 1, 1, 1, 2])
DEGREE = np.array([1, 3, 2, 4, 6, 5])
STRENGTH = np.array([0.5, 1.5, 1.0, 1.0, 4.0, 2.0])
KNN = np.array([2.0, np.nan, 3.0, 5.0, np.nan, np.nan])
KEYS = {
    "pearson_k_s",
    "pearson_k_s_p",
    "pearson_k_s_weighted",
    "pearson_k_knn",
    "pearson_k_knn_p",
    "pearson_k_knn_weighted",
    "pearson_s_knn",
    "pearson_s_knn_p",
    "pearson_s_knn_weighted",
    "n_clusters",
}


def test_cluster_structure_literal():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = cluster_structure(LABELS, DEGREE, STRENGTH, KNN)
    assert list(table) == ["cluster", "size", "mean_degree", "mean_strength", "mean_knn"]
    np.testing.assert_array_equal(table["cluster"], [0, 1, 2])
    np.testing.assert_array_equal(table["size"], [2, 3, 1])
    np.testing.assert_allclose(table["mean_degree"], [2.0, 4.0, 5.0])
    np.testing.assert_allclose(table["mean_strength"], [1.0, 2.0, 2.0])
    # NaN-aware: cluster 0 -> 2, cluster 1 -> (3 + 5) / 2, cluster 2 all isolated -> NaN
    np.testing.assert_allclose(table["mean_knn"], [2.0, 4.0, np.nan])
    assert table["cluster"].dtype == np.int64 and table["size"].dtype == np.int64
    assert table["mean_degree"].dtype == np.float64


def test_cluster_structure_validation():
    with pytest.raises(ValueError, match=r"degree.*\(6,\)"):
        cluster_structure(LABELS, DEGREE[:5], STRENGTH, KNN)
    with pytest.raises(ValueError, match="strength.*finite"):
        cluster_structure(LABELS, DEGREE, np.where(LABELS == 1, np.nan, STRENGTH), KNN)
    with pytest.raises(ValueError, match="knn.*inf"):
        cluster_structure(LABELS, DEGREE, STRENGTH, np.full(6, np.inf))
    with pytest.raises(ValueError, match="labels"):
        cluster_structure(np.array([0, 0, 2, 2, 2, 2]), DEGREE, STRENGTH, KNN)
    with pytest.raises(ValueError, match="labels"):
        cluster_structure(LABELS.reshape(2, 3), DEGREE, STRENGTH, KNN)


def random_table(k: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        "cluster": np.arange(k),
        "size": rng.integers(1, 50, k),
        "mean_degree": rng.normal(size=k),
        "mean_strength": rng.normal(size=k),
        "mean_knn": rng.normal(size=k),
    }


@pytest.mark.parametrize("seed", range(3))
def test_pearson_equals_scipy(seed):
    table = random_table(12, seed)
    out = structure_function_stats(table)
    assert set(out) == KEYS and out["n_clusters"] == 12.0
    for key, (x, y) in {
        "pearson_k_s": ("mean_degree", "mean_strength"),
        "pearson_k_knn": ("mean_degree", "mean_knn"),
        "pearson_s_knn": ("mean_strength", "mean_knn"),
    }.items():
        ref = stats.pearsonr(table[x], table[y])
        assert out[key] == pytest.approx(ref.statistic, rel=1e-12)
        assert out[f"{key}_p"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_pearson_skips_clusters_with_undefined_knn():
    table = random_table(10, seed=4)
    table["mean_knn"][[1, 7]] = np.nan
    out = structure_function_stats(table)
    keep = ~np.isnan(table["mean_knn"])
    ref = stats.pearsonr(table["mean_degree"][keep], table["mean_knn"][keep])
    assert out["pearson_k_knn"] == pytest.approx(ref.statistic)
    assert out["pearson_k_knn_p"] == pytest.approx(ref.pvalue)
    assert out["pearson_k_s"] == pytest.approx(stats.pearsonr(table["mean_degree"], table["mean_strength"])[0])


def test_fewer_than_three_clusters_gives_nan_quietly():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = structure_function_stats(random_table(2, seed=5))
    assert all(np.isnan(out[k]) for k in KEYS - {"n_clusters"})
    assert out["n_clusters"] == 2.0


def test_constant_column_gives_nan_quietly():
    table = random_table(6, seed=6)
    table["mean_strength"] = np.full(6, 3.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = structure_function_stats(table)
    assert np.isnan(out["pearson_k_s"]) and np.isnan(out["pearson_k_s_p"])
    assert np.isnan(out["pearson_s_knn"])
    assert np.isfinite(out["pearson_k_knn"]) and np.isfinite(out["pearson_k_knn_p"])


def test_knn_defined_in_fewer_than_three_clusters_gives_nan():
    table = random_table(5, seed=7)
    table["mean_knn"][:3] = np.nan
    out = structure_function_stats(table)
    assert np.isnan(out["pearson_k_knn"]) and np.isnan(out["pearson_s_knn"])
    assert np.isfinite(out["pearson_k_s"])


def test_end_to_end_literal_table():
    rng = np.random.default_rng(8)
    labels = np.repeat(np.arange(5), 4)
    degree = rng.integers(0, 20, 20)
    strength = degree * 0.5 + rng.normal(scale=0.1, size=20)
    table = cluster_structure(labels, degree, strength, rng.normal(size=20))
    out = structure_function_stats(table)
    assert out["pearson_k_s"] > 0.9


def test_stats_validation():
    table = random_table(4, seed=9)
    del table["mean_knn"]
    with pytest.raises(ValueError, match="mean_knn"):
        structure_function_stats(table)
    table = random_table(4, seed=9)
    table["mean_knn"] = table["mean_knn"][:3]
    with pytest.raises(ValueError, match="lengths"):
        structure_function_stats(table)


def test_weighted_pearson_known_answer():
    table = {"size": np.array([1, 1, 2, 4]), "mean_degree": np.array([1.0, 2.0, 3.0, 5.0]),
             "mean_strength": np.array([1.0, 3.0, 2.0, 4.0]),
             "mean_knn": np.array([2.0, 1.0, np.nan, 0.0])}  # fmt: skip
    out = structure_function_stats(table)
    c = np.cov(table["mean_degree"], table["mean_strength"], aweights=table["size"])
    assert out["pearson_k_s_weighted"] == pytest.approx(c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]), rel=1e-12)
    keep = [0, 1, 3]  # the cluster without k_nn is left out, its weight too
    c = np.cov(table["mean_degree"][keep], table["mean_knn"][keep], aweights=table["size"][keep])
    assert out["pearson_k_knn_weighted"] == pytest.approx(c[0, 1] / np.sqrt(c[0, 0] * c[1, 1]), rel=1e-12)
    table["size"] = np.full(4, 3)  # equal sizes: the weighted r is the unweighted one
    out = structure_function_stats(table)
    assert out["pearson_k_s_weighted"] == pytest.approx(out["pearson_k_s"], rel=1e-12)


# A hand-built 3-layer graph: v (3 units) - h1 (2) - h2 (2).
#   edges v-h1: v0-a, v1-a, v1-b (v2 isolated); edges h1-h2: a-c, a-d (b has no edge upwards)
MASKS = [np.array([[1, 0], [1, 1], [0, 0]], bool), np.array([[1, 1], [0, 0]], bool)]
WEIGHTS = [np.array([[0.5, -1.0], [2.0, 3.0], [1.0, 1.0]]), np.array([[1.0, -2.0], [0.5, 0.5]])]
SIDE_ANSWERS = {
    # (layer, side): (degree, strength, knn)
    (0, "out"): ([1, 2, 0], [-0.5, 5.0, 2.0], [2.0, 1.5, np.nan]),
    (1, "out"): ([2, 0], [-1.0, 1.0], [1.0, np.nan]),  # c and d have 1 edge each to h1
    (1, "in"): ([2, 1], [3.5, 3.0], [1.5, 2.0]),  # v0, v1 have out-degrees 1, 2
    (1, "total"): ([4, 1], [2.5, 4.0], [1.25, 2.0]),  # a's neighbours v0, v1, c, d: total degrees 1, 2, 1, 1
    (2, "in"): ([1, 1], [1.5, -1.5], [2.0, 2.0]),  # a has 2 edges up
}


@pytest.mark.parametrize(("layer", "side"), list(SIDE_ANSWERS))
def test_unit_structure_matched_sides_known_answers(layer, side):
    u = unit_structure(WEIGHTS, MASKS, layer, side)
    degree, strength, knn = SIDE_ANSWERS[(layer, side)]
    np.testing.assert_array_equal(u["degree"], degree)
    np.testing.assert_allclose(u["strength"], strength, rtol=0, atol=1e-15)
    np.testing.assert_allclose(u["knn"], knn, rtol=0, atol=1e-15)
    assert u["degree"].dtype == np.int64


def test_total_side_is_the_whole_graph_and_sides_add_up():
    rng = np.random.default_rng(1)
    ws = [rng.normal(size=(12, 9)), rng.normal(size=(9, 8)), rng.normal(size=(8, 10))]
    masks, _ = G.threshold_masks(ws, G.Threshold(quantile=0.6))
    for layer in (1, 2):
        tot = unit_structure(ws, masks, layer, "total")
        out, inn = unit_structure(ws, masks, layer, "out"), unit_structure(ws, masks, layer, "in")
        np.testing.assert_array_equal(tot["degree"], out["degree"] + inn["degree"])
        np.testing.assert_array_equal(tot["degree"], G.degrees(masks)[layer])
        np.testing.assert_allclose(tot["strength"], G.strengths(ws)[layer]["total"])
        np.testing.assert_allclose(tot["knn"], G.neighbour_degrees(masks)[layer], equal_nan=True)


def test_layer_sides_and_side_errors():
    assert layer_sides(0, 3) == ["out"] and layer_sides(3, 3) == ["in"]
    assert layer_sides(2, 3, ["total", "out"]) == ["total", "out"]
    with pytest.raises(ValueError, match="side.*'out'.*allowed: in"):
        unit_structure(WEIGHTS, MASKS, 2, "out")
    with pytest.raises(ValueError, match="layer"):
        unit_structure(WEIGHTS, MASKS, 3, "in")


def test_unit_stats_are_pearson_across_units():
    u = unit_structure(WEIGHTS, MASKS, 0, "out")
    out = unit_stats(u)
    assert out["pearson_k_s"] == pytest.approx(stats.pearsonr([1, 2, 0], [-0.5, 5.0, 2.0])[0])
    assert np.isnan(out["pearson_k_knn"])  # only 2 units have a k_nn


def _planted(seed: int, n_clusters: int = 20, size: int = 25) -> tuple[np.ndarray, dict]:
    """Units whose degree and strength co-vary only through their cluster: zero correlation across units,
    cluster means exactly proportional (the within-cluster deviations sum to 0 in every cluster)."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_clusters), size)
    a = rng.normal(0.0, 3.0, n_clusters)[labels]
    e = rng.normal(0.0, 10.0, labels.size)
    e -= np.bincount(labels, weights=e)[labels] / size
    lam = a.var() / np.mean(e * e) if np.mean(e * e) > 0 else 0.0
    degree, strength = a + e, a - lam * e
    knn = rng.normal(size=labels.size)
    perm = rng.permutation(labels.size)  # unit order carries nothing
    return labels[perm], {"degree": degree[perm], "strength": strength[perm], "knn": knn[perm]}


def test_label_null_detects_a_partition_that_matters():
    labels, unit = _planted(0)
    assert abs(unit_stats(unit)["pearson_k_s"]) < 0.1  # nothing across units
    observed = structure_function_stats(cluster_structure(labels, **unit))
    assert observed["pearson_k_s"] == pytest.approx(1.0)
    res = label_permutation_null(labels, {"out": unit}, {"out": observed}, 1000, 0)["out"]
    assert res["pearson_k_s/perm_z"] > 3 and res["pearson_k_s/perm_p"] < 0.01
    assert abs(res["pearson_k_s/perm_mean"]) < 0.1
    assert res["pearson_k_s_weighted/perm_p"] < 0.01
    assert res["pearson_k_knn/perm_p"] > 0.01  # k_nn was drawn independently of the clusters


def test_label_null_p_is_uniform_for_labels_unrelated_to_structure():
    ps = []
    for seed in range(60):
        rng = np.random.default_rng(100 + seed)
        n = 120
        labels = np.concatenate([np.arange(8), rng.integers(0, 8, n - 8)])
        k = rng.poisson(20, n).astype(float)
        unit = {"degree": k, "strength": 0.3 * k + rng.normal(0, 2, n), "knn": rng.normal(size=n)}
        observed = structure_function_stats(cluster_structure(labels, **unit))
        res = label_permutation_null(labels, {"in": unit}, {"in": observed}, 200, seed)["in"]
        ps.append(res["pearson_k_s/perm_p"])
    assert stats.kstest(ps, "uniform").pvalue > 0.01
    assert 0.2 < np.mean(np.asarray(ps) < 0.5) < 0.8


def test_label_null_is_reproducible_and_keeps_sizes():
    labels, unit = _planted(1, n_clusters=5, size=4)
    observed = {"out": structure_function_stats(cluster_structure(labels, **unit))}
    a = label_permutation_null(labels, {"out": unit}, observed, 50, [7, 1])
    b = label_permutation_null(labels, {"out": unit}, observed, 50, [7, 1])
    c = label_permutation_null(labels, {"out": unit}, observed, 50, [7, 2])
    assert a == b and a != c
    with pytest.raises(ValueError, match="n_permutations"):
        label_permutation_null(labels, {"out": unit}, observed, 0, 0)
