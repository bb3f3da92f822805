"""Structure vs function: per-cluster means and their correlations."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import stats

from analysis.structure import cluster_structure, structure_function_stats

LABELS = np.array([0, 0, 1, 1, 1, 2])
DEGREE = np.array([1, 3, 2, 4, 6, 5])
STRENGTH = np.array([0.5, 1.5, 1.0, 1.0, 4.0, 2.0])
KNN = np.array([2.0, np.nan, 3.0, 5.0, np.nan, np.nan])
KEYS = {
    "pearson_k_s",
    "pearson_k_s_p",
    "pearson_k_knn",
    "pearson_k_knn_p",
    "pearson_s_knn",
    "pearson_s_knn_p",
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
