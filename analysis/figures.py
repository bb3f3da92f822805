"""Figures of the network analysis. Object-oriented matplotlib only: every function builds and returns its own
:class:`matplotlib.figure.Figure` (never the global state machine: no figure manager, nothing shown or saved);
the tracker saves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import dendrogram, leaves_list, linkage
from scipy.spatial.distance import squareform

from analysis.clustering import Clustering, check_distances, check_labels
from analysis.receptive_fields import field_images
from analysis.structure import structure_function_stats

__all__ = [
    "plot_cluster_dendrogram",
    "plot_degree_distributions",
    "plot_distance_matrix",
    "plot_receptive_field_mosaic",
    "plot_rich_club",
    "plot_samples",
    "plot_singular_values",
    "plot_strength_histograms",
    "plot_structure_function",
    "plot_weight_histograms",
]

FIELD_CMAP = "RdBu_r"
INITIAL_LABEL = "initial (epoch 0)"
TRAINED_LABEL = "trained"
_INITIAL_COLOR = "tab:gray"
_TRAINED_COLOR = "tab:blue"


# --------------------------------------------------------------------------------------------------- helpers
def _positive_int(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"invalid {name}: {value!r}; allowed: an integer >= 1")
    return int(value)


def _series(name: str, mapping: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Validate ``{key: array}`` (non-empty, each array non-empty and finite) and flatten the arrays to float64."""
    if not isinstance(mapping, Mapping) or len(mapping) == 0:
        raise ValueError(f"invalid {name}: {type(mapping).__name__}; allowed: a non-empty dict of name -> array")
    out = {}
    for key, value in mapping.items():
        x = np.asarray(value, dtype=np.float64).ravel()
        if x.size == 0 or not np.all(np.isfinite(x)):
            raise ValueError(f"invalid {name}[{key!r}]: empty or not finite; allowed: a non-empty finite array")
        out[str(key)] = x
    return out


def _grid(n: int, max_cols: int = 4) -> tuple[int, int]:
    cols = min(n, max_cols)
    return math.ceil(n / cols), cols


def _histogram_panels(
    title: str,
    xlabel: str,
    trained: dict[str, np.ndarray],
    initial: dict[str, np.ndarray] | None,
    bins: int,
    log_y: bool,
) -> Figure:
    """One panel per key: step-histogram densities of ``initial`` (where present) and ``trained``, means marked."""
    keys = list(trained) + [k for k in (initial or {}) if k not in trained]
    rows, cols = _grid(len(keys))
    fig = Figure(figsize=(4.2 * cols, 3.3 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, key in zip(axes, keys, strict=False):
        series = [(INITIAL_LABEL, (initial or {}).get(key), _INITIAL_COLOR), (TRAINED_LABEL, trained.get(key), "")]
        present = [(label, x, color or _TRAINED_COLOR) for label, x, color in series if x is not None]
        edges = np.histogram_bin_edges(np.concatenate([x for _, x, _ in present]), bins=bins)
        for label, x, color in present:
            density, _ = np.histogram(x, bins=edges, density=True)
            ax.stairs(density, edges, color=color, linewidth=1.4, label=label)
            mean = float(x.mean())
            ax.axvline(mean, color=color, linestyle="--", linewidth=1.0, label=f"mean = {mean:.3g}")
        sizes = ", ".join(f"n = {x.size:,}" for _, x, _ in present[-1:])
        ax.set_title(f"{key} ({sizes})")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("density")
        if log_y:
            ax.set_yscale("log")
        ax.legend(fontsize="small")
    for ax in axes[len(keys) :]:
        fig.delaxes(ax)
    fig.suptitle(title)
    return fig


# --------------------------------------------------------------------------------------------------- weights
def plot_weight_histograms(
    initial: Mapping[str, np.ndarray] | None,
    trained: Mapping[str, np.ndarray],
    bins: int = 100,
    log_y: bool = False,
) -> Figure:
    """Weight distributions before and after training, one panel per matrix.

    Args:
        initial: matrix name (e.g. ``"w1"``, ``"w2"``, ``"w3"``, ``"all"``) to its weights at epoch 0, any shape
            (flattened); None: the trained weights alone.
        trained: the same names to the trained weights. Panels follow ``trained``'s order, then names found only
            in ``initial``; a name missing from one of the two shows the other alone.
        bins: histogram bins per panel (shared by both series), ``>= 1``.
        log_y: logarithmic density axis (shows the tails).

    Returns:
        The figure: one axes per name, step-histogram densities labelled ``"initial (epoch 0)"`` / ``"trained"``,
        each mean a dashed vertical line.

    Raises:
        ValueError: an empty mapping, an empty or non-finite array, ``bins < 1``.
    """
    return _histogram_panels(
        "Weight distributions: initial vs trained",
        "weight w",
        _series("trained", trained),
        None if initial is None else _series("initial", initial),
        _positive_int("bins", bins),
        log_y,
    )


def plot_strength_histograms(
    strengths: Mapping[str, np.ndarray],
    initial: Mapping[str, np.ndarray] | None = None,
    bins: int = 60,
    log_y: bool = False,
) -> Figure:
    """Distributions of node strengths, one panel per ``"layer/side"`` key.

    Args:
        strengths: e.g. ``{"v/out": (784,), "h1/in": (500,), "h1/out": (500,), ..., "h3/in": (2000,)}``, the
            strength of every unit of a layer on one side (incoming / outgoing weights) of the trained network.
        initial: the same keys at epoch 0, overlaid when given.
        bins: histogram bins per panel, ``>= 1``.
        log_y: logarithmic density axis.

    Returns:
        The figure: one axes per key, density step histograms, means dashed; legend ``"initial (epoch 0)"`` /
        ``"trained"``.

    Raises:
        ValueError: an empty mapping, an empty or non-finite array, ``bins < 1``.
    """
    return _histogram_panels(
        "Node strength distributions",
        "strength s",
        _series("strengths", strengths),
        None if initial is None else _series("initial", initial),
        _positive_int("bins", bins),
        log_y,
    )


# --------------------------------------------------------------------------------------------------- degrees
def _log_bins(k: np.ndarray, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Log-spaced bins of positive ``k``: ``(edges, widths, centres)``.

    Integer data get integer edges (bins ``[e_i, e_{i+1})`` holding ``e_{i+1} - e_i`` integers, that count being
    the width, so no bin is narrower than one degree), centred at the geometric mean of their first and last
    integer; other data get plain log-spaced edges and geometric centres.
    """
    lo, hi = float(k.min()), float(k.max())
    if np.all(k == np.round(k)):
        raw = np.floor(np.logspace(np.log10(lo), np.log10(hi + 1.0), n_bins + 1))
        raw[0], raw[-1] = lo, hi + 1.0  # pinned: floating-point rounding can move the end edges by one
        edges = np.unique(raw)
        if edges.size < 2:
            edges = np.array([lo, lo + 1.0])
        return edges, np.diff(edges), np.sqrt(edges[:-1] * (edges[1:] - 1.0))
    if hi <= lo:
        edges = np.array([lo / 1.25, lo * 1.25])
    else:
        edges = np.logspace(np.log10(lo), np.log10(hi), n_bins + 1)
    return edges, np.diff(edges), np.sqrt(edges[:-1] * edges[1:])


def plot_degree_distributions(degrees: Mapping[str, np.ndarray], log_bins: int = 20) -> Figure:
    """Degree distributions per layer: linear histograms (top row) and log-log ``P(k)`` (bottom row).

    Args:
        degrees: layer name (e.g. ``"h1"``) to the ``(n_units,)`` degrees of its units (non-negative).
        log_bins: number of logarithmically spaced bins between the smallest and the largest positive degree,
            ``>= 1``.

    Returns:
        The figure, ``2 x n_layers`` axes. Top: counts of units per degree (unit-wide bins when the degrees span
        at most 60 values, else 50 bins). Bottom: the density ``P(k) = count / (n_positive * bin width)`` on
        log-spaced bins (integer edges for integer degrees, the width being the number of integers in the bin),
        markers at the bins' geometric centres; units with ``k = 0`` are skipped there (no place on a log axis)
        and the density is normalised over ``k > 0``.

    Raises:
        ValueError: an empty mapping, an empty, non-finite or negative array, ``log_bins < 1``.
    """
    series = _series("degrees", degrees)
    log_bins = _positive_int("log_bins", log_bins)
    for key, k in series.items():
        if k.min() < 0:
            raise ValueError(f"invalid degrees[{key!r}]: negative values; allowed: degrees >= 0")
    cols = len(series)
    fig = Figure(figsize=(4.2 * cols, 6.8), layout="constrained")
    axes = fig.subplots(2, cols, squeeze=False)
    for j, (key, k) in enumerate(series.items()):
        ax = axes[0, j]
        kmin, kmax = float(k.min()), float(k.max())
        if kmax - kmin <= 60:
            edges = np.arange(math.floor(kmin), math.floor(kmax) + 2) - 0.5
        else:
            edges = np.histogram_bin_edges(k, bins=50)
        counts, _ = np.histogram(k, bins=edges)
        ax.stairs(counts, edges, fill=True, color=f"C{j}", alpha=0.8)
        ax.set_title(f"{key}: mean k = {k.mean():.3g}")
        ax.set_xlabel("degree k")
        ax.set_ylabel("units")

        ax = axes[1, j]
        positive = k[k > 0]
        ax.set_title(f"{key}: P(k), log bins")
        ax.set_xlabel("degree k")
        ax.set_ylabel("P(k)")
        if positive.size == 0:
            ax.text(0.5, 0.5, "no unit with k > 0", ha="center", va="center", transform=ax.transAxes)
            continue
        edges, widths, centres = _log_bins(positive, log_bins)
        counts, _ = np.histogram(positive, bins=edges)
        density = counts / (positive.size * widths)
        keep = counts > 0
        ax.plot(centres[keep], density[keep], "o-", color=f"C{j}", markersize=4)
        ax.set_xscale("log")
        ax.set_yscale("log")
    fig.suptitle("Degree distributions")
    return fig


# --------------------------------------------------------------------------------------------------- fields
def _scaled(images: np.ndarray) -> np.ndarray:
    """Each image divided by its own max |value|: [-1, 1] colours are centred at 0 per image."""
    peak = np.abs(images).reshape(images.shape[0], -1).max(axis=1)
    peak[peak == 0] = 1.0
    return images / peak[:, None, None]


def _tile(images: np.ndarray, grid: list[list[int | None]], gap: int = 1) -> np.ndarray:
    """Images placed on a grid (``None`` = empty slot), separated by ``gap`` NaN pixels."""
    h, w = images.shape[1:]
    rows, cols = len(grid), max(len(r) for r in grid)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan)
    for i, row in enumerate(grid):
        for j, idx in enumerate(row):
            if idx is not None:
                out[i * (h + gap) : i * (h + gap) + h, j * (w + gap) : j * (w + gap) + w] = images[idx]
    return out


def plot_receptive_field_mosaic(
    fields: np.ndarray,
    labels: np.ndarray | None = None,
    n: int = 100,
    shape: tuple[int, int] = (28, 28),
    title: str = "Receptive fields",
    sizes: np.ndarray | None = None,
) -> Figure:
    """A mosaic of receptive fields, optionally one row per cluster.

    Every field is scaled by its own max ``|w|`` and drawn with the diverging map ``RdBu_r`` on ``[-1, 1]``, so
    white is 0 in every image (red positive, blue negative).

    Args:
        fields: ``(N, h * w)`` receptive fields (rows).
        labels: ``(N,)`` cluster labels ``0..K-1``; when given, row ``c`` shows the first members of cluster ``c``
            in the order of ``fields`` (pass ``fields[idx], labels[idx]`` with ``idx`` the concatenated
            :func:`analysis.clustering.sample_members` for a medoid-first random pick), labelled
            ``c<i> (n=size)``. At most ``n`` rows (the first clusters), ``max(1, n // rows)`` fields per row.
        n: the most fields shown, ``>= 1``. Without labels, the first ``n`` fields on a near-square grid.
        shape: image shape ``(h, w)``.
        title: the axes title.
        sizes: ``(K,)`` cluster sizes for the row labels (e.g. ``Clustering.sizes`` when ``fields`` is a sample);
            default: the counts in ``labels``.

    Returns:
        The figure: one image axes (the mosaic) and its colour bar.

    Raises:
        ValueError: ``fields`` not ``(N, h * w)``, invalid ``labels`` or ``sizes``, or ``n < 1``.
    """
    images = _scaled(field_images(fields, shape))
    n = _positive_int("n", n)
    total = images.shape[0]
    if total == 0:
        raise ValueError("invalid fields: no rows; allowed: one or more receptive fields")
    h = images.shape[1]
    if labels is None:
        count = min(n, total)
        cols = math.ceil(math.sqrt(count))
        grid: list[list[int | None]] = [list(range(r, min(r + cols, count))) for r in range(0, count, cols)]
        xlabel = f"{count} of {total} fields, row by row"
    else:
        lab, k = check_labels(labels, total)
        counts = np.bincount(lab, minlength=k)
        if sizes is None:
            shown_sizes = counts
        else:
            shown_sizes = np.asarray(sizes)
            if shown_sizes.shape != (k,):
                raise ValueError(f"invalid sizes: shape {shown_sizes.shape}; allowed: ({k},), one per cluster")
        rows = min(k, n)
        per = min(max(1, n // rows), int(counts[:rows].max()))
        grid = [list(np.flatnonzero(lab == c)[:per]) for c in range(rows)]
        xlabel = f"up to {per} members per cluster" + (f" (first {rows} of {k} clusters)" if rows < k else "")
    mosaic = _tile(images, grid)
    height = 7.0
    width = float(np.clip(height * mosaic.shape[1] / mosaic.shape[0] + 2.5, 4.5, 14.0))
    fig = Figure(figsize=(width, height), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps[FIELD_CMAP].with_extremes(bad="white")
    image = ax.imshow(mosaic, cmap=cmap, vmin=-1.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    if labels is None:
        ax.set_yticks([])
    else:
        ax.set_yticks([c * (h + 1) + (h - 1) / 2 for c in range(len(grid))])
        ax.set_yticklabels([f"c{c} (n={shown_sizes[c]})" for c in range(len(grid))], fontsize="small")
        ax.set_ylabel("cluster")
    ax.set_xlabel(xlabel)
    fig.colorbar(image, ax=ax, shrink=0.8, label="weight / max |weight| of the field")
    ax.set_title(title)
    return fig


def _draw_field(ax: Axes, image: np.ndarray) -> None:
    peak = float(np.abs(image).max()) or 1.0
    ax.imshow(image, cmap=FIELD_CMAP, vmin=-peak, vmax=peak, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])


def plot_cluster_dendrogram(
    clustering: Clustering,
    fields: np.ndarray,
    shape: tuple[int, int] = (28, 28),
    title: str = "Clusters of receptive fields",
) -> Figure:
    """The cluster-level dendrogram with each cluster's medoid receptive field under its leaf.

    Args:
        clustering: from :func:`analysis.clustering.cluster_fields`.
        fields: ``(n, h * w)`` receptive fields of the clustered units (``n == len(clustering.labels)``).
        shape: image shape ``(h, w)``.
        title: the dendrogram's title.

    Returns:
        The figure: the dendrogram axes (``scipy.cluster.hierarchy.dendrogram`` of ``clustering.cluster_linkage``,
        leaves labelled ``c<i> (n=size)``) and, under it, one small image axes per cluster in leaf order showing
        the medoid's field (``RdBu_r``, symmetric about 0 per image). With a single cluster, a note in place of
        the dendrogram and one image.

    Raises:
        ValueError: ``fields`` not ``(n, h * w)``.
    """
    images = field_images(fields, shape)
    if images.shape[0] != clustering.labels.shape[0]:
        raise ValueError(
            f"invalid fields: {images.shape[0]} rows; "
            f"allowed: {clustering.labels.shape[0]}, one per clustered unit"
        )
    k = clustering.n_clusters
    fig_w, fig_h = max(8.0, 0.55 * k + 1.5), 6.0
    fig = Figure(figsize=(fig_w, fig_h))
    left, width = 0.08, 0.9
    ax = fig.add_axes((left, 0.42, width, 0.5))
    ax.set_title(title)
    if k >= 2:
        leaf_labels = [f"c{i} (n={clustering.sizes[i]})" for i in range(k)]
        tree = dendrogram(clustering.cluster_linkage, ax=ax, labels=leaf_labels, leaf_rotation=90)
        order = [int(i) for i in tree["leaves"]]
        ax.set_ylabel("mean inter-cluster distance")
        ax.set_xlabel("cluster (medoid field below)")
        ax.tick_params(axis="x", labelsize=8)
    else:
        order = [0]
        ax.text(0.5, 0.5, f"a single cluster (n={clustering.sizes[0]}): no dendrogram", ha="center", va="center")
        ax.set_xticks([])
        ax.set_yticks([])
    cell = width / len(order)
    size_w = min(0.9 * cell, 0.16 * fig_h / fig_w)
    size_h = size_w * fig_w / fig_h
    for pos, c in enumerate(order):
        x0 = left + (pos + 0.5) * cell - size_w / 2
        sub = fig.add_axes((x0, 0.02, size_w, size_h))
        _draw_field(sub, images[int(clustering.medoids[c])])
        sub.set_title(f"c{c}", fontsize=7, pad=2)
    return fig


# --------------------------------------------------------------------------------------------------- structure
_SF_PANELS = (
    ("mean_degree", "mean_knn", "pearson_k_knn"),
    ("mean_degree", "mean_strength", "pearson_k_s"),
    ("mean_strength", "mean_knn", "pearson_s_knn"),
)
_SF_AXIS = {
    "mean_degree": r"mean degree $\bar{k}$",
    "mean_strength": r"mean strength $\bar{s}$",
    "mean_knn": r"mean neighbour degree $\bar{k}_{nn}$",
}


def _r_text(stats: Mapping[str, float], key: str) -> str:
    r, p = float(stats.get(key, np.nan)), float(stats.get(f"{key}_p", np.nan))
    if not np.isfinite(r):
        return "r = n/a"
    text = f"r = {r:.2f}, p = {p:.2g}"
    perm = float(stats.get(f"{key}/perm_p", np.nan))
    if np.isfinite(perm):
        text += f"\nrandom partitions: r = {float(stats[f'{key}/perm_mean']):.2f}, p_perm = {perm:.2g}"
    return text


def plot_structure_function(
    tables: Mapping[str, Mapping[str, Any]],
    stats: Mapping[str, Mapping[str, float]] | None = None,
    subtitle: str | None = None,
) -> Figure:
    """Structure vs function across clusters, one row per layer (Testolin et al. 2018, Fig. 5 style).

    Args:
        tables: layer name (e.g. ``"h1"``, ``"h2"``) to its :func:`analysis.structure.cluster_structure` table;
            an optional ``"side"`` entry (``"out"``, ``"in"``, ``"total"``) names the edges it was taken from.
        stats: layer name to its :func:`analysis.structure.structure_function_stats`, optionally with the
            label-permutation results (``"<key>/perm_mean"``, ``"<key>/perm_p"``); computed from the table for a
            layer that is missing (or when ``None``).
        subtitle: appended to the figure title (e.g. the EMD method and linkage).

    Returns:
        The figure, ``n_layers x 3`` axes: mean degree vs mean ``k_nn``, mean degree vs mean strength, mean
        strength vs mean ``k_nn``. One open circle per cluster, marker area proportional to the cluster's size
        (the largest cluster over all layers = 300 pt^2); a singleton cluster is a red cross. Each title gives the
        layer, side, Pearson r and p (and the random partitions' mean r and permutation p when given). Clusters
        with an undefined ``k_nn`` are not drawn in the ``k_nn`` panels.

    Raises:
        ValueError: ``tables`` empty or a table missing a column.
    """
    if not isinstance(tables, Mapping) or len(tables) == 0:
        raise ValueError("invalid tables: allowed: a non-empty dict of layer name -> cluster_structure() table")
    needed = ("size", "mean_degree", "mean_strength", "mean_knn")
    cols: dict[str, dict[str, np.ndarray]] = {}
    sides: dict[str, str] = {}
    for layer, table in tables.items():
        missing = [c for c in needed if c not in table]
        if missing:
            raise ValueError(
                f"invalid tables[{layer!r}]: missing columns {missing}; allowed: a cluster_structure() table"
            )
        cols[layer] = {c: np.asarray(table[c], dtype=np.float64) for c in needed}
        sides[layer] = str(table.get("side", ""))
    largest = max(float(np.max(t["size"], initial=1.0)) for t in cols.values()) or 1.0
    rows = len(cols)
    fig = Figure(figsize=(12.5, 3.8 * rows + 0.7), layout="constrained")
    axes = fig.subplots(rows, 3, squeeze=False)
    for i, (layer, table) in enumerate(cols.items()):
        layer_stats = (stats or {}).get(layer)
        if layer_stats is None:
            layer_stats = structure_function_stats(table)
        area = 300.0 * table["size"] / largest
        single = table["size"] == 1
        label = f"{layer} ({sides[layer]})" if sides[layer] else layer
        for j, (x, y, key) in enumerate(_SF_PANELS):
            ax = axes[i, j]
            ax.scatter(table[x][~single], table[y][~single], s=area[~single], facecolors="none",
                       edgecolors=f"C{i}", linewidths=1.3)  # fmt: skip
            if single.any():
                ax.scatter(table[x][single], table[y][single], s=30, marker="x", color="red", linewidths=1.2,
                           label=f"singleton ({int(single.sum())})")  # fmt: skip
                ax.legend(fontsize="x-small", loc="best")
            ax.set_xlabel(_SF_AXIS[x])
            ax.set_ylabel(_SF_AXIS[y])
            ax.set_title(f"{label}: {_r_text(layer_stats, key)}", fontsize="small")
            ax.margins(0.12)
    title = "Structure vs function across receptive-field clusters (marker area \u221d cluster size)"
    fig.suptitle(title + (f"\n{subtitle}" if subtitle else ""))
    return fig


# --------------------------------------------------------------------------------------------------- distances
def plot_distance_matrix(
    distances: np.ndarray,
    clustering: Clustering | None = None,
    title: str = "Earth mover's distances between receptive fields",
) -> Figure:
    """The distance matrix with rows and columns in dendrogram leaf order.

    Args:
        distances: ``(n, n)`` distances (validated as in :func:`analysis.clustering.check_distances`).
        clustering: when given, its unit-level linkage gives the order and white lines separate its clusters
            (contiguous blocks in that order); otherwise the order of an average linkage of ``distances``.
        title: the axes title.

    Returns:
        The figure: the matrix image and its colour bar.

    Raises:
        ValueError: invalid ``distances``, or a clustering of a different number of units.
    """
    d = check_distances(distances)
    n = d.shape[0]
    if clustering is not None:
        if clustering.labels.shape[0] != n:
            raise ValueError(
                f"invalid clustering: {clustering.labels.shape[0]} units; allowed: {n}, the size of distances"
            )
        order = leaves_list(clustering.linkage)
    else:
        order = leaves_list(linkage(squareform(d, checks=False), method="average"))
    fig = Figure(figsize=(7.0, 6.0), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(d[np.ix_(order, order)], cmap="viridis", interpolation="nearest")
    fig.colorbar(image, ax=ax, label="distance")
    if clustering is not None:
        ordered = clustering.labels[order]
        for b in np.flatnonzero(np.diff(ordered) != 0) + 0.5:
            ax.axhline(b, color="white", linewidth=0.6)
            ax.axvline(b, color="white", linewidth=0.6)
    ax.set_xlabel("unit (dendrogram leaf order)")
    ax.set_ylabel("unit (dendrogram leaf order)")
    ax.set_title(title)
    return fig


# --------------------------------------------------------------------------------------------- beyond the paper
def plot_singular_values(
    trained: Mapping[str, np.ndarray], initial: Mapping[str, np.ndarray] | None = None
) -> Figure:
    """Rank plot (log-log) of the singular values of each weight matrix, initial vs trained.

    Args:
        trained: matrix name (``"w1"``...) to its singular values, descending, positive.
        initial: the same for the initial weights (optional).

    Returns:
        The figure, one axes per matrix.
    """
    series = _series("trained", trained)
    cols = len(series)
    fig = Figure(figsize=(4.2 * cols, 3.6), layout="constrained")
    axes = fig.subplots(1, cols, squeeze=False).ravel()
    for ax, (key, sv) in zip(axes, series.items(), strict=True):
        for label, x, color in ((INITIAL_LABEL, (initial or {}).get(key), _INITIAL_COLOR),
                                (TRAINED_LABEL, sv, _TRAINED_COLOR)):  # fmt: skip
            if x is None:
                continue
            x = np.asarray(x, dtype=np.float64)
            x = x[x > 0]
            ax.plot(np.arange(1, x.size + 1), x, color=color, linewidth=1.4, label=label)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_title(f"{key}: singular values")
        ax.set_xlabel("rank")
        ax.set_ylabel("singular value")
        ax.legend(fontsize="small")
    return fig


def plot_rich_club(rho: Mapping[int, float], k_star: int | None = None) -> Figure:
    """The normalised rich-club coefficient ``ρ(k)`` against the degree ``k``, with ``ρ = 1`` (the null model)
    and the degree ``k*`` whose value is logged marked."""
    if not rho:
        raise ValueError("invalid rho: empty; allowed: {k: rho(k)} for one or more degrees")
    ks = np.array(sorted(rho), dtype=np.float64)
    vals = np.array([rho[int(k)] for k in ks], dtype=np.float64)
    fig = Figure(figsize=(6.0, 4.0), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(ks, vals, "o-", markersize=3, color=_TRAINED_COLOR, label="trained / rewired")
    ax.axhline(1.0, color=_INITIAL_COLOR, linestyle="--", linewidth=1.0, label="null model")
    if k_star is not None and int(k_star) in rho:
        ax.axvline(k_star, color="tab:red", linestyle=":", linewidth=1.0, label=f"k* = {k_star}")
    ax.set_xlabel("degree k")
    ax.set_ylabel("ρ(k) = φ(k) / φ_null(k)")
    ax.set_title("Normalised rich-club coefficient (degree-preserving rewiring)")
    ax.legend(fontsize="small")
    return fig


def plot_samples(images: np.ndarray, title: str = "Samples") -> Figure:
    """A near-square mosaic of gray images in [0, 1] (e.g. samples of the top RBM propagated to the pixels)."""
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3 or images.shape[0] == 0:
        raise ValueError(f"invalid images: shape {images.shape}; allowed: (n >= 1, h, w)")
    count = images.shape[0]
    cols = math.ceil(math.sqrt(count))
    grid: list[list[int | None]] = [list(range(r, min(r + cols, count))) for r in range(0, count, cols)]
    mosaic = _tile(images, grid)
    fig = Figure(figsize=(6.0, 6.0 * mosaic.shape[0] / mosaic.shape[1] + 0.5), layout="constrained")
    ax = fig.add_subplot()
    cmap = matplotlib.colormaps["gray"].with_extremes(bad="white")
    ax.imshow(mosaic, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title, fontsize="medium")
    return fig
