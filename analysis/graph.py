"""The weights of a trained DBN read as a layered complex network.

Nodes are the units of the layers ``v, h1, ..., hL`` (global node index: the layers concatenated in order);
edges join only consecutive layers, with the weight ``w_ij`` of the matrix between them: ``weights[l]`` has shape
``(n_l, n_{l+1})`` and the adjacency is block tri-diagonal::

    [[0,   W1,  0,   0 ],
     [W1ᵀ, 0,   W2,  0 ],
     [0,   W2ᵀ, 0,   W3],
     [0,   0,   W3ᵀ, 0 ]]

* :func:`strengths` — signed in/out/total strengths on the full weighted graph.
* :class:`Threshold`, :func:`threshold_values`, :func:`threshold_masks` — the unweighted undirected graph kept by a
  threshold on ``w`` (``positive``), ``|w|`` (``absolute``) or ``-w`` (``negative``).
* :func:`degrees`, :func:`neighbour_degrees`, :func:`degree_assortativity`, :func:`graph_stats` — vectorised
  statistics of the thresholded graph, working on the boolean blocks directly (equal to networkx's on the same
  graph, see the tests).
* :func:`block_adjacency`, :func:`to_networkx`, :func:`graphml_gz_bytes` — the graph as scipy / networkx objects
  and as gzipped GraphML bytes for artifact logging.

Everything here is a pure function of float64 numpy arrays: no I/O, no logging.
"""

from __future__ import annotations

import gzip
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import scipy.sparse as sp
from scipy.sparse import csgraph

SIGNS = ("positive", "absolute", "negative")
LAYER_NAMES = ("v", "h1", "h2", "h3")  # the paper's 784-500-500-2000 DBN; layer_names(n) in general
SCOPES = ("global", "layer")


def layer_names(n_layers: int) -> list[str]:
    """Names of the unit layers, bottom up: ``["v", "h1", ..., "h{n_layers-1}"]``.

    Args:
        n_layers: number of unit layers (number of weight matrices + 1), at least 1.

    Returns:
        The ``n_layers`` names.
    """
    if isinstance(n_layers, bool) or not isinstance(n_layers, int | np.integer) or n_layers < 1:
        raise ValueError(f"n_layers: must be an integer >= 1, got {n_layers!r}")
    return ["v"] + [f"h{i}" for i in range(1, int(n_layers))]


# --------------------------------------------------------------------------------------------------- validation


def as_weights(weights: Sequence[np.ndarray], name: str = "weights") -> list[np.ndarray]:
    """Validate a stack of weight matrices and return them as float64 arrays.

    Args:
        weights: one or more 2-D arrays, ``weights[l]`` of shape ``(n_l, n_{l+1})``, all finite.
        name: the parameter name used in error messages.

    Returns:
        The matrices as float64 numpy arrays (no copy when they already are).

    Raises:
        ValueError: empty stack, a matrix that is not 2-D or empty or not finite, or shapes that do not chain.
    """
    if isinstance(weights, np.ndarray) and weights.ndim == 2:
        raise ValueError(f"{name}: must be a sequence of 2-D matrices, got one 2-D array (wrap it in a list)")
    out = [np.asarray(w, dtype=np.float64) for w in weights]
    if not out:
        raise ValueError(f"{name}: must hold at least 1 matrix, got 0")
    for i, w in enumerate(out):
        if w.ndim != 2 or w.shape[0] < 1 or w.shape[1] < 1:
            raise ValueError(f"{name}[{i}]: must be a non-empty 2-D matrix, got shape {w.shape}")
        if i and w.shape[0] != out[i - 1].shape[1]:
            raise ValueError(
                f"{name}[{i}]: has {w.shape[0]} rows, must equal the {out[i - 1].shape[1]} columns of "
                f"{name}[{i - 1}]"
            )
        if not np.isfinite(w).all():
            raise ValueError(f"{name}[{i}]: must be finite (found NaN or inf)")
    return out


def as_masks(masks: Sequence[np.ndarray], name: str = "masks") -> list[np.ndarray]:
    """Validate a stack of boolean edge masks (as returned by :func:`threshold_masks`).

    Args:
        masks: one or more boolean 2-D arrays, ``masks[l]`` of shape ``(n_l, n_{l+1})``.
        name: the parameter name used in error messages.

    Returns:
        The masks as numpy bool arrays.

    Raises:
        ValueError: empty stack, a non-boolean or non-2-D mask, or shapes that do not chain.
    """
    if isinstance(masks, np.ndarray) and masks.ndim == 2:
        raise ValueError(f"{name}: must be a sequence of 2-D masks, got one 2-D array (wrap it in a list)")
    out = [np.asarray(m) for m in masks]
    if not out:
        raise ValueError(f"{name}: must hold at least 1 mask, got 0")
    for i, m in enumerate(out):
        if m.dtype != np.bool_:
            raise ValueError(f"{name}[{i}]: must be a boolean array (from threshold_masks), got dtype {m.dtype}")
        if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
            raise ValueError(f"{name}[{i}]: must be a non-empty 2-D mask, got shape {m.shape}")
        if i and m.shape[0] != out[i - 1].shape[1]:
            raise ValueError(
                f"{name}[{i}]: has {m.shape[0]} rows, must equal the {out[i - 1].shape[1]} columns of "
                f"{name}[{i - 1}]"
            )
    return out


def _layer_sizes(blocks: Sequence[np.ndarray]) -> list[int]:
    return [blocks[0].shape[0]] + [b.shape[1] for b in blocks]


def _offsets(sizes: Sequence[int]) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)


# ---------------------------------------------------------------------------------------------------- strengths


def strengths(weights: Sequence[np.ndarray]) -> list[dict[str, np.ndarray]]:
    """Signed strengths of every unit on the full weighted graph.

    ``s_out(i) = Σ_j w_ij`` over the next layer, ``s_in(j) = Σ_i w_ij`` over the previous layer,
    ``total = out + in`` (the missing side counts 0).

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.

    Returns:
        L + 1 dicts, one per unit layer bottom up, of float64 arrays of shape ``(n_l,)``: ``"out"`` (all but the
        top layer), ``"in"`` (all but ``v``) and ``"total"`` (all).
    """
    ws = as_weights(weights)
    out: list[dict[str, np.ndarray]] = []
    for layer in range(len(ws) + 1):
        d: dict[str, np.ndarray] = {}
        if layer < len(ws):
            d["out"] = ws[layer].sum(axis=1)
        if layer > 0:
            d["in"] = ws[layer - 1].sum(axis=0)
        d["total"] = d.get("out", 0.0) + d.get("in", 0.0)
        out.append(d)
    return out


# ---------------------------------------------------------------------------------------------------- threshold


@dataclass(frozen=True)
class Threshold:
    """How to turn the weighted graph into an unweighted undirected one.

    The score of a weight is ``w`` (``sign="positive"``), ``|w|`` (``"absolute"``) or ``-w`` (``"negative"``);
    an edge is kept where ``score > θ``. θ is given as exactly one of

    * ``value``: θ itself (the same for every layer whatever ``scope``);
    * ``quantile`` in (0, 1): θ = that quantile (numpy's linear interpolation) of the scores, so
      ``quantile=0.9`` keeps about the top 10 %;
    * ``density`` in (0, 1]: the fraction of possible edges kept, θ = quantile ``1 - density`` of the scores
      (``density=1`` gives θ = -inf: every edge is kept).

    Quantiles are taken over all weights of all layers pooled (``scope="global"``, one θ) or over each matrix on
    its own (``scope="layer"``, one θ per matrix).

    Attributes:
        sign: ``"positive"``, ``"absolute"`` or ``"negative"``.
        value: θ, a finite number >= 0 (the sign mode sets the side).
        quantile: in (0, 1).
        density: in (0, 1].
        scope: ``"global"`` or ``"layer"``.
    """

    sign: str = "positive"
    value: float | None = None
    quantile: float | None = None
    density: float | None = None
    scope: str = "global"

    def __post_init__(self) -> None:
        def invalid(name: str, value: Any, allowed: str) -> ValueError:
            return ValueError(f"invalid threshold{'.' if name else ''}{name}: {value!r}; allowed: {allowed}")

        if self.sign not in SIGNS:
            raise invalid("sign", self.sign, " | ".join(SIGNS))
        if self.scope not in SCOPES:
            raise invalid("scope", self.scope, " | ".join(SCOPES))
        given = {f: getattr(self, f) for f in ("value", "quantile", "density") if getattr(self, f) is not None}
        if len(given) != 1:
            raise invalid("", given or None, "exactly one of value, quantile, density (set the others to null)")
        ((field, x),) = given.items()
        allowed = {"value": "a finite float >= 0 (the sign mode sets the side)", "quantile": "a float in (0, 1)",
                   "density": "a float in (0, 1]"}[field]  # fmt: skip
        if isinstance(x, bool) or not isinstance(x, int | float | np.integer | np.floating):
            raise invalid(field, x, allowed)
        ok = {"value": 0.0 <= x < math.inf, "quantile": 0.0 < x < 1.0, "density": 0.0 < x <= 1.0}[field]
        if not ok:
            raise invalid(field, x, allowed)
        object.__setattr__(self, field, float(x))


def _score(w: np.ndarray, sign: str) -> np.ndarray:
    if sign == "positive":
        return w
    if sign == "absolute":
        return np.abs(w)
    return -w


def _theta_from_scores(scores: np.ndarray, threshold: Threshold) -> float:
    if threshold.quantile is not None:
        return float(np.quantile(scores, threshold.quantile))
    assert threshold.density is not None
    if threshold.density >= 1.0:
        return -math.inf
    return float(np.quantile(scores, 1.0 - threshold.density))


def _threshold_values(ws: list[np.ndarray], threshold: Threshold) -> list[float]:
    if threshold.value is not None:
        return [float(threshold.value)] * len(ws)
    if threshold.scope == "layer":
        return [_theta_from_scores(_score(w, threshold.sign).ravel(), threshold) for w in ws]
    pooled = np.concatenate([_score(w, threshold.sign).ravel() for w in ws])
    return [_theta_from_scores(pooled, threshold)] * len(ws)


def threshold_values(weights: Sequence[np.ndarray], threshold: Threshold) -> list[float]:
    """θ per weight matrix for ``threshold`` (all equal unless ``scope="layer"`` with a quantile or density).

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.
        threshold: the rule.

    Returns:
        L floats: the θ applied to each matrix's scores.
    """
    if not isinstance(threshold, Threshold):
        raise ValueError(f"threshold: must be an analysis.graph.Threshold, got {type(threshold).__name__}")
    return _threshold_values(as_weights(weights), threshold)


def threshold_masks(weights: Sequence[np.ndarray], threshold: Threshold) -> tuple[list[np.ndarray], list[float]]:
    """Edges kept by ``threshold``: ``score(w) > θ``.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.
        threshold: the rule.

    Returns:
        ``(masks, thetas)``: L boolean arrays of shape ``(n_l, n_{l+1})`` (True = edge kept) and the L θ used.
    """
    if not isinstance(threshold, Threshold):
        raise ValueError(f"threshold: must be an analysis.graph.Threshold, got {type(threshold).__name__}")
    ws = as_weights(weights)
    thetas = _threshold_values(ws, threshold)
    masks = []
    for w, theta in zip(ws, thetas, strict=True):
        if threshold.sign == "positive":
            masks.append(w > theta)
        elif threshold.sign == "absolute":
            masks.append(np.abs(w) > theta)
        else:
            masks.append(-w > theta)
    return masks, thetas


# ------------------------------------------------------------------------------------------- unweighted statistics


def _degrees(ms: list[np.ndarray]) -> list[np.ndarray]:
    out = []
    for layer, n in enumerate(_layer_sizes(ms)):
        k = np.zeros(n, dtype=np.int64)
        if layer < len(ms):
            k += np.count_nonzero(ms[layer], axis=1)
        if layer > 0:
            k += np.count_nonzero(ms[layer - 1], axis=0)
        out.append(k)
    return out


def degrees(masks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Degree of every unit in the thresholded graph (neighbours in both adjacent layers).

    Args:
        masks: L boolean arrays, ``masks[l]`` of shape ``(n_l, n_{l+1})``.

    Returns:
        L + 1 int64 arrays, ``(n_l,)`` each, bottom up.
    """
    return _degrees(as_masks(masks))


def _check_degs(ms: list[np.ndarray], degs: Sequence[np.ndarray] | None) -> list[np.ndarray]:
    if degs is None:
        return _degrees(ms)
    sizes = _layer_sizes(ms)
    out = [np.asarray(k) for k in degs]
    if len(out) != len(sizes):
        raise ValueError(f"degs: must hold {len(sizes)} arrays (one per unit layer), got {len(out)}")
    for i, (k, n) in enumerate(zip(out, sizes, strict=True)):
        if k.shape != (n,) or not np.issubdtype(k.dtype, np.integer):
            raise ValueError(f"degs[{i}]: must be an integer array of shape ({n},), got {k.dtype} {k.shape}")
    return out


def _neighbour_degree_sums(ms: list[np.ndarray], degs: list[np.ndarray]) -> list[np.ndarray]:
    """``Σ_{j ∈ N(i)} k_j`` per unit layer, float64."""
    kf = [k.astype(np.float64) for k in degs]
    mf = [m.astype(np.float64) for m in ms]  # BLAS matrix-vector products; exact for integer sums < 2**53
    out = []
    for layer in range(len(ms) + 1):
        s = np.zeros(kf[layer].shape[0], dtype=np.float64)
        if layer < len(ms):
            s += mf[layer] @ kf[layer + 1]
        if layer > 0:
            s += kf[layer - 1] @ mf[layer - 1]
        out.append(s)
    return out


def neighbour_degrees(
    masks: Sequence[np.ndarray], degs: Sequence[np.ndarray] | None = None, isolated: float = np.nan
) -> list[np.ndarray]:
    """Average neighbour degree ``k_nn(i)`` = mean degree of the neighbours of ``i``.

    Equal to networkx's ``average_neighbor_degree`` on the same graph when ``isolated=0.0`` (networkx's value
    for isolated nodes); the default ``NaN`` keeps isolated units out of NaN-aware means.

    Args:
        masks: L boolean arrays, ``masks[l]`` of shape ``(n_l, n_{l+1})``.
        degs: the degrees from :func:`degrees` (computed when None), L + 1 arrays of shape ``(n_l,)``.
        isolated: the value given to units of degree 0.

    Returns:
        L + 1 float64 arrays of shape ``(n_l,)``, bottom up.
    """
    ms = as_masks(masks)
    ks = _check_degs(ms, degs)
    sums = _neighbour_degree_sums(ms, ks)
    out = []
    for s, k in zip(sums, ks, strict=True):
        knn = np.full(k.shape, float(isolated), dtype=np.float64)
        np.divide(s, k, out=knn, where=k > 0)
        out.append(knn)
    return out


def _assortativity(ms: list[np.ndarray], ks: list[np.ndarray], sums: list[np.ndarray] | None = None) -> float:
    """Pearson correlation of the degrees at the two ends of every edge, each edge counted both ways.

    With E edges: ``Σ_e (k_a + k_b) = Σ_i k_i²``, ``Σ_e (k_a² + k_b²) = Σ_i k_i³`` and
    ``Σ_e k_a k_b = Σ_l k_lᵀ M_l k_{l+1}``, so no per-edge arrays are needed. The sums are integers, combined
    exactly as Python ints: ``r = (2E·2X − S2²) / (2E·S3 − S2²)``.
    """
    n_edges = sum(int(np.count_nonzero(m)) for m in ms)
    if n_edges == 0:
        return math.nan
    k64 = [k.astype(np.int64) for k in ks]
    s2 = sum(int(k @ k) for k in k64)
    s3 = sum(int((k * k) @ k) for k in k64)
    if sums is None:
        sums = _neighbour_degree_sums(ms, ks)
    # Σ_i k_i Σ_{j∈N(i)} k_j counts every edge twice; the float sums are exact integers below 2**53
    twice_cross = sum(round(float(k.astype(np.float64) @ s)) for k, s in zip(k64, sums, strict=True))
    two_e = 2 * n_edges
    var = two_e * s3 - s2 * s2
    if var == 0:
        return math.nan
    return float((two_e * twice_cross - s2 * s2) / var)


def degree_assortativity(masks: Sequence[np.ndarray], degs: Sequence[np.ndarray] | None = None) -> float:
    """Degree assortativity of the thresholded graph (networkx's ``degree_assortativity_coefficient``).

    Computed as the Pearson correlation of the degrees at the two ends of every edge counted in both
    directions, from per-node sums (O(N + nnz)), never building the edge list.

    Args:
        masks: L boolean arrays, ``masks[l]`` of shape ``(n_l, n_{l+1})``.
        degs: the degrees from :func:`degrees` (computed when None).

    Returns:
        The coefficient in [-1, 1]; NaN when there are no edges or all edge ends have the same degree.
    """
    ms = as_masks(masks)
    return _assortativity(ms, _check_degs(ms, degs))


def block_adjacency(masks_or_weights: Sequence[np.ndarray]) -> sp.csr_matrix:
    """The symmetric N×N block tri-diagonal adjacency as a sparse matrix (N = total number of units).

    Args:
        masks_or_weights: L boolean masks (entries 1.0 where True) or L weight matrices (entries ``w_ij``; exact
            zeros are left out of the sparse structure), block ``l`` of shape ``(n_l, n_{l+1})``.

    Returns:
        ``scipy.sparse.csr_matrix`` of float64, shape ``(N, N)``, rows/columns in global node order.
    """
    blocks = [np.asarray(b) for b in masks_or_weights]
    if blocks and all(b.dtype == np.bool_ for b in blocks):
        blocks = as_masks(blocks, name="masks_or_weights")
    else:
        blocks = as_weights(blocks, name="masks_or_weights")
    sizes = _layer_sizes(blocks)
    off = _offsets(sizes)
    rows, cols, data = [], [], []
    for layer, b in enumerate(blocks):
        r, c = np.nonzero(b)
        d = np.ones(r.size) if b.dtype == np.bool_ else b[r, c]
        r = r + off[layer]
        c = c + off[layer + 1]
        rows += [r, c]
        cols += [c, r]
        data += [d, d]
    n = int(off[-1])
    return sp.csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))


def _nan_mean(x: np.ndarray) -> float:
    ok = ~np.isnan(x)
    return float(x[ok].mean()) if ok.any() else math.nan


def graph_stats(masks: Sequence[np.ndarray], degs: Sequence[np.ndarray] | None = None) -> dict[str, float]:
    """Summary statistics of the thresholded graph.

    Keys, for every unit layer ``<layer>`` (``v``, ``h1``, ...): ``<layer>/mean_degree``, ``<layer>/mean_knn``
    (mean of ``k_nn`` over non-isolated units; NaN when all are isolated), ``<layer>/isolated`` (count),
    ``<layer>/max_degree``; for every consecutive pair ``<A>_<B>/density`` (edges kept / ``n_A n_B``); and
    ``all/mean_degree`` (2E/N), ``all/density`` (E / Σ_l n_l n_{l+1}, the possible edges of the layered graph),
    ``all/assortativity``, ``all/n_components`` (isolated units count as components),
    ``all/largest_component_fraction`` (units in the largest component / N), ``all/n_edges``, ``all/isolated``.

    Args:
        masks: L boolean arrays, ``masks[l]`` of shape ``(n_l, n_{l+1})``.
        degs: the degrees from :func:`degrees` (computed when None).

    Returns:
        ``dict[str, float]``.
    """
    ms = as_masks(masks)
    ks = _check_degs(ms, degs)
    names = layer_names(len(ms) + 1)
    sums = _neighbour_degree_sums(ms, ks)
    out: dict[str, float] = {}
    for name, k, s in zip(names, ks, sums, strict=True):
        knn = np.full(k.shape, np.nan)
        np.divide(s, k, out=knn, where=k > 0)
        out[f"{name}/mean_degree"] = float(k.mean())
        out[f"{name}/mean_knn"] = _nan_mean(knn)
        out[f"{name}/isolated"] = float(np.count_nonzero(k == 0))
        out[f"{name}/max_degree"] = float(k.max())
    n_edges = 0
    for layer, m in enumerate(ms):
        e = int(np.count_nonzero(m))
        n_edges += e
        out[f"{names[layer]}_{names[layer + 1]}/density"] = e / m.size
    n_nodes = sum(k.size for k in ks)
    out["all/mean_degree"] = 2.0 * n_edges / n_nodes
    out["all/density"] = n_edges / sum(m.size for m in ms)
    out["all/assortativity"] = _assortativity(ms, ks, sums)
    n_comp, labels = csgraph.connected_components(block_adjacency(ms), directed=False)
    out["all/n_components"] = float(n_comp)
    out["all/largest_component_fraction"] = float(np.bincount(labels).max() / n_nodes)
    out["all/n_edges"] = float(n_edges)
    out["all/isolated"] = float(sum(np.count_nonzero(k == 0) for k in ks))
    return out


# ------------------------------------------------------------------------------------------------------- export


def to_networkx(weights: Sequence[np.ndarray], masks: Sequence[np.ndarray] | None = None) -> nx.Graph:
    """The (thresholded) network as a networkx graph.

    Nodes are the global indices ``0 .. N-1`` (layers concatenated bottom up) with attributes ``layer``
    (``"v"``, ``"h1"``, ...) and ``index`` (position within the layer); edges carry ``weight`` (the float
    ``w_ij``).

    Warning:
        ``masks=None`` exports the full weighted graph — every weight becomes an edge (1.6 M edges for a
        784-500-500-2000 DBN), which is slow and memory hungry. This is meant for exporting thresholded graphs;
        use the vectorised functions of this module for statistics.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices.
        masks: L boolean arrays of the same shapes (edges to keep), or None for all edges.

    Returns:
        An undirected ``networkx.Graph``.
    """
    ws = as_weights(weights)
    if masks is not None:
        ms = as_masks(masks)
        if len(ms) != len(ws) or any(m.shape != w.shape for m, w in zip(ms, ws, strict=False)):
            raise ValueError(
                f"masks: must have the shapes of weights {[w.shape for w in ws]}, got {[m.shape for m in ms]}"
            )
    names = layer_names(len(ws) + 1)
    sizes = _layer_sizes(ws)
    off = _offsets(sizes)
    g = nx.Graph()
    for layer, (name, n) in enumerate(zip(names, sizes, strict=True)):
        g.add_nodes_from((int(off[layer]) + i, {"layer": name, "index": i}) for i in range(n))
    for layer, w in enumerate(ws):
        if masks is None:
            r, c = np.indices(w.shape).reshape(2, -1)
        else:
            r, c = np.nonzero(ms[layer])
        vals = w[r, c].tolist()
        g.add_weighted_edges_from(
            zip((r + off[layer]).tolist(), (c + off[layer + 1]).tolist(), vals, strict=True), weight="weight"
        )
    return g


# gzip level of the GraphML export: 6 writes ~20% faster than gzip's default 9 for a file ~5% larger.
GRAPHML_GZIP_LEVEL = 6


def graphml_gz_bytes(G: nx.Graph) -> bytes:  # noqa: N803 - networkx's name
    """``networkx.write_graphml`` of ``g`` into an in-memory gzip stream (deterministic: mtime 0).

    Args:
        G: a networkx graph whose attributes are Python scalars / strings (as :func:`to_networkx` makes).

    Returns:
        The bytes of a ``.graphml.gz`` file; read back with ``nx.read_graphml(gzip.open(io.BytesIO(b)),
        node_type=int)``.
    """
    if not isinstance(G, nx.Graph):
        raise ValueError(f"G: must be a networkx graph, got {type(G).__name__}")
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=GRAPHML_GZIP_LEVEL) as gz:
        nx.write_graphml(G, gz)
    return buf.getvalue()
