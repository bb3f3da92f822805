"""Receptive fields of hidden units: each unit's weights projected linearly down to pixel space.

For a DBN with weight matrices ``W1 (784, 500)``, ``W2 (500, 500)``, ``W3 (500, 2000)`` the receptive field of a
unit of hidden layer ``l`` is its column of ``W1 @ ... @ Wl`` (the linear projection used by Testolin, Piccolini &
Suweis 2018 to compare units of every layer in the same 28 x 28 pixel space). Biases and the sigmoid are ignored.
"""

from __future__ import annotations

import operator
from collections.abc import Sequence

import numpy as np

__all__ = ["field_images", "receptive_fields"]


def _check_layer(layer: int, n_layers: int) -> int:
    if isinstance(layer, bool) or not isinstance(layer, int | np.integer) or not 1 <= int(layer) <= n_layers:
        raise ValueError(
            f"invalid layer: {layer!r}; allowed: an integer in [1, {n_layers}] "
            "(a hidden layer, 1-based, as in analysis.cluster_layers)"
        )
    return int(layer)


def receptive_fields(weights: Sequence[np.ndarray], layer: int) -> np.ndarray:
    """Linear receptive fields of the units of one hidden layer.

    Args:
        weights: the weight matrices bottom up, ``weights[i]`` of shape ``(n_i, n_{i+1})`` with ``n_0`` the number
            of visible units (e.g. ``W1 (784, 500)``, ``W2 (500, 500)``, ``W3 (500, 2000)``). Consecutive shapes
            must chain. Only the first ``layer`` matrices are read (and validated).
        layer: 1-based hidden layer, in ``[1, len(weights)]``.

    Returns:
        ``(n_layer, n_0)`` float64: row ``j`` is unit ``j``'s field, ``(W1 @ ... @ W_layer).T``. Layer 1 gives
        ``W1.T``, layer 2 ``(W1 @ W2).T``, layer 3 ``(W1 @ W2 @ W3).T``.

    Raises:
        ValueError: ``weights`` empty, a matrix not 2-d, empty or non-finite, shapes that do not chain, or
            ``layer`` out of range.
    """
    if len(weights) == 0:
        raise ValueError("invalid weights: an empty sequence; allowed: one or more 2-d weight matrices")
    layer = _check_layer(layer, len(weights))
    product: np.ndarray | None = None
    for i, w in enumerate(weights[:layer]):
        w = np.asarray(w, dtype=np.float64)
        if w.ndim != 2 or w.size == 0:
            raise ValueError(f"invalid weights[{i}]: shape {w.shape}; allowed: a non-empty 2-d matrix")
        if not np.all(np.isfinite(w)):
            raise ValueError(f"invalid weights[{i}]: contains NaN or inf; allowed: finite values")
        if product is not None and product.shape[1] != w.shape[0]:
            raise ValueError(
                f"invalid weights[{i}]: shape {w.shape} does not chain with weights[{i - 1}] "
                f"({product.shape[1]} units); allowed: weights[{i}].shape[0] == {product.shape[1]}"
            )
        product = w if product is None else product @ w
    assert product is not None
    return np.ascontiguousarray(product.T)


def field_images(fields: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Reshape flat receptive fields into images.

    Args:
        fields: ``(n, h * w)`` receptive fields (rows), e.g. from :func:`receptive_fields`.
        shape: image shape ``(h, w)``, row-major as the pixels were flattened.

    Returns:
        ``(n, h, w)`` float64.

    Raises:
        ValueError: ``fields`` not 2-d, or its width is not ``h * w``, or ``shape`` not two positive integers.
    """
    shape = _check_shape(shape)
    fields = np.asarray(fields, dtype=np.float64)
    if fields.ndim != 2:
        raise ValueError(f"invalid fields: shape {fields.shape}; allowed: a 2-d (n_units, n_pixels) array")
    if fields.shape[1] != shape[0] * shape[1]:
        raise ValueError(
            f"invalid fields: {fields.shape[1]} pixels per field; allowed: shape[0] * shape[1] = "
            f"{shape[0] * shape[1]} for shape={shape}"
        )
    return fields.reshape(fields.shape[0], *shape).copy()


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (operator.index(s) for s in shape)
    except (TypeError, ValueError):
        raise ValueError(f"invalid shape: {shape!r}; allowed: two positive integers (height, width)") from None
    if h < 1 or w < 1:
        raise ValueError(f"invalid shape: {shape!r}; allowed: two positive integers (height, width)")
    return h, w
