"""Known answers and cross-checks against POT for :mod:`analysis.emd`."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import ot
import pytest
from scipy.stats import spearmanr

from analysis import emd
from analysis.emd import METHODS, emd_pair, normalise_fields, pairwise_emd

SHAPE = (28, 28)


def smooth_fields(n: int, seed: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    """``(n, h * w)`` sums of 2-5 Gaussian blobs with random signs, always with both signs."""
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0 : shape[0], 0 : shape[1]]
    out = np.empty((n, shape[0] * shape[1]))
    i = 0
    while i < n:
        k = int(rng.integers(2, 6))
        signs = np.r_[1.0, -1.0, rng.choice([-1.0, 1.0], k - 2)]
        field = np.zeros(shape)
        for sign in signs:
            centre = rng.uniform(3, np.array(shape) - 3)
            width = rng.uniform(1.5, 5.0)
            field += (
                sign
                * rng.uniform(0.5, 1.0)
                * np.exp(-((rows - centre[0]) ** 2 + (cols - centre[1]) ** 2) / (2 * width**2))
            )
        if field.max() > 0 > field.min():  # a wide blob can swallow one of the other sign: draw again
            out[i] = field.ravel()
            i += 1
    return out


def dirac(r: int, c: int, shape: tuple[int, int] = SHAPE) -> np.ndarray:
    field = np.zeros(shape)
    field[r, c] = 1.0
    return field.ravel()


def parts(s_a: np.ndarray, s_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    diff = s_a - s_b
    return np.clip(diff, 0, None), np.clip(-diff, 0, None)


@pytest.fixture(scope="module")
def fields8() -> np.ndarray:
    return smooth_fields(8, seed=1)


# ------------------------------------------------------------------------------------------ known answers


@pytest.mark.parametrize(("p1", "p2"), [((3, 4), (20, 11)), ((0, 0), (27, 27)), ((14, 2), (14, 9))])
def test_one_pixel_fields_exact_is_their_distance(p1, p2):
    a, b = dirac(*p1), dirac(*p2)
    assert emd_pair(a, b, "exact") == pytest.approx(np.hypot(p1[0] - p2[0], p1[1] - p2[1]), rel=1e-9)
    assert emd_pair(a, b, "exact", metric="cityblock") == pytest.approx(
        abs(p1[0] - p2[0]) + abs(p1[1] - p2[1]), rel=1e-9
    )


def test_one_pixel_fields_pooled():
    # Same offset within their 2x2 cells: the pooled cell centres are exactly as far apart as the pixels.
    a, b = dirac(2, 5), dirac(18, 13)
    assert emd_pair(a, b, "pooled") == pytest.approx(np.hypot(16, 8), rel=1e-9)
    assert emd_pair(a, b, "pooled", metric="cityblock") == pytest.approx(24.0, rel=1e-9)
    # Different offsets: off by at most one pooled cell diagonal (sqrt(2) pixels) of transport.
    c, d = dirac(3, 4), dirac(10, 21)
    assert abs(emd_pair(c, d, "pooled") - np.hypot(7, 17)) <= np.sqrt(2) + 1e-12


def test_one_pixel_fields_sliced():
    p1, p2 = np.array([4, 6]), np.array([22, 19])
    got = emd_pair(dirac(*p1), dirac(*p2), "sliced", n_projections=256)
    theta = emd.sliced_projections(256)
    assert got == pytest.approx(np.abs((p1 - p2) @ theta).mean(), rel=1e-12)  # mean |<x - y, θ>|
    # E|<x - y, θ>| over θ uniform on the half circle is (2 / π) |x - y|.
    assert got == pytest.approx(2 / np.pi * np.hypot(*(p1 - p2)), rel=0.05)


def test_normalise_fields():
    x = np.array([[2.0, -1.0, 0.0, -3.0], [0.0, 1.0, 3.0, 0.0], [-1.0, 0.0, 0.0, 0.0]])
    s = normalise_fields(x)
    assert s.dtype == np.float64
    np.testing.assert_allclose(s[0], [1.0, -0.25, 0.0, -0.75])
    np.testing.assert_allclose(s[1], [0.0, 0.25, 0.75, 0.0])  # no negative part: it stays zero
    np.testing.assert_allclose(s[2], [-1.0, 0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="field 1 is all zero"):
        normalise_fields(np.array([[1.0, -1.0], [0.0, 0.0]]))


# ------------------------------------------------------------------------------------------ metric axioms


@pytest.mark.parametrize("method", METHODS)
def test_metric_axioms(fields8, method):
    x = np.vstack([fields8, 3.0 * fields8[:1]])  # a rescaled copy normalises to the same field
    dist = pairwise_emd(x, method, n_jobs=1)
    assert dist.shape == (9, 9) and dist.dtype == np.float64
    np.testing.assert_array_equal(np.diag(dist), 0.0)
    np.testing.assert_array_equal(dist, dist.T)
    assert dist[0, 8] == pytest.approx(0.0, abs=1e-12)
    assert (dist[np.triu_indices(8, 1)] > 0).all()
    for i, j, k in itertools.permutations(range(8), 3):
        assert dist[i, j] <= dist[i, k] + dist[k, j] + 1e-9


# ------------------------------------------------------------------------------------- agreement with POT


def test_exact_matches_dense_ot_emd2(fields8):
    coords = emd.grid_coords(SHAPE)
    s = normalise_fields(fields8[:6])
    got = pairwise_emd(fields8[:6], "exact", n_jobs=1)
    cost = {m: ot.dist(coords, coords, metric=m) for m in ("euclidean", "cityblock")}
    got_l1 = pairwise_emd(fields8[:6], "exact", n_jobs=1, metric="cityblock")
    for i, j in itertools.combinations(range(6), 2):
        p, q = parts(s[i], s[j])
        assert got[i, j] == pytest.approx(ot.emd2(p, q, cost["euclidean"]), rel=1e-9)
        assert got_l1[i, j] == pytest.approx(ot.emd2(p, q, cost["cityblock"]), rel=1e-9)


def test_pooled_matches_ot_emd2_on_pooled_grid(fields8):
    pooled = emd.pool_fields(normalise_fields(fields8[:4]), SHAPE)
    centres = 2.0 * emd.grid_coords((14, 14)) + 0.5
    cost = ot.dist(centres, centres, metric="euclidean")
    got = pairwise_emd(fields8[:4], "pooled", n_jobs=1)
    for i, j in itertools.combinations(range(4), 2):
        assert got[i, j] == pytest.approx(ot.emd2(*parts(pooled[i], pooled[j]), cost), rel=1e-9)


def test_sliced_matches_ot_sliced_wasserstein(fields8):
    coords = emd.grid_coords(SHAPE)
    theta = emd.sliced_projections(64)
    s = normalise_fields(fields8)
    got = pairwise_emd(fields8, "sliced", n_jobs=1, n_projections=64)
    for i, j in [(0, 1), (2, 6), (5, 4)]:
        # The two halves p_a + n_b and p_b + n_a as weighted point clouds (mass 2 each, given to POT as 1).
        u = np.clip(s[i], 0, None) + np.clip(-s[j], 0, None)
        v = np.clip(s[j], 0, None) + np.clip(-s[i], 0, None)
        mass = u.sum()
        ref = mass * ot.sliced_wasserstein_distance(coords, coords, u / mass, v / mass, projections=theta, p=1)
        assert got[i, j] == pytest.approx(ref, rel=1e-9)


def test_pooled_ranks_like_exact():
    x = smooth_fields(24, seed=7)
    exact = pairwise_emd(x, "exact", n_jobs=2)
    pooled = pairwise_emd(x, "pooled", n_jobs=2)
    iu = np.triu_indices(24, 1)
    assert spearmanr(exact[iu], pooled[iu]).statistic > 0.99


# ------------------------------------------------------------------------------------ determinism, errors


@pytest.mark.parametrize("method", METHODS)
def test_n_jobs_does_not_change_the_output(method):
    x = smooth_fields(12 if method != "exact" else 6, seed=11)
    np.testing.assert_array_equal(
        pairwise_emd(x, method, n_jobs=1, n_projections=32), pairwise_emd(x, method, n_jobs=2, n_projections=32)
    )


def test_input_validation():
    x = smooth_fields(3, seed=0)
    with pytest.raises(ValueError, match=r"analysis\.emd allows method in \('exact', 'pooled', 'sliced'\)"):
        pairwise_emd(x, "wasserstein")
    with pytest.raises(ValueError, match="unknown metric"):
        pairwise_emd(x, "exact", metric="chebyshev")
    with pytest.raises(ValueError, match="784 pixels but shape"):
        pairwise_emd(x, shape=(27, 28))
    with pytest.raises(ValueError, match="2-D array"):
        pairwise_emd(x[0])
    with pytest.raises(ValueError, match="even image shape"):
        pairwise_emd(x[:, :783], "pooled", shape=(27, 29))
    with pytest.raises(ValueError, match="field 2 is all zero"):
        pairwise_emd(np.vstack([x[:2], np.zeros(784)]))
    with pytest.raises(ValueError, match="non-finite"):
        pairwise_emd(np.vstack([x[:2], np.full(784, np.nan)]))
    with pytest.raises(ValueError, match="different net mass"):
        pairwise_emd(np.vstack([x[:2], dirac(3, 3)]), "exact", metric="cityblock")
    with pytest.raises(ValueError, match="n_jobs"):
        pairwise_emd(x, n_jobs=0)
    with pytest.raises(ValueError, match="n_projections"):
        pairwise_emd(x, "sliced", n_projections=0)
    with pytest.raises(ValueError, match="metric='euclidean'"):
        pairwise_emd(x, "sliced", metric="cityblock")
    with pytest.raises(ValueError, match="same number of pixels"):
        emd_pair(x[0], x[1, :100])


def test_progress_bar_does_not_change_the_output(capsys):
    x = smooth_fields(5, seed=2)
    np.testing.assert_array_equal(
        pairwise_emd(x, "pooled", n_jobs=1, progress=True), pairwise_emd(x, "pooled", n_jobs=1)
    )


def test_one_sided_fields_use_a_dummy_bin(fields8):
    """A field with one sign (net mass -1) against two-sided ones: EMD-hat, the excess mass moved to a dummy bin
    at half the largest ground distance (as seen in trained h3 fields); still a metric."""
    coords = emd.grid_coords(SHAPE)
    cost = ot.dist(coords, coords, metric="euclidean")
    dummy = 0.5 * cost.max()
    one_sided = -np.abs(fields8[0])
    x = np.vstack([one_sided, fields8[1:4]])
    got = pairwise_emd(x, "exact", n_jobs=1)
    s = normalise_fields(x)
    for j in (1, 2, 3):
        p, q = parts(s[0], s[j])
        excess = q.sum() - p.sum()
        assert excess == pytest.approx(1.0)  # net mass -1 against 0
        m = np.vstack([cost, np.full((1, cost.shape[1]), dummy)])
        expected = ot.emd2(np.append(p, excess), q, m)
        assert got[0, j] == pytest.approx(expected, rel=1e-9)
    for i, j, k in itertools.permutations(range(4), 3):
        assert got[i, k] <= got[i, j] + got[j, k] + 1e-9
    for method in ("pooled", "sliced"):
        d = pairwise_emd(x, method, n_jobs=1)
        assert np.all(np.isfinite(d)) and np.allclose(d, d.T) and np.all(d[0, 1:] > 0)


@pytest.mark.parametrize("k", [1, 7, 64, 300])
def test_sliced_directions_are_short_integer_vectors_one_per_sector(k):
    theta = emd.sliced_projections(k)
    assert theta.shape == (2, k)
    np.testing.assert_allclose(np.hypot(*theta), 1.0, rtol=1e-12)
    angle = np.arctan2(theta[1], theta[0]) % np.pi
    assert np.array_equal(np.sort(np.floor(angle * k / np.pi).astype(int)), np.arange(k))  # one per sector
    # Each is a primitive integer vector (p, q) scaled to unit length.
    pq = []
    for t0, t1 in theta.T:
        if abs(t1) < 1e-12:
            pq.append((1, 0))
            continue
        r = Fraction(t0 / t1).limit_denominator(4 * k + 64)
        p, q = r.numerator, r.denominator
        assert np.allclose(np.array([p, q]) / np.hypot(p, q) * np.sign(t1), [t0, t1], atol=1e-12)
        pq.append((p, q))
    if k == 64:  # along these directions a 28x28 grid has few distinct positions: the embedding shrinks 3.6x
        rows, cols = np.divmod(np.arange(784), 28)
        width = sum(np.unique(p * rows + q * cols).size - 1 for p, q in pq)
        assert width == 13924
