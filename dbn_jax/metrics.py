"""Model-quality measures: reconstruction error, free-energy gap, pseudo-log-likelihood, linear read-out.

Pure JAX functions; each returns arrays (the training loop converts them to floats once per epoch).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import optax

from dbn_jax.rbm import RBMParams, bernoulli, free_energy, hidden_probs, visible_probs


def reconstruction_error(key: jax.Array, params: RBMParams, v: jax.Array) -> jax.Array:
    """Mean squared error per visible unit of ``v -> sampled h -> p(v | h)`` (the CD-1 reconstruction)."""
    h = bernoulli(key, hidden_probs(params, v))
    return jnp.mean(jnp.square(v - visible_probs(params, h)))


def free_energy_gap(params: RBMParams, v_train: jax.Array, v_valid: jax.Array) -> jax.Array:
    """``mean F(v_valid) - mean F(v_train)``: grows when the RBM overfits (Hinton 2010, Practical Guide §6)."""
    return jnp.mean(free_energy(params, v_valid)) - jnp.mean(free_energy(params, v_train))


def pseudo_log_likelihood(key: jax.Array, params: RBMParams, v: jax.Array) -> jax.Array:
    """Stochastic pseudo-log-likelihood per sample, ``n_visible * log σ(F(ṽ) - F(v))``.

    ``ṽ`` is ``v`` with one visible unit per sample, chosen at random, flipped to ``1 - v_i`` (the estimator of
    scikit-learn's ``BernoulliRBM.score_samples``). Defined for binary ``v``; on grey levels it is the same formula
    applied to soft values, useful for monitoring only.

    Returns:
        Scalar mean over the batch.
    """
    n, d = v.shape
    idx = jax.random.randint(key, (n,), 0, d)
    flip = jax.nn.one_hot(idx, d, dtype=v.dtype)
    v_flip = v + flip * (1.0 - 2.0 * v)
    return d * jnp.mean(jax.nn.log_sigmoid(free_energy(params, v_flip) - free_energy(params, v)))


@functools.partial(jax.jit, static_argnames=("n_classes", "max_iter"))
def fit_softmax_regression(
    x: jax.Array, y: jax.Array, *, n_classes: int = 10, l2: float = 1e-4, max_iter: int = 100
) -> tuple[jax.Array, jax.Array]:
    """Multinomial logistic regression by full-batch L-BFGS (optax), deterministic.

    Minimises ``mean cross-entropy + l2/2 · ||W||²`` from zero weights; features are standardised inside with the
    training mean and sd so the result does not depend on the layer's activation scale.

    Args:
        x: ``(n, d)`` float32 features.
        y: ``(n,)`` integer labels in ``[0, n_classes)``.
        n_classes: number of classes.
        l2: L2 penalty on the weights (not the bias).
        max_iter: L-BFGS iterations.

    Returns:
        ``(w, b)``: ``(d, n_classes)`` weights and ``(n_classes,)`` bias acting on standardised features; use
        :func:`softmax_regression_accuracy` with the same ``x`` statistics.
    """
    mu, sd = jnp.mean(x, axis=0), jnp.std(x, axis=0) + 1e-6
    z = (x - mu) / sd
    onehot = jax.nn.one_hot(y, n_classes, dtype=x.dtype)

    def loss(p):
        logits = z @ p[0] + p[1]
        return jnp.mean(optax.softmax_cross_entropy(logits, onehot)) + 0.5 * l2 * jnp.sum(p[0] ** 2)

    p0 = (jnp.zeros((x.shape[1], n_classes), x.dtype), jnp.zeros((n_classes,), x.dtype))
    opt = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def body(_, carry):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = opt.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return optax.apply_updates(p, updates), state

    p, _ = jax.lax.fori_loop(0, max_iter, body, (p0, opt.init(p0)))
    # Fold the standardisation into the returned weights so they act on raw features.
    w = p[0] / sd[:, None]
    b = p[1] - mu @ w
    return w, b


def softmax_regression_accuracy(w: jax.Array, b: jax.Array, x: jax.Array, y: jax.Array) -> jax.Array:
    """Fraction of ``x`` whose arg-max logit equals ``y``."""
    return jnp.mean(jnp.argmax(x @ w + b, axis=-1) == y)


def linear_readout_accuracy(
    x_train: jax.Array,
    y_train: jax.Array,
    x_test: jax.Array,
    y_test: jax.Array,
    *,
    l2: float = 1e-4,
    max_iter: int = 100,
) -> jax.Array:
    """Test accuracy of a softmax regression fitted on the training features."""
    n_classes = int(max(int(jnp.max(y_train)), int(jnp.max(y_test)))) + 1
    w, b = fit_softmax_regression(x_train, y_train, n_classes=n_classes, l2=l2, max_iter=max_iter)
    return softmax_regression_accuracy(w, b, x_test, y_test)
