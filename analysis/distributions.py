"""Distributions of weights, strengths and degrees: summary statistics and histograms.

* :func:`distribution_stats` — n, mean, sd, skewness, excess kurtosis, fraction negative, min, max, median of a
  sample (moments in one vectorised pass, equal to ``scipy.stats.skew`` / ``kurtosis`` with ``bias=True``).
* :func:`histogram`, :func:`log_binned_histogram` — densities for plotting (linear bins; log bins for degrees).
* :func:`weight_stats`, :func:`strength_stats` — :func:`distribution_stats` of every weight matrix / every layer's
  strengths, flattened into ``dict[str, float]`` with ``/``-separated keys.

Pure functions of float64 numpy arrays: no I/O, no logging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from analysis.graph import as_weights, layer_names, strengths

STATS = ("n", "mean", "sd", "skewness", "excess_kurtosis", "frac_negative", "min", "max", "median")


def _as_sample(x: np.ndarray, name: str = "x") -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError(f"{name}: must hold at least 1 value, got an empty array")
    if not np.isfinite(a).all():
        raise ValueError(f"{name}: must be finite (found NaN or inf)")
    return a


def distribution_stats(x: np.ndarray) -> dict[str, float]:
    """Summary statistics of a sample (flattened).

    ``sd`` uses ddof=0; ``skewness`` = m3 / m2^1.5 and ``excess_kurtosis`` = m4 / m2² − 3 from the central moments
    (``scipy.stats.skew(bias=True)``, ``scipy.stats.kurtosis(fisher=True, bias=True)``); both are NaN for a
    constant sample.

    Args:
        x: any shape, finite, at least one value.

    Returns:
        Keys ``n, mean, sd, skewness, excess_kurtosis, frac_negative, min, max, median``.
    """
    a = _as_sample(x)
    mean = float(a.mean())
    d = a - mean
    d2 = d * d
    m2 = float(d2.mean())
    lo, hi = float(a.min()), float(a.max())
    if lo == hi or m2 <= (np.finfo(np.float64).eps * max(abs(mean), abs(lo), abs(hi))) ** 2:
        skew = kurt = math.nan
    else:
        m3 = float(np.dot(d2, d)) / a.size
        m4 = float(np.dot(d2, d2)) / a.size
        skew = m3 / m2**1.5
        kurt = m4 / (m2 * m2) - 3.0
    return {
        "n": float(a.size),
        "mean": mean,
        "sd": math.sqrt(m2),
        "skewness": skew,
        "excess_kurtosis": kurt,
        "frac_negative": float(np.count_nonzero(a < 0)) / a.size,
        "min": lo,
        "max": hi,
        "median": float(np.median(a)),
    }


def histogram(
    x: np.ndarray, bins: int = 100, range: tuple[float, float] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Density histogram with linear bins (``numpy.histogram(..., density=True)``).

    Args:
        x: any shape, finite, at least one value.
        bins: number of bins, >= 1.
        range: ``(lo, hi)`` with lo < hi, both finite; None for the sample's min and max.

    Returns:
        ``(density, edges)``: float64 arrays of shapes ``(bins,)`` and ``(bins + 1,)``; ``Σ density · width = 1``
        over the values inside the range.
    """
    a = _as_sample(x)
    if isinstance(bins, bool) or not isinstance(bins, int | np.integer) or bins < 1:
        raise ValueError(f"bins: must be an integer >= 1, got {bins!r}")
    if range is not None:
        if len(range) != 2:
            raise ValueError(f"range: must be (lo, hi), got {range!r}")
        lo, hi = float(range[0]), float(range[1])
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"range: must be finite with lo < hi, got {range!r}")
        range = (lo, hi)
    density, edges = np.histogram(a, bins=int(bins), range=range, density=True)
    return density.astype(np.float64), edges.astype(np.float64)


def log_binned_histogram(k: np.ndarray, n_bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Log-binned density of a non-negative sample such as a degree sequence.

    Zeros (isolated units) are left out: the density is that of the positive values, over ``n_bins`` bins with
    log-spaced edges from ``min(1, min positive)`` to the maximum (last bin closed). ``P`` is the count in each bin
    / (number of positive values · bin width), so ``Σ P · width = 1``; empty bins have ``P = 0``. When all positive
    values are equal there is one bin ``[v/√2, v·√2]``.

    Args:
        k: any shape, finite, all >= 0.
        n_bins: number of bins, >= 1.

    Returns:
        ``(centres, P)``: geometric bin centres and densities, float64 arrays of shape ``(n_bins,)``
        (``(1,)`` for a single value, ``(0,)`` when no value is positive).
    """
    a = np.asarray(k, dtype=np.float64).ravel()
    if not np.isfinite(a).all():
        raise ValueError("k: must be finite (found NaN or inf)")
    if (a < 0).any():
        raise ValueError("k: must be >= 0 (degrees), found negative values")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins: must be an integer >= 1, got {n_bins!r}")
    pos = a[a > 0]
    if pos.size == 0:
        return np.empty(0), np.empty(0)
    lo, hi = min(1.0, float(pos.min())), float(pos.max())
    if lo == hi:
        edges = np.array([lo / math.sqrt(2.0), lo * math.sqrt(2.0)])
    else:
        edges = np.geomspace(lo, hi, int(n_bins) + 1)
        edges[0], edges[-1] = lo, hi
    counts, _ = np.histogram(pos, bins=edges)
    widths = np.diff(edges)
    centres = np.sqrt(edges[:-1] * edges[1:])
    return centres, counts / (pos.size * widths)


def weight_stats(weights: Sequence[np.ndarray]) -> dict[str, float]:
    """:func:`distribution_stats` of every weight matrix and of all weights pooled.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.

    Returns:
        Keys ``w<l>/<stat>`` for l = 1..L and ``all/<stat>``, ``<stat>`` among :data:`STATS`.
    """
    ws = as_weights(weights)
    out: dict[str, float] = {}
    for i, w in enumerate(ws, start=1):
        out.update({f"w{i}/{s}": v for s, v in distribution_stats(w).items()})
    pooled = np.concatenate([w.ravel() for w in ws]) if len(ws) > 1 else ws[0]
    out.update({f"all/{s}": v for s, v in distribution_stats(pooled).items()})
    return out


def strength_stats(weights: Sequence[np.ndarray]) -> dict[str, float]:
    """:func:`distribution_stats` of the signed strengths (:func:`analysis.graph.strengths`) of every layer.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.

    Returns:
        Keys ``<layer>/<side>/<stat>`` for every unit layer (``v``, ``h1``, ...) and every side it has (``out``
        below the top, ``in`` above ``v``, ``total`` everywhere), ``<stat>`` among :data:`STATS`.
    """
    per_layer = strengths(weights)
    out: dict[str, float] = {}
    for name, sides in zip(layer_names(len(per_layer)), per_layer, strict=True):
        for side, s in sides.items():
            out.update({f"{name}/{side}/{k}": v for k, v in distribution_stats(s).items()})
    return out
