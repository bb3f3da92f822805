"""Tests for dbn_jax.train: Hinton's optimizer, the event stream of train_dbn, determinism, exact resume."""

from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dbn_jax import checkpoint, train
from dbn_jax.rbm import RBMParams
from dbn_jax.train import (
    EpochEnd,
    LayerEnd,
    TrainEnd,
    TrainSettings,
    make_optimizer,
    restore_train_state,
    train_dbn,
)

N_VISIBLE = 16
HIDDEN = (8, 4)
EPOCHS = 4
BATCH = 32
N_TRAIN = 512
STEPS_PER_EPOCH = N_TRAIN // BATCH


# ------------------------------------------------------------------------------------------
# Helpers
# ------------------------------------------------------------------------------------------


def prototype_data(n: int, seed: int, noise: float = 0.05) -> np.ndarray:
    """``n`` noisy copies (bits flipped with prob. ``noise``) of 3 fixed 16-pixel binary prototypes."""
    protos = np.zeros((3, N_VISIBLE), np.float32)
    protos[0, :6] = 1
    protos[1, 5:11] = 1
    protos[2, 10:] = 1
    protos[2, 0] = 1
    rng = np.random.default_rng(seed)
    x = protos[rng.integers(0, 3, n)]
    flip = rng.random(x.shape) < noise
    return np.where(flip, 1 - x, x).astype(np.float32)


X_TRAIN = prototype_data(N_TRAIN, 0)
X_VALID = prototype_data(128, 1)


def settings(persistent: bool = False) -> TrainSettings:
    return TrainSettings(
        epochs=EPOCHS,
        batch_size=BATCH,
        cd_steps=1,
        persistent=persistent,
        learning_rate=0.1,
        momentum=0.5,
        final_momentum=0.9,
        momentum_switch_epoch=2,
        weight_decay=2e-4,
        init_std=0.1,
    )


def run(seed: int = 0, persistent: bool = False, start=None):
    return train_dbn(
        jax.random.key(seed), X_TRAIN, HIDDEN, settings(persistent), X_VALID, n_monitor=256, start=start
    )


@pytest.fixture(autouse=True, scope="module")
def reuse_compiled_epochs():
    """Make ``train_dbn`` reuse one jitted epoch function per settings instead of re-jitting it per call.

    ``train_dbn`` builds a fresh optimizer and a fresh ``jax.jit`` closure on every call, so each call recompiles
    the epoch scan (~1 s of XLA per layer on CPU). Memoising the two pure factories changes no number (the same
    settings give the same program) and keeps this module within its time budget.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(train, "make_optimizer", functools.cache(train.make_optimizer))
        mp.setattr(train, "make_train_epoch", functools.cache(train.make_train_epoch))
        yield


@functools.cache
def full_run(seed: int = 0, persistent: bool = False) -> tuple:
    """All events of an uninterrupted run (cached: several tests compare against it)."""
    return tuple(run(seed, persistent))


def as_np(p: RBMParams) -> list[np.ndarray]:
    return [np.asarray(a) for a in p]


def assert_params_equal(a: RBMParams, b: RBMParams) -> None:
    for name, x, y in zip(RBMParams._fields, as_np(a), as_np(b), strict=True):
        assert x.dtype == y.dtype, name
        np.testing.assert_array_equal(x, y, err_msg=name)


def assert_events_equal(got, expected) -> None:
    assert [type(e).__name__ for e in got] == [type(e).__name__ for e in expected]
    for g, e in zip(got, expected, strict=True):
        if isinstance(e, EpochEnd):
            assert (g.layer, g.epoch, g.n_epochs) == (e.layer, e.epoch, e.n_epochs)
            assert g.metrics == e.metrics, (e.layer, e.epoch)
            assert_params_equal(g.params, e.params)
        elif isinstance(e, LayerEnd):
            assert g.layer == e.layer
            assert_params_equal(g.params, e.params)
        else:
            assert len(g.layers) == len(e.layers) == len(g.initial) == len(e.initial)
            for gl, el in zip(g.layers + g.initial, e.layers + e.initial, strict=True):
                assert_params_equal(gl, el)


# ------------------------------------------------------------------------------------------
# make_optimizer
# ------------------------------------------------------------------------------------------


def test_make_optimizer_is_hintons_update_with_momentum_switch():
    lr, m0, m1, wd = 0.1, 0.5, 0.9, 0.01
    switch_epoch, steps_per_epoch = 1, 2  # momentum switches after 2 updates
    rng = np.random.default_rng(0)
    p_np = RBMParams(rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2))
    grads = [RBMParams(rng.normal(size=(3, 2)), rng.normal(size=3), rng.normal(size=2)) for _ in range(5)]

    with jax.enable_x64(True):
        opt = make_optimizer(lr, m0, m1, switch_epoch, wd, steps_per_epoch)
        p = RBMParams(*(jnp.asarray(a) for a in p_np))
        state = opt.init(p)
        got = []
        for g in grads:
            updates, state = opt.update(RBMParams(*(jnp.asarray(a) for a in g)), state, p)
            p = jax.tree_util.tree_map(lambda a, u: a + u, p, updates)
            got.append([np.asarray(a) for a in p])

    # By hand (Hinton's rbm.m): inc = m·inc + lr·(g + wd·w) for w, inc = m·inc + lr·g for biases; p -= inc.
    w, bv, bh = (a.copy() for a in p_np)
    inc = [np.zeros_like(w), np.zeros_like(bv), np.zeros_like(bh)]
    for t, g in enumerate(grads):
        m = m0 if t < switch_epoch * steps_per_epoch else m1
        inc[0] = m * inc[0] + lr * (g.w + wd * w)
        inc[1] = m * inc[1] + lr * g.b_vis
        inc[2] = m * inc[2] + lr * g.b_hid
        w, bv, bh = w - inc[0], bv - inc[1], bh - inc[2]
        for name, x, y in zip(RBMParams._fields, got[t], [w, bv, bh], strict=True):
            np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-12, err_msg=f"step {t + 1} {name}")


def test_make_optimizer_two_steps_known_answer():
    # One weight w = 1, one visible and one hidden bias at 1; constant gradient 1; lr 0.5, m 0.5, wd 0.1.
    # step 1: inc_w = 0.5·(1 + 0.1·1) = 0.55     -> w = 0.45;  inc_b = 0.5           -> b = 0.5
    # step 2: inc_w = 0.5·0.55 + 0.5·(1 + 0.045) = 0.7975 -> w = -0.3475
    #         inc_b = 0.5·0.5 + 0.5 = 0.75                  -> b = -0.25
    opt = make_optimizer(0.5, 0.5, 0.9, 5, 0.1, steps_per_epoch=10)
    p = RBMParams(jnp.ones((1, 1)), jnp.ones(1), jnp.ones(1))
    g = RBMParams(jnp.ones((1, 1)), jnp.ones(1), jnp.ones(1))
    state = opt.init(p)
    for _ in range(2):
        updates, state = opt.update(g, state, p)
        p = jax.tree_util.tree_map(lambda a, u: a + u, p, updates)
    np.testing.assert_allclose(float(p.w[0, 0]), -0.3475, rtol=1e-6)
    np.testing.assert_allclose(float(p.b_vis[0]), -0.25, rtol=1e-6)
    np.testing.assert_allclose(float(p.b_hid[0]), -0.25, rtol=1e-6)


# ------------------------------------------------------------------------------------------
# train_dbn
# ------------------------------------------------------------------------------------------


def test_train_dbn_event_sequence():
    events = full_run()
    expected = (
        [("EpochEnd", 1, e) for e in range(EPOCHS + 1)]
        + [("LayerEnd", 1, None)]
        + [("EpochEnd", 2, e) for e in range(EPOCHS + 1)]
        + [("LayerEnd", 2, None)]
        + [("TrainEnd", None, None)]
    )
    got = [
        (
            type(e).__name__,
            getattr(e, "layer", None),
            getattr(e, "epoch", None) if isinstance(e, EpochEnd) else None,
        )
        for e in events
    ]
    assert got == expected

    by_layer = {1: [e for e in events if isinstance(e, EpochEnd) and e.layer == 1]}
    by_layer[2] = [e for e in events if isinstance(e, EpochEnd) and e.layer == 2]
    layer_ends = [e for e in events if isinstance(e, LayerEnd)]
    end = events[-1]
    assert isinstance(end, TrainEnd) and len(end.layers) == len(end.initial) == 2
    for layer, n_in, n_out in ((1, N_VISIBLE, HIDDEN[0]), (2, HIDDEN[0], HIDDEN[1])):
        last = by_layer[layer][-1]
        assert last.params.w.shape == (n_in, n_out)
        assert last.params.b_vis.shape == (n_in,) and last.params.b_hid.shape == (n_out,)
        assert_params_equal(layer_ends[layer - 1].params, last.params)
        assert_params_equal(end.layers[layer - 1], last.params)
        for e in by_layer[layer]:
            assert e.n_epochs == EPOCHS
            assert (e.state.layer, e.state.epoch, len(e.state.done)) == (layer, e.epoch, layer - 1)
            assert_params_equal(e.state.current.params, e.params)
            assert all(isinstance(v, float) and np.isfinite(v) for v in e.metrics.values())
        # Epoch 0 carries the initial weights: zero biases; TrainEnd re-derives the same initial weights.
        assert not np.any(np.asarray(by_layer[layer][0].params.b_vis))
        assert_params_equal(end.initial[layer - 1], by_layer[layer][0].params)
    # PLL only for the binary first layer.
    assert set(by_layer[1][0].metrics) == {"free_energy_gap", "pseudo_log_likelihood", "recon_error"}
    assert set(by_layer[2][0].metrics) == {"free_energy_gap", "recon_error"}
    assert_params_equal(by_layer[2][0].state.done[0], end.layers[0])


def test_train_dbn_learns_reconstruction_error_decreases():
    events = [e for e in full_run() if isinstance(e, EpochEnd)]
    for layer in (1, 2):
        errs = [e.metrics["recon_error"] for e in events if e.layer == layer]
        assert errs[-1] < errs[0], (layer, errs)
    l1 = [e.metrics["recon_error"] for e in events if e.layer == 1]
    assert l1[-1] < 0.5 * l1[0], l1  # 3 prototypes + 5 % noise are easy for 8 hidden units
    # PLL improves as well (it is <= 0).
    pll = [e.metrics["pseudo_log_likelihood"] for e in events if e.layer == 1]
    assert pll[-1] > pll[0] and all(v <= 0 for v in pll)


def test_train_dbn_is_deterministic_in_the_key():
    a = full_run()[-1].layers
    b = list(run(0))[-1].layers
    for pa, pb in zip(a, b, strict=True):
        assert_params_equal(pa, pb)
    # Another key: already the first layer differs (its initial weights, batches and samples all do).
    gen = run(1)
    c = next(e for e in gen if isinstance(e, LayerEnd)).params
    gen.close()
    for name, x, y in zip(RBMParams._fields, as_np(a[0]), as_np(c), strict=True):
        assert not np.array_equal(x, y), name


@pytest.mark.parametrize(
    ("persistent", "layer", "epoch", "separate"),
    [
        (False, 1, 2, True),
        (False, 1, EPOCHS, False),  # the last epoch of a layer: next is LayerEnd, then layer 2 from scratch
        (False, 2, 0, False),  # the initial weights of layer 2
        (False, 2, 1, False),
        (True, 1, 2, False),
        (True, 2, 2, False),
    ],
)
def test_resume_from_checkpoint_is_bit_identical(
    tmp_path: Path, persistent: bool, layer: int, epoch: int, separate: bool
):
    full = full_run(persistent=persistent)
    idx = next(i for i, e in enumerate(full) if isinstance(e, EpochEnd) and (e.layer, e.epoch) == (layer, epoch))
    if separate:
        # A separate run, interrupted (generator closed) after the event (layer, epoch).
        gen = run(persistent=persistent)
        for event in gen:
            if isinstance(event, EpochEnd) and (event.layer, event.epoch) == (layer, epoch):
                break
        gen.close()
        assert_events_equal([event], [full[idx]])
    else:
        # The generator is pure, so the uninterrupted run's event carries the same state (no extra compile).
        event = full[idx]
    state = event.state
    assert (state.layer, state.epoch) == (layer, epoch)
    if persistent:
        assert state.current.chain is not None and state.current.chain.shape == (
            BATCH,
            HIDDEN[0] if layer == 2 else N_VISIBLE,
        )

    path = tmp_path / "checkpoint" / "state.npz"
    leaves = jax.tree_util.tree_leaves(state.current)
    checkpoint.save_state(
        path, layer=state.layer, epoch=state.epoch, done=state.done, leaves=leaves, meta={"seed": 0}
    )
    meta, done, loaded = checkpoint.load_state(path)
    assert (meta["layer"], meta["epoch"], meta["seed"]) == (layer, epoch, 0)
    restored = restore_train_state(
        meta["layer"], meta["epoch"], done, loaded, N_VISIBLE, HIDDEN, settings(persistent), STEPS_PER_EPOCH
    )
    assert jax.tree_util.tree_structure(restored.current) == jax.tree_util.tree_structure(state.current)
    for a, b in zip(jax.tree_util.tree_leaves(restored.current), leaves, strict=True):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

    resumed = list(run(persistent=persistent, start=restored))
    # The resumed run yields exactly the events of the uninterrupted run after (layer, epoch) ...
    assert_events_equal(resumed, full[idx + 1 :])
    # ... in particular bit-identical final params.
    for a, b in zip(resumed[-1].layers, full[-1].layers, strict=True):
        assert_params_equal(a, b)


def test_restore_train_state_rejects_mismatched_checkpoint():
    state = next(e for e in full_run() if isinstance(e, EpochEnd) and e.epoch == 1).state
    leaves = [np.asarray(a) for a in jax.tree_util.tree_leaves(state.current)]
    # CD-k state loaded under PCD settings: one leaf (the chain) missing.
    with pytest.raises(ValueError, match="state arrays"):
        restore_train_state(1, 1, [], leaves, N_VISIBLE, HIDDEN, settings(True), STEPS_PER_EPOCH)
    # Another hidden size: shapes differ.
    with pytest.raises(ValueError, match="shape"):
        restore_train_state(1, 1, [], leaves, N_VISIBLE, (5, 4), settings(), STEPS_PER_EPOCH)
    # Matching settings succeed and keep the integer step count.
    ok = restore_train_state(1, 1, [], leaves, N_VISIBLE, HIDDEN, settings(), STEPS_PER_EPOCH)
    assert int(ok.current.opt_state[1].count) == STEPS_PER_EPOCH
