"""Structure vs function: the topology of the units (degree, strength, mean neighbour degree) averaged over the
clusters of their receptive fields, and how those averages co-vary across clusters (Testolin, Piccolini & Suweis
2018, Fig. 5).

Sides. A hidden unit has edges on two sides: ``out`` (to the next layer; the paper's strength is "the sum of the
weights from the node to all nodes of the next layer") and ``in`` (from the previous layer); ``total`` is both.
:func:`unit_structure` takes degree, strength and mean neighbour degree of one side from that side's edges only:

* ``out`` of a unit i of layer l: ``k = #{j in l+1: edge i-j}``, ``s = sum_j w_ij`` over all of layer l+1 (the
  signed strength of the full weighted graph), ``k_nn = mean over those j of k_j^in``, where ``k_j^in`` is j's
  degree towards layer l: every quantity lives in the one bipartite graph between l and l+1.
* ``in``: the same with the matrix below (``k_j^out`` of the neighbours in layer l-1).
* ``total``: ``k = k^out + k^in``, ``s = s^out + s^in`` and ``k_nn`` = the mean *total* degree of all neighbours
  (networkx's ``average_neighbor_degree`` on the whole thresholded graph).

:func:`label_permutation_null` asks whether the partition matters at all: it keeps the network and the cluster
sizes, shuffles which unit carries which label, and recomputes every cluster-level correlation.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from analysis import graph as G
from analysis.clustering import check_labels

__all__ = [
    "PAIRS",
    "SIDES",
    "cluster_structure",
    "label_permutation_null",
    "layer_sides",
    "structure_function_stats",
    "unit_structure",
    "unit_stats",
]

SIDES = ("out", "in", "total")

# stat key -> (x column, y column)
PAIRS: dict[str, tuple[str, str]] = {
    "pearson_k_s": ("mean_degree", "mean_strength"),
    "pearson_k_knn": ("mean_degree", "mean_knn"),
    "pearson_s_knn": ("mean_strength", "mean_knn"),
}


def _column(name: str, x: np.ndarray, n: int, allow_nan: bool = False) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.shape[0] != n:
        raise ValueError(f"invalid {name}: shape {x.shape}; allowed: ({n},), one value per unit")
    bad = np.isinf(x) if allow_nan else ~np.isfinite(x)
    if np.any(bad):
        allowed = "finite values or NaN" if allow_nan else "finite values"
        raise ValueError(f"invalid {name}: contains {'inf' if allow_nan else 'NaN or inf'}; allowed: {allowed}")
    return x


def cluster_structure(
    labels: np.ndarray, degree: np.ndarray, strength: np.ndarray, knn: np.ndarray
) -> dict[str, np.ndarray]:
    """Per-cluster means of the units' degree, strength and mean neighbour degree.

    Args:
        labels: ``(n,)`` cluster of each unit, integers ``0..K-1``, every cluster non-empty.
        degree: ``(n,)`` degree ``k`` of each unit, finite.
        strength: ``(n,)`` strength ``s`` of each unit, finite.
        knn: ``(n,)`` mean degree of each unit's neighbours ``k_nn``; NaN (undefined) for isolated units.

    Returns:
        A column table with ``K`` rows: ``"cluster"`` (int64, ``0..K-1``), ``"size"`` (int64), ``"mean_degree"``,
        ``"mean_strength"``, ``"mean_knn"`` (float64). ``mean_knn`` averages the non-NaN values only and is NaN
        for a cluster whose units are all isolated (no warning).

    Raises:
        ValueError: arrays of different lengths, non-finite degree / strength, inf in knn, invalid labels.
    """
    lab = np.asarray(labels)
    if lab.ndim != 1:
        raise ValueError(f"invalid labels: shape {lab.shape}; allowed: a 1-d array, one label per unit")
    n = lab.shape[0]
    lab, k = check_labels(lab, n)
    degree = _column("degree", degree, n)
    strength = _column("strength", strength, n)
    knn = _column("knn", knn, n, allow_nan=True)

    size = np.bincount(lab, minlength=k)
    defined = ~np.isnan(knn)
    knn_count = np.bincount(lab[defined], minlength=k)
    knn_sum = np.bincount(lab[defined], weights=knn[defined], minlength=k)
    mean_knn = np.full(k, np.nan)
    np.divide(knn_sum, knn_count, out=mean_knn, where=knn_count > 0)
    return {
        "cluster": np.arange(k, dtype=np.int64),
        "size": size.astype(np.int64),
        "mean_degree": np.bincount(lab, weights=degree, minlength=k) / size,
        "mean_strength": np.bincount(lab, weights=strength, minlength=k) / size,
        "mean_knn": mean_knn,
    }


def _pearson(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return float("nan"), float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.NearConstantInputWarning)
        res = stats.pearsonr(x, y)
    return float(res.statistic), float(res.pvalue)


def structure_function_stats(table: dict[str, np.ndarray]) -> dict[str, float]:
    """Pearson correlations across clusters between mean degree, mean strength and mean ``k_nn``.

    Args:
        table: a column table from :func:`cluster_structure` (``"mean_degree"``, ``"mean_strength"``,
            ``"mean_knn"``, each ``(K,)``).

    Returns:
        ``"pearson_k_s"``, ``"pearson_k_knn"``, ``"pearson_s_knn"``: Pearson r (``scipy.stats.pearsonr``) over the
        clusters where both columns are finite; each with its two-sided p-value under ``"<key>_p"``; when the
        table has a ``"size"`` column, the size-weighted r under ``"<key>_weighted"`` (each cluster weighted by
        its number of units, so a singleton counts 1/n of the layer, not 1/K); and ``"n_clusters"`` (K). r and p
        are NaN, silently, when fewer than 3 clusters remain or either column is constant over them (r is
        undefined there; with 2 points it would be a meaningless +-1).

    Raises:
        ValueError: a column missing or the columns of different lengths.
    """
    cols = {}
    for name in ("mean_degree", "mean_strength", "mean_knn"):
        if name not in table:
            raise ValueError(f"invalid table: no column {name!r}; allowed: a table from cluster_structure()")
        cols[name] = np.asarray(table[name], dtype=np.float64)
        if cols[name].ndim != 1:
            raise ValueError(f"invalid table[{name!r}]: shape {cols[name].shape}; allowed: a 1-d column")
    lengths = {c.shape[0] for c in cols.values()}
    if len(lengths) != 1:
        raise ValueError(f"invalid table: columns of lengths {sorted(lengths)}; allowed: equal lengths")
    out: dict[str, float] = {}
    size = np.asarray(table["size"], dtype=np.float64) if "size" in table else None
    for key, (x, y) in PAIRS.items():
        out[key], out[f"{key}_p"] = _pearson(cols[x], cols[y])
        if size is not None:
            out[f"{key}_weighted"] = float(_pearson_rows(cols[x][None], cols[y][None], size)[0])
    out["n_clusters"] = float(lengths.pop())
    return out


def _pearson_rows(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """Row-wise (weighted) Pearson r of ``(P, K)`` arrays over the columns where both are finite.

    NaN for a row with fewer than 3 such columns or a constant column (as :func:`_pearson`). ``weights``
    ``(K,)`` (default all 1) weight the columns: weighted means, covariance and variances.
    """
    valid = np.isfinite(x) & np.isfinite(y)
    w = np.where(valid, 1.0 if weights is None else np.asarray(weights, dtype=np.float64)[None, :], 0.0)
    x0, y0 = np.where(valid, x, 0.0), np.where(valid, y, 0.0)
    wsum = w.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        dx = x0 - (w * x0).sum(axis=1, keepdims=True) / wsum
        dy = y0 - (w * y0).sum(axis=1, keepdims=True) / wsum
        sxy = (w * dx * dy).sum(axis=1)
        sxx = (w * dx * dx).sum(axis=1)
        syy = (w * dy * dy).sum(axis=1)
        r = sxy / np.sqrt(sxx * syy)
    # a column constant up to rounding (scipy's near-constant case) has no defined r either
    scale = np.maximum(np.abs(x0).max(axis=1, initial=0.0), np.abs(y0).max(axis=1, initial=0.0)) ** 2
    degenerate = (
        (valid.sum(axis=1) < 3) | (sxx <= 1e-24 * scale * wsum[:, 0]) | (syy <= 1e-24 * scale * wsum[:, 0])
    )
    r = np.clip(r, -1.0, 1.0)
    r[degenerate] = np.nan
    return r


# ---------------------------------------------------------------------------------------------------- sides


def layer_sides(layer: int, n_matrices: int, sides: Sequence[str] = SIDES) -> list[str]:
    """The sides of ``sides`` that a unit layer has: ``v`` (0) only ``out``, the top layer only ``in``.

    Args:
        layer: unit layer index, 0 = ``v``, ``n_matrices`` = the top layer.
        n_matrices: the number of weight matrices L.
        sides: the sides asked for, a subset of :data:`SIDES`.
    """
    if layer == 0:
        have = ("out",)
    elif layer == n_matrices:
        have = ("in",)
    else:
        have = SIDES
    return [s for s in sides if s in have]


def unit_structure(
    weights: Sequence[np.ndarray], masks: Sequence[np.ndarray], layer: int, side: str
) -> dict[str, np.ndarray]:
    """Degree, strength and mean neighbour degree of every unit of one layer, from one side's edges.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, float64, the full weighted graph (strength).
        masks: the thresholded graph, boolean, same shapes (degree and ``k_nn``).
        layer: unit layer index (0 = ``v``).
        side: ``"out"``, ``"in"`` or ``"total"``, one the layer has (:func:`layer_sides`); see the module
            docstring for the exact definitions.

    Returns:
        ``{"degree": int64 (n,), "strength": float64 (n,), "knn": float64 (n,)}``; ``knn`` is NaN for a unit
        with no edge on that side.

    Raises:
        ValueError: a side the layer does not have, or a layer out of range.
    """
    n_mat = len(masks)
    if not 0 <= layer <= n_mat:
        raise ValueError(f"invalid layer: {layer!r}; allowed: 0..{n_mat}")
    if side not in layer_sides(layer, n_mat):
        raise ValueError(
            f"invalid side: {side!r} for unit layer {layer}; allowed: {' | '.join(layer_sides(layer, n_mat))}"
        )
    if side == "total":  # the whole graph: the degrees, k_nn and strengths analysis.graph already defines
        degs = G.degrees(masks)
        knn = G.neighbour_degrees(masks, degs)[layer]
        return {"degree": degs[layer], "strength": G.strengths(weights)[layer]["total"], "knn": knn}
    if side == "out":
        m, w = np.asarray(masks[layer], dtype=np.float64), np.asarray(weights[layer], dtype=np.float64)
        k, s = m.sum(axis=1), w.sum(axis=1)
        nb_sum = m @ m.sum(axis=0)
    else:
        m, w = np.asarray(masks[layer - 1], dtype=np.float64), np.asarray(weights[layer - 1], dtype=np.float64)
        k, s = m.sum(axis=0), w.sum(axis=0)
        nb_sum = m.sum(axis=1) @ m
    k = np.asarray(np.rint(k), dtype=np.int64)
    knn = np.full(k.shape[0], np.nan)
    np.divide(nb_sum, k, out=knn, where=k > 0)
    return {"degree": k, "strength": np.asarray(s, dtype=np.float64), "knn": knn}


def unit_stats(unit: Mapping[str, np.ndarray]) -> dict[str, float]:
    """The three correlations of :data:`PAIRS` across units instead of clusters.

    Args:
        unit: ``{"degree", "strength", "knn"}`` from :func:`unit_structure`.

    Returns:
        ``"pearson_k_s"``, ``"pearson_k_knn"``, ``"pearson_s_knn"``: Pearson r over the units where both values
        are finite (units without a neighbour have no ``k_nn``).
    """
    cols = {"mean_degree": unit["degree"], "mean_strength": unit["strength"], "mean_knn": unit["knn"]}
    return {
        key: _pearson(np.asarray(cols[x], dtype=np.float64), np.asarray(cols[y], dtype=np.float64))[0]
        for key, (x, y) in PAIRS.items()
    }


# ----------------------------------------------------------------------------------------- label permutation


def label_permutation_null(
    labels: np.ndarray,
    units: Mapping[str, Mapping[str, np.ndarray]],
    observed: Mapping[str, Mapping[str, float]],
    n_permutations: int,
    seed: int | Sequence[int],
) -> dict[str, dict[str, float]]:
    """Whether a partition matters for the cluster-level correlations: the labels shuffled, sizes kept.

    Each permutation assigns the same multiset of labels to the units at random (``numpy.random.Generator.
    permuted``), so every cluster keeps its size and every unit its degree, strength and ``k_nn``; the per-cluster
    means and their (unweighted and size-weighted) Pearson r are recomputed for all permutations at once
    (``np.bincount`` over ``permutation * K + label``). Per statistic:

    * ``perm_mean``: the mean r of the random partitions (what any partition of these sizes gives);
    * ``perm_z = (r - perm_mean) / perm_sd`` (sd with ddof=1);
    * ``perm_p``: two-sided, ``min(1, 2 (min(b_ge, b_le) + 1) / (n + 1))`` with ``b_ge`` (``b_le``) the number
      of permutations with r at least (at most) the observed one and n the permutations with a defined r
      (Phipson & Smyth 2010's (b+1)/(n+1), doubled for two sides: the null is not centred at 0).

    Args:
        labels: ``(n,)`` cluster of each unit, ``0..K-1``, every cluster non-empty.
        units: side -> :func:`unit_structure` of these units.
        observed: side -> :func:`structure_function_stats` of the partition (keys ``pearson_*`` and
            ``pearson_*_weighted``).
        n_permutations: number of random partitions, >= 1.
        seed: seed of the permutations (an int or a sequence of ints for ``numpy.random.default_rng``).

    Returns:
        side -> ``{"<stat>/perm_mean", "<stat>/perm_z", "<stat>/perm_p"}`` for every ``pearson_*`` and
        ``pearson_*_weighted`` stat in ``observed[side]``; NaN where the observed r or the null is undefined.
    """
    lab = np.asarray(labels)
    n = lab.shape[0]
    lab, k = check_labels(lab, n)
    if isinstance(n_permutations, bool) or int(n_permutations) < 1:
        raise ValueError(f"invalid n_permutations: {n_permutations!r}; allowed: an integer >= 1")
    p = int(n_permutations)
    rng = np.random.default_rng(seed)
    shuffled = rng.permuted(np.broadcast_to(lab, (p, n)), axis=1)
    index = (shuffled + (np.arange(p, dtype=np.int64) * k)[:, None]).ravel()
    size = np.bincount(lab, minlength=k).astype(np.float64)

    def sums(x: np.ndarray) -> np.ndarray:
        return np.bincount(index, weights=np.broadcast_to(x, (p, n)).ravel(), minlength=p * k).reshape(p, k)

    out: dict[str, dict[str, float]] = {}
    for side, unit in units.items():
        knn = np.asarray(unit["knn"], dtype=np.float64)
        defined = ~np.isnan(knn)
        count = sums(defined.astype(np.float64))
        with np.errstate(invalid="ignore", divide="ignore"):
            means = {
                "mean_degree": sums(np.asarray(unit["degree"], dtype=np.float64)) / size,
                "mean_strength": sums(np.asarray(unit["strength"], dtype=np.float64)) / size,
                "mean_knn": np.where(count > 0, sums(np.where(defined, knn, 0.0)) / count, np.nan),
            }
        res: dict[str, float] = {}
        for key, (x, y) in PAIRS.items():
            for name, weights in ((key, None), (f"{key}_weighted", size)):
                if name not in observed[side]:
                    continue
                null = _pearson_rows(means[x], means[y], weights)
                res.update({f"{name}/{s}": v for s, v in _perm_summary(float(observed[side][name]), null).items()})
        out[side] = res
    return out


def _perm_summary(r: float, null: np.ndarray) -> dict[str, float]:
    null = null[np.isfinite(null)]
    if null.size < 2 or not np.isfinite(r):
        return {"perm_mean": float("nan"), "perm_z": float("nan"), "perm_p": float("nan")}
    mean, sd = float(null.mean()), float(null.std(ddof=1))
    # r of a permutation equal to the observed one up to rounding counts on both sides
    tol = 1e-12
    b_ge, b_le = int(np.sum(null >= r - tol)), int(np.sum(null <= r + tol))
    return {
        "perm_mean": mean,
        "perm_z": (r - mean) / sd if sd > 0 else float("nan"),
        "perm_p": min(1.0, 2.0 * (min(b_ge, b_le) + 1) / (null.size + 1)),
    }
