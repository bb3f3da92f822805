"""Structure vs function: the topology of the units (degree, strength, mean neighbour degree) averaged over the
clusters of their receptive fields, and how those averages co-vary across clusters (Testolin, Piccolini & Suweis
2018, Fig. 5)."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

from analysis.clustering import check_labels

__all__ = ["PAIRS", "cluster_structure", "structure_function_stats"]

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
        clusters where both columns are finite; each with its two-sided p-value under ``"<key>_p"``; and
        ``"n_clusters"`` (K). r and p are NaN, silently, when fewer than 3 clusters remain or either column is
        constant over them (r is undefined there; with 2 points it would be a meaningless +-1).

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
    for key, (x, y) in PAIRS.items():
        out[key], out[f"{key}_p"] = _pearson(cols[x], cols[y])
    out["n_clusters"] = float(lengths.pop())
    return out
