"""Supervised baseline: a multilayer perceptron with the DBN's hidden layers, trained end to end by backprop.

The network is ``784 - hidden... - n_classes``: logistic (sigmoid) hidden units, as in the DBN, and a softmax
output; the loss is the mean softmax cross-entropy. It is trained with the same optax update rule as the RBMs
(:func:`dbn_jax.train.make_optimizer`: SGD with a momentum switch and weight decay on the weights only), the same
initialisation ``N(0, init_std²)``, batch size, epochs and per-epoch reshuffling from the seed, so one sweep over
``model=dbn_paper,mlp_paper`` compares the structure that unsupervised CD and supervised backprop give the same
architecture.

Each layer's parameters are an :class:`~dbn_jax.rbm.RBMParams` (``w``, ``b_hid`` = the bias; ``b_vis`` unused, kept
at zero) so the analysis, the read-out and the model format take the hidden layers as they take a DBN's.
:func:`train_mlp` yields the same events as :func:`dbn_jax.train.train_dbn`: the whole network trains as one
"layer 1" (its epoch events carry the first weight matrix, for the per-epoch statistics), and the end event holds
the hidden layers (the output layer is in the resumable state and the last epoch's metrics).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import jax
import jax.numpy as jnp
import optax

from dbn_jax.rbm import RBMParams, init_rbm
from dbn_jax.train import (
    EpochEnd,
    LayerEnd,
    LayerState,
    TrainEnd,
    TrainSettings,
    TrainState,
    check_finite,
    make_optimizer,
)

Layers = tuple[RBMParams, ...]


def init_mlp(key: jax.Array, sizes: Sequence[int], init_std: float = 0.1) -> Layers:
    """Weights ``init_std * N(0, 1)``, zero biases, for the layers ``sizes[i] -> sizes[i + 1]``."""
    keys = jax.random.split(key, len(sizes) - 1)
    return tuple(init_rbm(k, a, b, init_std) for k, a, b in zip(keys, sizes[:-1], sizes[1:], strict=True))


def logits(params: Layers, x: jax.Array) -> jax.Array:
    """Class scores of ``x`` (sigmoid hidden layers, linear output)."""
    h = x
    for p in params[:-1]:
        h = jax.nn.sigmoid(h @ p.w + p.b_hid)
    return h @ params[-1].w + params[-1].b_hid


def loss(params: Layers, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of the integer labels ``y``."""
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits(params, x), y))


@jax.jit
def accuracy(params: Layers, x: jax.Array, y: jax.Array) -> jax.Array:
    return jnp.mean(jnp.argmax(logits(params, x), axis=-1) == y)


def make_train_epoch(optimizer: optax.GradientTransformation, batch_size: int):
    """Returns jitted ``epoch(state, key, x, y) -> (state, mean loss)``: one ``lax.scan`` over reshuffled batches
    (the last incomplete batch dropped, as for the RBMs)."""

    @jax.jit
    def epoch(state: LayerState, key: jax.Array, x: jax.Array, y: jax.Array):
        n_batches = x.shape[0] // batch_size
        idx = jax.random.permutation(key, x.shape[0])[: n_batches * batch_size].reshape(n_batches, batch_size)

        def body(s: LayerState, i: jax.Array):
            value, grads = jax.value_and_grad(loss)(s.params, jnp.take(x, i, axis=0), jnp.take(y, i, axis=0))
            updates, opt_state = optimizer.update(grads, s.opt_state, s.params)
            return LayerState(optax.apply_updates(s.params, updates), opt_state, None), value

        state, losses = jax.lax.scan(body, state, idx)
        return state, jnp.mean(losses)

    return epoch


def train_mlp(
    key: jax.Array,
    x_train: jax.Array,
    y_train: jax.Array,
    hidden: Sequence[int],
    settings: TrainSettings,
    x_valid: jax.Array,
    y_valid: jax.Array,
    *,
    n_monitor: int = 1000,
) -> Iterator[EpochEnd | LayerEnd | TrainEnd]:
    """Backprop training of the MLP; a generator of the events of :func:`dbn_jax.train.train_dbn`.

    Epoch metrics: ``loss`` (mean training cross-entropy of the epoch; at epoch 0 that of the first ``n_monitor``
    rows), ``train_accuracy`` and ``test_accuracy`` (on the first ``n_monitor`` rows of each split).
    """
    x = jnp.asarray(x_train, jnp.float32)
    y = jnp.asarray(y_train, jnp.int32)
    xv, yv = jnp.asarray(x_valid, jnp.float32)[:n_monitor], jnp.asarray(y_valid, jnp.int32)[:n_monitor]
    n_classes = int(max(int(jnp.max(y)), int(jnp.max(yv)))) + 1
    sizes = [int(x.shape[1]), *hidden, n_classes]
    steps = x.shape[0] // settings.batch_size
    optimizer = make_optimizer(
        settings.learning_rate, settings.momentum, settings.final_momentum, settings.momentum_switch_epoch,
        settings.weight_decay, steps,
    )  # fmt: skip
    epoch_fn = make_train_epoch(optimizer, settings.batch_size)
    k_init, k_epochs = jax.random.split(key)
    params = init_mlp(k_init, sizes, settings.init_std)
    initial = params
    state = LayerState(params, optimizer.init(params), None)
    n_hidden = len(hidden)

    def metrics(p: Layers, train_loss: float) -> dict[str, float]:
        return {
            "loss": float(train_loss),
            "train_accuracy": float(accuracy(p, x[:n_monitor], y[:n_monitor])),
            "test_accuracy": float(accuracy(p, xv, yv)),
        }

    m0 = metrics(params, float(loss(params, x[:n_monitor], y[:n_monitor])))
    yield EpochEnd(1, 0, params[0], m0, TrainState(1, 0, (), state), settings.epochs)
    for epoch in range(1, settings.epochs + 1):
        state, mean_loss = epoch_fn(state, jax.random.fold_in(k_epochs, epoch), x, y)
        m = metrics(state.params, float(mean_loss))
        for i, p in enumerate(state.params, start=1):
            check_finite(i, epoch, p, m if i == 1 else {}, settings)
        yield EpochEnd(1, epoch, state.params[0], m, TrainState(1, epoch, (), state), settings.epochs)
    yield LayerEnd(1, state.params[0])
    yield TrainEnd(tuple(state.params[:n_hidden]), tuple(initial[:n_hidden]), tuple(state.params[n_hidden:]))
