"""dbn_jax.quality: the AIS likelihood of the layer-1 RBM and the fantasies of the top RBM (seeded)."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest

from dbn_jax import ais
from dbn_jax.quality import ais_quality, top_rbm_samples
from dbn_jax.rbm import RBMParams

N_CHAINS, N_BETAS = 50, 300  # one AIS configuration for the module: the annealing loop compiles once
KEYS = {"quality/h1/log_z", "quality/h1/log_z_std_err", "quality/h1/test_log_likelihood"}


def _rbm(rng: np.random.Generator, n_visible: int, n_hidden: int, scale: float = 0.5) -> RBMParams:
    return RBMParams(
        np.asarray(rng.normal(0, scale, (n_visible, n_hidden)), np.float32),
        np.asarray(rng.normal(0, scale, n_visible), np.float32),
        np.asarray(rng.normal(0, scale, n_hidden), np.float32),
    )


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    x_train = (rng.random((200, 36)) < 0.3).astype(np.float32)
    x_test = rng.random((50, 36)).astype(np.float32)  # gray levels: binarised for the likelihood
    return _rbm(rng, 36, 8), x_train, x_test


def test_top_rbm_samples_are_pixel_probabilities_and_deterministic():
    rng = np.random.default_rng(0)
    layers = [
        RBMParams(*(np.asarray(a, np.float32) for a in (rng.normal(0, 0.5, (16, 8)), np.zeros(16), np.zeros(8)))),
        RBMParams(*(np.asarray(a, np.float32) for a in (rng.normal(0, 0.5, (8, 6)), np.zeros(8), np.zeros(6)))),
    ]
    a = top_rbm_samples(jax.random.key(3), layers, n=5, gibbs_steps=20)
    b = top_rbm_samples(jax.random.key(3), layers, n=5, gibbs_steps=20)
    c = top_rbm_samples(jax.random.key(4), layers, n=5, gibbs_steps=20)
    assert a.shape == (5, 16) and a.dtype == np.float64 and np.all((a > 0) & (a < 1))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_ais_quality_logs_the_three_keys_finite_and_seeded(data):
    params, x_train, x_test = data
    q = ais_quality(params, x_train, x_test, seed=0, n_chains=N_CHAINS, n_betas=N_BETAS)
    assert set(q) == KEYS
    assert all(isinstance(v, float) and math.isfinite(v) for v in q.values())
    assert q["quality/h1/test_log_likelihood"] < 0 and q["quality/h1/log_z_std_err"] > 0
    assert ais_quality(params, x_train, x_test, seed=0, n_chains=N_CHAINS, n_betas=N_BETAS) == q
    other = ais_quality(params, x_train, x_test, seed=1, n_chains=N_CHAINS, n_betas=N_BETAS)
    assert other["quality/h1/log_z"] != q["quality/h1/log_z"]


def test_ais_quality_is_the_base_rate_ais_of_the_seed_and_near_the_exact_log_z(data):
    params, x_train, x_test = data
    q = ais_quality(params, x_train, x_test, seed=5, n_chains=N_CHAINS, n_betas=N_BETAS)
    ref = ais.ais_log_partition(
        jax.random.key(5), params, n_chains=N_CHAINS, n_betas=N_BETAS, base_b_vis=ais.base_rate_biases(x_train)
    )
    assert q["quality/h1/log_z"] == ref.log_z and q["quality/h1/log_z_std_err"] == ref.log_z_std_err
    exact = ais.log_partition_exact(params)
    assert abs(q["quality/h1/log_z"] - exact) < 3 * q["quality/h1/log_z_std_err"] + 0.05


def test_ais_quality_binarises_gray_test_images_by_one_seeded_draw(data):
    params, x_train, x_test = data
    q = ais_quality(params, x_train, x_test, seed=2, n_chains=N_CHAINS, n_betas=N_BETAS)
    drawn = (np.random.default_rng(2).random(x_test.shape, dtype=np.float32) < x_test).astype(np.float32)
    expected = ais.test_log_likelihood(params, drawn, q["quality/h1/log_z"])
    assert q["quality/h1/test_log_likelihood"] == expected
    # binary test images are taken as they are
    binary = ais_quality(params, x_train, drawn, seed=2, n_chains=N_CHAINS, n_betas=N_BETAS)
    assert binary["quality/h1/test_log_likelihood"] == expected
    assert ais.test_log_likelihood(params, x_test, q["quality/h1/log_z"]) != expected  # the draw matters
