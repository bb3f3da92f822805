"""Beyond the paper, for every run: null-model z-scores, structural communities, rich club, k-cores, bipartite
clustering and spectra of the weight matrices (the model's own quality, e.g. the likelihood and the fantasies of
a DBN, is the model package's business).

Fast array versions of two graph measures live here (both checked against networkx in the tests):

* :func:`rich_club_masks` — the rich-club coefficient ``φ(k)`` of the thresholded layered graph for every ``k``
  at once (an edge counts in ``E_k`` when both its ends have degree ``> k``, so ``E_k`` is a reverse cumulative
  count of the edges' smaller end-degree);
* :func:`bipartite_clustering_masks` — Latapy's bipartite clustering (networkx ``mode="dot"``) of one layer pair
  from the overlap matrix ``M Mᵀ`` (networkx needs ~16 s for the v–h1 block, this ~0.1 s).

:class:`BeyondPaperCallback` computes everything at the end of training and logs, for each scalar statistic
``<metric>``, its z-score against degree-preserving rewiring (``<metric>/null_z``) and against the weight shuffle
(``<metric>/null_z_shuffle``) where the null model does not keep it fixed.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from analysis.events import TrainEnd

__all__ = ["BeyondPaperCallback", "bipartite_clustering_masks", "rich_club_masks"]


# ------------------------------------------------------------------------------------------ array graph measures


def rich_club_masks(masks: Sequence[np.ndarray]) -> dict[int, float]:
    """``{k: φ(k)}`` of the layered graph of boolean ``masks`` (as networkx ``rich_club_coefficient`` of
    :func:`analysis.graph.to_networkx` of the masks, unnormalised): ``φ(k) = 2 E_k / (N_k (N_k - 1))`` with
    ``N_k`` the units of degree ``> k`` and ``E_k`` the edges among them, for ``k = 0, 1, ...`` while
    ``N_k >= 2``."""
    from analysis import graph as G

    ms = G.as_masks(masks)
    degs = G.degrees(ms)
    all_k = np.concatenate(degs).astype(np.int64)
    smaller = []
    for layer, m in enumerate(ms):
        rows, cols = np.nonzero(m)
        smaller.append(np.minimum(degs[layer][rows], degs[layer + 1][cols]).astype(np.int64))
    e_min = np.concatenate(smaller) if smaller else np.zeros(0, np.int64)
    top = int(all_k.max(initial=0)) + 1
    # N_k = #{units with degree > k}, E_k = #{edges whose smaller end-degree > k}
    n_gt = np.cumsum(np.bincount(all_k, minlength=top)[::-1])[::-1]
    n_gt = np.concatenate([n_gt[1:], [0]])
    e_gt = np.cumsum(np.bincount(e_min, minlength=top)[::-1])[::-1]
    e_gt = np.concatenate([e_gt[1:], [0]])
    out: dict[int, float] = {}
    for k in range(top):
        n = int(n_gt[k])
        if n < 2:
            break
        out[k] = 2.0 * float(e_gt[k]) / (n * (n - 1))
    return out


def bipartite_clustering_masks(mask: np.ndarray) -> float:
    """Average bipartite clustering of one layer pair (Latapy et al. 2008; networkx
    ``bipartite.average_clustering`` with ``mode="dot"`` over the nodes of both layers).

    For a unit ``u``, ``c_u`` is the mean over the units ``v ≠ u`` of its own layer that share a neighbour with
    it of ``|N(u) ∩ N(v)| / |N(u) ∪ N(v)|`` (0 when there are none); the result is the mean of ``c_u`` over the
    units of both layers.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"invalid mask: shape {m.shape}; allowed: a 2-d boolean array")
    total, count = 0.0, 0
    for side in (m, m.T):
        a = side.astype(np.float32)
        overlap = (a @ a.T).astype(np.float64)  # exact: small integers in float32 (< 2**24)
        deg = side.sum(axis=1).astype(np.float64)
        union = deg[:, None] + deg[None, :] - overlap
        np.fill_diagonal(overlap, 0.0)
        share = overlap > 0
        ratio = np.divide(overlap, union, out=np.zeros_like(overlap), where=share)
        n_second = share.sum(axis=1)
        c = np.divide(ratio.sum(axis=1, dtype=np.float64), n_second, out=np.zeros(len(deg)), where=n_second > 0)
        total += float(c.sum())
        count += len(deg)
    return total / count if count else math.nan


def _louvain_masks(masks: Sequence[np.ndarray], seed: int, resolution: float) -> Any:
    from analysis import communities as C
    from analysis import graph as G

    return C.louvain(G.to_networkx([m.astype(np.float64) for m in masks], masks), None, seed, resolution)


# ---------------------------------------------------------------------------------------------------- callback


@dataclass
class BeyondPaperCallback:
    """Network science beyond the paper's descriptive statistics, at the end of training.

    Logged (``<L>`` a unit layer ``v``, ``h1``...; ``<h>`` a clustered hidden layer; ``w<l>`` a weight matrix):

    * ``communities/thresholded/{modularity,n_communities}`` — seeded Louvain on the thresholded graph;
      ``communities/abs_w/{modularity,n_communities}`` on the full graph weighted by ``|w|``
      (``abs_weights: false`` skips it: ~1.6 M edges in networkx); ``communities/<h>/{nmi,ari}`` (and
      ``.../abs_w_{nmi,ari}``) — agreement of the structural communities of the units of ``<h>`` with their EMD
      clusters, read from ``context.results.labels["<h>"]`` (what :class:`~analysis.callbacks.ClusterCallback`
      produced at the same event: :func:`~analysis.callbacks.dispatch` runs it first, this callback having
      ``order = 1``); without labels, none of these.
    * ``richclub/all/phi`` — ``φ(k*)`` at ``k*`` = the ``rich_club_quantile`` of the degrees
      (``richclub/all/k``), ``richclub/all/rho`` = ``φ(k*) / mean φ_null(k*)`` under rewiring, and the curve
      ``ρ(k)`` as a figure.
    * ``kcore/<L>/{max_core,mean_core}`` — networkx core numbers; ``bipartite/<A>_<B>/clustering``.
    * ``spectra/w<l>/{alpha,alpha_std_err,xmin,n_tail,ks_distance,top_singular_value}`` — power-law fit of the
      tail of the singular values (trained; the same with ``initial_`` in front for the initial weights) and the
      figure of both spectra.
    * ``<metric>/null_z`` (rewiring) and ``<metric>/null_z_shuffle`` (weight shuffle) for
      ``graph/all/assortativity``, ``graph/<L>/mean_knn``, ``clusters/<h>/<side>/pearson_*`` (with the EMD
      labels), ``richclub/all/phi``, ``bipartite/*/clustering`` and ``communities/thresholded/modularity``
      (unless ``null.modularity`` is off); also ``<metric>/null_mean`` and ``<metric>/null_std`` (rewiring).
    * the observed values of the z-scored statistics, except those a callback before it already produced at this
      event (same definitions).

    Every random choice (null samples, Louvain) derives from ``seed``; ``None`` (the default) takes the run's
    seed from the callback context, and 0 without one.
    """

    threshold: Any = None
    null: Any = None
    communities: Any = None
    rich_club_quantile: float = 0.9
    cluster_sides: Any = ("out", "in", "total")
    seed: int | None = None
    every_n_epochs: int = 0
    wants_context: ClassVar[bool] = True
    order: ClassVar[int] = 1  # after ClusterCallback (order 0), whose EMD labels it reads
    _null: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        from analysis.callbacks import _is_int, _require, _threshold

        self.threshold = _threshold(self.threshold or {"sign": "positive", "quantile": 0.9})
        self.null = {"n_samples": 20, "kinds": ["rewire", "shuffle"], "n_jobs": -1, "modularity": True,
                     **dict(self.null or {})}  # fmt: skip
        self.communities = {"resolution": 1.0, "abs_weights": True, **dict(self.communities or {})}
        self.cluster_sides = [str(x) for x in self.cluster_sides]
        nl, kinds = self.null, ("rewire", "shuffle")
        _require(_is_int(nl["n_samples"]) and nl["n_samples"] >= 2, "null.n_samples", nl["n_samples"],
                 "an integer >= 2")  # fmt: skip
        _require(bool(nl["kinds"]) and all(k in kinds for k in nl["kinds"]), "null.kinds", nl["kinds"],
                 "a non-empty list of " + " | ".join(kinds))  # fmt: skip
        _require(_is_int(nl["n_jobs"]) and (nl["n_jobs"] >= 1 or nl["n_jobs"] == -1), "null.n_jobs", nl["n_jobs"],
                 "-1 (all cores) or an integer >= 1")  # fmt: skip
        res = self.communities["resolution"]
        _require(isinstance(res, int | float) and res > 0, "communities.resolution", res, "a float > 0")
        q = self.rich_club_quantile
        _require(isinstance(q, int | float) and 0.0 < q < 1.0, "rich_club_quantile", q, "a float in (0, 1)")

    # ------------------------------------------------------------------------------------------------ stats
    def _stats(
        self,
        weights: list[np.ndarray],
        masks: list[np.ndarray],
        labels: Mapping[int, np.ndarray],
        k_star: int,
        with_strength: bool,
        modularity: bool,
        seed: int,
    ) -> dict[str, float]:
        """The scalar statistics tested against the null models, for one (observed or null) network."""
        from analysis import graph as G
        from analysis import structure as S

        degs = G.degrees(masks)
        knn = G.neighbour_degrees(masks, degs)  # NaN for isolated units: the mean is over the others
        names = G.layer_names(len(masks) + 1)
        out = {"graph/all/assortativity": G.degree_assortativity(masks, degs)}
        for n, x in zip(names, knn, strict=True):
            ok = ~np.isnan(x)
            out[f"graph/{n}/mean_knn"] = float(x[ok].mean()) if ok.any() else math.nan
        keys = ("pearson_k_s", "pearson_k_knn", "pearson_s_knn") if with_strength else ("pearson_k_knn",)
        for layer, lab in labels.items():
            for side in S.layer_sides(layer, len(masks), self.cluster_sides):
                u = S.unit_structure(weights, masks, layer, side)
                st = S.structure_function_stats(S.cluster_structure(lab, u["degree"], u["strength"], u["knn"]))
                out.update({f"clusters/h{layer}/{side}/{k}": st[k] for k in keys})
        phi = rich_club_masks(masks)
        out["richclub/all/phi"] = phi.get(k_star, math.nan)
        for i, m in enumerate(masks):
            out[f"bipartite/{names[i]}_{names[i + 1]}/clustering"] = bipartite_clustering_masks(m)
        if modularity:
            out["communities/thresholded/modularity"] = _louvain_masks(
                masks, seed, float(self.communities["resolution"])
            ).modularity
        return out

    def __call__(self, event: Any, context: Any = None) -> Any:
        if not isinstance(event, TrainEnd):
            return None
        from analysis import communities as C
        from analysis import figures as F
        from analysis import graph as G
        from analysis import nullmodels as N
        from analysis import spectra as SP
        from analysis.callbacks import AnalysisResult, _matrices

        # the seed of every random choice here: ``seed`` if given, else the run's seed (from the context)
        seed = int(self.seed if self.seed is not None else getattr(context, "seed", None) or 0)
        weights = _matrices(event.weights)
        initial = _matrices(event.initial) if event.initial else []
        masks, _ = G.threshold_masks(weights, self.threshold)
        degs = G.degrees(masks)
        # the thresholded graph in networkx, built once (Louvain ignores the weights, k-cores too)
        graph = G.to_networkx([w * mk for w, mk in zip(weights, masks, strict=True)], masks)
        out = AnalysisResult()
        m = out.metrics

        # EMD cluster labels from the clustering callback of this event (it runs before this one)
        previous = getattr(context, "results", None)
        labels = _labels(previous, weights)

        # communities
        resolution = float(self.communities["resolution"])
        offsets = np.cumsum([0] + [len(d) for d in degs])
        thr = C.louvain(graph, None, seed, resolution)
        m["communities/thresholded/modularity"] = thr.modularity
        m["communities/thresholded/n_communities"] = float(thr.n_communities)
        for layer, lab in labels.items():
            nmi, ari = C.partition_agreement(thr.labels[offsets[layer] : offsets[layer + 1]], lab)
            m[f"communities/h{layer}/nmi"], m[f"communities/h{layer}/ari"] = nmi, ari
        if self.communities["abs_weights"]:
            absw = C.louvain(C.graph_abs_weights(weights), "weight", seed, resolution)
            m["communities/abs_w/modularity"] = absw.modularity
            m["communities/abs_w/n_communities"] = float(absw.n_communities)
            for layer, lab in labels.items():
                nmi, ari = C.partition_agreement(absw.labels[offsets[layer] : offsets[layer + 1]], lab)
                m[f"communities/h{layer}/abs_w_nmi"], m[f"communities/h{layer}/abs_w_ari"] = nmi, ari

        # k-cores
        for name, core in SP.kcore_per_layer(graph).items():
            m[f"kcore/{name}/max_core"] = float(core.max())
            m[f"kcore/{name}/mean_core"] = float(core.mean())

        # spectra
        spectra_trained, spectra_initial = {}, {}
        for i in range(1, len(weights) + 1):
            for prefix, mats, store in (("", weights, spectra_trained), ("initial_", initial, spectra_initial)):
                if not mats:
                    continue
                sv = SP.singular_values(mats[i - 1])
                store[f"w{i}"] = sv
                fit = SP.powerlaw_tail_fit(sv)
                m[f"spectra/w{i}/{prefix}top_singular_value"] = float(sv[0])
                m[f"spectra/w{i}/{prefix}alpha"] = fit.alpha
                m[f"spectra/w{i}/{prefix}alpha_std_err"] = fit.alpha_std_err
                m[f"spectra/w{i}/{prefix}xmin"] = fit.xmin
                m[f"spectra/w{i}/{prefix}n_tail"] = float(fit.n_tail)
                m[f"spectra/w{i}/{prefix}ks_distance"] = fit.ks_distance
        out.figures["figures/singular_values.png"] = F.plot_singular_values(spectra_trained, spectra_initial)

        # null models
        all_k = np.concatenate(degs)
        k_star = int(np.quantile(all_k, float(self.rich_club_quantile)))
        m["richclub/all/k"] = float(k_star)
        modularity = bool(self.null["modularity"])
        observed = self._stats(weights, masks, labels, k_star, True, modularity, seed)
        n_samples, n_jobs = int(self.null["n_samples"]), int(self.null["n_jobs"])
        rho_curve = None
        for kind in self.null["kinds"]:
            null_seed = seed * 2 + (0 if kind == "rewire" else 1)
            if kind == "rewire":
                samples = N.null_samples(None, masks, "rewire", n_samples, null_seed, n_jobs)
                null_stack = [(weights, s) for s in samples]
                with_strength = False
            else:
                samples = N.null_samples(weights, None, "shuffle", n_samples, null_seed, n_jobs)
                null_stack = [(s, G.threshold_masks(s, self.threshold)[0]) for s in samples]
                with_strength = True
            obs = {k: v for k, v in observed.items() if with_strength or not k.endswith(("_k_s", "_s_knn"))}
            z = N.null_zscores(
                lambda pair, ws=with_strength: self._stats(pair[0], pair[1], labels, k_star, ws, modularity, seed),
                obs,
                null_stack,
                n_jobs,
            )
            suffix = "null_z" if kind == "rewire" else "null_z_shuffle"
            for key, res in z.items():
                if math.isfinite(res["z"]):
                    m[f"{key}/{suffix}"] = res["z"]
                if kind == "rewire":
                    m[f"{key}/null_mean"], m[f"{key}/null_std"] = res["null_mean"], res["null_std"]
            if kind == "rewire":
                phi = rich_club_masks(masks)
                rho_curve = SP.normalized_rich_club(phi, [rich_club_masks(pair[1]) for pair in null_stack])
                if k_star in rho_curve:
                    m["richclub/all/rho"] = rho_curve[k_star]
        # the observed values, except those a callback before this one already logged (same definitions)
        logged = previous.metrics if previous is not None else {}
        for key, value in observed.items():
            if key not in logged:
                m.setdefault(key, value)
        if rho_curve:
            out.figures["figures/rich_club.png"] = F.plot_rich_club(rho_curve, k_star)

        out.metrics = {k: float(v) for k, v in m.items() if v is not None and math.isfinite(float(v))}
        return out


def _labels(results: Any, weights: Sequence[np.ndarray]) -> dict[int, np.ndarray]:
    """``{layer: EMD cluster label of each unit}`` from ``results.labels["h<layer>"]`` (hidden layers only)."""
    found = getattr(results, "labels", None) or {}
    out: dict[int, np.ndarray] = {}
    for layer in range(1, len(weights) + 1):
        lab = found.get(f"h{layer}")
        if lab is None:
            continue
        lab = np.asarray(lab, dtype=np.int64)
        if lab.shape != (weights[layer - 1].shape[1],):
            raise ValueError(
                f"invalid labels['h{layer}']: shape {lab.shape}; allowed: one label per unit of h{layer} "
                f"({weights[layer - 1].shape[1]},)"
            )
        out[layer] = lab
    return out
