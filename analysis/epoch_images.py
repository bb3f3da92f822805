"""Images with a step: how the receptive fields and the weight distribution of the layer being trained evolve.

Every ``every_n_epochs`` epochs (and at each layer's last epoch) :class:`EpochImagesCallback` gives, as
:attr:`analysis.callbacks.AnalysisResult.images` keyed by layer, the mosaic of the receptive fields of the layer's
first ``mosaic_units`` units (``receptive_fields/h<l>``; the columns of ``W1 ... Wl``, as in
:mod:`analysis.receptive_fields`, each scaled to its own range) and the histogram of the matrix being trained
(``weights/w<l>/histogram``). The MLflow tracker logs each key as an image series with step = epoch, which the
MLflow UI shows with a step slider. The final figures (``figures/*.png``) are the other callbacks'.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analysis.callbacks import AnalysisResult, _is_int, _require
from analysis.events import EpochEnd, TrainEnd

__all__ = ["EpochImagesCallback", "histogram_image", "mosaic_image"]


def mosaic_image(fields: np.ndarray, shape: tuple[int, int], scale: int = 2) -> np.ndarray:
    """``(n, h*w)`` fields as one grey ``uint8`` image: a near-square grid of ``h x w`` tiles (each field scaled
    to [0, 255] over its own range), one-pixel black borders, every pixel ``scale`` x ``scale``."""
    h, w = shape
    fields = np.asarray(fields, dtype=np.float64).reshape(-1, h, w)
    n = fields.shape[0]
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * (h + 1) + 1, cols * (w + 1) + 1), dtype=np.uint8)
    lo = fields.min(axis=(1, 2), keepdims=True)
    span = fields.max(axis=(1, 2), keepdims=True) - lo
    tiles = np.round(255 * (fields - lo) / np.where(span > 0, span, 1)).astype(np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        out[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + c * (w + 1) : 1 + c * (w + 1) + w] = tile
    return np.kron(out, np.ones((scale, scale), dtype=np.uint8)) if scale > 1 else out


def histogram_image(weights: np.ndarray, bins: int, title: str) -> np.ndarray:
    """The density histogram of ``weights`` as an RGB ``uint8`` image (480 x 320), its mean a dashed line."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    x = np.asarray(weights, dtype=np.float64).ravel()
    fig = Figure(figsize=(4.8, 3.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.hist(x, bins=bins, density=True, histtype="stepfilled", color="tab:blue", alpha=0.8)
    ax.axvline(float(x.mean()), color="k", ls="--", lw=1)
    ax.set(title=title, xlabel="weight w", ylabel="density")
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


@dataclass
class EpochImagesCallback:
    """The receptive-field mosaic and the weight histogram of the layer being trained, as images with a step.

    ``every_n_epochs``: 0 = never (the callback does nothing); ``mosaic_units``: the first units of the layer
    shown (0 = no mosaic); ``bins``: histogram bins; ``input_shape``: the image shape of the input layer
    (``null``, or a shape whose product is not the input size: no mosaic). Upper layers' fields need the
    matrices below, taken at their layers' last epochs (a run resumed inside a layer above the first shows the
    histogram only, until the next run)."""

    every_n_epochs: int = 5
    mosaic_units: int = 100
    bins: int = 100
    input_shape: list[int] | None = field(default_factory=lambda: [28, 28])
    _below: dict[int, np.ndarray] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        _require(_is_int(self.every_n_epochs) and self.every_n_epochs >= 0, "every_n_epochs", self.every_n_epochs,
                 "an integer >= 0 (0 = no images)")  # fmt: skip
        _require(_is_int(self.mosaic_units) and self.mosaic_units >= 0, "mosaic_units", self.mosaic_units,
                 "an integer >= 0 (0 = no mosaic)")  # fmt: skip
        _require(_is_int(self.bins) and self.bins >= 1, "bins", self.bins, "an integer >= 1")
        ok = self.input_shape is None or (
            len(self.input_shape) == 2 and all(_is_int(s) and s >= 1 for s in self.input_shape)
        )
        _require(ok, "input_shape", self.input_shape, "null or [height, width], positive integers")

    def __call__(self, event: Any) -> AnalysisResult | None:
        if isinstance(event, TrainEnd):
            self._below.clear()
            return None
        if not isinstance(event, EpochEnd):
            return None
        l = event.layer  # noqa: E741 - layer index, as in the paper
        w = np.asarray(event.weights, dtype=np.float64)
        out = AnalysisResult()
        out.images[f"weights/w{l}/histogram"] = functools.partial(
            histogram_image, w, self.bins, f"w{l}, epoch {event.epoch}"
        )
        fields = self._fields(l, w)
        if fields is not None:
            out.images[f"receptive_fields/h{l}"] = functools.partial(
                mosaic_image, fields, tuple(self.input_shape)
            )
        if event.epoch == event.n_epochs:
            self._below[l] = w
        return out

    def _fields(self, layer: int, w: np.ndarray) -> np.ndarray | None:
        """The first ``mosaic_units`` receptive fields of ``layer``, ``(n, n_pixels)``, or None."""
        if self.mosaic_units == 0 or self.input_shape is None:
            return None
        n = min(self.mosaic_units, w.shape[1])
        product = w[:, :n]
        for i in range(layer - 1, 0, -1):
            below = self._below.get(i)
            if below is None or below.shape[1] != product.shape[0]:
                return None
            product = below @ product
        if product.shape[0] != int(np.prod(self.input_shape)):
            return None
        return product.T.copy()
