"""Analysis callbacks: a training event in, an :class:`AnalysisResult` out; the app hands it to the tracker."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class AnalysisResult:
    """What one analysis produced, keyed by name; the tracker logs it.

    Attributes:
        metrics: ``scope/name`` keys (``graph/h1/mean_degree``) to floats.
        figures: artifact paths (``figures/weights.png``) to ``matplotlib.figure.Figure``.
        tables: artifact paths (``tables/h1_units.csv``) to column tables ``{column: 1-d array}``.
        arrays: artifact paths (``arrays/emd_h1.npz``) to ``{name: array}`` saved as ``.npz``.
        files: artifact paths to raw bytes (e.g. ``graph/thresholded.graphml.gz``).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)

    def update(self, other: AnalysisResult) -> AnalysisResult:
        self.metrics.update(other.metrics)
        self.figures.update(other.figures)
        self.tables.update(other.tables)
        self.arrays.update(other.arrays)
        self.files.update(other.files)
        return self
