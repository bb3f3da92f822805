"""Null models of the DBN network: is a statistic of the trained weights more than their distribution explains?

* :func:`shuffle_weights` — a random permutation of all entries of one weight matrix: the multiset of weights (so
  the weight distribution and the density kept by any global threshold) is unchanged, every structure is gone.
* :func:`rewire_bipartite` — degree-preserving randomisation of one thresholded layer (a boolean bipartite
  adjacency) by double-edge swaps ``(a-b, c-d) -> (a-d, c-b)``: every row and column degree is kept exactly.
* :func:`null_samples` — ``n_samples`` null versions of a whole stack, reproducible from one seed whatever the
  number of worker processes.
* :func:`null_zscores` — the z-score of each observed statistic against its null distribution.

Everything here is a pure function of numpy arrays (the random generator is an argument): no I/O, no logging.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from analysis.graph import as_masks, as_weights

T = TypeVar("T")

__all__ = ["KINDS", "null_samples", "null_zscores", "rewire_bipartite", "shuffle_weights"]

KINDS = ("shuffle", "rewire")
SWAPS_PER_EDGE = 10  # default n_swaps = SWAPS_PER_EDGE x edges
HOLD = 1 / 8  # probability that a swap proposal is held (rejected at random): makes the chain aperiodic


def _rng(rng: Any, name: str = "rng") -> np.random.Generator:
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, np.random.SeedSequence) or (
        isinstance(rng, int | np.integer) and not isinstance(rng, bool) and rng >= 0
    ):
        return np.random.default_rng(rng)
    raise ValueError(f"invalid {name}: {rng!r}; allowed: a numpy Generator, a SeedSequence or an integer >= 0")


def _count(x: Any, name: str, minimum: int) -> int:
    if isinstance(x, bool) or not isinstance(x, int | np.integer) or x < minimum:
        raise ValueError(f"invalid {name}: {x!r}; allowed: an integer >= {minimum}")
    return int(x)


# ------------------------------------------------------------------------------------------------------ shuffle


def shuffle_weights(w: np.ndarray, rng: np.random.Generator | int) -> np.ndarray:
    """A uniformly random permutation of all the entries of one weight matrix.

    Args:
        w: one 2-D weight matrix ``(n_l, n_{l+1})``, finite.
        rng: a ``numpy.random.Generator`` (an integer seed or a ``SeedSequence`` is turned into one).

    Returns:
        A new float64 array of the shape of ``w`` holding exactly the same values (the same sorted multiset) in a
        random order; ``w`` is not modified.

    Raises:
        ValueError: ``w`` not a non-empty finite 2-D matrix, or an invalid ``rng``.
    """
    (ws,) = as_weights([w], name="w")
    gen = _rng(rng)
    return gen.permutation(ws.ravel()).reshape(ws.shape)


# ------------------------------------------------------------------------------------------------------- rewire


def _batch_size(n_edges: int, shape: tuple[int, int]) -> int:
    """Swaps proposed per batch: about ``n_l n_{l+1} / 16``, where a proposal's 2x2 block of cells meets another's
    about once, capped at one swap per pair of edges. A function of invariants only (edges, shape)."""
    return max(1, min(n_edges // 2, shape[0] * shape[1] // 16))


def _rewire_cols(
    rows: np.ndarray,
    cols: np.ndarray,
    shape: tuple[int, int],
    gen: np.random.Generator,
    n_swaps: int,
    batch: int | None = None,
) -> tuple[np.ndarray, int]:
    """``n_swaps`` proposed double-edge swaps, in batches, on the edge list ``(rows[e], cols[e])`` of a simple
    bipartite graph (at least 2 edges).

    A proposal pairs edges ``i = (a, b)`` and ``j = (c, d)``; the swap gives ``(a, d)`` and ``(c, b)``: rows never
    change, ``cols[i]`` and ``cols[j]`` are exchanged, and the 2x2 block of cells ``{a, c} x {b, d}`` is the only
    thing it reads or writes (it is valid when ``a != c``, ``b != d`` and that block is ``[[1, 0], [0, 1]]``).
    A batch draws ``batch`` disjoint pairs of edges at random and applies every valid proposal whose block meets
    no other proposal's block (proposals with ``a == c`` or ``b == d`` never swap and are left out of that test,
    as are the proposals held by a coin of probability ``HOLD``); the others are rejected and leave the graph
    unchanged, as a rejected single swap does.

    Why this samples uniformly: the block of a proposal is the same before and after its swap, so the set of
    isolated proposals is the same in the graph before and after the batch, and an isolated block is changed by
    its own swap only. Applying the same draw to the new graph therefore undoes the batch exactly: each batch is
    a symmetric transition (P(G -> G') = P(G' -> G)), which with the rejections as holding steps keeps the uniform
    distribution over the simple graphs with these degrees stationary, as the one-swap-at-a-time chain does.
    (The draw is uniform over edge labels, so the symmetry carries over from edge lists to graphs.) The random
    holds make the chain aperiodic: without them it is periodic for degrees where every proposal is valid, e.g. a
    permutation matrix, where every swap changes the permutation's parity.

    Returns the new ``cols`` and the number of swaps accepted.
    """
    cols = cols.copy()
    n_rows, n_cols = shape
    n_edges = rows.size
    batch = _batch_size(n_edges, shape) if batch is None else batch
    occupied = np.zeros(n_rows * n_cols, dtype=bool)
    occupied[rows * n_cols + cols] = True
    done = proposed = 0
    while proposed < n_swaps:
        size = min(batch, n_swaps - proposed)
        proposed += size
        pick = gen.choice(n_edges, size=2 * size, replace=False)
        i, j = pick[:size], pick[size:]
        ri, rj, ci, cj = rows[i], rows[j], cols[i], cols[j]
        held = gen.random(size) < HOLD
        live = np.flatnonzero((ri != rj) & (ci != cj) & ~held)
        blocks = np.concatenate(
            [
                ri[live] * n_cols + ci[live],
                ri[live] * n_cols + cj[live],
                rj[live] * n_cols + ci[live],
                rj[live] * n_cols + cj[live],
            ]
        )
        hits = np.bincount(blocks, minlength=n_rows * n_cols)[blocks].reshape(4, -1)
        new_i, new_j = blocks[live.size : 2 * live.size], blocks[2 * live.size : 3 * live.size]
        ok = (hits == 1).all(axis=0) & ~occupied[new_i] & ~occupied[new_j]
        if not ok.any():
            continue
        acc = live[ok]
        occupied[blocks[: live.size][ok]] = False  # (a, b)
        occupied[blocks[3 * live.size :][ok]] = False  # (c, d)
        occupied[new_i[ok]] = True  # (a, d)
        occupied[new_j[ok]] = True  # (c, b)
        cols[i[acc]], cols[j[acc]] = cj[acc], ci[acc]
        done += acc.size
    return cols, done


def rewire_bipartite(mask: np.ndarray, rng: np.random.Generator | int, n_swaps: int | None = None) -> np.ndarray:
    """Degree-preserving randomisation of one thresholded layer by double-edge swaps.

    A swap takes two edges ``a-b`` and ``c-d`` (``a, c`` rows, ``b, d`` columns) and replaces them by ``a-d`` and
    ``c-b``; it is rejected when ``a == c``, ``b == d`` or either new edge already exists, so the graph stays
    simple (no duplicate edge) and every row sum and column sum of ``mask`` is kept exactly.

    ``n_swaps`` counts proposed swaps, the rejected ones included: a rejection leaves the graph as it is (a holding
    step of the Markov chain). That is what makes the chain's stationary distribution uniform over all the simple
    bipartite graphs with these degrees; stopping after a fixed number of *successful* swaps instead would favour
    graphs that admit more swaps. The swaps are proposed in vectorised batches of disjoint edge pairs; a
    proposal is also rejected when its 2x2 block of cells ``{a, c} x {b, d}`` meets the block of another proposal
    of the same batch, which keeps each batch a symmetric transition, so the uniform distribution stays exact (see
    ``_rewire_cols``). A mask denser than 1/2 is rewired through its complement (a swap there is a swap of the
    mask, and far fewer are rejected).

    Args:
        mask: boolean adjacency ``(n_l, n_{l+1})`` of one layer (True = edge), e.g. one of
            :func:`analysis.graph.threshold_masks`.
        rng: a ``numpy.random.Generator`` (an integer seed or a ``SeedSequence`` is turned into one); the result is
            a deterministic function of its state.
        n_swaps: number of proposed swaps, >= 0; default ``10 x`` the number of edges of ``mask``. At 10 % density
            about half of them are accepted (1/8 are held at random, see ``HOLD``).

    Returns:
        A new boolean array of the shape of ``mask`` with the same row and column sums (unchanged when these
        degrees have a single realisation, e.g. a full, empty or nested mask).

    Raises:
        ValueError: ``mask`` not a non-empty boolean 2-D array, or an invalid ``rng`` or ``n_swaps``.
    """
    (m,) = as_masks([mask], name="mask")
    gen = _rng(rng)
    n_edges = int(np.count_nonzero(m))
    n_swaps = SWAPS_PER_EDGE * n_edges if n_swaps is None else _count(n_swaps, "n_swaps", 0)
    complement = n_edges > m.size / 2
    work = ~m if complement else m
    rows, cols = np.nonzero(work)
    if n_swaps == 0 or rows.size < 2:
        return m.copy()
    new_cols, _ = _rewire_cols(rows.astype(np.int64), cols.astype(np.int64), m.shape, gen, n_swaps)
    out = np.zeros(m.shape, dtype=bool)
    out[rows, new_cols] = True
    return ~out if complement else out


# ------------------------------------------------------------------------------------------------------ samples


def _one_sample(kind: str, blocks: list[np.ndarray], seed: np.random.SeedSequence) -> list[np.ndarray]:
    gen = np.random.default_rng(seed)
    if kind == "shuffle":
        return [shuffle_weights(w, gen) for w in blocks]
    return [rewire_bipartite(m, gen) for m in blocks]


def _map(fn: Callable[[Any], T], items: Sequence[Any], n_jobs: int) -> list[T]:
    """``[fn(x) for x in items]`` in order, in ``n_jobs`` worker processes (joblib, loky: ``fn`` may be a lambda);
    1 = in this process, -1 = all cores."""
    if isinstance(n_jobs, bool) or not isinstance(n_jobs, int | np.integer) or n_jobs == 0:
        raise ValueError(f"invalid n_jobs: {n_jobs!r}; allowed: a non-zero integer (1 = serial, -1 = all cores)")
    if n_jobs == 1 or len(items) <= 1:
        return [fn(x) for x in items]
    from joblib import Parallel, delayed  # joblib comes with scikit-learn / mlxtend; only needed here

    return list(Parallel(n_jobs=int(n_jobs), backend="loky")(delayed(fn)(x) for x in items))


def null_samples(
    weights: Sequence[np.ndarray] | None,
    masks: Sequence[np.ndarray] | None,
    kind: str,
    n_samples: int,
    seed: int,
    n_jobs: int = 1,
) -> list[list[np.ndarray]]:
    """``n_samples`` null versions of the whole stack, one null per layer.

    Sample ``s`` uses the generator of ``np.random.SeedSequence(seed).spawn(n_samples)[s]`` for all its layers in
    order, so the result depends on ``seed`` only, never on ``n_jobs``.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``; needed for ``kind="shuffle"`` (else ignored, may be
            None).
        masks: L boolean masks of the same shapes; needed for ``kind="rewire"`` (else ignored, may be None).
        kind: ``"shuffle"``: every weight matrix permuted by :func:`shuffle_weights`, the samples are weight
            stacks (threshold them again with the observed rule to get their masks); ``"rewire"``: every mask
            rewired by :func:`rewire_bipartite` with its default number of swaps, the samples are mask stacks.
        n_samples: number of null stacks, >= 1.
        seed: integer >= 0, the root of the seed sequence.
        n_jobs: worker processes (joblib, loky backend); 1 runs in this process, -1 uses all cores (joblib's
            convention). Must not be 0.

    Returns:
        ``n_samples`` lists of L arrays: float64 weights (``"shuffle"``) or boolean masks (``"rewire"``).

    Raises:
        ValueError: an unknown ``kind``, the needed stack missing or invalid, or an invalid ``n_samples``,
            ``seed`` or ``n_jobs``.
    """
    if kind not in KINDS:
        raise ValueError(f"invalid kind: {kind!r}; allowed: {', '.join(KINDS)}")
    if kind == "shuffle":
        if weights is None:
            raise ValueError(
                "invalid weights: None; allowed: a stack of weight matrices (kind='shuffle' needs it)"
            )
        blocks = as_weights(weights)
    else:
        if masks is None:
            raise ValueError("invalid masks: None; allowed: a stack of boolean masks (kind='rewire' needs it)")
        blocks = as_masks(masks)
    n_samples = _count(n_samples, "n_samples", 1)
    seed = _count(seed, "seed", 0)
    children = np.random.SeedSequence(seed).spawn(n_samples)
    return _map(functools.partial(_one_sample, kind, blocks), children, n_jobs)


# ------------------------------------------------------------------------------------------------------ z-scores


def _scalar(x: Any, where: str) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        raise ValueError(f"invalid {where}: {x!r}; allowed: a real scalar") from None


def null_zscores(
    stat_fn: Callable[[Any], Mapping[str, float]],
    observed: Mapping[str, float],
    samples: Sequence[Any],
    n_jobs: int = 1,
) -> dict[str, dict[str, float]]:
    """z-score of every observed statistic against its null distribution.

    For each key of ``observed``: ``null_mean`` and ``null_std`` (sample standard deviation, ``ddof=1``) of
    ``stat_fn(sample)[key]`` over the samples, and ``z = (value - null_mean) / null_std``.

    ``z`` is NaN when ``null_std == 0`` (every null sample gives the same value, e.g. a statistic the null model
    preserves, such as the degrees under rewiring) or when ``null_std`` is NaN (fewer than 2 samples). NaN in a
    null statistic propagates to ``null_mean``, ``null_std`` and ``z`` (filter NaN-valued statistics out, or use a
    ``stat_fn`` that never returns NaN, when that is not wanted).

    Args:
        stat_fn: maps one null sample (e.g. a mask stack from :func:`null_samples`) to a dict of real scalars
            holding at least the keys of ``observed``; extra keys are ignored.
        observed: the statistics of the real network, ``{key: value}``.
        samples: the null samples, at least 1.
        n_jobs: worker processes evaluating ``stat_fn`` (joblib, loky backend, so ``stat_fn`` may be a lambda or
            a bound method); 1 runs in this process, -1 uses all cores. The samples are evaluated in order and
            the result is the same for every ``n_jobs``. Must not be 0.

    Returns:
        ``{key: {"value", "null_mean", "null_std", "z"}}`` of floats, keys in the order of ``observed``.

    Raises:
        ValueError: no samples, a key of ``observed`` missing from a sample's statistics, a non-scalar value, or
            an invalid ``n_jobs``.
    """
    if not callable(stat_fn):
        raise ValueError(f"invalid stat_fn: {stat_fn!r}; allowed: a callable returning a dict of scalars")
    samples = list(samples)
    if not samples:
        raise ValueError("invalid samples: 0 samples; allowed: at least 1")
    keys = list(observed)
    all_stats = _map(stat_fn, samples, n_jobs)
    null = np.empty((len(samples), len(keys)), dtype=np.float64)
    for s, stats in enumerate(all_stats):
        for k, key in enumerate(keys):
            if key not in stats:
                raise ValueError(
                    f"invalid stat_fn: sample {s} has no statistic {key!r}; allowed: the keys of observed"
                )
            null[s, k] = _scalar(stats[key], f"stat_fn(samples[{s}])[{key!r}]")
    mean = null.mean(axis=0)
    std = null.std(axis=0, ddof=1) if len(samples) > 1 else np.full(len(keys), np.nan)
    out: dict[str, dict[str, float]] = {}
    for k, key in enumerate(keys):
        value = _scalar(observed[key], f"observed[{key!r}]")
        sd = float(std[k])
        z = (value - float(mean[k])) / sd if sd > 0 else math.nan
        out[key] = {"value": value, "null_mean": float(mean[k]), "null_std": sd, "z": z}
    return out
