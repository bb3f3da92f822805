"""The quality of a trained DBN as a generative model: AIS likelihood of its first RBM, fantasies of its top one.

* :func:`ais_quality` — ``log Z`` of the layer-1 RBM by annealed importance sampling (:mod:`dbn_jax.ais`) and the
  mean log-likelihood of the test images, binarised by one Bernoulli draw of their grey levels.
* :func:`top_rbm_samples` — Gibbs chains of the top RBM propagated down to the pixels.

Only for stacked RBMs (not for the supervised MLP, whose layers are no RBMs). Both are seeded: the same seed gives
the same numbers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dbn_jax import ais as A
from dbn_jax.rbm import RBMParams, bernoulli, hidden_probs, visible_probs

__all__ = ["ais_quality", "top_rbm_samples"]


def top_rbm_samples(key: Any, layers: Sequence[Any], n: int = 64, gibbs_steps: int = 1000) -> np.ndarray:
    """Fantasies of the DBN: ``n`` Gibbs chains of the top RBM started from random binary states, run for
    ``gibbs_steps`` full steps, then propagated down to the pixels with each lower layer's visible
    probabilities (Hinton, Osindero & Teh 2006). Returns ``(n, n_visible)`` pixel probabilities (float64)."""
    top = layers[-1]
    k0, k1 = jax.random.split(key)
    v0 = bernoulli(k0, jnp.full((n, top.w.shape[0]), 0.5, jnp.float32))

    @jax.jit
    def chain(v, k):
        def step(v, kk):
            ka, kb = jax.random.split(kk)
            h = bernoulli(ka, hidden_probs(top, v))
            return bernoulli(kb, visible_probs(top, h)), None

        k_steps, k_last = jax.random.split(k)
        v, _ = jax.lax.scan(step, v, jax.random.split(k_steps, gibbs_steps))
        h = bernoulli(k_last, hidden_probs(top, v))
        return visible_probs(top, h)

    x = chain(v0, k1)
    for params in reversed(layers[:-1]):
        x = visible_probs(params, x)
    return np.asarray(x, dtype=np.float64)


def ais_quality(
    params: RBMParams,
    x_train: Any,
    x_test: Any,
    seed: int,
    n_chains: int = 100,
    n_betas: int = 2000,
) -> dict[str, float]:
    """AIS estimate of the layer-1 RBM ``params`` and the test likelihood it gives.

    The base model's visible biases are the base rates of ``x_train``; a test set of grey levels (anything but
    0 and 1) is binarised by one Bernoulli draw from ``numpy.random.default_rng(seed)`` (a binary RBM's
    likelihood is defined for binary images); the chains draw from ``jax.random.key(seed)``.

    Returns:
        ``quality/h1/log_z``, ``quality/h1/log_z_std_err`` and ``quality/h1/test_log_likelihood`` (mean nats per
        test image).
    """
    x_train = np.asarray(x_train, np.float32)
    x_test = np.asarray(x_test, np.float32)
    rng = np.random.default_rng(seed)
    if not np.all((x_test == 0) | (x_test == 1)):
        x_test = (rng.random(x_test.shape, dtype=np.float32) < x_test).astype(np.float32)
    res = A.ais_log_partition(
        jax.random.key(seed),
        params,
        n_chains=int(n_chains),
        n_betas=int(n_betas),
        base_b_vis=A.base_rate_biases(x_train),
    )
    return {
        "quality/h1/log_z": res.log_z,
        "quality/h1/log_z_std_err": res.log_z_std_err,
        "quality/h1/test_log_likelihood": A.test_log_likelihood(params, x_test, res.log_z),
    }
