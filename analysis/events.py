"""The training events the analysis callbacks take: plain numpy arrays, no model package.

A training loop (or an adapter of its own events, such as ``dbn_experiment.events.to_analysis``) hands these to
:func:`analysis.callbacks.dispatch`. Weight matrices are ``(n_in, n_out)`` float64 numpy arrays, bottom first;
layer indices are 1-based (``w<l>`` connects layer ``l - 1`` to layer ``l``, layer 0 = the visible units).

The classes compare by identity (``eq=False``): field-wise ``==`` is undefined for arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["EpochEnd", "Event", "LayerEnd", "TrainEnd"]


@dataclass(frozen=True, eq=False)
class EpochEnd:
    """After epoch ``epoch`` of ``n_epochs`` of layer ``layer`` (``epoch == 0``: the initial weights).

    Attributes:
        layer: the layer being trained (1-based).
        epoch: the epoch just finished (0 = before training).
        n_epochs: the layer's number of epochs (its last epoch is ``epoch == n_epochs``).
        weights: the matrix ``w<layer>`` being trained, ``(n_in, n_out)`` float64.
    """

    layer: int
    epoch: int
    n_epochs: int
    weights: np.ndarray


@dataclass(frozen=True, eq=False)
class LayerEnd:
    """Layer ``layer`` (1-based) is trained."""

    layer: int


@dataclass(frozen=True, eq=False)
class TrainEnd:
    """End of training.

    Attributes:
        weights: the trained matrices, bottom first, ``(n_l, n_{l+1})`` float64 each.
        initial: the same matrices before training, or ``()`` when unknown.
        model: the trained model object, opaque to :mod:`analysis` (for model-specific callbacks elsewhere).
    """

    weights: tuple[np.ndarray, ...]
    initial: tuple[np.ndarray, ...] = ()
    model: Any = None


Event = EpochEnd | LayerEnd | TrainEnd
