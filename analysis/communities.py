"""Communities of the DBN network: Louvain partitions and how much two partitions agree.

* :func:`graph_abs_weights` — the full stack as a networkx graph weighted by ``|w|`` (modularity needs
  non-negative weights).
* :func:`louvain` — networkx's Louvain communities as one label per node, with their modularity.
* :func:`partition_agreement` — normalised mutual information and adjusted Rand index of two partitions, from
  their contingency table (numpy only; equal to scikit-learn's ``normalized_mutual_info_score`` with its default
  arithmetic normalisation and ``adjusted_rand_score``, see the tests).

Everything here is a pure function: no I/O, no logging.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import networkx as nx
import numpy as np

from analysis.graph import as_weights, to_networkx

__all__ = ["Communities", "graph_abs_weights", "louvain", "partition_agreement"]


@dataclass(frozen=True, eq=False)
class Communities:
    """A partition of the nodes of a graph into communities. The array is read-only.

    Attributes:
        labels: ``(n_nodes,)`` int64 community of each node, in the order of ``graph.nodes``; communities are
            numbered ``0..K-1`` by their first node in that order (node 0's community is 0).
        modularity: Newman's modularity of the partition (with the ``weight`` and ``resolution`` it was found
            with); NaN for a graph without edges or whose edges all weigh 0 (every node is then its own
            community).
        n_communities: K.
    """

    labels: np.ndarray
    modularity: float
    n_communities: int


def graph_abs_weights(weights: Sequence[np.ndarray]) -> nx.Graph:
    """The full weighted stack as a networkx graph with edge attribute ``weight = |w_ij|``.

    Built by :func:`analysis.graph.to_networkx` on ``|w|`` with every edge kept, so the nodes are the global
    indices ``0..N-1`` with attributes ``layer`` and ``index``; an exact zero weight is an edge of weight 0.
    Every weight is an edge: 1.6 M edges for a 784-500-500-2000 DBN, slow and memory hungry.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, L matrices, finite.

    Returns:
        An undirected ``networkx.Graph`` with ``Σ_l n_l n_{l+1}`` edges.
    """
    ws = [np.abs(w) for w in as_weights(weights)]
    return to_networkx(ws, [np.ones(w.shape, dtype=bool) for w in ws])


def louvain(graph: nx.Graph, weight: str | None = None, seed: int = 0, resolution: float = 1.0) -> Communities:
    """Louvain communities (``networkx.community.louvain_communities``) and their modularity.

    Args:
        graph: an undirected networkx graph with at least one node.
        weight: the edge attribute used as weight (e.g. ``"weight"`` on :func:`graph_abs_weights`), all values
            >= 0; None treats every edge as weight 1.
        seed: integer >= 0 for networkx's random node order; the result is deterministic for a seed.
        resolution: the modularity resolution γ > 0 (< 1 favours larger communities, > 1 smaller ones).

    Returns:
        The :class:`Communities`, with ``networkx.community.modularity`` of the partition.

    Raises:
        ValueError: not an undirected networkx graph or no nodes, a negative or missing ``weight`` value, or an
            invalid ``seed`` or ``resolution``.
    """
    if not isinstance(graph, nx.Graph) or graph.is_directed():
        raise ValueError(f"invalid graph: {type(graph).__name__}; allowed: an undirected networkx Graph")
    if graph.number_of_nodes() == 0:
        raise ValueError("invalid graph: 0 nodes; allowed: at least 1")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"invalid seed: {seed!r}; allowed: an integer >= 0")
    if isinstance(resolution, bool) or not isinstance(resolution, int | float | np.integer | np.floating):
        raise ValueError(f"invalid resolution: {resolution!r}; allowed: a finite number > 0")
    if not (math.isfinite(resolution) and resolution > 0):
        raise ValueError(f"invalid resolution: {resolution!r}; allowed: a finite number > 0")
    total = 0.0
    if weight is not None:
        for u, v, w in graph.edges(data=weight):
            if w is None or not (
                isinstance(w, int | float | np.integer | np.floating) and math.isfinite(w) and w >= 0
            ):
                raise ValueError(
                    f"invalid weight: edge ({u!r}, {v!r}) has {weight}={w!r}; allowed: a finite number >= 0 on "
                    "every edge"
                )
            total += float(w)
    else:
        total = float(graph.number_of_edges())
    if total > 0:
        parts = nx.community.louvain_communities(
            graph, weight=weight, seed=int(seed), resolution=float(resolution)
        )
    else:  # nothing to optimise (and networkx divides by the total weight): every node on its own
        parts = [{node} for node in graph.nodes]
    position = {node: p for p, node in enumerate(graph.nodes)}
    parts = sorted(parts, key=lambda part: min(position[n] for n in part))
    labels = np.empty(len(position), dtype=np.int64)
    for label, part in enumerate(parts):
        labels[[position[n] for n in part]] = label
    labels.setflags(write=False)
    if total > 0:
        q = float(nx.community.modularity(graph, parts, weight=weight, resolution=float(resolution)))
    else:
        q = math.nan
    return Communities(labels=labels, modularity=q, n_communities=len(parts))


def _labels(x: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 1 or a.shape[0] < 1:
        raise ValueError(f"invalid {name}: shape {a.shape}; allowed: a non-empty 1-d array, one label per item")
    if a.dtype.kind not in "biuU" and not (
        a.dtype.kind == "f" and np.isfinite(a).all() and (a == a.round()).all()
    ):
        raise ValueError(f"invalid {name}: dtype {a.dtype}; allowed: integer (or string) labels")
    return np.unique(a, return_inverse=True)[1].reshape(-1)


def _entropy(counts: np.ndarray, n: int) -> float:
    p = counts[counts > 0] / n
    return float(-(p * np.log(p)).sum())


def partition_agreement(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Agreement of two partitions of the same items: normalised mutual information and adjusted Rand index.

    Both are invariant to renaming the labels and equal 1 for identical partitions. From the contingency table
    ``n_ij`` (items in class ``i`` of ``a`` and ``j`` of ``b``), with row / column sums ``a_i``, ``b_j`` and ``n``
    items:

    * ``NMI = I(a; b) / ((H(a) + H(b)) / 2)`` (arithmetic-mean normalisation, scikit-learn's default), in [0, 1];
      exactly 1 when the partitions are the same up to renaming (both a single class included: both entropies 0),
      0 when ``I = 0`` otherwise.
    * ``ARI = (Σ C(n_ij, 2) - E) / ((Σ C(a_i, 2) + Σ C(b_j, 2)) / 2 - E)`` with
      ``E = Σ C(a_i, 2) Σ C(b_j, 2) / C(n, 2)`` (Hubert & Arabie): at most 1, about 0 for independent random
      partitions, negative when worse than chance; computed in exact integer arithmetic, and 1 when the
      denominator is 0 (both partitions all singletons or both a single class, or ``n = 1``), as scikit-learn.

    Args:
        a: ``(n,)`` labels of the first partition (integers or strings, any values).
        b: ``(n,)`` labels of the second partition.

    Returns:
        ``(nmi, ari)`` as floats.

    Raises:
        ValueError: not 1-d, empty, of different lengths, or non-integer float labels.
    """
    ia, ib = _labels(a, "a"), _labels(b, "b")
    if ia.shape != ib.shape:
        raise ValueError(f"invalid b: {ib.shape[0]} labels; allowed: as many as a ({ia.shape[0]})")
    n = int(ia.shape[0])
    ka, kb = int(ia.max()) + 1, int(ib.max()) + 1
    table = np.bincount(ia * kb + ib, minlength=ka * kb).reshape(ka, kb)
    rows, cols = table.sum(axis=1), table.sum(axis=0)

    # NMI (natural log; the ratio does not depend on the base)
    nz = table > 0
    if ka == kb == int(np.count_nonzero(nz)):  # the same partition up to renaming (one class or more): exactly 1
        nmi = 1.0
    else:
        nij = table[nz].astype(np.float64)
        outer = np.outer(rows, cols)[nz].astype(np.float64)
        mi = max(float((nij / n * (np.log(nij) + math.log(n) - np.log(outer))).sum()), 0.0)
        nmi = 0.0 if mi == 0.0 else min(mi / ((_entropy(rows, n) + _entropy(cols, n)) / 2.0), 1.0)

    # ARI, exact: 2 (index C(n,2) - Sa Sb) / ((Sa + Sb) C(n,2) - 2 Sa Sb)
    def pairs(x: np.ndarray) -> int:
        x = x.astype(object)
        return int((x * (x - 1) // 2).sum())

    index, sa, sb, total = pairs(table.ravel()), pairs(rows), pairs(cols), n * (n - 1) // 2
    den = (sa + sb) * total - 2 * sa * sb
    ari = 1.0 if den == 0 else 2 * (index * total - sa * sb) / den
    return float(nmi), float(ari)
