"""Spectra, heavy tails and core structure of the DBN read as a layered complex network.

* :func:`singular_values` — the singular values of one weight matrix ``W_l`` (``(n_l, n_{l+1})``), descending.
* :func:`powerlaw_tail_fit` — continuous power-law fit ``p(x) ∝ x^-α`` for ``x >= x_min`` of the tail of a
  sample of positive values (singular values, degrees, strengths...), after Clauset, Shalizi & Newman (2009):
  maximum-likelihood α for a given ``x_min``, ``x_min`` chosen by minimising the Kolmogorov–Smirnov distance.
* :func:`rich_club_coefficients`, :func:`normalized_rich_club` — the rich-club coefficient
  ``φ(k) = 2 E_k / (N_k (N_k - 1))`` of the thresholded graph (networkx) and its ratio to the mean over null
  graphs supplied by the caller.
* :func:`kcore_per_layer`, :func:`bipartite_clustering_per_layer` — networkx core numbers grouped by layer, and
  the bipartite (Latapy) clustering between two adjacent layers.

The graph functions take a networkx graph whose nodes carry the attributes ``layer`` and ``index`` (position in
the layer), as :func:`analysis.graph.to_networkx` builds. Everything here is a pure function: no I/O, no logging.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np
from networkx.algorithms import bipartite

__all__ = [
    "MIN_TAIL",
    "PowerLawFit",
    "bipartite_clustering_per_layer",
    "kcore_per_layer",
    "normalized_rich_club",
    "powerlaw_tail_fit",
    "rich_club_coefficients",
    "singular_values",
]

# smallest tail a power law is fitted to (candidate x_min values keep at least this many points)
MIN_TAIL = 10

# float64 elements per block of the vectorised x_min scan (8 MiB per temporary array)
_SCAN_BLOCK = 1 << 20


# ------------------------------------------------------------------------------------------------------ spectra


def singular_values(w: np.ndarray) -> np.ndarray:
    """Singular values of one weight matrix.

    Args:
        w: a non-empty finite 2-D matrix, e.g. ``weights[l]`` of shape ``(n_l, n_{l+1})``.

    Returns:
        float64 array of the ``min(n_l, n_{l+1})`` singular values, descending.

    Raises:
        ValueError: ``w`` not 2-D, empty, or not finite.
    """
    a = np.asarray(w, dtype=np.float64)
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"w: must be a non-empty 2-D matrix, got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError("w: must be finite (found NaN or inf)")
    s = np.linalg.svd(a, compute_uv=False)  # LAPACK gesdd: already descending
    return np.asarray(s, dtype=np.float64)


# ---------------------------------------------------------------------------------------------------- power law


@dataclass(frozen=True)
class PowerLawFit:
    """A continuous power law ``p(x) = (α - 1) / x_min · (x / x_min)^-α`` fitted to ``x >= x_min``.

    Attributes:
        alpha: the maximum-likelihood exponent ``α = 1 + n / Σ ln(x_i / x_min)``.
        alpha_std_err: its asymptotic standard error ``(α - 1) / √n``.
        xmin: the lower cut-off of the tail.
        n_tail: ``n``, the number of values ``>= x_min``.
        ks_distance: Kolmogorov–Smirnov distance ``max |S(x) - P(x)|`` between the empirical CDF ``S`` of the
            tail and the fitted CDF ``P(x) = 1 - (x / x_min)^(1-α)``.
    """

    alpha: float
    alpha_std_err: float
    xmin: float
    n_tail: int
    ks_distance: float


def _ks_distance(tail: np.ndarray, xmin: float, alpha: float) -> float:
    """KS distance of the sorted ``tail`` (all ``>= xmin``) to the fitted power-law CDF (two-sided, steps)."""
    n = tail.size
    cdf = -np.expm1((1.0 - alpha) * np.log(tail / xmin))  # 1 - (x/xmin)^(1-α), accurate near x = xmin
    rank = np.arange(1, n + 1, dtype=np.float64)
    return float(max(np.max(rank / n - cdf), np.max(cdf - (rank - 1.0) / n)))


def _fit_at(pos: np.ndarray, xmin: float, min_tail: int) -> PowerLawFit:
    """MLE fit of the sorted positive sample ``pos`` above a given ``xmin``."""
    tail = pos[np.searchsorted(pos, xmin, side="left") :]
    n = int(tail.size)
    if n < min_tail:
        raise ValueError(f"xmin: leaves {n} values >= {xmin!r}; allowed: an xmin leaving at least {min_tail}")
    slog = float(np.sum(np.log(tail / xmin)))
    if not slog > 0.0:
        raise ValueError(f"xmin: every value >= {xmin!r} equals it, alpha is undefined; allowed: a smaller xmin")
    alpha = 1.0 + n / slog
    return PowerLawFit(
        alpha=alpha,
        alpha_std_err=(alpha - 1.0) / math.sqrt(n),
        xmin=float(xmin),
        n_tail=n,
        ks_distance=_ks_distance(tail, float(xmin), alpha),
    )


def _scan_ks(pos: np.ndarray, starts: np.ndarray, cands: np.ndarray) -> np.ndarray:
    """KS distance of the MLE fit for every candidate ``x_min = cands[c] = pos[starts[c]]`` (starts ascending).

    Candidates are processed in blocks as a (candidates × values) matrix with the values below each candidate
    masked out, so the O(N²) scan runs in numpy.
    """
    n_all = pos.size
    out = np.empty(cands.size, dtype=np.float64)
    b0 = 0
    while b0 < cands.size:
        lo = int(starts[b0])
        cols = pos[lo:]
        b1 = min(cands.size, b0 + max(1, _SCAN_BLOCK // cols.size))
        s = starts[b0:b1, None]
        n = (n_all - s).astype(np.float64)
        j = np.arange(lo, n_all)[None, :]
        valid = j >= s
        lr = np.log(cols[None, :] / cands[b0:b1, None])  # finite: all values positive
        lr = np.where(valid, lr, 0.0)
        alpha = 1.0 + n / lr.sum(axis=1, keepdims=True)
        cdf = -np.expm1((1.0 - alpha) * lr)
        rank = (j - s + 1).astype(np.float64)
        d = np.maximum(rank / n - cdf, cdf - (rank - 1.0) / n)
        out[b0:b1] = np.where(valid, d, -np.inf).max(axis=1)
        b0 = b1
    return out


def powerlaw_tail_fit(x: np.ndarray, xmin: float | None = None, min_tail: int = MIN_TAIL) -> PowerLawFit:
    """Continuous power-law fit of the tail of the positive values of ``x`` (Clauset, Shalizi & Newman 2009).

    For a given ``xmin`` the tail is ``x_i >= xmin`` (``n`` values) and ``α = 1 + n / Σ ln(x_i / xmin)`` with
    standard error ``(α - 1) / √n``. With ``xmin=None`` every distinct positive value that leaves at least
    ``min_tail`` values in the tail (the maximum excluded) is tried and the one whose fit has the smallest
    Kolmogorov–Smirnov distance is kept (the smallest such value on ties). The scan is O(N²) in time, done
    vectorised in blocks of bounded memory: fine for the ~10³–10⁴ singular values or degrees of a DBN.

    Integer data (degrees) are fitted with the continuous model too, an approximation that is fair for
    ``xmin`` of a few units and more.

    Args:
        x: 1-D finite sample; values ``<= 0`` are ignored.
        xmin: the lower cut-off (> 0, finite), or None to choose it by KS minimisation.
        min_tail: smallest tail size allowed, an integer >= 2.

    Returns:
        The :class:`PowerLawFit`.

    Raises:
        ValueError: ``x`` not 1-D or not finite, fewer than ``min_tail`` positive values (or all equal),
            ``xmin`` not a positive finite number or leaving fewer than ``min_tail`` values, ``min_tail`` < 2.
    """
    if isinstance(min_tail, bool) or not isinstance(min_tail, int | np.integer) or min_tail < 2:
        raise ValueError(f"invalid min_tail: {min_tail!r}; allowed: an integer >= 2")
    min_tail = int(min_tail)
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"invalid x: shape {arr.shape}; allowed: a 1-d array")
    if not np.isfinite(arr).all():
        raise ValueError("invalid x: contains NaN or inf; allowed: finite values")
    pos = np.sort(arr[arr > 0.0])
    if xmin is not None:
        if isinstance(xmin, bool) or not isinstance(xmin, int | float | np.integer | np.floating):
            raise ValueError(f"invalid xmin: {xmin!r}; allowed: None or a positive finite number")
        if not (math.isfinite(float(xmin)) and float(xmin) > 0.0):
            raise ValueError(f"invalid xmin: {xmin!r}; allowed: None or a positive finite number")
        return _fit_at(pos, float(xmin), min_tail)
    if pos.size < min_tail:
        raise ValueError(f"invalid x: has {pos.size} positive values; allowed: at least min_tail={min_tail}")
    uniq, starts = np.unique(pos, return_index=True)  # pos is sorted: starts = first index of each value
    keep = (pos.size - starts >= min_tail) & (uniq < pos[-1])
    if not keep.any():
        raise ValueError("invalid x: all positive values are equal; allowed: a sample with a spread tail")
    cands, starts = uniq[keep], starts[keep]
    ks = _scan_ks(pos, starts, cands)
    return _fit_at(pos, float(cands[int(np.argmin(ks))]), min_tail)


# --------------------------------------------------------------------------------------------------- rich club


def _check_graph(graph: nx.Graph, name: str = "graph") -> None:
    if not isinstance(graph, nx.Graph) or graph.is_directed() or graph.is_multigraph():
        raise ValueError(
            f"invalid {name}: {type(graph).__name__}; allowed: an undirected networkx.Graph (no multigraph)"
        )


def _without_self_loops(graph: nx.Graph) -> nx.Graph:
    if nx.number_of_selfloops(graph) == 0:
        return graph
    g = graph.copy()
    g.remove_edges_from(list(nx.selfloop_edges(g)))
    return g


def rich_club_coefficients(graph: nx.Graph, normalized: bool = False) -> dict[int, float]:
    """Rich-club coefficient ``φ(k) = 2 E_k / (N_k (N_k - 1))`` of an unweighted graph (networkx).

    ``N_k`` is the number of nodes of degree ``> k`` and ``E_k`` the number of edges among them; ``k`` runs
    over ``0, 1, ...`` while ``N_k >= 2``. Edge weights are ignored and self-loops dropped.

    networkx's own normalisation rewires the graph by double edge swaps, which mixes the layers of a DBN graph;
    normalise instead with :func:`normalized_rich_club` and ``φ`` of null graphs from a layer-preserving model.

    Args:
        graph: an undirected ``networkx.Graph`` (e.g. :func:`analysis.graph.to_networkx` of thresholded masks).
        normalized: must be False (see above).

    Returns:
        ``{k: φ(k)}`` with ``φ`` in [0, 1]; empty when the graph has no edges.

    Raises:
        ValueError: ``graph`` directed or a multigraph, ``normalized`` not False.
    """
    _check_graph(graph)
    if normalized is not False:
        raise ValueError(
            f"invalid normalized: {normalized!r}; allowed: False (normalise with normalized_rich_club and a "
            "layer-preserving null model)"
        )
    rc = nx.rich_club_coefficient(_without_self_loops(graph), normalized=False)
    return {int(k): float(v) for k, v in rc.items()}


def _check_phi(phi: Mapping[int, float], name: str) -> dict[int, float]:
    if not isinstance(phi, Mapping):
        raise ValueError(f"invalid {name}: {type(phi).__name__}; allowed: a mapping degree k -> phi(k)")
    out: dict[int, float] = {}
    for k, v in phi.items():
        if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
            raise ValueError(f"invalid {name}: key {k!r}; allowed: integer degrees >= 0")
        if isinstance(v, bool) or not isinstance(v, int | float | np.integer | np.floating):
            raise ValueError(f"invalid {name}[{k}]: {v!r}; allowed: a finite number")
        if not math.isfinite(float(v)) or float(v) < 0.0:
            raise ValueError(f"invalid {name}[{k}]: {v!r}; allowed: a finite number >= 0")
        out[int(k)] = float(v)
    return out


def normalized_rich_club(
    phi: Mapping[int, float], phi_null_list: Sequence[Mapping[int, float]]
) -> dict[int, float]:
    """Normalised rich-club coefficient ``ρ(k) = φ(k) / mean_s φ_null_s(k)``.

    The mean is over all null samples; a degree ``k`` is left out when some null sample does not define
    ``φ_null(k)`` (fewer than 2 nodes of degree ``> k`` there) or when the null mean is 0.

    Args:
        phi: ``{k: φ(k)}`` of the observed graph (:func:`rich_club_coefficients`).
        phi_null_list: one or more ``{k: φ(k)}`` of null-model graphs.

    Returns:
        ``{k: ρ(k)}``, ascending ``k``; ``ρ > 1`` means the nodes of degree ``> k`` are more densely
        interconnected than in the null model.

    Raises:
        ValueError: not mappings of integer degrees >= 0 to finite numbers >= 0, or an empty ``phi_null_list``.
    """
    obs = _check_phi(phi, "phi")
    if isinstance(phi_null_list, Mapping) or not isinstance(phi_null_list, Sequence) or not phi_null_list:
        raise ValueError(
            f"invalid phi_null_list: {type(phi_null_list).__name__}; allowed: a non-empty sequence of mappings"
        )
    nulls = [_check_phi(p, f"phi_null_list[{i}]") for i, p in enumerate(phi_null_list)]
    out: dict[int, float] = {}
    for k in sorted(obs):
        if any(k not in p for p in nulls):
            continue
        mean = math.fsum(p[k] for p in nulls) / len(nulls)
        if mean > 0.0:
            out[k] = obs[k] / mean
    return out


# ------------------------------------------------------------------------------------------ cores and clustering


def _layers(graph: nx.Graph) -> dict[Hashable, list]:
    """``{layer: [node of index 0, node of index 1, ...]}`` in order of first appearance of each layer."""
    by_layer: dict[Hashable, dict[int, object]] = {}
    for node, data in graph.nodes(data=True):
        if "layer" not in data or "index" not in data:
            raise ValueError(
                f"invalid graph: node {node!r} lacks the 'layer' / 'index' attributes; allowed: nodes as "
                "analysis.graph.to_networkx makes them"
            )
        idx = data["index"]
        if isinstance(idx, bool) or not isinstance(idx, int | np.integer):
            raise ValueError(f"invalid graph: node {node!r} has index {idx!r}; allowed: an integer")
        layer = by_layer.setdefault(data["layer"], {})
        if int(idx) in layer:
            raise ValueError(f"invalid graph: index {int(idx)} repeated in layer {data['layer']!r}")
        layer[int(idx)] = node
    out: dict[Hashable, list] = {}
    for name, nodes in by_layer.items():
        if sorted(nodes) != list(range(len(nodes))):
            raise ValueError(
                f"invalid graph: the indices of layer {name!r} are not 0..{len(nodes) - 1}; allowed: each "
                "layer's indices numbering its nodes from 0"
            )
        out[name] = [nodes[i] for i in range(len(nodes))]
    return out


def kcore_per_layer(graph: nx.Graph) -> dict[Hashable, np.ndarray]:
    """Core number of every node (networkx ``core_number``), grouped by layer.

    The core number of a node is the largest ``k`` such that it belongs to the ``k``-core, the maximal subgraph
    whose nodes all have degree ``>= k`` in it. Self-loops are dropped first.

    Args:
        graph: an undirected ``networkx.Graph`` whose nodes have ``layer`` and ``index`` attributes, each layer's
            indices being ``0 .. n_layer - 1``.

    Returns:
        ``{layer: core numbers}``: keys are the values of the ``layer`` attribute (``"v"``, ``"h1"``, ... for
        :func:`analysis.graph.to_networkx`) in order of first appearance; values int64 arrays of shape
        ``(n_layer,)`` in ``index`` order.

    Raises:
        ValueError: ``graph`` directed or a multigraph, nodes without valid ``layer`` / ``index`` attributes.
    """
    _check_graph(graph)
    layers = _layers(graph)
    core = nx.core_number(_without_self_loops(graph))
    return {name: np.array([core[n] for n in nodes], dtype=np.int64) for name, nodes in layers.items()}


def bipartite_clustering_per_layer(graph: nx.Graph, layer_a: Hashable, layer_b: Hashable) -> float:
    """Average bipartite clustering (Latapy et al. 2008, mode ``"dot"``) between two adjacent layers.

    On the subgraph induced by the nodes of the two layers, the clustering of a node ``u`` is the mean over the
    nodes ``v`` at distance 2 of ``|N(u) ∩ N(v)| / |N(u) ∪ N(v)|`` (0 when there are none), and the result is
    its mean over all nodes of both layers (networkx ``bipartite.average_clustering``). Layers with no edges
    between them (not adjacent) give 0.0. Cost grows with the number of paths of length 2 (networkx, pure
    Python): meant for thresholded graphs.

    Args:
        graph: an undirected ``networkx.Graph`` whose nodes have ``layer`` and ``index`` attributes.
        layer_a: one layer (a value of the ``layer`` attribute, e.g. ``"v"``).
        layer_b: another layer (e.g. ``"h1"``).

    Returns:
        The average clustering, in [0, 1].

    Raises:
        ValueError: ``graph`` directed or a multigraph, invalid ``layer`` / ``index`` attributes, a layer absent,
            the same layer twice, or an edge joining two nodes of the same layer.
    """
    _check_graph(graph)
    layers = _layers(graph)
    for name, layer in (("layer_a", layer_a), ("layer_b", layer_b)):
        if layer not in layers:
            raise ValueError(f"invalid {name}: {layer!r}; allowed: one of {list(layers)}")
    if layer_a == layer_b:
        raise ValueError(f"invalid layer_b: {layer_b!r} equals layer_a; allowed: a different layer")
    sub = graph.subgraph(layers[layer_a] + layers[layer_b])
    for u, v in sub.edges():
        if sub.nodes[u]["layer"] == sub.nodes[v]["layer"]:
            raise ValueError(
                f"invalid graph: edge ({u!r}, {v!r}) joins two nodes of layer {sub.nodes[u]['layer']!r}; "
                "allowed: edges between the two layers only"
            )
    return float(bipartite.average_clustering(sub, mode="dot"))
