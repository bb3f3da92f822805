"""Hierarchical clustering of units from a distance matrix."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.cluster.hierarchy import is_valid_linkage, leaves_list, linkage
from scipy.spatial.distance import cdist, squareform
from sklearn.metrics import adjusted_rand_score

from analysis.clustering import (
    Clustering,
    check_distances,
    cluster_fields,
    cluster_mean_distances,
    sample_members,
)


def planted_line(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """3 groups of 10 points on a line (centres 0, 10, 20, jitter +-1), shuffled: (distances, true groups)."""
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(3), 10)
    perm = rng.permutation(30)
    groups = groups[perm]
    x = 10.0 * groups + rng.uniform(-1.0, 1.0, size=30)
    return np.abs(x[:, None] - x[None, :]), groups


def random_distances(n: int, seed: int, dim: int = 3) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, dim))
    return cdist(x, x, "cityblock")


@pytest.mark.parametrize("method", ["average", "single", "complete", "weighted"])
def test_recovers_planted_groups(method):
    d, groups = planted_line()
    c = cluster_fields(d, 3, method=method)
    assert c.n_clusters == 3 and c.n_requested == 3 and c.method == method
    assert adjusted_rand_score(groups, c.labels) == 1.0
    np.testing.assert_array_equal(np.sort(c.sizes), [10, 10, 10])


def test_recovers_blobs_in_2d():
    rng = np.random.default_rng(1)
    centres = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0], [20.0, 20.0]])
    groups = np.repeat(np.arange(4), 12)
    x = centres[groups] + rng.normal(scale=1.0, size=(48, 2))
    c = cluster_fields(cdist(x, x), 4)
    assert adjusted_rand_score(groups, c.labels) == 1.0


def test_arrays_and_shapes():
    d = random_distances(40, seed=2)
    c = cluster_fields(d, 7)
    k = c.n_clusters
    assert k == 7
    assert c.labels.shape == (40,) and c.labels.dtype == np.int64
    assert set(c.labels.tolist()) == set(range(k))
    assert c.linkage.shape == (39, 4) and is_valid_linkage(c.linkage)
    assert c.cluster_linkage.shape == (k - 1, 4) and is_valid_linkage(c.cluster_linkage)
    np.testing.assert_array_equal(c.sizes, np.bincount(c.labels))
    assert c.medoids.shape == (k,)
    np.testing.assert_array_equal(c.labels[c.medoids], np.arange(k))


@pytest.mark.parametrize("seed", range(5))
def test_labels_follow_cluster_dendrogram_leaf_order(seed):
    c = cluster_fields(random_distances(50, seed), 8)
    np.testing.assert_array_equal(leaves_list(c.cluster_linkage), np.arange(c.n_clusters))


@pytest.mark.parametrize("seed", range(3))
def test_clusters_are_contiguous_in_unit_leaf_order(seed):
    c = cluster_fields(random_distances(50, seed), 6)
    ordered = c.labels[leaves_list(c.linkage)]
    assert np.count_nonzero(np.diff(ordered)) == c.n_clusters - 1


def test_cluster_linkage_is_average_linkage_of_mean_intercluster_distances():
    d = random_distances(45, seed=3)
    c = cluster_fields(d, 6)
    expected = linkage(squareform(cluster_mean_distances(d, c.labels), checks=False), method="average")
    np.testing.assert_allclose(c.cluster_linkage[:, 2:], expected[:, 2:])
    assert c.cluster_linkage[0, 2] == pytest.approx(
        np.min(squareform(cluster_mean_distances(d, c.labels), checks=False))
    )


def test_unit_linkage_is_scipy_linkage():
    d = random_distances(30, seed=4)
    np.testing.assert_allclose(cluster_fields(d, 4).linkage, linkage(squareform(d, checks=False), "average"))


def test_medoid_minimises_summed_within_cluster_distance_brute_force():
    d = random_distances(60, seed=5)
    c = cluster_fields(d, 9)
    for cluster in range(c.n_clusters):
        members = np.flatnonzero(c.labels == cluster)
        sums = [d[i, members].sum() for i in members]
        best = members[int(np.argmin(sums))]
        assert c.medoids[cluster] == best
        assert d[c.medoids[cluster], members].sum() == pytest.approx(min(sums))


def test_ties_give_fewer_clusters_than_asked():
    # two groups of 3 with all within-group distances equal: no cut gives exactly 3 clusters
    d = np.full((6, 6), 5.0)
    d[:3, :3] = 1.0
    d[3:, 3:] = 1.0
    np.fill_diagonal(d, 0.0)
    c = cluster_fields(d, 3)
    assert c.n_requested == 3 and c.n_clusters == 2
    assert adjusted_rand_score([0, 0, 0, 1, 1, 1], c.labels) == 1.0
    assert c.cluster_linkage.shape == (1, 4)


def test_all_ties_give_a_single_cluster():
    d = np.ones((4, 4)) - np.eye(4)
    c = cluster_fields(d, 2)
    assert c.n_clusters == 1
    np.testing.assert_array_equal(c.labels, 0)
    assert c.cluster_linkage.shape == (0, 4)
    np.testing.assert_array_equal(c.sizes, [4])
    assert c.medoids[0] == 0


def test_n_clusters_equal_to_n_gives_singletons():
    c = cluster_fields(random_distances(8, seed=6), 8)
    assert c.n_clusters == 8
    np.testing.assert_array_equal(np.sort(c.medoids), np.arange(8))


@pytest.mark.parametrize("n_clusters", [1, 0, 31, 2.5, True, "3"])
def test_n_clusters_bounds(n_clusters):
    d, _ = planted_line()
    with pytest.raises(ValueError, match=r"analysis.n_clusters.*\[2, 30\]"):
        cluster_fields(d, n_clusters)


@pytest.mark.parametrize("method", ["ward", "centroid", "median"])
def test_euclidean_only_methods_refused(method):
    d, _ = planted_line()
    with pytest.raises(ValueError, match="Euclidean"):
        cluster_fields(d, 3, method=method)


def test_unknown_method_refused():
    d, _ = planted_line()
    with pytest.raises(ValueError, match="method.*average"):
        cluster_fields(d, 3, method="upgma")


def _bad(kind: str) -> np.ndarray:
    d, _ = planted_line()
    d = d[:5, :5].copy()
    if kind == "not square":
        return d[:, :4]
    if kind == "1-d":
        return d[0]
    if kind == "too small":
        return np.zeros((1, 1))
    if kind == "asymmetric":
        d[0, 1] += 1.0
    elif kind == "diagonal":
        d[2, 2] = 0.5
    elif kind == "nan":
        d[0, 1] = d[1, 0] = np.nan
    elif kind == "inf":
        d[0, 1] = d[1, 0] = np.inf
    elif kind == "negative":
        d[0, 1] = d[1, 0] = -1.0
    return d


@pytest.mark.parametrize(
    ("kind", "message"),
    [
        ("not square", "square"),
        ("1-d", "square"),
        ("too small", "n >= 2"),
        ("asymmetric", "symmetric"),
        ("diagonal", "diagonal"),
        ("nan", "finite"),
        ("inf", "finite"),
        ("negative", "negative"),
    ],
)
def test_invalid_distance_matrices_refused(kind, message):
    with pytest.raises(ValueError, match=f"invalid distances.*{message}"):
        cluster_fields(_bad(kind), 2)


def test_tiny_asymmetry_tolerated_and_input_untouched():
    d, groups = planted_line()
    noisy = d.copy()
    noisy[0, 1] += 1e-12
    kept = noisy.copy()
    c = cluster_fields(noisy, 3)
    assert adjusted_rand_score(groups, c.labels) == 1.0
    np.testing.assert_array_equal(noisy, kept)
    out = check_distances(noisy)
    np.testing.assert_array_equal(out, out.T)


def test_result_is_immutable():
    c = cluster_fields(planted_line()[0], 3)
    assert isinstance(c, Clustering)
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.n_clusters = 4  # type: ignore[misc]
    for arr in (c.labels, c.linkage, c.medoids, c.sizes, c.cluster_linkage):
        assert not arr.flags.writeable


def test_cluster_mean_distances_literal():
    x = np.array([0.0, 1.0, 5.0, 7.0])
    d = np.abs(x[:, None] - x[None, :])
    # between: (5 + 7 + 4 + 6) / 4; within: the one distinct pair
    np.testing.assert_allclose(cluster_mean_distances(d, [0, 0, 1, 1]), [[1.0, 5.5], [5.5, 2.0]])
    # singleton diagonal is 0; within cluster 0: (1 + 5 + 4) / 3; between: (7 + 6 + 2) / 3
    np.testing.assert_allclose(cluster_mean_distances(d, [0, 0, 0, 1]), [[10 / 3, 5.0], [5.0, 0.0]])


def test_cluster_mean_distances_validates_labels():
    d = np.ones((3, 3)) - np.eye(3)
    with pytest.raises(ValueError, match=r"labels.*\(3,\)"):
        cluster_mean_distances(d, [0, 1])
    with pytest.raises(ValueError, match=r"labels.*\[1\] have no members"):
        cluster_mean_distances(d, [0, 2, 2])
    with pytest.raises(ValueError, match="labels"):
        cluster_mean_distances(d, [0, -1, 1])
    with pytest.raises(ValueError, match="labels"):
        cluster_mean_distances(d, [0.0, 0.5, 1.0])


def test_sample_members():
    d = random_distances(80, seed=7)
    c = cluster_fields(d, 5)
    picks = sample_members(c, k=4, seed=3)
    assert len(picks) == c.n_clusters
    for cluster, idx in enumerate(picks):
        assert idx.dtype == np.int64
        assert len(idx) == min(4, c.sizes[cluster]) and len(set(idx.tolist())) == len(idx)
        assert idx[0] == c.medoids[cluster]
        assert np.all(c.labels[idx] == cluster)
        assert np.all(np.diff(idx[1:]) > 0)
    again = sample_members(c, k=4, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(picks, again, strict=True))
    big = int(np.argmax(c.sizes))
    assert c.sizes[big] > 10
    others = [sample_members(c, k=4, seed=s)[big] for s in range(5)]
    assert len({tuple(o.tolist()) for o in others}) > 1


def test_sample_members_small_clusters_whole_and_k_validated():
    c = cluster_fields(planted_line()[0], 3)
    for cluster, idx in enumerate(sample_members(c, k=50)):
        assert set(idx.tolist()) == set(np.flatnonzero(c.labels == cluster).tolist())
    with pytest.raises(ValueError, match="k"):
        sample_members(c, k=0)
