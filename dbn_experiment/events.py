"""From the model's training events (:mod:`dbn_jax.train`) to the analysis ones (:mod:`analysis.events`)."""

from __future__ import annotations

from typing import Any

import numpy as np

from analysis import events as A
from dbn_jax import train as T


def _matrix(params: Any) -> np.ndarray:
    return np.asarray(params.w, dtype=np.float64)


def to_analysis(event: Any) -> A.Event | None:
    """The :mod:`analysis.events` event of a :mod:`dbn_jax.train` event, or ``None`` for anything else.

    ``EpochEnd`` keeps layer, epoch and ``n_epochs`` and carries ``params.w``; ``LayerEnd`` keeps the layer;
    ``TrainEnd`` carries the weights of ``layers`` and ``initial`` and, as ``model``, the tuple of trained layers
    (``RBMParams``). Weights become float64 numpy arrays (copied off the device).
    """
    if isinstance(event, T.EpochEnd):
        return A.EpochEnd(event.layer, event.epoch, event.n_epochs, _matrix(event.params))
    if isinstance(event, T.LayerEnd):
        return A.LayerEnd(event.layer)
    if isinstance(event, T.TrainEnd):
        return A.TrainEnd(
            tuple(_matrix(p) for p in event.layers),
            tuple(_matrix(p) for p in event.initial),
            model=tuple(event.layers),
        )
    return None
