"""Known-answer tests for dbn_jax.metrics."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from dbn_jax.metrics import (
    fit_softmax_regression,
    free_energy_gap,
    linear_readout_accuracy,
    pseudo_log_likelihood,
    reconstruction_error,
    softmax_regression_accuracy,
)
from dbn_jax.rbm import RBMParams


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_free_energy(p: RBMParams, v: np.ndarray) -> np.ndarray:
    return -(v @ p.b_vis) - np.sum(np.logaddexp(0.0, v @ p.w + p.b_hid), axis=-1)


def random_params(seed: int, n_visible: int, n_hidden: int) -> RBMParams:
    rng = np.random.default_rng(seed)
    return RBMParams(rng.normal(size=(n_visible, n_hidden)), rng.normal(size=n_visible), rng.normal(size=n_hidden))


def to_jax(p: RBMParams) -> RBMParams:
    return RBMParams(*(jnp.asarray(a) for a in p))


def binary(seed: int, shape) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) < 0.5).astype(np.float64)


# ------------------------------------------------------------------------------------------
# Free-energy gap, pseudo-log-likelihood, reconstruction error
# ------------------------------------------------------------------------------------------


def test_free_energy_gap_zero_on_same_data_and_known_value():
    p = random_params(0, 5, 3)
    a, b = binary(1, (7, 5)), binary(2, (4, 5))
    with jax.enable_x64(True):
        pj = to_jax(p)
        assert float(free_energy_gap(pj, jnp.asarray(a), jnp.asarray(a))) == 0.0
        gap = float(free_energy_gap(pj, jnp.asarray(a), jnp.asarray(b)))
        swapped = float(free_energy_gap(pj, jnp.asarray(b), jnp.asarray(a)))
    expected = np_free_energy(p, b).mean() - np_free_energy(p, a).mean()
    assert expected != 0.0
    np.testing.assert_allclose(gap, expected, rtol=1e-12)
    np.testing.assert_allclose(swapped, -expected, rtol=1e-12)


def test_pseudo_log_likelihood_one_sample_by_hand():
    p = random_params(3, 5, 4)
    v = np.array([[1.0, 0.0, 1.0, 1.0, 0.0]])
    key = jax.random.key(11)
    with jax.enable_x64(True):
        got = float(pseudo_log_likelihood(key, to_jax(p), jnp.asarray(v)))
        # The unit the estimator flips (drawn under the same x64 mode: randint's default int dtype follows it).
        i = int(jax.random.randint(key, (1,), 0, 5)[0])
    v_flip = v.copy()
    v_flip[0, i] = 1.0 - v_flip[0, i]
    # PLL = d · log σ(F(ṽ) - F(v)) = -d · log(1 + exp(F(v) - F(ṽ)))
    expected = -5 * np.log1p(np.exp(np_free_energy(p, v)[0] - np_free_energy(p, v_flip)[0]))
    assert got <= 0.0
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_pseudo_log_likelihood_batch_matches_numpy_and_is_non_positive():
    p = random_params(4, 6, 3)
    v = binary(5, (9, 6))
    key = jax.random.key(2)
    with jax.enable_x64(True):
        got = float(pseudo_log_likelihood(key, to_jax(p), jnp.asarray(v)))
        idx = np.asarray(jax.random.randint(key, (9,), 0, 6))
    assert len(set(idx.tolist())) > 1  # several units are flipped
    v_flip = v.copy()
    v_flip[np.arange(9), idx] = 1.0 - v_flip[np.arange(9), idx]
    expected = 6 * np.mean(np.log(sigmoid(np_free_energy(p, v_flip) - np_free_energy(p, v))))
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got < 0.0
    # float32, other keys and other params: always <= 0.
    for seed in range(3):
        pj = RBMParams(*(jnp.asarray(a, jnp.float32) for a in random_params(10 + seed, 6, 3)))
        assert float(pseudo_log_likelihood(jax.random.key(seed), pj, jnp.asarray(v, jnp.float32))) <= 0.0


def test_reconstruction_error_same_random_numbers():
    p = random_params(6, 5, 3)
    v = binary(7, (8, 5))
    key = jax.random.key(4)
    with jax.enable_x64(True):
        got = float(reconstruction_error(key, to_jax(p), jnp.asarray(v)))
        u = np.asarray(jax.random.uniform(key, (8, 3), jnp.float64))
    h = (u < sigmoid(v @ p.w + p.b_hid)).astype(np.float64)
    expected = np.mean((v - sigmoid(h @ p.w.T + p.b_vis)) ** 2)
    np.testing.assert_allclose(got, expected, rtol=1e-12)


# ------------------------------------------------------------------------------------------
# Softmax regression read-out
# ------------------------------------------------------------------------------------------


def blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """3 well-separated Gaussian classes in 4-D, offset and scaled (the fit standardises internally)."""
    rng = np.random.default_rng(seed)
    centers = np.array([[3.0, 0.0, 0.0, 0.0], [0.0, 3.0, 0.0, 0.0], [0.0, 0.0, 3.0, 0.0]])
    y = rng.integers(0, 3, n)
    x = centers[y] + 0.5 * rng.normal(size=(n, 4))
    return (10.0 + 0.1 * x).astype(np.float32), y.astype(np.int32)


def test_softmax_regression_separable_three_classes():
    x_tr, y_tr = blobs(300, 0)
    x_te, y_te = blobs(300, 1)
    w, b = fit_softmax_regression(jnp.asarray(x_tr), jnp.asarray(y_tr), n_classes=3)
    assert w.shape == (4, 3) and b.shape == (3,)
    assert np.all(np.isfinite(np.asarray(w))) and np.all(np.isfinite(np.asarray(b)))
    # (w, b) act on raw features (the standardisation is folded in).
    assert float(softmax_regression_accuracy(w, b, jnp.asarray(x_tr), jnp.asarray(y_tr))) > 0.95
    assert float(softmax_regression_accuracy(w, b, jnp.asarray(x_te), jnp.asarray(y_te))) > 0.95
    acc = float(
        linear_readout_accuracy(jnp.asarray(x_tr), jnp.asarray(y_tr), jnp.asarray(x_te), jnp.asarray(y_te))
    )
    assert acc > 0.95
    # Deterministic (full-batch L-BFGS from zero weights).
    w2, b2 = fit_softmax_regression(jnp.asarray(x_tr), jnp.asarray(y_tr), n_classes=3)
    np.testing.assert_array_equal(np.asarray(w2), np.asarray(w))
    np.testing.assert_array_equal(np.asarray(b2), np.asarray(b))


def test_softmax_regression_accuracy_by_hand():
    w = jnp.array([[1.0, 0.0], [0.0, 1.0]])
    b = jnp.array([0.0, 0.5])
    x = jnp.array([[2.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 3.0]])  # arg-max: 0, 1, 1, 1
    assert float(softmax_regression_accuracy(w, b, x, jnp.array([0, 1, 1, 0]))) == 0.75


def test_linear_readout_random_labels_is_near_chance():
    rng = np.random.default_rng(0)
    x_tr, x_te = rng.normal(size=(300, 4)).astype(np.float32), rng.normal(size=(400, 4)).astype(np.float32)
    y_tr, y_te = rng.integers(0, 2, 300).astype(np.int32), rng.integers(0, 2, 400).astype(np.int32)
    acc = float(
        linear_readout_accuracy(jnp.asarray(x_tr), jnp.asarray(y_tr), jnp.asarray(x_te), jnp.asarray(y_te))
    )
    # s.e. of a chance accuracy on 400 test rows is 0.025.
    assert 0.4 < acc < 0.6
