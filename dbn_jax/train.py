"""Greedy layer-wise training of a deep belief network with CD-k / PCD and optax.

* :func:`make_optimizer` — Hinton's update rule as an optax chain (weight decay on ``w`` only, SGD with a
  momentum that switches after ``momentum_switch_epoch`` epochs).
* :func:`make_train_step` — one jitted CD update; :func:`make_train_epoch` — one epoch as one ``lax.scan`` over
  batch indices (the data stay where they are; each step gathers its batch).
* :func:`train_dbn` — a generator of events (epoch 0 = initial weights, every epoch, every layer end, the end)
  that carry params, metrics and the resumable state. No I/O here: the app checkpoints and logs.

PRNG keys are derived, never threaded: layer ``l`` uses ``fold_in(key, l)``, its epoch ``e`` uses
``fold_in(layer_key, e)``; so a run resumed at any epoch draws exactly the numbers an uninterrupted run draws.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from dbn_jax import metrics as M
from dbn_jax.cd import cd_grads
from dbn_jax.rbm import RBMParams, bernoulli, hidden_probs, init_rbm


@dataclass(frozen=True)
class TrainSettings:
    """Training hyper-parameters (the ``train`` config node), checked on construction. Defaults: Hinton &
    Salakhutdinov (2006)."""

    epochs: int = 20
    batch_size: int = 100
    cd_steps: int = 1
    persistent: bool = False
    learning_rate: float = 0.1
    momentum: float = 0.5
    final_momentum: float = 0.9
    momentum_switch_epoch: int = 5
    weight_decay: float = 2e-4
    init_std: float = 0.1

    def __post_init__(self) -> None:
        checks = (
            ("epochs", self.epochs >= 0, "an integer >= 0"),
            ("batch_size", self.batch_size >= 1, "an integer >= 1"),
            ("cd_steps", self.cd_steps >= 1, "an integer >= 1"),
            ("learning_rate", self.learning_rate > 0, "a float > 0"),
            ("momentum", 0 <= self.momentum < 1, "a float in [0, 1)"),
            ("final_momentum", 0 <= self.final_momentum < 1, "a float in [0, 1)"),
            ("momentum_switch_epoch", self.momentum_switch_epoch >= 0, "an integer >= 0"),
            ("weight_decay", self.weight_decay >= 0, "a float >= 0"),
            ("init_std", self.init_std > 0, "a float > 0"),
        )
        for name, ok, allowed in checks:
            if not ok:
                raise ValueError(f"invalid {name}: {getattr(self, name)!r}; allowed: {allowed}")


class Diverged(FloatingPointError):
    """Training produced NaN or Inf; ``str(err)`` is one line naming the layer, the epoch and the likely cause."""


@jax.jit
def _all_finite(params: RBMParams) -> jax.Array:
    return jnp.stack([jnp.isfinite(a).all() for a in params])


def check_finite(
    layer: int, epoch: int, params: RBMParams, metrics: dict[str, float], settings: TrainSettings
) -> None:
    """Raise :class:`Diverged` if a parameter array or a monitor of this epoch is NaN or infinite."""
    ok = jax.device_get(_all_finite(params))
    bad = [name for name, good in zip(params._fields, ok, strict=True) if not good]
    bad += [k for k, v in metrics.items() if not math.isfinite(v)]
    if bad:
        raise Diverged(
            f"layer h{layer} diverged in epoch {epoch}: non-finite {', '.join(bad)}; likely cause: "
            f"train.learning_rate={settings.learning_rate} is too large (try 10x smaller; also check "
            f"train.momentum={settings.momentum}/{settings.final_momentum} and "
            f"train.init_std={settings.init_std}); the checkpoint of epoch {epoch - 1} is kept"
        )


class LayerState(NamedTuple):
    """Training state of the RBM being trained (a pytree)."""

    params: RBMParams
    opt_state: Any
    chain: jax.Array | None  # PCD fantasy particles, None for CD-k


@dataclass(frozen=True)
class TrainState:
    """Everything needed to continue training after epoch ``epoch`` of layer ``layer`` (1-based)."""

    layer: int
    epoch: int
    done: tuple[RBMParams, ...]  # trained layers below ``layer``
    current: LayerState


@dataclass(frozen=True)
class EpochEnd:
    """After epoch ``epoch`` of layer ``layer``; ``epoch == 0`` carries the initial weights."""

    layer: int
    epoch: int
    params: RBMParams
    metrics: dict[str, float]
    state: TrainState = field(repr=False)
    n_epochs: int = 0


@dataclass(frozen=True)
class LayerEnd:
    layer: int
    params: RBMParams


@dataclass(frozen=True)
class TrainEnd:
    """End of training: the trained layers and, for "before vs after learning", the initial ones; ``head``: the
    trained layers above them that are not analysed (the MLP's output layer), part of the saved model."""

    layers: tuple[RBMParams, ...]
    initial: tuple[RBMParams, ...] = ()
    head: tuple[RBMParams, ...] = ()


Event = EpochEnd | LayerEnd | TrainEnd


def make_optimizer(
    learning_rate: float,
    momentum: float,
    final_momentum: float,
    momentum_switch_epoch: int,
    weight_decay: float,
    steps_per_epoch: int,
) -> optax.GradientTransformation:
    """``inc = m·inc + lr·(grad + weight_decay·w)``, ``w -= inc`` with ``m`` switching after some epochs.

    Equal to Hinton's ``rbm.m`` update (weight cost on weights only): optax's ``trace`` accumulates
    ``t = g + m·t`` and ``sgd`` scales it by ``-lr``. The params may be one :class:`RBMParams` or any pytree of
    them (the supervised MLP's layers): weight decay applies to every ``w``, never to a bias.
    """
    switch_step = momentum_switch_epoch * steps_per_epoch

    def momentum_schedule(count):
        return jnp.where(count < switch_step, momentum, final_momentum)

    def weights_only(params):
        return jax.tree_util.tree_map(
            lambda _: RBMParams(w=True, b_vis=False, b_hid=False), params,
            is_leaf=lambda x: isinstance(x, RBMParams),
        )  # fmt: skip

    return optax.chain(
        optax.add_decayed_weights(weight_decay, mask=weights_only),
        optax.inject_hyperparams(optax.sgd)(learning_rate=learning_rate, momentum=momentum_schedule),
    )


def _settings_optimizer(settings: TrainSettings, steps_per_epoch: int) -> optax.GradientTransformation:
    return make_optimizer(
        settings.learning_rate,
        settings.momentum,
        settings.final_momentum,
        settings.momentum_switch_epoch,
        settings.weight_decay,
        steps_per_epoch,
    )


def make_train_step(optimizer: optax.GradientTransformation, cd_steps: int):
    """Returns ``step(state, key, batch) -> (state, recon_error)``, one CD-k/PCD update (not jitted: it is
    traced inside the epoch's scan; wrap it in ``jax.jit`` to call it on its own)."""

    def step(state: LayerState, key: jax.Array, batch: jax.Array) -> tuple[LayerState, jax.Array]:
        res = cd_grads(key, state.params, batch, cd_steps, state.chain)
        updates, opt_state = optimizer.update(res.grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return LayerState(params, opt_state, res.chain), res.recon_error

    return step


def make_train_epoch(optimizer: optax.GradientTransformation, cd_steps: int, batch_size: int):
    """Returns jitted ``epoch(state, key, data) -> (state, mean recon_error)``.

    The data are reshuffled from ``key`` every epoch; the last incomplete batch is dropped (as in Hinton's code).
    Only the permuted *indices* are materialised; each scan step gathers its ``batch_size`` rows.
    """
    step = make_train_step(optimizer, cd_steps)

    @jax.jit
    def epoch(state: LayerState, key: jax.Array, data: jax.Array) -> tuple[LayerState, jax.Array]:
        n_batches = data.shape[0] // batch_size
        k_perm, k_steps = jax.random.split(key)
        idx = jax.random.permutation(k_perm, data.shape[0])[: n_batches * batch_size]
        idx = idx.reshape(n_batches, batch_size)
        keys = jax.random.split(k_steps, n_batches)

        def body(s, xs):
            i, k = xs
            return step(s, k, jnp.take(data, i, axis=0))

        state, errors = jax.lax.scan(body, state, (idx, keys))
        return state, jnp.mean(errors)

    return epoch


@jax.jit
def propagate(params: RBMParams, x: jax.Array) -> jax.Array:
    """Hidden probabilities of ``x`` (the input of the next layer)."""
    return hidden_probs(params, x)


@jax.jit
def _monitor(key: jax.Array, params: RBMParams, v_train: jax.Array, v_valid: jax.Array):
    k_rec, k_pll = jax.random.split(key)
    return {
        "free_energy_gap": M.free_energy_gap(params, v_train, v_valid),
        "pseudo_log_likelihood": M.pseudo_log_likelihood(k_pll, params, v_train),
        "monitor_recon_error": M.reconstruction_error(k_rec, params, v_train),
    }


def _epoch_metrics(key, params, v_train, v_valid, layer: int, recon_error) -> dict[str, float]:
    out = _monitor(key, params, v_train, v_valid)
    if layer != 1:
        # PLL is defined for binary units; the inputs of layers >= 2 are probabilities.
        out.pop("pseudo_log_likelihood")
    if recon_error is None:  # epoch 0: no training pass yet
        recon_error = out["monitor_recon_error"]
    out["recon_error"] = recon_error
    out.pop("monitor_recon_error")
    return {k: float(v) for k, v in jax.device_get(out).items()}


def _init_keys(layer_key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Keys of a layer's initial state and epoch-0 monitors (also used to re-derive the initial weights)."""
    k_init, k_mon = jax.random.split(jax.random.fold_in(layer_key, 0))
    return k_init, k_mon


def init_layer_state(
    key: jax.Array,
    n_visible: int,
    n_hidden: int,
    settings: TrainSettings,
    optimizer: optax.GradientTransformation,
    data: jax.Array,
) -> LayerState:
    """Initial params, optimizer state and (for PCD) chains started at binarised random training rows."""
    k_w, k_rows, k_bits = jax.random.split(key, 3)
    params = init_rbm(k_w, n_visible, n_hidden, settings.init_std)
    chain = None
    if settings.persistent:
        rows = jax.random.choice(k_rows, data.shape[0], (settings.batch_size,), replace=False)
        chain = bernoulli(k_bits, jnp.take(data, rows, axis=0))
    return LayerState(params, optimizer.init(params), chain)


def train_dbn(
    key: jax.Array,
    x_train: jax.Array,
    hidden: Sequence[int],
    settings: TrainSettings,
    x_valid: jax.Array,
    *,
    n_monitor: int = 1000,
    start: TrainState | None = None,
) -> Iterator[Event]:
    """Greedy layer-wise DBN training; a generator of events.

    Layer 1 trains on ``x_train``; layer ``l + 1`` on layer ``l``'s hidden probabilities of ``x_train``.

    Args:
        key: root PRNG key (the run's seed).
        x_train: ``(n, n_visible)`` float32 training data in [0, 1].
        hidden: hidden-layer sizes, e.g. ``(500, 500, 2000)``.
        settings: hyper-parameters.
        x_valid: ``(m, n_visible)`` held-out data for the free-energy gap.
        n_monitor: rows of train and held-out data used for the per-epoch monitors.
        start: a :class:`TrainState` to continue from (resume), or ``None``.

    Yields:
        ``EpochEnd`` (epoch 0 = initial weights, then each epoch), ``LayerEnd`` per layer, one ``TrainEnd``.
    """
    x = jnp.asarray(x_train, jnp.float32)
    xv = jnp.asarray(x_valid, jnp.float32)
    steps_per_epoch = x.shape[0] // settings.batch_size
    optimizer = _settings_optimizer(settings, steps_per_epoch)
    done: list[RBMParams] = []
    for layer, n_hidden in enumerate(hidden, start=1):
        layer_key = jax.random.fold_in(key, layer)
        n_visible = x.shape[1]
        if start is not None and layer < start.layer:
            params = start.done[layer - 1]
        else:
            epoch_fn = make_train_epoch(optimizer, settings.cd_steps, settings.batch_size)
            mon_train, mon_valid = x[:n_monitor], xv[:n_monitor]
            if start is not None and layer == start.layer:
                state, first = start.current, start.epoch + 1
            else:
                k_init, k_mon = _init_keys(layer_key)
                state = init_layer_state(k_init, n_visible, n_hidden, settings, optimizer, x)
                first = 1
                metrics = _epoch_metrics(k_mon, state.params, mon_train, mon_valid, layer, None)
                yield EpochEnd(
                    layer, 0, state.params, metrics,
                    TrainState(layer, 0, tuple(done), state), settings.epochs,
                )  # fmt: skip
            for epoch in range(first, settings.epochs + 1):
                k_train, k_mon = jax.random.split(jax.random.fold_in(layer_key, epoch))
                state, recon = epoch_fn(state, k_train, x)
                metrics = _epoch_metrics(k_mon, state.params, mon_train, mon_valid, layer, recon)
                check_finite(layer, epoch, state.params, metrics, settings)  # before anything is saved
                yield EpochEnd(
                    layer, epoch, state.params, metrics,
                    TrainState(layer, epoch, tuple(done), state), settings.epochs,
                )  # fmt: skip
            params = state.params
            yield LayerEnd(layer, params)
        done.append(params)
        if layer < len(hidden):
            x, xv = propagate(params, x), propagate(params, xv)
    # Re-derive the initial weights (same key path as init_layer_state: split(k_init, 3)[0] draws them), so
    # "before vs after learning" is available after a resume too.
    sizes = [int(x_train.shape[1]), *hidden]
    initial = tuple(
        init_rbm(
            jax.random.split(_init_keys(jax.random.fold_in(key, i + 1))[0], 3)[0],
            sizes[i], sizes[i + 1], settings.init_std,
        )  # fmt: skip
        for i in range(len(hidden))
    )
    yield TrainEnd(tuple(done), initial)


def restore_train_state(
    layer: int,
    epoch: int,
    done: Sequence[RBMParams],
    leaves: Sequence[Any],
    n_visible: int,
    hidden: Sequence[int],
    settings: TrainSettings,
    steps_per_epoch: int,
) -> TrainState:
    """Rebuild a :class:`TrainState` from checkpointed arrays (see ``checkpoint.load_state``).

    The pytree structure and dtypes come from an abstract evaluation of :func:`init_layer_state` with the same
    settings, so a checkpoint written with other settings fails loudly instead of loading silently.
    """
    optimizer = _settings_optimizer(settings, steps_per_epoch)
    if not 1 <= layer <= len(hidden) or len(done) != layer - 1:
        raise ValueError(
            f"checkpoint is at layer {layer} with {len(done)} trained layers below; this model has "
            f"{len(hidden)} layers, so it needs 1 <= layer <= {len(hidden)} and layer - 1 trained layers"
        )
    n_in = n_visible if layer == 1 else hidden[layer - 2]
    template = jax.eval_shape(
        lambda: init_layer_state(
            jax.random.key(0), n_in, hidden[layer - 1], settings, optimizer,
            jnp.zeros((settings.batch_size, n_in), jnp.float32),
        )
    )  # fmt: skip
    shapes, treedef = jax.tree_util.tree_flatten(template)
    if len(shapes) != len(leaves):
        raise ValueError(f"checkpoint has {len(leaves)} state arrays, this config needs {len(shapes)}")
    restored = []
    for i, (s, leaf) in enumerate(zip(shapes, leaves, strict=True)):
        if tuple(leaf.shape) != tuple(s.shape):
            raise ValueError(f"checkpoint array {i} has shape {leaf.shape}, expected {s.shape}")
        restored.append(jnp.asarray(leaf, dtype=s.dtype))
    current = jax.tree_util.tree_unflatten(treedef, restored)
    done_j = tuple(RBMParams(*(jnp.asarray(a, jnp.float32) for a in p)) for p in done)
    return TrainState(layer, epoch, done_j, current)
