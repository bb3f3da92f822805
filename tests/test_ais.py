"""Known-answer tests for dbn_jax.ais: exact log Z by brute force, AIS against it, test log-likelihood."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

# Imported as a module: a bare ``test_log_likelihood`` in this namespace would look like a test to pytest.
from dbn_jax import ais
from dbn_jax.rbm import RBMParams

# One AIS configuration shared by every AIS call below, so the jitted annealing loop compiles once per module.
AIS_V, AIS_H, N_CHAINS, N_BETAS = 12, 8, 100, 1000


def binary_states(n: int) -> np.ndarray:
    """All ``2**n`` binary vectors of length ``n``, ``(2**n, n)`` float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def random_params(seed: int, n_visible: int, n_hidden: int, scale: float = 1.0, dtype=np.float64) -> RBMParams:
    """Weights and biases ``scale * N(0, 1)``: numpy float64 arrays, or jax arrays for ``dtype=np.float32``."""
    rng = np.random.default_rng(seed)
    arrays = (
        scale * rng.normal(size=(n_visible, n_hidden)),
        scale * rng.normal(size=n_visible),
        scale * rng.normal(size=n_hidden),
    )
    if dtype == np.float64:  # jax without x64 would silently truncate to float32
        return RBMParams(*arrays)
    return RBMParams(*(jnp.asarray(a, dtype) for a in arrays))


def joint_log_unnorm(p: RBMParams) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``-E(v, h)`` over every joint state, ``(2**n_visible, 2**n_hidden)``, with the state lists, in float64."""
    w, b_vis, b_hid = (np.asarray(a, np.float64) for a in p)
    vs, hs = binary_states(w.shape[0]), binary_states(w.shape[1])
    neg_e = np.array([[v @ b_vis + h @ b_hid + v @ w @ h for h in hs] for v in vs])
    return neg_e, vs, hs


def brute_force_log_z(p: RBMParams) -> float:
    neg_e, _, _ = joint_log_unnorm(p)
    return float(np.log(np.sum(np.exp(neg_e))))


@pytest.fixture(scope="module")
def ais_rbm() -> tuple[RBMParams, float]:
    """The tiny float32 AIS target (weights ``N(0, 0.5²)``, biases ``N(0, 0.5²)``) and its exact log Z."""
    p = random_params(0, AIS_V, AIS_H, scale=0.5, dtype=np.float32)
    return p, ais.log_partition_exact(p)


@pytest.fixture(scope="module")
def ais_result(ais_rbm) -> ais.AISResult:
    p, _ = ais_rbm
    return ais.ais_log_partition(jax.random.key(1), p, n_chains=N_CHAINS, n_betas=N_BETAS)


# ------------------------------------------------------------------------------------------
# Exact log Z
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(3, 2), (2, 3), (2, 2)])
def test_log_partition_exact_matches_joint_enumeration(shape):
    # (3, 2) enumerates the hiddens, (2, 3) the visibles: both branches against Σ_{v,h} exp(-E(v, h)).
    p = random_params(7, *shape, scale=1.5)
    assert ais.log_partition_exact(p) == pytest.approx(brute_force_log_z(p), abs=1e-10)


def test_log_partition_exact_known_value_zero_params():
    # All-zero RBM: every one of the 2**(V+H) joint states has energy 0.
    p = RBMParams(w=np.zeros((4, 3)), b_vis=np.zeros(4), b_hid=np.zeros(3))
    assert ais.log_partition_exact(p) == pytest.approx(7 * math.log(2.0), abs=1e-12)


def test_log_partition_exact_large_biases_do_not_overflow():
    # log Z ~ 1e3: a naive sum of exp(-E) overflows; compare with a stable log-sum-exp of the joint table.
    p = random_params(3, 3, 2, scale=300.0)
    neg_e = joint_log_unnorm(p)[0]
    m = float(np.max(neg_e))
    assert m > 800.0
    assert ais.log_partition_exact(p) == pytest.approx(m + math.log(np.sum(np.exp(neg_e - m))), abs=1e-9)


def test_log_partition_exact_rejects_too_many_states():
    p = RBMParams(w=np.zeros((21, 22)), b_vis=np.zeros(21), b_hid=np.zeros(22))
    with pytest.raises(ValueError, match="MAX_EXACT_UNITS = 20"):
        ais.log_partition_exact(p)


# ------------------------------------------------------------------------------------------
# AIS
# ------------------------------------------------------------------------------------------


def test_ais_within_three_standard_errors_of_exact(ais_rbm, ais_result):
    _, exact = ais_rbm
    r = ais_result
    assert 0.0 < r.log_z_std_err < 0.1
    assert abs(r.log_z - exact) < 3.0 * r.log_z_std_err, (r.log_z, exact, r.log_z_std_err)
    assert r.log_weights.shape == (N_CHAINS,) and r.log_weights.dtype == np.float64
    assert np.all(np.isfinite(r.log_weights))


def test_ais_result_consistent_with_its_weights(ais_rbm, ais_result):
    p, _ = ais_rbm
    lw = ais_result.log_weights
    log_z_base = AIS_H * math.log(2.0) + AIS_V * math.log(2.0)  # zero base biases: uniform over v and h
    assert ais_result.log_z == pytest.approx(np.log(np.mean(np.exp(lw))) + log_z_base, abs=1e-9)
    w = np.exp(lw)
    assert ais_result.log_z_std_err == pytest.approx(
        np.std(w, ddof=1) / np.mean(w) / math.sqrt(N_CHAINS), rel=1e-9
    )


def test_ais_with_data_base_rate_and_schedule_array(ais_rbm):
    # A non-uniform base model (log-odds of some data) and an explicit, non-linear schedule of the same length.
    p, exact = ais_rbm
    x = np.random.default_rng(5).random((50, AIS_V)) < np.linspace(0.1, 0.9, AIS_V)
    b_base = ais.base_rate_biases(x)
    betas = np.linspace(0.0, 1.0, N_BETAS) ** 0.5
    r = ais.ais_log_partition(jax.random.key(2), p, n_chains=N_CHAINS, n_betas=betas, base_b_vis=b_base)
    assert 0.0 < r.log_z_std_err < 0.1
    assert abs(r.log_z - exact) < 3.0 * r.log_z_std_err, (r.log_z, exact, r.log_z_std_err)


def test_ais_coarse_schedule_still_unbiased(ais_rbm):
    # With only 3 temperatures AIS is still an unbiased estimator of Z, just a noisy one: many chains bring it
    # within 3 standard errors. Errors of order Δβ in the weight increments (e.g. the wrong temperature in one
    # term), invisible under the fine schedule above, show up here as a bias of tens of standard errors.
    p, exact = ais_rbm
    r = ais.ais_log_partition(jax.random.key(3), p, n_chains=5000, n_betas=3)
    assert 0.0 < r.log_z_std_err < 0.1
    assert abs(r.log_z - exact) < 3.0 * r.log_z_std_err, (r.log_z, exact, r.log_z_std_err)


def test_ais_deterministic_for_a_key(ais_rbm, ais_result):
    p, _ = ais_rbm
    same = ais.ais_log_partition(jax.random.key(1), p, n_chains=N_CHAINS, n_betas=N_BETAS)
    other = ais.ais_log_partition(jax.random.key(2), p, n_chains=N_CHAINS, n_betas=N_BETAS)
    assert same.log_z == ais_result.log_z
    np.testing.assert_array_equal(same.log_weights, ais_result.log_weights)
    assert other.log_z != ais_result.log_z
    assert abs(other.log_z - ais_result.log_z) < 0.1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_betas": 1},
        {"n_betas": np.array([0.0, 0.7, 0.5, 1.0])},
        {"n_betas": np.array([0.1, 1.0])},
        {"n_chains": 0},
        {"base_b_vis": np.zeros(3)},
    ],
)
def test_ais_rejects_bad_arguments(kwargs):
    p = random_params(0, 4, 3, dtype=np.float32)
    with pytest.raises(ValueError):
        ais.ais_log_partition(jax.random.key(0), p, **kwargs)


# ------------------------------------------------------------------------------------------
# Test log-likelihood
# ------------------------------------------------------------------------------------------


def test_log_likelihood_matches_brute_force():
    p = random_params(11, 4, 3, scale=1.0)
    neg_e, vs, _ = joint_log_unnorm(p)
    log_z = brute_force_log_z(p)
    log_p_v = np.log(np.sum(np.exp(neg_e), axis=1)) - log_z  # log p(v) for every visible state
    x = vs[[0, 3, 3, 9, 15, 6]]
    expected = float(np.mean(log_p_v[[0, 3, 3, 9, 15, 6]]))
    got = ais.test_log_likelihood(p, x, ais.log_partition_exact(p))
    assert got == pytest.approx(expected, abs=1e-5)  # free_energy runs in float32 without jax x64
    # A proper distribution: the probabilities of all visible states sum to 1.
    probs = [math.exp(ais.test_log_likelihood(p, v[None], log_z)) for v in vs]
    assert sum(probs) == pytest.approx(1.0, abs=1e-5)


def test_log_likelihood_is_not_collected_as_a_test():
    assert ais.test_log_likelihood.__test__ is False
