"""Known-answer tests for dbn_jax.rbm and dbn_jax.cd (tiny sizes; float64 where exactness matters)."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbn_jax.cd import cd_grads
from dbn_jax.rbm import (
    RBMParams,
    bernoulli,
    free_energy,
    hidden_probs,
    init_rbm,
    sample_hidden,
    sample_visible,
    visible_probs,
)
from dbn_jax.train import TrainSettings, init_layer_state, make_optimizer, make_train_epoch, make_train_step

# One set of sizes for the CD tests (visible, hidden, batch, PCD chains): eager JAX compiles each primitive once
# per shape, so sharing shapes keeps this module fast.
V, H, B, C = 5, 4, 6, 7

# ------------------------------------------------------------------------------------------
# Helpers (numpy float64 references)
# ------------------------------------------------------------------------------------------


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def binary_states(n: int) -> np.ndarray:
    """All ``2**n`` binary vectors of length ``n``, ``(2**n, n)`` float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)))


def random_params(seed: int, n_visible: int, n_hidden: int, scale: float = 1.0) -> RBMParams:
    """numpy float64 params with non-zero biases."""
    rng = np.random.default_rng(seed)
    return RBMParams(
        w=scale * rng.normal(size=(n_visible, n_hidden)),
        b_vis=scale * rng.normal(size=n_visible),
        b_hid=scale * rng.normal(size=n_hidden),
    )


def to_jax(p: RBMParams, dtype) -> RBMParams:
    return RBMParams(*(jnp.asarray(a, dtype) for a in p))


def to_np(p: RBMParams) -> RBMParams:
    return RBMParams(*(np.asarray(a, np.float64) for a in p))


def energy(p: RBMParams, v: np.ndarray, h: np.ndarray) -> float:
    """``E(v, h) = -v·b_vis - h·b_hid - vᵀ w h`` for single vectors."""
    return -(v @ p.b_vis) - (h @ p.b_hid) - v @ p.w @ h


def brute_force_free_energy(p: RBMParams, v: np.ndarray) -> float:
    """``-log Σ_h exp(-E(v, h))`` by enumerating every hidden state."""
    hs = binary_states(p.w.shape[1])
    return -np.log(sum(np.exp(-energy(p, v, h)) for h in hs))


def uniforms(key: jax.Array, n: int, shape: tuple[int, ...], dtype) -> list[np.ndarray]:
    """The uniforms ``cd_grads`` draws: ``split(key, n)`` then ``uniform(keys[i], shape, dtype)``."""
    keys = jax.random.split(key, n)
    return [np.asarray(jax.random.uniform(keys[i], shape, dtype), np.float64) for i in range(n)]


def numpy_cd(p: RBMParams, v0: np.ndarray, key: jax.Array, k: int, chain: np.ndarray | None = None):
    """Hand-written CD-k / PCD-k (Hinton's recipe, as documented in cd.py) with cd.py's random numbers.

    Returns ``(grads, chain, recon_error)`` in float64.
    """
    n_keys = 2 * k + 1
    u_h = uniforms(key, n_keys, (v0.shape[0], p.w.shape[1]), jnp.float64)
    ph0 = sigmoid(v0 @ p.w + p.b_hid)
    h0 = (u_h[0] < ph0).astype(np.float64)
    v1 = sigmoid(h0 @ p.w.T + p.b_vis)
    recon = np.mean((v0 - v1) ** 2)
    if chain is None:
        vk = v1
        phk = sigmoid(vk @ p.w + p.b_hid)
        for step in range(1, k):
            h = (u_h[step] < phk).astype(np.float64)
            vk = sigmoid(h @ p.w.T + p.b_vis)
            phk = sigmoid(vk @ p.w + p.b_hid)
        out_chain = None
    else:
        m = chain.shape[0]
        u_hc = uniforms(key, n_keys, (m, p.w.shape[1]), jnp.float64)
        u_vc = uniforms(key, n_keys, (m, p.w.shape[0]), jnp.float64)
        vk = chain
        for step in range(k):
            h = (u_hc[1 + 2 * step] < sigmoid(vk @ p.w + p.b_hid)).astype(np.float64)
            vk = (u_vc[2 + 2 * step] < sigmoid(h @ p.w.T + p.b_vis)).astype(np.float64)
        phk = sigmoid(vk @ p.w + p.b_hid)
        out_chain = vk
    grads = RBMParams(
        w=-(v0.T @ ph0 / v0.shape[0] - vk.T @ phk / vk.shape[0]),
        b_vis=-(v0.mean(0) - vk.mean(0)),
        b_hid=-(ph0.mean(0) - phk.mean(0)),
    )
    return grads, out_chain, recon


def exact_nll_grads(p: RBMParams, v0: np.ndarray) -> RBMParams:
    """Gradient of the mean negative log-likelihood of ``v0`` by enumerating all (v, h)."""
    n_vis, n_hid = p.w.shape
    vs, hs = binary_states(n_vis), binary_states(n_hid)
    logits = np.array([[-energy(p, v, h) for h in hs] for v in vs])  # (2**n_vis, 2**n_hid)
    joint = np.exp(logits - logits.max())
    joint /= joint.sum()
    model_vh = np.einsum("ab,ai,bj->ij", joint, vs, hs)
    model_v = joint.sum(1) @ vs
    model_h = joint.sum(0) @ hs
    ph = sigmoid(v0 @ p.w + p.b_hid)
    return RBMParams(
        w=-(v0.T @ ph / v0.shape[0] - model_vh),
        b_vis=-(v0.mean(0) - model_v),
        b_hid=-(ph.mean(0) - model_h),
    )


def assert_params_close(a: RBMParams, b: RBMParams, **tol) -> None:
    for name, x, y in zip(RBMParams._fields, a, b, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), err_msg=name, **tol)


# ------------------------------------------------------------------------------------------
# rbm.py
# ------------------------------------------------------------------------------------------


def test_free_energy_matches_brute_force_enumeration():
    p = random_params(0, 3, 2)
    vs = binary_states(3)
    expected = np.array([brute_force_free_energy(p, v) for v in vs])
    with jax.enable_x64(True):
        got = np.asarray(free_energy(to_jax(p, jnp.float64), jnp.asarray(vs)))
    assert got.shape == (8,)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # p(v) = exp(-F(v)) / Z equals the marginal of the brute-force joint.
    hs = binary_states(2)
    joint = np.array([[np.exp(-energy(p, v, h)) for h in hs] for v in vs])
    np.testing.assert_allclose(np.exp(-got) / np.exp(-got).sum(), joint.sum(1) / joint.sum(), atol=1e-12)


def test_free_energy_float32_close_to_reference():
    p = random_params(1, 3, 2)
    vs = binary_states(3)
    expected = np.array([brute_force_free_energy(p, v) for v in vs])
    got = free_energy(to_jax(p, jnp.float32), jnp.asarray(vs, jnp.float32))
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(got), expected, rtol=1e-5, atol=1e-5)


def test_free_energy_one_by_one_by_hand():
    # w = 2, b_vis = -1, b_hid = 0.5:
    #   F(0) = -log(1 + e^0.5)
    #   F(1) = -(-1) - log(1 + e^(2 + 0.5)) = 1 - log(1 + e^2.5)
    p = RBMParams(w=jnp.array([[2.0]]), b_vis=jnp.array([-1.0]), b_hid=jnp.array([0.5]))
    got = np.asarray(free_energy(p, jnp.array([[0.0], [1.0]])))
    np.testing.assert_allclose(got, [-math.log(1 + math.exp(0.5)), 1 - math.log(1 + math.exp(2.5))], rtol=1e-6)
    np.testing.assert_allclose(got, [-0.9740770, -1.5788897], atol=1e-6)


def test_hidden_and_visible_probs_match_numpy_sigmoid():
    p = random_params(2, 5, 4)
    rng = np.random.default_rng(3)
    v = rng.random((6, 5))
    h = (rng.random((6, 4)) < 0.5).astype(np.float64)
    with jax.enable_x64(True):
        pj = to_jax(p, jnp.float64)
        ph = np.asarray(hidden_probs(pj, jnp.asarray(v)))
        pv = np.asarray(visible_probs(pj, jnp.asarray(h)))
    assert ph.shape == (6, 4) and pv.shape == (6, 5)
    np.testing.assert_allclose(ph, sigmoid(v @ p.w + p.b_hid), rtol=1e-13)
    np.testing.assert_allclose(pv, sigmoid(h @ p.w.T + p.b_vis), rtol=1e-13)


def test_rbm_params_properties():
    p = RBMParams(w=jnp.zeros((7, 3)), b_vis=jnp.zeros(7), b_hid=jnp.zeros(3))
    assert (p.n_visible, p.n_hidden) == (7, 3)


def test_init_rbm_shapes_dtype_std_and_zero_biases():
    p = init_rbm(jax.random.key(0), 200, 100, init_std=0.05)
    assert p.w.shape == (200, 100) and p.b_vis.shape == (200,) and p.b_hid.shape == (100,)
    assert p.w.dtype == p.b_vis.dtype == p.b_hid.dtype == jnp.float32
    w = np.asarray(p.w, np.float64)
    assert abs(w.std() - 0.05) < 0.05 * 0.03  # 20k draws: relative s.e. of the sd ~ 0.5 %
    assert abs(w.mean()) < 0.05 * 0.03
    assert not np.any(np.asarray(p.b_vis)) and not np.any(np.asarray(p.b_hid))
    # Same key -> same weights; another key -> other weights; std scales linearly.
    np.testing.assert_array_equal(np.asarray(init_rbm(jax.random.key(0), 200, 100, 0.05).w), w.astype(np.float32))
    assert not np.array_equal(np.asarray(init_rbm(jax.random.key(1), 200, 100, 0.05).w), np.asarray(p.w))
    np.testing.assert_allclose(np.asarray(init_rbm(jax.random.key(0), 200, 100, 0.1).w), 2 * w, rtol=1e-6)
    with jax.enable_x64(True):
        assert init_rbm(jax.random.key(0), 3, 2, dtype=jnp.float64).w.dtype == jnp.float64


def test_sampling_same_key_same_samples_other_key_other_samples():
    p = to_jax(random_params(4, V, H, scale=0.3), jnp.float32)
    v = jnp.asarray(np.random.default_rng(5).random((B, V)) < 0.5, jnp.float32)
    k1, k2 = jax.random.key(1), jax.random.key(2)
    ph_a, h_a = sample_hidden(k1, p, v)
    ph_b, h_b = sample_hidden(k1, p, v)
    _, h_c = sample_hidden(k2, p, v)
    np.testing.assert_array_equal(np.asarray(h_a), np.asarray(h_b))
    assert not np.array_equal(np.asarray(h_a), np.asarray(h_c))
    np.testing.assert_array_equal(np.asarray(ph_a), np.asarray(hidden_probs(p, v)))
    assert set(np.unique(np.asarray(h_a))) <= {0.0, 1.0} and h_a.dtype == jnp.float32

    pv_a, v_a = sample_visible(k1, p, h_a)
    _, v_b = sample_visible(k1, p, h_a)
    _, v_c = sample_visible(k2, p, h_a)
    np.testing.assert_array_equal(np.asarray(v_a), np.asarray(v_b))
    assert not np.array_equal(np.asarray(v_a), np.asarray(v_c))
    np.testing.assert_array_equal(np.asarray(pv_a), np.asarray(visible_probs(p, h_a)))
    assert v_a.shape == (B, V) and set(np.unique(np.asarray(v_a))) <= {0.0, 1.0}


def test_bernoulli_mean_matches_p_and_extremes():
    p = jnp.broadcast_to(jnp.array([0.0, 0.1, 0.5, 0.9, 1.0], jnp.float32), (100_000, 5))
    s = np.asarray(bernoulli(jax.random.key(0), p))
    assert s.dtype == np.float32 and set(np.unique(s)) <= {0.0, 1.0}
    mean = s.mean(0)
    # p = 0 never fires and p = 1 always fires (u ~ U[0, 1)); s.e. of the others <= 0.0016.
    assert mean[0] == 0.0 and mean[4] == 1.0
    np.testing.assert_allclose(mean[1:4], [0.1, 0.5, 0.9], atol=0.01)
    # Same key reproduces, the rule is u < p with u = uniform(key).
    u = np.asarray(jax.random.uniform(jax.random.key(0), p.shape, jnp.float32))
    np.testing.assert_array_equal(s, (u < np.asarray(p)).astype(np.float32))


# ------------------------------------------------------------------------------------------
# cd.py
# ------------------------------------------------------------------------------------------


def test_cd_gradient_sign_at_zero_params():
    # All params zero -> p(h|v) = p(v|h) = 1/2 whatever the samples, so the CD-1 loss gradient is
    # w: -(mean(v0) * 1/2 - 1/2 * 1/2), b_vis: -(mean(v0) - 1/2), b_hid: 0.
    # Units always on in the data get negative w/b_vis gradients (gradient descent raises them), units always
    # off get positive ones. Here unit 0 is always on, unit 1 always off, the others mixed.
    v0_np = (np.random.default_rng(0).random((B, V)) < 0.5).astype(np.float32)
    v0_np[:, 0], v0_np[:, 1] = 1.0, 0.0
    v0 = jnp.asarray(v0_np)
    zero = RBMParams(w=jnp.zeros((V, H)), b_vis=jnp.zeros(V), b_hid=jnp.zeros(H))
    res = cd_grads(jax.random.key(0), zero, v0, 1)
    mean_v = v0_np.mean(0)
    np.testing.assert_allclose(np.asarray(res.grads.w), np.repeat((-(mean_v - 0.5) / 2)[:, None], H, 1), atol=1e-7)
    np.testing.assert_allclose(np.asarray(res.grads.b_vis), -(mean_v - 0.5), atol=1e-7)
    np.testing.assert_allclose(np.asarray(res.grads.b_hid), 0.0, atol=1e-7)
    assert np.all(np.asarray(res.grads.w)[0] < 0) and np.all(np.asarray(res.grads.w)[1] > 0)
    assert res.chain is None
    # recon = mean((v0 - 1/2)^2) = 1/4 for binary data.
    np.testing.assert_allclose(float(res.recon_error), 0.25, atol=1e-7)


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
@pytest.mark.parametrize("k", [1, 2, 3])
def test_cd_k_matches_numpy_reference_with_same_random_numbers(k, persistent):
    p = random_params(10 + k, V, H, scale=0.7)
    rng = np.random.default_rng(20 + k)
    v0 = (rng.random((B, V)) < 0.5).astype(np.float64)
    chain = (rng.random((C, V)) < 0.5).astype(np.float64) if persistent else None
    key = jax.random.key(30 + k)
    with jax.enable_x64(True):
        res = cd_grads(
            key, to_jax(p, jnp.float64), jnp.asarray(v0), k, None if chain is None else jnp.asarray(chain)
        )
        exp_grads, exp_chain, exp_recon = numpy_cd(p, v0, key, k, chain)
        got = to_np(res.grads)
    for name, g, e, shape in zip(RBMParams._fields, got, exp_grads, [(V, H), (V,), (H,)], strict=True):
        assert g.shape == shape, name
        assert np.all(np.isfinite(g)), name
        np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(float(res.recon_error), exp_recon, rtol=1e-12)
    if persistent:
        np.testing.assert_array_equal(np.asarray(res.chain), exp_chain)
    else:
        assert res.chain is None


@pytest.mark.parametrize("k", [1, 2, 3])
def test_cd_k_float32_runs_finite_shapes(k):
    p = init_rbm(jax.random.key(k), V, H)
    v0 = jnp.asarray(np.random.default_rng(k).random((B, V)) < 0.5, jnp.float32)
    res = cd_grads(jax.random.key(0), p, v0, k)
    for g, a in zip(res.grads, p, strict=True):
        assert g.shape == a.shape and g.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(g)))
    assert res.recon_error.shape == () and 0.0 <= float(res.recon_error) <= 1.0


def test_cd_k_differs_with_k():
    # The k-th step must actually be taken: CD-1, CD-2 and CD-3 give different negative statistics.
    p = to_jax(random_params(3, V, H), jnp.float32)
    v0 = jnp.asarray(np.random.default_rng(0).random((B, V)) < 0.5, jnp.float32)
    ws = [np.asarray(cd_grads(jax.random.key(0), p, v0, k).grads.w) for k in (1, 2, 3)]
    assert not np.allclose(ws[0], ws[1]) and not np.allclose(ws[1], ws[2])


def test_pcd_gradient_approximates_exact_log_likelihood_gradient():
    """Many long PCD chains: the model term converges to the enumerated <v hᵀ>_model (statistical, seeded)."""
    p_np = random_params(7, 3, 2, scale=0.8)
    v0 = binary_states(3)[[1, 3, 6, 7, 7]]
    p = to_jax(p_np, jnp.float32)
    n_chains, steps_per_call, calls, burn_in = 20_000, 10, 20, 10
    step = jax.jit(cd_grads, static_argnums=3)
    key = jax.random.key(0)
    chain = jnp.asarray(np.random.default_rng(0).random((n_chains, 3)) < 0.5, jnp.float32)
    v0_j = jnp.asarray(v0, jnp.float32)
    kept = []
    for i in range(calls):
        res = step(jax.random.fold_in(key, i), p, v0_j, steps_per_call, chain)
        chain = res.chain
        if i >= burn_in:
            kept.append(to_np(res.grads))
    est = RBMParams(*(np.mean(arrays, axis=0) for arrays in zip(*kept, strict=True)))
    exact = exact_nll_grads(p_np, v0)
    # s.e. of each model expectation over 200k (correlated) samples is ~0.002.
    assert_params_close(est, exact, rtol=0, atol=0.01)
    # The check has power: CD-1 (a biased estimate, short chains from the data) misses by more than that.
    cd1 = to_np(cd_grads(jax.random.key(0), p, v0_j, 1).grads)
    assert max(np.max(np.abs(a - b)) for a, b in zip(cd1, exact, strict=True)) > 0.02


def test_pcd_chain_is_new_and_binary():
    p = to_jax(random_params(5, V, H), jnp.float32)
    v0 = jnp.asarray(np.random.default_rng(1).random((B, V)) < 0.5, jnp.float32)
    chain = jnp.asarray(np.random.default_rng(2).random((C, V)) < 0.5, jnp.float32)
    res = cd_grads(jax.random.key(0), p, v0, 1, chain)
    out = np.asarray(res.chain)
    assert out.shape == (C, V) and out.dtype == np.float32
    assert set(np.unique(out)) <= {0.0, 1.0}
    assert not np.array_equal(out, np.asarray(chain))
    # The positive statistics are the CD ones; only the negative phase comes from the chain.
    cd = cd_grads(jax.random.key(0), p, v0, 1)
    np.testing.assert_allclose(float(res.recon_error), float(cd.recon_error), rtol=1e-6)


@pytest.mark.parametrize("persistent", [False, True], ids=["cd", "pcd"])
def test_cd_grads_jit_equals_no_jit(persistent):
    p = to_jax(random_params(8, V, H, scale=0.5), jnp.float32)
    v0 = jnp.asarray(np.random.default_rng(3).random((B, V)), jnp.float32)  # grey levels are allowed
    chain = jnp.asarray(np.random.default_rng(4).random((C, V)) < 0.5, jnp.float32) if persistent else None
    key = jax.random.key(5)
    eager = cd_grads(key, p, v0, 2, chain)
    jitted = jax.jit(cd_grads, static_argnums=3)(key, p, v0, 2, chain)
    assert_params_close(jitted.grads, eager.grads, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(float(jitted.recon_error), float(eager.recon_error), rtol=1e-6)
    if persistent:
        np.testing.assert_array_equal(np.asarray(jitted.chain), np.asarray(eager.chain))


def test_pcd_chain_persists_across_steps_in_train_epoch():
    """One epoch (a scan) equals the same steps called one by one with the chain fed back."""
    settings = TrainSettings(batch_size=B, persistent=True, cd_steps=1)
    n_batches = 5
    data = np.random.default_rng(0).random((n_batches * B + 3, V)) < 0.3  # the incomplete last batch is dropped
    with jax.enable_x64(True):  # float64, so that the scan and the separate steps round alike
        x = jnp.asarray(data, jnp.float64)
        opt = make_optimizer(0.1, 0.5, 0.9, 1, 2e-4, steps_per_epoch=n_batches)
        state0 = init_layer_state(jax.random.key(0), V, H, settings, opt, x)
        state0 = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if jnp.issubdtype(a.dtype, jnp.floating) else a, state0
        )
        epoch = make_train_epoch(opt, 1, B)
        key = jax.random.key(1)
        state1, recon = epoch(state0, key, x)

        # The epoch's documented recipe by hand: split(key) -> (perm, steps); batch b = rows perm[Bb : Bb + B].
        k_perm, k_steps = jax.random.split(key)
        perm = np.asarray(jax.random.permutation(k_perm, x.shape[0]))
        keys = jax.random.split(k_steps, n_batches)
        step = jax.jit(make_train_step(opt, 1))
        s, errs, chains = state0, [], [np.asarray(state0.chain)]
        for b in range(n_batches):
            s, e = step(s, keys[b], x[perm[B * b : B * b + B]])
            errs.append(float(e))
            chains.append(np.asarray(s.chain))

    assert state1.chain.shape == (B, V)
    c0, c1 = np.asarray(state0.chain), np.asarray(state1.chain)
    assert set(np.unique(c0)) <= {0.0, 1.0} and set(np.unique(c1)) <= {0.0, 1.0}
    assert not np.array_equal(c1, c0)
    # The chain moves at every step (it is fed back, not restarted).
    assert all(not np.array_equal(a, b) for a, b in itertools.pairwise(chains))
    np.testing.assert_array_equal(c1, chains[-1])
    assert_params_close(state1.params, s.params, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(float(recon), np.mean(errs), rtol=1e-10)
    assert int(state1.opt_state[1].count) == n_batches  # (masked weight decay, injected sgd)
