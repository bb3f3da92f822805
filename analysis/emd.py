"""Earth mover's distances between signed receptive fields.

A receptive field is a signed image ``w`` (a 28×28 image flattened row-major). It is normalised to
``s = w⁺/‖w⁺‖₁ − w⁻/‖w⁻‖₁`` (:func:`normalise_fields`), and the distance between two fields is the
Kantorovich–Rubinstein norm of the difference of their normalised forms::

    d(a, b) = W1((s_a − s_b)⁺, (s_a − s_b)⁻) = EMD(p_a + n_b, p_b + n_a)

with ``p``, ``n`` the positive and negative parts and the ground distance between pixel centres (integer
coordinates, pixel units). It is a true metric on normalised fields. A field with one sign only (net mass ±1,
rare but seen in trained h3 fields) is compared with the others by EMD-hat: the unmatched mass goes to a dummy
bin at half the grid's largest ground distance. Three ways to compute it (:data:`METHODS`):

* ``"exact"`` — the network simplex of POT (Bonneel et al. 2011) on the full grid.
* ``"pooled"`` — 2×2 sum-pooling of the normalised fields (mass preserved), then exact on the 14×14 grid with
  the ground distance still in original pixel units (cell centres ``2i + 0.5``). An approximation of ``exact``
  within about one pooled cell (``√2`` pixels) of transport distance per unit mass.
* ``"sliced"`` — the sliced W1 (Rabin et al. 2011; Bonneel et al. 2015): the mean over fixed, evenly spread
  directions along short integer vectors (:func:`sliced_projections`) of the 1-D W1 of the projected measures.
  A different metric (for two Diracs it is about ``2/π`` times their distance), but every pair comes from one
  vectorised L1 distance between per-field embeddings.

Optional ``metric="cityblock"`` (``exact`` and ``pooled``) uses the L1 ground distance, solved as a min-cost flow
on the 4-neighbour grid graph with unit edge costs (sparse network simplex of POT; see :func:`_grid_arcs`).

The exact solvers call POT's private ``ot.lp.emd_wrap.emd_c`` / ``emd_c_sparse`` (POT 0.9.x) directly: it skips
the Python-side checks of ``ot.emd2``, which we do once at the boundary instead. Both solvers are checked against
``ot.emd2`` in ``tests/test_emd.py``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
from joblib import Parallel, cpu_count, delayed
from ot.lp.emd_wrap import emd_c, emd_c_sparse
from scipy.spatial.distance import pdist, squareform
from tqdm.auto import tqdm

METHODS = ("exact", "pooled", "sliced")
METRICS = ("euclidean", "cityblock")

_OPTIMAL = 1  # result code of POT's network simplex (INFEASIBLE=0, OPTIMAL=1, UNBOUNDED=2, MAX_ITER_REACHED=3)
_MAX_ITER = 10_000_000
# The network simplex scans arcs in node order; a fixed pseudo-random node order (instead of raster order, where
# neighbouring arcs are near-duplicates) makes its block pivot search ~15-25% faster. It changes only the speed,
# the optimum is the same up to rounding (~1e-15 relative).
_NODE_ORDER_SEED = 0
_DIFF_BLOCK = 256  # pairs whose differences are formed at once inside a chunk (256 x 784 float64 = 1.6 MB)
_CHUNKS_PER_JOB = 32  # pair chunks per worker for exact / pooled: amortises task overhead, keeps the bar moving
_SLICED_TASKS = 16  # direction groups for sliced; fixed so that the float summation order never depends on n_jobs
_SLICED_BYTES = 64 * 2**20  # memory budget of one embedding block in a sliced task


# ------------------------------------------------------------------------------------------------ validation


def _check_fields(fields: np.ndarray, shape: tuple[int, int] | None = None) -> np.ndarray:
    x = np.asarray(fields)
    if x.ndim != 2:
        raise ValueError(f"fields must be a 2-D array (n_fields, n_pixels), got shape {x.shape}")
    if x.shape[0] == 0:
        raise ValueError("fields must hold at least one field")
    if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
        raise ValueError(f"fields must be real numbers, got dtype {x.dtype}")
    if shape is not None and x.shape[1] != shape[0] * shape[1]:
        raise ValueError(
            f"fields have {x.shape[1]} pixels but shape {shape} needs {shape[0] * shape[1]}; "
            "pass the image shape of the flattened fields"
        )
    x = x.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if bad.size:
        raise ValueError(f"field {bad[0]} has non-finite values (NaN or inf)")
    return x


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in shape)
    except (TypeError, ValueError):
        raise ValueError(f"shape must be a pair of positive ints (height, width), got {shape!r}") from None
    if h < 1 or w < 1 or (h, w) != tuple(shape):
        raise ValueError(f"shape must be a pair of positive ints (height, width), got {shape!r}")
    return h, w


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; analysis.emd allows {name} in {allowed}")
    return value


def _check_n_jobs(n_jobs: int | None) -> int:
    if n_jobs is None or n_jobs == -1:
        return cpu_count()
    if not isinstance(n_jobs, int | np.integer) or n_jobs < 1:
        raise ValueError(f"n_jobs must be None, -1 or a positive int, got {n_jobs!r}")
    return int(n_jobs)


# ------------------------------------------------------------------------------------------- normalisation


def normalise_fields(fields: np.ndarray) -> np.ndarray:
    """Split each signed field into unit-mass positive and negative parts: ``s = w⁺/‖w⁺‖₁ − w⁻/‖w⁻‖₁``.

    A field with both signs gets net mass 0. A field with no negative (positive) part keeps only its positive
    (negative) part, with net mass +1 (−1). Against a field of another net mass, the excess mass is moved to a
    dummy bin at half the largest ground distance (EMD-hat, Pele & Werman 2008); for ``sliced`` the embedding
    integrates the signed CDF as it is. ``metric="cityblock"`` needs equal net masses.

    Args:
        fields: ``(n, d)`` real array, one flattened field per row.

    Returns:
        ``(n, d)`` float64 normalised fields.

    Raises:
        ValueError: ``fields`` is not 2-D, holds non-finite values, or a field is all zero (its index is named).
    """
    x = _check_fields(fields)
    pos = np.clip(x, 0.0, None)
    neg = np.clip(-x, 0.0, None)
    pos_mass = pos.sum(axis=1, keepdims=True)
    neg_mass = neg.sum(axis=1, keepdims=True)
    zero = np.flatnonzero((pos_mass[:, 0] == 0) & (neg_mass[:, 0] == 0))
    if zero.size:
        raise ValueError(f"field {zero[0]} is all zero: it has no mass to normalise")
    # A missing part stays zero (0 / 1 instead of 0 / 0).
    return pos / np.where(pos_mass > 0, pos_mass, 1.0) - neg / np.where(neg_mass > 0, neg_mass, 1.0)


def _check_net_mass(s: np.ndarray) -> None:
    net = np.rint(s.sum(axis=1)).astype(int)  # -1, 0 or +1 by construction
    kinds = np.unique(net)
    if kinds.size > 1:
        i, j = (int(np.flatnonzero(net == k)[0]) for k in kinds[:2])
        raise ValueError(
            f"fields {i} and {j} have different net mass ({net[i]:+d} vs {net[j]:+d}): a one-sided field "
            "(no positive or no negative part) can only be compared with fields of the same sign pattern"
        )


# ---------------------------------------------------------------------------------------------- geometry


def grid_coords(shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """Pixel centres of a row-major image, in pixel units.

    Args:
        shape: ``(height, width)``.

    Returns:
        ``(height * width, 2)`` float64 ``(row, col)`` coordinates, pixel ``k`` at ``divmod(k, width)``.
    """
    h, w = _check_shape(shape)
    rows, cols = np.divmod(np.arange(h * w), w)
    return np.stack([rows, cols], axis=1).astype(np.float64)


def pool_fields(s: np.ndarray, shape: tuple[int, int] = (28, 28)) -> np.ndarray:
    """2×2 sum-pooling of flattened fields (mass preserved).

    Args:
        s: ``(n, h * w)`` fields.
        shape: ``(h, w)``, both even.

    Returns:
        ``(n, (h // 2) * (w // 2))`` float64 pooled fields, row-major; cell ``(i, j)`` has its centre at
        ``(2i + 0.5, 2j + 0.5)`` in original pixel units.
    """
    h, w = _check_shape(shape)
    if h % 2 or w % 2:
        raise ValueError(f"method 'pooled' needs an even image shape for 2x2 pooling, got {shape}")
    x = np.asarray(s, dtype=np.float64)
    return x.reshape(-1, h // 2, 2, w // 2, 2).sum(axis=(2, 4)).reshape(x.shape[0], -1)


def sliced_projections(n_projections: int = 64) -> np.ndarray:
    """The fixed directions of the sliced method: evenly spread, each along a short integer vector.

    The half circle ``[0, π)`` (``θ`` and ``−θ`` give the same 1-D W1) is cut into ``n_projections`` equal
    sectors; each contributes the primitive integer vector ``(p, q)`` in it with the smallest ``|p| + |q|``
    (ties: nearest the sector's centre), normalised. Along such a direction the pixel centres project onto the
    integers ``p·row + q·col`` divided by ``‖(p, q)‖``, so many pixels share a position: a 28×28 grid has about
    ``27 (|p| + |q|) + 1`` distinct positions instead of 784, and the embedding of :func:`_sliced_task` is that
    much shorter, with exactly the same distance (64 directions: 13,924 instead of 50,112 coordinates).

    Returns:
        ``(2, n_projections)`` float64 unit vectors acting on ``(row, col)`` coordinates: the ``projections``
        argument of ``ot.sliced_wasserstein_distance``.
    """
    if not isinstance(n_projections, int | np.integer) or n_projections < 1:
        raise ValueError(f"n_projections must be a positive int, got {n_projections!r}")
    return _rational_directions(int(n_projections))


@functools.lru_cache(maxsize=16)
def _rational_directions(k: int) -> np.ndarray:
    h = max(32, 2 * k)  # every sector of width π/k holds a primitive vector with |p|, |q| <= 2k
    p, q = np.meshgrid(np.arange(0, h + 1), np.arange(-h, h + 1), indexing="ij")
    p, q = p.ravel(), q.ravel()
    keep = (np.gcd(p, np.abs(q)) == 1) & ((p > 0) | (q > 0))  # primitive, one per line through the origin
    p, q = p[keep], q[keep]
    angle = np.arctan2(q, p) % np.pi  # in [0, π)
    height = np.abs(p) + np.abs(q)
    sector = np.minimum((angle * k / np.pi).astype(np.int64), k - 1)
    off_centre = np.abs(angle - (sector + 0.5) * np.pi / k)
    order = np.lexsort((off_centre, height, sector))  # by sector, then height, then distance to the centre
    first = order[np.r_[True, sector[order][1:] != sector[order][:-1]]]
    if first.size != k:
        raise AssertionError(f"empty direction sector for n_projections={k}")
    v = np.stack([p[first], q[first]]).astype(np.float64)
    v /= np.hypot(v[0], v[1])
    v.setflags(write=False)
    return v


def _grid_arcs(shape: tuple[int, int], step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arcs of the transportation problem equivalent to W1 with L1 ground distance on a grid.

    W1 with the L1 ground metric on a grid is a min-cost flow on the 4-neighbour grid graph with edge cost
    ``step``. POT's sparse solver is bipartite (sources -> targets), so the transshipment problem is written as a
    transportation problem (the textbook reduction, e.g. Ahuja, Magnanti & Orlin 1993): every node is both a
    source with supply ``p_i + B`` and a target with demand ``q_i + B``, joined by a zero-cost arc ``i -> i`` that
    carries the mass not passing through. ``B`` must bound the flow through a node; the total mass does (an
    optimal flow is acyclic).
    """
    h, w = shape
    idx = np.arange(h * w).reshape(h, w)
    right = (idx[:, :-1].ravel(), idx[:, 1:].ravel())
    down = (idx[:-1, :].ravel(), idx[1:, :].ravel())
    src = np.concatenate([np.arange(h * w), right[0], right[1], down[0], down[1]])
    dst = np.concatenate([np.arange(h * w), right[1], right[0], down[1], down[0]])
    cost = np.concatenate([np.zeros(h * w), np.full(src.size - h * w, float(step))])
    return src.astype(np.uint64), dst.astype(np.uint64), cost


# ---------------------------------------------------------------------------------------- exact solvers


def _split(diff: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float] | None:
    """Support and unit-mass parts of a difference; ``None`` when nothing has to move."""
    pos = np.flatnonzero(diff > 0)
    neg = np.flatnonzero(diff < 0)
    if pos.size == 0 or neg.size == 0:
        return None  # identical fields (or a rounding residue of ~1e-17 mass): distance 0
    a = diff[pos]
    b = -diff[neg]
    mass_a = a.sum()
    mass_b = b.sum()
    # Both parts have the same mass in exact arithmetic, not in float64: rescale each to unit mass (equal to the
    # last bits, as ot.emd2 does) and scale the cost back by the true mass.
    a /= mass_a
    b /= mass_b
    return pos, neg, a, b, 0.5 * (mass_a + mass_b)


def _emd_dense(
    diff: np.ndarray,
    cost: np.ndarray,
    dummy_cost: float = 0.0,
    pos: np.ndarray | None = None,
    neg: np.ndarray | None = None,
) -> float:
    """EMD of one difference ``diff`` on the dense ``cost``; ``pos`` / ``neg`` are ``diff > 0`` / ``diff < 0``
    when the caller has them already (computed for a whole chunk of pairs at once)."""
    if pos is None or neg is None:
        pos, neg = diff > 0, diff < 0
    a, b = diff[pos], -diff[neg]
    mass_a, mass_b = float(a.sum()), float(b.sum())
    # compress keeps the pixel order of a boolean-mask selection and is ~3x faster than cost[np.ix_(...)]
    if abs(mass_a - mass_b) <= 1e-9 * max(mass_a, mass_b, 1e-300):
        if a.size == 0 or b.size == 0:
            return 0.0  # identical fields (or a rounding residue of ~1e-17 mass): distance 0
        # Both parts have the same mass in exact arithmetic, not in float64: rescale each to unit mass (equal to
        # the last bits, as ot.emd2 does) and scale the cost back by the true mass.
        sub = cost.compress(pos, axis=0).compress(neg, axis=1)
        _, value, _, _, code = emd_c(a / mass_a, b / mass_b, sub, _MAX_ITER, 1)
        mass = 0.5 * (mass_a + mass_b)
    else:
        # A one-sided field (net mass ±1) against another field: the excess mass goes to a dummy bin at
        # ``dummy_cost`` from every pixel (EMD-hat, Pele & Werman 2008; a metric for dummy_cost >= max/2).
        sub = cost.compress(pos, axis=0).compress(neg, axis=1)
        if mass_a < mass_b:
            a = np.append(a, mass_b - mass_a)
            sub = np.vstack([sub, np.full((1, b.size), dummy_cost)])
        else:
            b = np.append(b, mass_a - mass_b)
            sub = np.hstack([sub, np.full((a.size, 1), dummy_cost)])
        mass = max(mass_a, mass_b)
        _, value, _, _, code = emd_c(a / a.sum(), b / b.sum(), np.ascontiguousarray(sub), _MAX_ITER, 1)
    if code != _OPTIMAL:
        raise RuntimeError(f"network simplex did not reach the optimum (POT result code {code})")
    return float(value) * mass


def _emd_grid(diff: np.ndarray, arcs: tuple[np.ndarray, np.ndarray, np.ndarray]) -> float:
    split = _split(diff)
    if split is None:
        return 0.0
    pos, neg, a, b, mass = split
    supply = np.ones(diff.size)  # B = 1 = the (unit) total mass
    demand = np.ones(diff.size)
    supply[pos] += a
    demand[neg] += b
    *_, value, _, _, code = emd_c_sparse(supply, demand, *arcs, _MAX_ITER)
    if code != _OPTIMAL:
        raise RuntimeError(f"network simplex did not reach the optimum (POT result code {code})")
    return float(value) * mass


@functools.lru_cache(maxsize=8)
def _ground(shape: tuple[int, int], step: float, metric: str) -> tuple[np.ndarray | None, np.ndarray | tuple]:
    """``(node order, ground)`` of a grid with spacing ``step``: a dense cost matrix in node order (euclidean) or
    the grid arcs (cityblock). Built once per process, so workers never receive the 784x784 matrix."""
    if metric == "cityblock":
        return None, _grid_arcs(shape, step)
    order = np.random.default_rng(_NODE_ORDER_SEED).permutation(shape[0] * shape[1])
    coords = step * grid_coords(shape)[order]
    cost = np.sqrt(((coords[:, None, :] - coords[None, :, :]) ** 2).sum(axis=-1))
    cost.flags.writeable = False
    return order, cost


def _solve_chunk(
    x: np.ndarray, shape: tuple[int, int], step: float, metric: str, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """Distances of the pairs ``(rows[k], cols[k])`` of ``x`` (already in the node order of :func:`_ground`)."""
    _, ground = _ground(shape, step, metric)
    out = np.empty(rows.size)
    if metric == "cityblock":
        for k, (i, j) in enumerate(zip(rows.tolist(), cols.tolist(), strict=True)):
            out[k] = _emd_grid(x[i] - x[j], ground)
        return out
    dummy = 0.5 * float(ground.max())
    # differences and their sign masks for blocks of pairs at once (one numpy call each instead of per pair)
    for start in range(0, rows.size, _DIFF_BLOCK):
        diffs = x[rows[start : start + _DIFF_BLOCK]] - x[cols[start : start + _DIFF_BLOCK]]
        for k, (d, p, n) in enumerate(zip(diffs, diffs > 0, diffs < 0, strict=True), start):
            out[k] = _emd_dense(d, ground, dummy, p, n)
    return out


def _pairwise_network(
    x: np.ndarray, shape: tuple[int, int], step: float, metric: str, n_jobs: int, bar
) -> np.ndarray:
    order, _ = _ground(shape, step, metric)
    if order is not None:
        x = np.ascontiguousarray(x[:, order])
    rows, cols = np.triu_indices(x.shape[0], k=1)
    n_chunks = min(rows.size, _CHUNKS_PER_JOB * n_jobs)
    bounds = np.linspace(0, rows.size, n_chunks + 1).astype(int)
    chunks = [(rows[lo:hi], cols[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]
    if n_jobs == 1 or len(chunks) == 1:
        results: Iterator[np.ndarray] = (_solve_chunk(x, shape, step, metric, r, c) for r, c in chunks)
    else:
        results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(_solve_chunk)(x, shape, step, metric, r, c) for r, c in chunks
        )
    condensed = np.empty(rows.size)
    done = 0
    for part in results:  # in chunk order
        condensed[done : done + part.size] = part
        done += part.size
        bar.update(part.size)
    return squareform(condensed, checks=False)


# ------------------------------------------------------------------------------------------------- sliced


def _sliced_task(s: np.ndarray, positions: np.ndarray, block: int) -> np.ndarray:
    """Sum over the given directions of the condensed 1-D W1 distances.

    Along a direction, W1 between signed measures of equal mass is ``∫ |F_a − F_b| dt``; with the pixels sorted
    by projected position ``t_(1) <= ... <= t_(d)`` the CDFs are piecewise constant, so it is
    ``Σ_k (t_(k+1) − t_(k)) |C_a,k − C_b,k|`` with ``C_k`` the cumulative signed mass of the first ``k`` pixels:
    the L1 distance between the gap-weighted cumulative sums. ``positions`` is ``(d, k)``; ``block`` bounds the
    number of float64 entries of one embedding block.

    Pixels that project onto the same position (zero gap) add nothing, so only the positive gaps are kept: along
    the short integer directions of :func:`sliced_projections` that drops most coordinates.
    """
    n, d = s.shape
    order = np.argsort(positions, axis=0, kind="stable")
    gaps = np.diff(np.take_along_axis(positions, order, axis=0), axis=0)  # (d - 1, k), >= 0
    tol = 1e-9 * max(float(np.ptp(positions)), 1.0)  # ties of the integer directions, up to float rounding
    kept = [np.flatnonzero(gaps[:, k] > tol) for k in range(positions.shape[1])]
    total = np.zeros(n * (n - 1) // 2)
    k = 0
    while k < positions.shape[1]:
        cols = [k]
        width = kept[k].size
        while cols[-1] + 1 < positions.shape[1] and (width + kept[cols[-1] + 1].size) * n <= block:
            cols.append(cols[-1] + 1)
            width += kept[cols[-1]].size
        emb = np.empty((n, width))
        at = 0
        for c in cols:
            g = kept[c]
            emb[:, at : at + g.size] = np.cumsum(s[:, order[:, c]], axis=1)[:, g] * gaps[g, c]
            at += g.size
        total += pdist(emb, "cityblock")
        k = cols[-1] + 1
    return total


def _pairwise_sliced(
    s: np.ndarray, coords: np.ndarray, n_projections: int, n_jobs: int, bar
) -> np.ndarray:
    n, d = s.shape
    positions = coords @ sliced_projections(n_projections)  # (d, K)
    block = max(_SLICED_BYTES // 8, n * d)  # at least one direction per block
    groups = np.array_split(np.arange(n_projections), min(n_projections, _SLICED_TASKS))
    if n_jobs == 1 or len(groups) == 1:
        results: Iterator[np.ndarray] = (_sliced_task(s, positions[:, g], block) for g in groups)
    else:
        results = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator")(
            delayed(_sliced_task)(s, positions[:, g], block) for g in groups
        )
    total = np.zeros(n * (n - 1) // 2)
    for g, part in zip(groups, results, strict=True):
        total += part  # in group order: the result does not depend on n_jobs
        bar.update(g.size)
    return squareform(total / n_projections, checks=False)


# --------------------------------------------------------------------------------------------------- API


def pairwise_emd(
    fields: np.ndarray,
    method: str = "pooled",
    shape: tuple[int, int] = (28, 28),
    n_jobs: int | None = None,
    metric: str = "euclidean",
    n_projections: int = 64,
    progress: bool = False,
) -> np.ndarray:
    """All pairwise earth mover's distances between signed receptive fields.

    The fields are normalised with :func:`normalise_fields`; ``d(a, b) = W1((s_a − s_b)⁺, (s_a − s_b)⁻)`` with the
    ground distance between pixel centres in pixel units (see the module docstring for the methods).

    Args:
        fields: ``(n, h * w)`` real array, one flattened (row-major) field per row.
        method: one of :data:`METHODS`: ``"exact"``, ``"pooled"`` (2×2 sum-pooled grid, exact solver) or
            ``"sliced"`` (sliced W1 over ``n_projections`` fixed directions, see :func:`sliced_projections`).
        shape: ``(h, w)`` image shape of a field; even for ``"pooled"``.
        n_jobs: worker processes (joblib loky); ``None`` or ``-1``: all cores. The output does not depend on it.
        metric: ground distance, one of :data:`METRICS`; ``"cityblock"`` only for ``"exact"`` and ``"pooled"``.
        n_projections: number of directions of ``"sliced"``.
        progress: show a tqdm bar (pairs; directions for ``"sliced"``); quiet when not on a terminal.

    Returns:
        ``(n, n)`` float64 symmetric distance matrix with a zero diagonal.

    Raises:
        ValueError: bad shape, method, metric or n_jobs; an all-zero or non-finite field; with
            ``metric="cityblock"``, fields of different net mass (a one-sided field next to a two-sided one).
    """
    _check_choice("method", method, METHODS)
    _check_choice("metric", metric, METRICS)
    if method == "sliced" and metric != "euclidean":
        raise ValueError("method 'sliced' projects Euclidean coordinates; use metric='euclidean'")
    shape = _check_shape(shape)
    jobs = _check_n_jobs(n_jobs)
    if method == "sliced":
        sliced_projections(n_projections)  # validates n_projections before any work
    s = normalise_fields(_check_fields(fields, shape))
    if metric == "cityblock":
        _check_net_mass(s)
    n = s.shape[0]
    if n == 1:
        return np.zeros((1, 1))
    total = n_projections if method == "sliced" else n * (n - 1) // 2
    unit = "proj" if method == "sliced" else "pair"
    with tqdm(total=total, unit=unit, desc=f"emd/{method}", disable=None if progress else True) as bar:
        if method == "sliced":
            return _pairwise_sliced(s, grid_coords(shape), int(n_projections), jobs, bar)
        if method == "pooled":
            # Cell centres at 2i + 0.5 in original pixel units: a grid of spacing 2 (the offset cancels).
            return _pairwise_network(pool_fields(s, shape), (shape[0] // 2, shape[1] // 2), 2.0, metric, jobs, bar)
        return _pairwise_network(s, shape, 1.0, metric, jobs, bar)


def emd_pair(
    a: np.ndarray,
    b: np.ndarray,
    method: str = "exact",
    shape: tuple[int, int] = (28, 28),
    metric: str = "euclidean",
    n_projections: int = 64,
) -> float:
    """Earth mover's distance between two signed fields (see :func:`pairwise_emd`).

    Args:
        a: ``(h * w,)`` field (or any array of that size, e.g. ``(h, w)``).
        b: ``(h * w,)`` field.
        method, shape, metric, n_projections: as in :func:`pairwise_emd`.

    Returns:
        The distance, a float.
    """
    a = np.asarray(a)
    b = np.asarray(b)
    if a.size != b.size:
        raise ValueError(f"a and b must have the same number of pixels, got {a.size} and {b.size}")
    pair = np.stack([a.reshape(-1), b.reshape(-1)])
    return float(
        pairwise_emd(pair, method, shape, n_jobs=1, metric=metric, n_projections=n_projections)[0, 1]
    )


__all__ = [
    "METHODS",
    "METRICS",
    "emd_pair",
    "grid_coords",
    "normalise_fields",
    "pairwise_emd",
    "pool_fields",
    "sliced_projections",
]
