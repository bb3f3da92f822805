"""Hierarchical clustering of hidden units from a matrix of pairwise distances between their receptive fields.

The distances are typically Earth Mover's distances (:mod:`analysis.emd`), which are not Euclidean, so only the
linkage methods that are defined for an arbitrary dissimilarity are accepted (average = UPGMA by default; single,
complete, weighted). Ward, centroid and median linkage update distances with Lance-Williams formulas that assume
squared Euclidean distances between points and are refused.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
from scipy.cluster.hierarchy import fcluster, leaves_list, linkage
from scipy.spatial.distance import squareform

__all__ = [
    "METHODS",
    "Clustering",
    "check_distances",
    "check_labels",
    "cluster_fields",
    "cluster_mean_distances",
    "sample_members",
]

METHODS = ("average", "single", "complete", "weighted")
EUCLIDEAN_ONLY = ("ward", "centroid", "median")
SYMMETRY_RTOL = 1e-6


@dataclass(frozen=True, eq=False)
class Clustering:
    """A flat clustering of ``n`` units cut from a hierarchical one. All arrays are read-only.

    Attributes:
        labels: ``(n,)`` int64 in ``0..K-1``. Clusters are numbered in the leaf order of the cluster-level
            dendrogram: ``leaves_list(cluster_linkage)`` is ``0, 1, ..., K-1``, so cluster 0 is its first leaf.
        linkage: ``(n - 1, 4)`` scipy linkage matrix of the units (``method`` on the condensed distances).
        medoids: ``(K,)`` int64, the unit index of each cluster's medoid: the member with the smallest sum of
            distances to the other members (lowest index on ties).
        sizes: ``(K,)`` int64, members per cluster.
        cluster_linkage: ``(K - 1, 4)`` linkage matrix over the K clusters: average linkage (UPGMA with the
            clusters as the taxa) on the ``(K, K)`` matrix of mean inter-cluster distances
            (:func:`cluster_mean_distances`). ``(0, 4)`` when ``K == 1``.
        n_clusters: K, the number of clusters actually formed.
        n_requested: the number asked for. ``fcluster(..., "maxclust")`` cuts the tree at a merge height, so when
            several merges share the height of the cut (ties) it forms fewer clusters than asked: ``K <=
            n_requested``, possibly 1.
        method: the unit-level linkage method.
    """

    labels: np.ndarray
    linkage: np.ndarray
    medoids: np.ndarray
    sizes: np.ndarray
    cluster_linkage: np.ndarray
    n_clusters: int
    n_requested: int
    method: str


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


def check_distances(distances: np.ndarray, name: str = "distances") -> np.ndarray:
    """Validate a distance matrix and return it as float64, exactly symmetric with a zero diagonal.

    Args:
        distances: ``(n, n)``, ``n >= 2``: finite, non-negative, symmetric and with a zero diagonal up to a
            relative tolerance of ``SYMMETRY_RTOL`` times the largest entry (the symmetric part is returned).
        name: the parameter name used in error messages.

    Returns:
        ``(n, n)`` float64, a new array.

    Raises:
        ValueError: naming ``name`` and what is allowed.
    """
    d = np.array(distances, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1] or d.shape[0] < 2:
        raise ValueError(f"invalid {name}: shape {d.shape}; allowed: a square (n, n) matrix with n >= 2")
    if not np.all(np.isfinite(d)):
        raise ValueError(f"invalid {name}: contains NaN or inf; allowed: finite values")
    tol = SYMMETRY_RTOL * max(float(np.abs(d).max()), np.finfo(np.float64).tiny)
    asym = float(np.abs(d - d.T).max())
    if asym > tol:
        raise ValueError(f"invalid {name}: not symmetric (max |d - d.T| = {asym:.3g}); allowed: d == d.T")
    diag = float(np.abs(np.diagonal(d)).max())
    if diag > tol:
        raise ValueError(f"invalid {name}: non-zero diagonal (max |d_ii| = {diag:.3g}); allowed: d_ii == 0")
    if float(d.min()) < -tol:
        raise ValueError(f"invalid {name}: negative entries (min {float(d.min()):.3g}); allowed: d >= 0")
    d = 0.5 * (d + d.T)
    np.fill_diagonal(d, 0.0)
    return np.maximum(d, 0.0, out=d)


def check_labels(labels: np.ndarray, n: int, name: str = "labels") -> tuple[np.ndarray, int]:
    """Validate cluster labels: ``(n,)`` integers (or integral floats) ``0..K-1`` with every cluster non-empty.

    Returns:
        The labels as int64 and K.

    Raises:
        ValueError: naming ``name`` and what is allowed.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1 or lab.shape[0] != n:
        raise ValueError(f"invalid {name}: shape {lab.shape}; allowed: ({n},)")
    if lab.size and not np.issubdtype(lab.dtype, np.integer):
        if not (np.issubdtype(lab.dtype, np.floating) and np.all(lab == np.round(lab))):
            raise ValueError(f"invalid {name}: dtype {lab.dtype}; allowed: integers 0..K-1")
    lab = lab.astype(np.int64)
    if lab.size == 0 or lab.min() < 0:
        raise ValueError(f"invalid {name}: allowed: a non-empty array of integers 0..K-1")
    k = int(lab.max()) + 1
    missing = np.flatnonzero(np.bincount(lab, minlength=k) == 0)
    if missing.size:
        raise ValueError(
            f"invalid {name}: cluster(s) {missing.tolist()} have no members; allowed: every label in 0..K-1 used"
        )
    return lab, k


def cluster_mean_distances(distances: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean distance between the members of every pair of clusters.

    Args:
        distances: ``(n, n)`` distance matrix (validated as in :func:`check_distances`).
        labels: ``(n,)`` integers ``0..K-1``, every cluster non-empty.

    Returns:
        ``(K, K)`` float64, symmetric. Off the diagonal, entry ``(a, b)`` is the mean of ``d[i, j]`` over
        ``i`` in ``a`` and ``j`` in ``b`` (the UPGMA distance between the two clusters). On the diagonal, the mean
        within-cluster distance over distinct pairs (``i != j``); 0 for a singleton.

    Raises:
        ValueError: invalid ``distances`` or ``labels``.
    """
    d = check_distances(distances)
    lab, k = check_labels(labels, d.shape[0])
    return _mean_distances(d, lab, k)


def _mean_distances(d: np.ndarray, lab: np.ndarray, k: int) -> np.ndarray:
    onehot = np.zeros((d.shape[0], k))
    onehot[np.arange(d.shape[0]), lab] = 1.0
    sums = onehot.T @ d @ onehot
    sizes = onehot.sum(axis=0)
    pairs = np.outer(sizes, sizes)
    np.fill_diagonal(pairs, sizes * (sizes - 1))
    out = np.divide(sums, pairs, out=np.zeros_like(sums), where=pairs > 0)
    return 0.5 * (out + out.T)


def cluster_fields(distances: np.ndarray, n_clusters: int = 20, method: str = "average") -> Clustering:
    """Hierarchical clustering of units, cut into at most ``n_clusters`` flat clusters.

    ``Z = scipy.cluster.hierarchy.linkage(squareform(distances), method)``, then
    ``fcluster(Z, n_clusters, "maxclust")``. The clusters are renumbered so that they follow the leaf order of
    the cluster-level dendrogram (see :class:`Clustering`).

    Args:
        distances: ``(n, n)`` symmetric, zero-diagonal, finite, non-negative distances, ``n >= 2``.
        n_clusters: the number of flat clusters asked for, in ``[2, n]``. Ties in merge heights can give fewer
            (``Clustering.n_clusters`` holds the number formed).
        method: ``"average"`` (UPGMA, default), ``"single"``, ``"complete"`` or ``"weighted"`` (WPGMA).

    Returns:
        The :class:`Clustering`.

    Raises:
        ValueError: invalid ``distances``; ``n_clusters`` out of range; ``method`` unknown or one that assumes
            Euclidean distances (``ward``, ``centroid``, ``median``).
    """
    if method in EUCLIDEAN_ONLY:
        raise ValueError(
            f"invalid method: {method!r}; {method} linkage assumes Euclidean distances between "
            "points (its Lance-Williams update is only valid for them) and Earth Mover's distances between "
            f"receptive fields are not Euclidean; allowed: {' | '.join(METHODS)}"
        )
    if method not in METHODS:
        raise ValueError(f"invalid method: {method!r}; allowed: {' | '.join(METHODS)}")
    d = check_distances(distances)
    n = d.shape[0]
    try:
        requested = operator.index(n_clusters)
    except TypeError:
        requested = None
    if isinstance(n_clusters, bool) or requested is None or not 2 <= requested <= n:
        raise ValueError(f"invalid analysis.n_clusters: {n_clusters!r}; allowed: an integer in [2, {n}] (n units)")

    z = linkage(squareform(d, checks=False), method=method)
    _, provisional = np.unique(fcluster(z, t=requested, criterion="maxclust"), return_inverse=True)
    provisional = provisional.astype(np.int64)
    k = int(provisional.max()) + 1

    if k >= 2:
        mean = _mean_distances(d, provisional, k)
        cz = linkage(squareform(mean, checks=False), method="average")
        rank = np.empty(k, dtype=np.int64)
        rank[leaves_list(cz)] = np.arange(k)
        # Renumber the leaves in place (children stay left/right as they were), so the leaf order becomes 0..K-1.
        ids = cz[:, :2]
        is_leaf = ids < k
        ids[is_leaf] = rank[ids[is_leaf].astype(np.int64)]
        labels = rank[provisional]
    else:
        cz = np.empty((0, 4))
        labels = provisional

    sizes = np.bincount(labels, minlength=k).astype(np.int64)
    medoids = np.empty(k, dtype=np.int64)
    for c in range(k):
        members = np.flatnonzero(labels == c)
        medoids[c] = members[int(np.argmin(d[np.ix_(members, members)].sum(axis=1)))]

    return Clustering(
        labels=_frozen(labels),
        linkage=_frozen(z),
        medoids=_frozen(medoids),
        sizes=_frozen(sizes),
        cluster_linkage=_frozen(cz),
        n_clusters=k,
        n_requested=requested,
        method=method,
    )


def sample_members(clustering: Clustering, k: int = 8, seed: int = 0) -> list[np.ndarray]:
    """Up to ``k`` member indices of every cluster, medoid first, deterministic for a given ``seed``.

    Args:
        clustering: the :class:`Clustering`.
        k: members per cluster, ``>= 1``. A cluster with ``k`` members or fewer is returned whole.
        seed: seed of the ``numpy.random.default_rng`` that draws the members other than the medoid (without
            replacement, clusters visited in label order).

    Returns:
        One ``(min(k, size),)`` int64 array per cluster, in label order: the medoid, then the drawn members in
        ascending index order.

    Raises:
        ValueError: ``k < 1``.
    """
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 1:
        raise ValueError(f"invalid k: {k!r}; allowed: an integer >= 1")
    rng = np.random.default_rng(seed)
    out = []
    for c in range(clustering.n_clusters):
        medoid = int(clustering.medoids[c])
        others = np.flatnonzero(clustering.labels == c)
        others = others[others != medoid]
        if others.size > k - 1:
            others = np.sort(rng.choice(others, size=k - 1, replace=False))
        out.append(np.concatenate([[medoid], others]).astype(np.int64))
    return out
