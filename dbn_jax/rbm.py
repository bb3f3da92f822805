"""Bernoulli-Bernoulli restricted Boltzmann machine: parameters, conditionals, sampling, free energy.

Energy (Hinton 2002): ``E(v, h) = -v·b_vis - h·b_hid - vᵀ w h`` with binary ``v`` and ``h``. All functions are
pure and batch-first: ``v`` is ``(batch, n_visible)``, ``h`` is ``(batch, n_hidden)``, ``w`` is
``(n_visible, n_hidden)``.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RBMParams(NamedTuple):
    """Parameters of one RBM (a pytree).

    Attributes:
        w: ``(n_visible, n_hidden)`` weights.
        b_vis: ``(n_visible,)`` visible biases.
        b_hid: ``(n_hidden,)`` hidden biases.
    """

    w: jax.Array
    b_vis: jax.Array
    b_hid: jax.Array

    @property
    def n_visible(self) -> int:
        return self.w.shape[0]

    @property
    def n_hidden(self) -> int:
        return self.w.shape[1]


def init_rbm(key: jax.Array, n_visible: int, n_hidden: int, init_std: float = 0.1, dtype=jnp.float32) -> RBMParams:
    """Weights ``init_std * N(0, 1)``, zero biases (Hinton & Salakhutdinov 2006)."""
    w = init_std * jax.random.normal(key, (n_visible, n_hidden), dtype=dtype)
    return RBMParams(w=w, b_vis=jnp.zeros((n_visible,), dtype), b_hid=jnp.zeros((n_hidden,), dtype))


def hidden_probs(params: RBMParams, v: jax.Array) -> jax.Array:
    """``p(h_j = 1 | v)``, ``(batch, n_hidden)``."""
    return jax.nn.sigmoid(v @ params.w + params.b_hid)


def visible_probs(params: RBMParams, h: jax.Array) -> jax.Array:
    """``p(v_i = 1 | h)``, ``(batch, n_visible)``."""
    return jax.nn.sigmoid(h @ params.w.T + params.b_vis)


def bernoulli(key: jax.Array, p: jax.Array) -> jax.Array:
    """Binary sample of ``p`` in ``p``'s dtype (``u < p`` with ``u ~ U[0, 1)``)."""
    return (jax.random.uniform(key, p.shape, p.dtype) < p).astype(p.dtype)


def sample_hidden(key: jax.Array, params: RBMParams, v: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns ``(p(h | v), h)`` with ``h`` a binary sample."""
    p = hidden_probs(params, v)
    return p, bernoulli(key, p)


def sample_visible(key: jax.Array, params: RBMParams, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Returns ``(p(v | h), v)`` with ``v`` a binary sample."""
    p = visible_probs(params, h)
    return p, bernoulli(key, p)


def free_energy(params: RBMParams, v: jax.Array) -> jax.Array:
    """``F(v) = -v·b_vis - Σ_j softplus(v·w_j + b_hid_j)``, so that ``p(v) ∝ exp(-F(v))``; ``(batch,)``."""
    return -(v @ params.b_vis) - jnp.sum(jax.nn.softplus(v @ params.w + params.b_hid), axis=-1)
