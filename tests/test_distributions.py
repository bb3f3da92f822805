"""Summary statistics and histograms of weights, strengths and degrees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from analysis.distributions import (
    STATS,
    distribution_stats,
    histogram,
    log_binned_histogram,
    strength_stats,
    weight_stats,
)
from analysis.graph import strengths


def test_distribution_stats_known_sample():
    x = np.array([1.0, 2.0, 3.0, 4.0, 10.0])
    st = distribution_stats(x)
    assert set(st) == set(STATS)
    assert st["n"] == 5 and st["mean"] == 4.0 and st["median"] == 3.0
    assert st["min"] == 1.0 and st["max"] == 10.0 and st["frac_negative"] == 0.0
    assert st["sd"] == pytest.approx(math.sqrt(10.0))  # deviations -3 -2 -1 0 6: Σd² = 50, /5
    assert st["skewness"] == pytest.approx(36 / 10**1.5)  # Σd³ = -27-8-1+216 = 180 → m3 = 36
    assert st["skewness"] == pytest.approx(scipy.stats.skew(x, bias=True), rel=1e-12)
    assert st["excess_kurtosis"] == pytest.approx(scipy.stats.kurtosis(x, fisher=True, bias=True), rel=1e-12)
    assert all(isinstance(v, float) for v in st.values())


@pytest.mark.parametrize("seed", range(4))
def test_distribution_stats_equal_numpy_scipy(seed):
    rng = np.random.default_rng(seed)
    x = rng.gamma(2.0, 1.0, size=(37, 11)) - 2.5
    st = distribution_stats(x)
    assert st["n"] == x.size
    assert st["mean"] == pytest.approx(x.mean(), rel=1e-12)
    assert st["sd"] == pytest.approx(x.std(ddof=0), rel=1e-12)
    assert st["skewness"] == pytest.approx(scipy.stats.skew(x, axis=None, bias=True), rel=1e-10)
    assert st["excess_kurtosis"] == pytest.approx(scipy.stats.kurtosis(x, axis=None, bias=True), rel=1e-10)
    assert st["frac_negative"] == pytest.approx((x < 0).mean())
    assert st["median"] == np.median(x) and st["min"] == x.min() and st["max"] == x.max()


def test_distribution_stats_edge_cases():
    st = distribution_stats(np.full(4, 2.5))
    assert st["sd"] == 0.0 and math.isnan(st["skewness"]) and math.isnan(st["excess_kurtosis"])
    assert distribution_stats(np.array([-1.0]))["frac_negative"] == 1.0
    with pytest.raises(ValueError, match="x"):
        distribution_stats(np.array([]))
    with pytest.raises(ValueError, match="x.*finite"):
        distribution_stats(np.array([1.0, np.nan]))


def test_histogram():
    rng = np.random.default_rng(0)
    x = rng.normal(size=1000)
    dens, edges = histogram(x, bins=30)
    assert dens.shape == (30,) and edges.shape == (31,) and dens.dtype == np.float64
    assert (dens * np.diff(edges)).sum() == pytest.approx(1.0)
    dens, edges = histogram(x, bins=10, range=(-1, 1))
    assert edges[0] == -1 and edges[-1] == 1
    with pytest.raises(ValueError, match="bins"):
        histogram(x, bins=0)
    with pytest.raises(ValueError, match="range"):
        histogram(x, range=(1, 1))


def _widths(centres: np.ndarray) -> np.ndarray:
    r = math.sqrt(centres[1] / centres[0])  # log-spaced: edges = centres / r, centres * r
    return centres * r - centres / r


def test_log_binned_histogram_integrates_to_one():
    rng = np.random.default_rng(0)
    k = np.concatenate([np.zeros(50, np.int64), rng.zipf(2.2, size=2000)])
    centres, p = log_binned_histogram(k, n_bins=15)
    assert centres.shape == p.shape == (15,)
    assert (p >= 0).all() and np.all(np.diff(centres) > 0)
    assert (p * _widths(centres)).sum() == pytest.approx(1.0, rel=1e-9)
    assert centres[0] > 1 and centres[-1] < k.max()
    # densities fall off for a heavy-tailed sample
    assert p[0] > p[len(p) // 2] >= p[-1]


def test_log_binned_histogram_degenerate():
    c, p = log_binned_histogram(np.zeros(10))
    assert c.shape == p.shape == (0,)
    c, p = log_binned_histogram(np.array([0, 1, 1, 1]))  # one bin [1/√2, √2] centred on 1
    assert c.tolist() == pytest.approx([1.0]) and p[0] * (math.sqrt(2) - 1 / math.sqrt(2)) == pytest.approx(1.0)
    c, p = log_binned_histogram(np.array([0, 3, 3, 3]), n_bins=5)  # bins over [1, 3], all mass in the last
    assert c.shape == (5,) and p[:-1].tolist() == [0.0] * 4 and (p * _widths(c)).sum() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="k"):
        log_binned_histogram(np.array([1, -1]))
    with pytest.raises(ValueError, match="n_bins"):
        log_binned_histogram(np.array([1, 2]), n_bins=0)


def test_weight_stats_keys_and_values():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=s) for s in [(6, 4), (4, 4), (4, 9)]]
    st = weight_stats(ws)
    assert set(st) == {f"{p}/{s}" for p in ["w1", "w2", "w3", "all"] for s in STATS}
    pooled = np.concatenate([w.ravel() for w in ws])
    assert st["all/n"] == 24 + 16 + 36
    assert st["all/mean"] == pytest.approx(pooled.mean()) and st["all/median"] == np.median(pooled)
    assert st["w2/sd"] == pytest.approx(ws[1].std())


def test_strength_stats_keys_and_values():
    rng = np.random.default_rng(0)
    ws = [rng.normal(size=s) for s in [(6, 4), (4, 4), (4, 9)]]
    st = strength_stats(ws)
    sides = {
        "v": ["out", "total"],
        "h1": ["out", "in", "total"],
        "h2": ["out", "in", "total"],
        "h3": ["in", "total"],
    }
    assert set(st) == {f"{n}/{side}/{s}" for n, ss in sides.items() for side in ss for s in STATS}
    s = strengths(ws)
    assert st["h1/in/mean"] == pytest.approx(s[1]["in"].mean())
    assert st["h3/total/skewness"] == pytest.approx(scipy.stats.skew(ws[2].sum(axis=0)))
    assert st["v/out/frac_negative"] == pytest.approx((ws[0].sum(axis=1) < 0).mean())
