"""Partition function of a Bernoulli RBM: exact enumeration and annealed importance sampling (AIS).

AIS (Neal 2001; Salakhutdinov & Murray 2008, "On the quantitative analysis of deep belief networks") anneals
from a base-rate model ``A`` (visible biases ``b_A`` only, no hidden interaction) to the RBM ``B`` through the
intermediate unnormalised marginals over ``v``::

    log p*_β(v) = (1 - β) v·b_A + β v·b_vis + Σ_j softplus(β (v·w_j + b_hid_j)),    0 = β_0 < ... < β_K = 1

whose Gibbs transition is ``h ~ sigmoid(β (v w + b_hid))`` then
``v ~ sigmoid((1 - β) b_A + β (b_vis + w h))``. At ``β = 0`` the hiddens are uniform, so
``log Z_A = Σ_i softplus(b_A_i) + n_hidden log 2`` exactly. Each chain starts at an exact sample of ``A`` and
accumulates ``log w = Σ_k [log p*_{β_k}(v_k) - log p*_{β_{k-1}}(v_k)]``, with ``v_k`` drawn by the transition at
``β_{k-1}`` from ``v_{k-1}``; ``E[w] = Z_B / Z_A``, so ``log Z_B ≈ logmeanexp(log w) + log Z_A`` (an unbiased
estimate of ``Z_B``, hence a slightly downward-biased one of ``log Z_B``).

Numerics: each increment ``softplus(β_k x) - softplus(β_{k-1} x)`` is computed as
``log1p(sigmoid(β_{k-1} x) expm1(Δβ x))`` (no cancellation for small ``Δβ``) and the per-chain sum is
Kahan-compensated, so float32 parameters give float32-accurate log-weights even for ``10⁴`` temperatures; the
final log-mean-exp and standard error are computed host side in float64.

Pure functions on :class:`~dbn_jax.rbm.RBMParams`, as in :mod:`dbn_jax.rbm`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dbn_jax.rbm import RBMParams, bernoulli, free_energy

#: Largest ``min(n_visible, n_hidden)`` that :func:`log_partition_exact` enumerates (``2**20`` states).
MAX_EXACT_UNITS = 20

# States enumerated per block in log_partition_exact (bounds memory to ~ block * max(n_visible, n_hidden) doubles).
_EXACT_BLOCK = 1 << 14


class AISResult(NamedTuple):
    """Outcome of :func:`ais_log_partition`.

    Attributes:
        log_z: Estimate of ``log Z`` (``logmeanexp(log_weights) + log Z_base``).
        log_z_std_err: Delta-method standard error of ``log_z``: ``std(w) / (mean(w) sqrt(n_chains))``.
        log_weights: ``(n_chains,)`` float64 log importance weights (``log Z_base`` not included).
    """

    log_z: float
    log_z_std_err: float
    log_weights: np.ndarray


def _softplus64(x: np.ndarray) -> np.ndarray:
    """``log(1 + exp(x))`` in float64, stable for large ``|x|``."""
    return np.logaddexp(0.0, x)


def _logsumexp64(x: np.ndarray) -> float:
    m = float(np.max(x))
    return m + math.log(float(np.sum(np.exp(x - m))))


def _binary_block(n: int, start: int, stop: int) -> np.ndarray:
    """Binary vectors ``start .. stop - 1`` (integer codes, most significant unit first), ``(stop - start, n)``."""
    codes = np.arange(start, stop, dtype=np.int64)
    shifts = np.arange(n - 1, -1, -1, dtype=np.int64)
    return ((codes[:, None] >> shifts[None, :]) & 1).astype(np.float64)


def log_partition_exact(params: RBMParams) -> float:
    """Exact ``log Z`` by enumerating the smaller layer.

    If ``n_hidden <= n_visible`` it sums ``exp(h·b_hid + Σ_i softplus(b_vis_i + (w h)_i))`` over all
    ``2**n_hidden`` hidden states (the visibles marginalised analytically), else ``exp(-F(v))`` over all
    ``2**n_visible`` visible states; in float64 with a blockwise log-sum-exp.

    Args:
        params: The RBM (any float dtype; converted to float64 on the host).

    Returns:
        ``log Z = log Σ_{v,h} exp(-E(v, h))``.

    Raises:
        ValueError: If ``min(n_visible, n_hidden) > MAX_EXACT_UNITS`` (20).
    """
    w = np.asarray(params.w, np.float64)
    b_vis = np.asarray(params.b_vis, np.float64)
    b_hid = np.asarray(params.b_hid, np.float64)
    n_visible, n_hidden = w.shape
    n = min(n_visible, n_hidden)
    if n > MAX_EXACT_UNITS:
        raise ValueError(
            f"log_partition_exact enumerates 2**min(n_visible, n_hidden) states; "
            f"min({n_visible}, {n_hidden}) = {n} exceeds the limit MAX_EXACT_UNITS = {MAX_EXACT_UNITS}: "
            "use ais_log_partition instead"
        )
    if n_hidden <= n_visible:  # enumerate h; sum out v analytically
        w_e, b_e, b_o = w.T, b_hid, b_vis
    else:  # enumerate v; sum out h analytically
        w_e, b_e, b_o = w, b_vis, b_hid
    block_terms = []
    for start in range(0, 1 << n, _EXACT_BLOCK):
        s = _binary_block(n, start, min(start + _EXACT_BLOCK, 1 << n))
        log_unnorm = s @ b_e + _softplus64(s @ w_e + b_o).sum(axis=1)
        block_terms.append(_logsumexp64(log_unnorm))
    return _logsumexp64(np.asarray(block_terms))


def linear_betas(n_betas: int) -> np.ndarray:
    """The linear schedule ``β_k = k / (n_betas - 1)``, ``k = 0 .. n_betas - 1`` (float64, ``n_betas >= 2``)."""
    if n_betas < 2:
        raise ValueError(f"n_betas must be >= 2, got {n_betas}")
    return np.linspace(0.0, 1.0, n_betas)


def base_rate_biases(x: jax.Array | np.ndarray, eps: float = 1e-3) -> np.ndarray:
    """Visible log-odds of the data, ``log(p / (1 - p))`` with ``p`` the column mean clipped to ``[eps, 1-eps]``.

    The base-rate model of Salakhutdinov & Murray (2008): a good ``base_b_vis`` for :func:`ais_log_partition`,
    since it starts the chains close to the data marginals.

    Args:
        x: ``(n_samples, n_visible)`` data in ``[0, 1]``.
        eps: Clipping of the marginal probabilities (keeps the biases finite for constant pixels).

    Returns:
        ``(n_visible,)`` float64 biases.
    """
    p = np.clip(np.asarray(x, np.float64).mean(axis=0), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def _as_jax(params: RBMParams) -> RBMParams:
    """``params`` as jax arrays (numpy float64 becomes jax's default float when x64 is off, without a warning)."""
    return RBMParams(*(jnp.asarray(a) for a in params))


def _softplus_increment(z: jax.Array, d: jax.Array) -> jax.Array:
    """``softplus(z + d) - softplus(z)`` without cancellation for small ``d``.

    ``(1 + e^{z+d}) / (1 + e^z) = 1 + sigmoid(z) expm1(d)``; for ``|d| >= 1`` (coarse schedules) the plain
    difference is accurate enough and avoids ``log1p`` of values near ``-1``.
    """
    small = jnp.abs(d) < 1.0
    d_small = jnp.where(small, d, 0.0)
    fine = jnp.log1p(jax.nn.sigmoid(z) * jnp.expm1(d_small))
    coarse = jax.nn.softplus(z + d) - jax.nn.softplus(z)
    return jnp.where(small, fine, coarse)


def _ais_log_weights_impl(
    key: jax.Array, params: RBMParams, b_base: jax.Array, betas: jax.Array, n_chains: int
) -> jax.Array:
    """Per-chain log importance weights, ``(n_chains,)`` in the params' dtype (see the module docstring)."""
    dtype = params.w.dtype
    k_init, k_steps = jax.random.split(key)
    v0 = bernoulli(k_init, jnp.broadcast_to(jax.nn.sigmoid(b_base), (n_chains, params.n_visible)))
    db = params.b_vis - b_base
    zeros = jnp.zeros((n_chains,), dtype)

    def step(carry, xs):
        v, log_w, comp = carry
        beta_prev, beta_next, k = xs
        x = v @ params.w + params.b_hid
        # log p*_{β_next}(v) - log p*_{β_prev}(v)
        inc = (beta_next - beta_prev) * (v @ db) + jnp.sum(
            _softplus_increment(beta_prev * x, (beta_next - beta_prev) * x), axis=1
        )
        # Kahan-compensated log_w += inc
        y = inc - comp
        t = log_w + y
        comp = (t - log_w) - y
        log_w = t
        # Gibbs transition leaving p_{β_next} invariant
        k_h, k_v = jax.random.split(k)
        h = bernoulli(k_h, jax.nn.sigmoid(beta_next * x))
        v = bernoulli(
            k_v, jax.nn.sigmoid((1.0 - beta_next) * b_base + beta_next * (params.b_vis + h @ params.w.T))
        )
        return (v, log_w, comp), None

    n_steps = betas.shape[0] - 1
    xs = (betas[:-1], betas[1:], jax.random.split(k_steps, n_steps))
    (_, log_w, _), _ = jax.lax.scan(step, (v0, zeros, zeros), xs)
    return log_w


_ais_log_weights = jax.jit(_ais_log_weights_impl, static_argnames=("n_chains",))


def ais_log_partition(
    key: jax.Array,
    params: RBMParams,
    n_chains: int = 100,
    n_betas: int | np.ndarray | jax.Array = 10_000,
    base_b_vis: jax.Array | np.ndarray | None = None,
) -> AISResult:
    """AIS estimate of ``log Z`` of a Bernoulli RBM (Salakhutdinov & Murray 2008).

    Runs ``n_chains`` independent annealing chains in one batch, ``jax.lax.scan`` over the temperatures, jitted
    (recompiled only for a new ``n_chains``, shape or dtype). Deterministic for a given ``key``.

    Args:
        key: PRNG key.
        params: The RBM (its dtype is the compute dtype; float32 is fine).
        n_chains: Number of independent AIS runs (importance samples).
        n_betas: Number of temperatures of the linear schedule :func:`linear_betas` (``>= 2``), or an explicit
            schedule: a 1-D non-decreasing array starting at 0 and ending at 1 (e.g. the denser-near-1 schedule of
            the paper, 500 in ``[0, 0.5)``, 4000 in ``[0.5, 0.9)``, 10000 in ``[0.9, 1]``).
        base_b_vis: ``(n_visible,)`` visible biases of the base-rate model; ``None`` means zeros (uniform base).
            :func:`base_rate_biases` of the training data usually gives a much smaller variance.

    Returns:
        :class:`AISResult` with ``log_z``, its delta-method standard error over the chains, and the log weights.

    Raises:
        ValueError: On a malformed schedule, ``n_chains < 1`` or a ``base_b_vis`` of the wrong shape.
    """
    if n_chains < 1:
        raise ValueError(f"n_chains must be >= 1, got {n_chains}")
    params = _as_jax(params)
    if isinstance(n_betas, int | np.integer):
        betas = linear_betas(int(n_betas))
    else:
        betas = np.asarray(n_betas, np.float64)
        if betas.ndim != 1 or betas.shape[0] < 2:
            raise ValueError(f"a beta schedule must be 1-D with at least 2 entries, got shape {betas.shape}")
        if betas[0] != 0.0 or betas[-1] != 1.0 or np.any(np.diff(betas) < 0):
            raise ValueError("a beta schedule must be non-decreasing from 0 to 1")
    dtype = params.w.dtype
    if base_b_vis is None:
        b_base = jnp.zeros((params.n_visible,), dtype)
    else:
        b_base = jnp.asarray(base_b_vis, dtype)
        if b_base.shape != (params.n_visible,):
            raise ValueError(f"base_b_vis must have shape ({params.n_visible},), got {b_base.shape}")
    log_w = np.asarray(
        _ais_log_weights(key, params, b_base, jnp.asarray(betas, dtype), n_chains=n_chains), np.float64
    )
    log_z_base = float(_softplus64(np.asarray(b_base, np.float64)).sum()) + params.n_hidden * math.log(2.0)
    log_z = _logsumexp64(log_w) - math.log(n_chains) + log_z_base
    # Delta method on the mean of w, with w scaled by its max: se(log mean w) ≈ std(w) / (mean(w) sqrt(n)).
    w_scaled = np.exp(log_w - log_w.max())
    std_err = (
        float(np.std(w_scaled, ddof=1) / (w_scaled.mean() * math.sqrt(n_chains))) if n_chains > 1 else math.inf
    )
    return AISResult(log_z=float(log_z), log_z_std_err=std_err, log_weights=log_w)


def test_log_likelihood(params: RBMParams, x: jax.Array | np.ndarray, log_z: float) -> float:
    """Mean log-likelihood ``mean_n [-F(x_n) - log Z]`` of the rows of ``x`` under the RBM.

    Args:
        params: The RBM.
        x: ``(n_samples, n_visible)`` binary (or probability) data.
        log_z: ``log Z`` of ``params`` (from :func:`log_partition_exact` or :func:`ais_log_partition`).

    Returns:
        The mean log-likelihood in nats per example (a float; averaged in float64).
    """
    params = _as_jax(params)
    f = free_energy(params, jnp.asarray(x, params.w.dtype).reshape(-1, params.n_visible))
    return float(-np.mean(np.asarray(f, np.float64)) - log_z)


# A library function, not a pytest test, even when imported into a test module.
test_log_likelihood.__test__ = False
