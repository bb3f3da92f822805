"""Analysis callbacks: a training event in, an :class:`AnalysisResult` out; the app hands it to the tracker."""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np


class LazyFiles(dict):
    """``{artifact path: bytes}`` whose values may be logged as callables producing the bytes: a value is made
    on first access (``[]``, ``get``, ``items``, ``values``) and kept, so a file nobody reads is never
    serialised."""

    def __getitem__(self, key: str) -> bytes:
        value = super().__getitem__(key)
        if callable(value):
            value = value()
            super().__setitem__(key, value)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default

    def values(self) -> Any:
        return [self[k] for k in self]

    def items(self) -> Any:
        return [(k, self[k]) for k in self]


@dataclass
class AnalysisResult:
    """What one analysis produced, keyed by name; the tracker logs it.

    Attributes:
        metrics: ``scope/name`` keys (``graph/h1/mean_degree``) to floats.
        figures: artifact paths (``figures/weights.png``) to ``matplotlib.figure.Figure``.
        tables: artifact paths (``tables/h1_units.csv``) to column tables ``{column: 1-d array}``.
        arrays: artifact paths (``arrays/emd_h1.npz``) to ``{name: array}`` saved as ``.npz``.
        files: artifact paths to raw bytes (e.g. ``graph/thresholded.graphml.gz``), or to a zero-argument callable
            returning them (:class:`LazyFiles`: reading ``files[path]`` gives the bytes; the MLflow tracker calls
            it on its writer, so the job does not wait for the serialisation).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    files: LazyFiles = field(default_factory=LazyFiles)

    def update(self, other: AnalysisResult) -> AnalysisResult:
        self.metrics.update(other.metrics)
        self.figures.update(other.figures)
        self.tables.update(other.tables)
        self.arrays.update(other.arrays)
        self.files.update(other.files)
        return self


@dataclass
class CallbackContext:
    """What the app hands to a callback that declares ``wants_context = True`` (called ``cb(event, context)``).

    Attributes:
        results: everything the callbacks before it produced at this event (merged), e.g. the EMD cluster labels.
        dataset: the run's data (``x_train``, ``y_train``, ``x_test``, ``y_test``).
        seed: the run's seed.
        model_kind: ``"dbn"`` (stacked RBMs) or ``"mlp"`` (the supervised baseline: its layers are no RBMs).
    """

    results: AnalysisResult
    dataset: Any = None
    seed: int = 0
    model_kind: str = "dbn"


def _np(params: Any) -> np.ndarray:
    return np.asarray(params.w, dtype=np.float64)


def _weights(layers: Any) -> list[np.ndarray]:
    return [_np(p) for p in layers]


@dataclass
class WeightStatsCallback:
    """Weight and strength distributions: their learning dynamics, and initial vs trained at the end.

    During training (every ``every_n_epochs`` epochs): ``weights/w<l>/<stat>`` of the matrix being trained and the
    out-/in-strengths it gives its two layers (``strength/<layer>/<side>/<stat>``), step = epoch (the values at a
    layer's last epoch are its final ones, not logged twice). At the end:
    the same for every matrix and for all weights pooled (``weights/all/...``), the shift of each statistic
    from the initial weights (``weights/w<l>/mean_shift``, ``.../skewness_shift``), total strengths, histogram
    figures (initial vs trained) and the per-unit strength tables.
    """

    every_n_epochs: int = 1
    bins: int = 100
    _at_last_epoch: dict = field(default_factory=dict, init=False, repr=False)

    def __call__(self, event: Any) -> AnalysisResult | None:
        from analysis import distributions as D
        from analysis import figures as F
        from analysis import graph as G

        kind = type(event).__name__
        if kind == "EpochEnd":
            l = event.layer  # noqa: E741 - layer index, as in the paper
            w = _np(event.params)
            stats = {f"weights/w{l}/{k}": v for k, v in D.distribution_stats(w).items() if k != "n"}
            lower, upper = ("v" if l == 1 else f"h{l - 1}"), f"h{l}"
            for side, layer, x in (("out", lower, w.sum(axis=1)), ("in", upper, w.sum(axis=0))):
                stats.update({f"strength/{layer}/{side}/{k}": v for k, v in D.distribution_stats(x).items()
                              if k != "n"})  # fmt: skip
            if event.epoch == event.n_epochs:
                self._at_last_epoch.update(stats)
            return AnalysisResult(metrics=stats)
        if kind != "TrainEnd":
            return None
        trained, initial = _weights(event.layers), _weights(event.initial)
        out = AnalysisResult()
        final = D.weight_stats(trained)
        out.metrics.update({f"weights/{k}": v for k, v in final.items()})
        if initial:
            first = D.weight_stats(initial)
            for k, v in first.items():
                name, stat = k.rsplit("/", 1)
                if stat in ("mean", "sd", "skewness", "excess_kurtosis", "frac_negative"):
                    out.metrics[f"weights/{name}/initial_{stat}"] = v
                    out.metrics[f"weights/{name}/{stat}_shift"] = final[k] - v
        out.metrics.update({f"strength/{k}": v for k, v in D.strength_stats(trained).items()})
        # A matrix's statistics were already logged, with the same values, at its layer's last epoch (same step).
        for key in self._at_last_epoch:
            out.metrics.pop(key, None)
        names = [f"w{i}" for i in range(1, len(trained) + 1)]
        pooled = {"all": np.concatenate([w.ravel() for w in trained])}
        out.figures["figures/weights_histograms.png"] = F.plot_weight_histograms(
            (dict(zip(names, initial, strict=True)) | {"all": np.concatenate([w.ravel() for w in initial])})
            if initial else None,
            dict(zip(names, trained, strict=True)) | pooled,
            bins=self.bins,
        )  # fmt: skip
        per_layer = G.strengths(trained)
        s_trained = _strength_panels(per_layer)
        s_initial = _strength_panels(G.strengths(initial)) if initial else None
        out.figures["figures/strength_histograms.png"] = F.plot_strength_histograms(s_trained, s_initial)
        layer_names = G.layer_names(len(trained) + 1)
        for name, sides in zip(layer_names, per_layer, strict=True):
            out.tables[f"tables/strength_{name}.csv"] = {"unit": np.arange(len(next(iter(sides.values())))),
                                                         **sides}  # fmt: skip
        return out


def _strength_panels(per_layer: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    from analysis import graph as G

    names = G.layer_names(len(per_layer))
    return {f"{n}/{side}": x for n, sides in zip(names, per_layer, strict=True) for side, x in sides.items()
            if side != "total"}  # fmt: skip


def _threshold(spec: Any) -> Any:
    from analysis.graph import Threshold

    if isinstance(spec, Threshold):
        return spec
    return Threshold(**dict(spec))


def _graphml_gz(weights: list[np.ndarray], masks: list[np.ndarray]) -> bytes:
    from analysis import graph as G

    return G.graphml_gz_bytes(G.to_networkx(weights, masks))


@dataclass
class GraphCallback:
    """The thresholded, unweighted network: degrees, k_nn, assortativity, components.

    During training (every ``every_n_epochs`` epochs): the bipartite graph of the matrix being trained alone,
    thresholded by the same rule applied to that matrix's own weights (a quantile or density of *this* matrix,
    whatever ``threshold.scope``): ``graph/per_matrix/w<l>/{threshold,kept_fraction,mean_degree,assortativity}``,
    step = epoch. At the end: the whole k-partite graph under the run's rule (``graph/<layer>/...``,
    ``graph/all/...``, ``graph/threshold/w<l>`` = θ actually used, ``graph/kept_fraction/w<l>`` = the fraction of
    each matrix's possible edges kept), the kept fractions the same rule gives under either scope
    (``graph/scope_global/kept_fraction/w<l>``, ``graph/scope_layer/kept_fraction/w<l>``), the
    degree-distribution figure, per-unit tables (degree, k_nn, strengths) and, with ``export_graphml``, the
    thresholded graph as gzipped GraphML.
    """

    threshold: Any = None
    every_n_epochs: int = 1
    export_graphml: bool = True

    def __post_init__(self) -> None:
        self.threshold = _threshold(self.threshold or {"sign": "positive", "quantile": 0.9})

    def __call__(self, event: Any) -> AnalysisResult | None:
        from analysis import figures as F
        from analysis import graph as G

        kind = type(event).__name__
        if kind == "EpochEnd":
            l = event.layer  # noqa: E741
            w = _np(event.params)
            (mask,), (theta,) = G.threshold_masks([w], self.threshold)
            n_edges = int(mask.sum())
            return AnalysisResult(metrics={
                f"graph/per_matrix/w{l}/threshold": theta,
                f"graph/per_matrix/w{l}/kept_fraction": n_edges / mask.size,
                f"graph/per_matrix/w{l}/mean_degree": 2.0 * n_edges / sum(mask.shape),
                f"graph/per_matrix/w{l}/assortativity": G.degree_assortativity([mask]),
            })  # fmt: skip
        if kind != "TrainEnd":
            return None
        weights = _weights(event.layers)
        masks, thetas = G.threshold_masks(weights, self.threshold)
        degs = G.degrees(masks)
        knn = G.neighbour_degrees(masks, degs)
        out = AnalysisResult(metrics={f"graph/{k}": v for k, v in G.graph_stats(masks, degs).items()})
        out.metrics.update({f"graph/threshold/w{i}": t for i, t in enumerate(thetas, start=1)})
        out.metrics.update({f"graph/kept_fraction/w{i}": float(m.mean()) for i, m in enumerate(masks, start=1)})
        for scope in G.SCOPES:
            alt = dataclasses.replace(self.threshold, scope=scope)
            alt_masks = masks if alt == self.threshold else G.threshold_masks(weights, alt)[0]
            out.metrics.update(
                {f"graph/scope_{scope}/kept_fraction/w{i}": float(m.mean()) for i, m in enumerate(alt_masks, 1)}
            )
        names = G.layer_names(len(weights) + 1)
        per_layer = dict(zip(names, degs, strict=True))
        out.figures["figures/degree_distributions.png"] = F.plot_degree_distributions(per_layer)
        for name, k, kn, s in zip(names, degs, knn, G.strengths(weights), strict=True):
            out.tables[f"tables/units_{name}.csv"] = {"unit": np.arange(len(k)), "degree": k, "knn": kn, **{
                f"strength_{side}": x for side, x in s.items()}}  # fmt: skip
        if self.export_graphml:
            # serialised by the tracker's writer (~1 s of networkx for the 10%-density graph), not by the job
            out.files["graph/thresholded.graphml.gz"] = functools.partial(_graphml_gz, weights, masks)
        return out


@dataclass
class ClusterCallback:
    """Functional groups: receptive fields clustered by Earth Mover's Distance, and structure vs function.

    At the end of training, for each layer in ``cluster_layers``: receptive fields (linear projection to pixel
    space), all-pairs EMD (``emd.method``), hierarchical clustering (``linkage``, average = the paper) into
    ``n_clusters``, the cluster-level dendrogram with medoid fields, the cluster sizes
    (``clusters/h<l>/{n_clusters,largest_fraction,n_singletons}``), and for every side in ``cluster_sides``
    (``out``, ``in``, ``total``; see :mod:`analysis.structure` for the matched definitions) the per-cluster mean
    degree, strength and k_nn in the thresholded graph and, across clusters, Pearson r(k̄, s̄), r(k̄, k̄_nn),
    r(s̄, k̄_nn): ``clusters/h<l>/<side>/pearson_*`` with p-values (``..._p``) and size-weighted twins
    (``..._weighted``); the same correlations across units (``structure/h<l>/<side>/pearson_*``); and with
    ``label_null.n_permutations > 0`` the label-permutation null of every cluster-level r
    (``.../perm_mean``, ``/perm_z``, ``/perm_p``), seeded from the run's seed and the layer.
    """

    n_clusters: int = 20
    cluster_layers: Any = (1, 2)
    emd: Any = None
    threshold: Any = None
    cluster_sides: Any = ("out", "in", "total")
    linkage: str = "average"
    label_null: Any = None
    mosaic_units: int = 100
    seed: int | None = None
    every_n_epochs: int = 0
    wants_context: ClassVar[bool] = True

    def __post_init__(self) -> None:
        from analysis.clustering import METHODS
        from analysis.structure import SIDES

        self.threshold = _threshold(self.threshold or {"sign": "positive", "quantile": 0.9})
        self.emd = dict(self.emd or {"method": "pooled"})
        self.cluster_layers = [int(x) for x in self.cluster_layers]
        self.cluster_sides = [str(x) for x in self.cluster_sides]
        self.label_null = {"n_permutations": 1000, **dict(self.label_null or {})}
        if (
            not self.cluster_sides
            or any(x not in SIDES for x in self.cluster_sides)
            or len(set(self.cluster_sides)) != len(self.cluster_sides)
        ):
            raise ValueError(
                f"invalid cluster_sides: {self.cluster_sides!r}; allowed: a non-empty list of distinct "
                f"{' | '.join(SIDES)}"
            )
        if self.linkage not in METHODS:
            raise ValueError(
                f"invalid linkage: {self.linkage!r}; allowed: {' | '.join(METHODS)} (ward, centroid and median "
                "assume Euclidean distances; EMD between receptive fields is not)"
            )
        n_perm = self.label_null["n_permutations"]
        if isinstance(n_perm, bool) or not isinstance(n_perm, int) or n_perm < 0:
            raise ValueError(
                f"invalid label_null.n_permutations: {n_perm!r}; allowed: an integer >= 0 (0 = no null)"
            )

    def __call__(self, event: Any, context: Any = None) -> AnalysisResult | None:
        if type(event).__name__ != "TrainEnd":
            return None
        from analysis import clustering as C
        from analysis import emd as E
        from analysis import figures as F
        from analysis import graph as G
        from analysis import receptive_fields as R
        from analysis import structure as S

        seed = int(self.seed if self.seed is not None else getattr(context, "seed", None) or 0)
        weights = _weights(event.layers)
        masks, _ = G.threshold_masks(weights, self.threshold)
        n_perm = int(self.label_null["n_permutations"])
        method = self.emd.get("method", "pooled")
        out = AnalysisResult()
        tables, stats = {}, {}
        for l in self.cluster_layers:  # noqa: E741
            name = f"h{l}"
            fields = R.receptive_fields(weights, l)
            dist = E.pairwise_emd(fields, **self.emd)
            cl = C.cluster_fields(dist, self.n_clusters, method=self.linkage)
            m = out.metrics
            m[f"clusters/{name}/n_clusters"] = float(cl.n_clusters)
            m[f"clusters/{name}/largest_fraction"] = float(cl.sizes.max() / cl.sizes.sum())
            m[f"clusters/{name}/n_singletons"] = float(np.sum(cl.sizes == 1))
            table: dict[str, np.ndarray] = {}
            units, observed = {}, {}
            for side in S.layer_sides(l, len(weights), self.cluster_sides):
                units[side] = u = S.unit_structure(weights, masks, l, side)
                t = S.cluster_structure(cl.labels, u["degree"], u["strength"], u["knn"])
                observed[side] = st = S.structure_function_stats(t)
                table.update({"cluster": t["cluster"], "size": t["size"]})
                table.update({f"{c}_{side}": t[c] for c in ("mean_degree", "mean_strength", "mean_knn")})
                m.update({f"clusters/{name}/{side}/{k}": v for k, v in st.items() if k != "n_clusters"})
                m.update({f"structure/{name}/{side}/{k}": v for k, v in S.unit_stats(u).items()})
                if not tables.get(name):
                    tables[name], stats[name] = {**t, "side": side}, st
            if n_perm and units:
                null = S.label_permutation_null(cl.labels, units, observed, n_perm, [seed, l])
                for side, res in null.items():
                    m.update({f"clusters/{name}/{side}/{k}": v for k, v in res.items()})
                if stats.get(name) is not None:
                    side = tables[name]["side"]
                    stats[name] = {**stats[name], **null[side]}
            out.tables[f"tables/clusters_{name}.csv"] = table
            out.tables[f"tables/cluster_labels_{name}.csv"] = {
                "unit": np.arange(len(cl.labels)),
                "cluster": cl.labels,
            }
            out.arrays[f"arrays/emd_{name}.npz"] = {"distances": dist, "labels": cl.labels, "medoids": cl.medoids}
            out.figures[f"figures/receptive_fields_{name}.png"] = F.plot_receptive_field_mosaic(
                fields, cl.labels, n=self.mosaic_units, title=f"{name} receptive fields by EMD cluster"
            )
            out.figures[f"figures/dendrogram_{name}.png"] = F.plot_cluster_dendrogram(
                cl, fields, title=f"{name}: {cl.n_clusters} EMD clusters ({self.linkage} linkage), medoid fields"
            )
            out.figures[f"figures/emd_matrix_{name}.png"] = F.plot_distance_matrix(
                dist, cl, title=f"{name}: EMD between receptive fields ({method})"
            )
        if tables:
            out.figures["figures/structure_vs_function.png"] = F.plot_structure_function(
                tables, stats, subtitle=f"EMD {method}, {self.linkage} linkage"
            )
        return out


def _as_layer(w: Any, i: int) -> Any:
    """One weight matrix (numpy, JAX, PyTorch or anything array-like) as a layer with ``.w`` and zero biases."""
    from dbn_jax.rbm import RBMParams

    if hasattr(w, "detach"):  # a PyTorch tensor (possibly on a GPU, possibly requiring grad)
        w = w.detach().cpu().numpy()
    a = np.asarray(w, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"invalid weights[{i}]: shape {a.shape}; allowed: a non-empty 2-d (n_in, n_out) matrix")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"invalid weights[{i}]: NaN or inf; allowed: finite values")
    return RBMParams(a, np.zeros(a.shape[0]), np.zeros(a.shape[1]))


def analyze_weights(weights: Any, initial: Any = None, callbacks: Any = None) -> AnalysisResult:
    """The end-of-training analysis of any stack of dense weight matrices, from any framework.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, bottom layer first (numpy, JAX or PyTorch arrays, or
            nested lists); a network with ``(out, in)`` matrices (e.g. ``torch.nn.Linear.weight``) passes their
            transposes.
        initial: the same stack before training (optional: enables "initial vs trained").
        callbacks: the analyses to run (default: weight and strength statistics, the thresholded graph, and,
            when the inputs are 28 x 28 images, the EMD clusters of h1 and h2); each gets the end-of-training
            event, and those that declare ``wants_context`` get what the ones before them produced.

    Returns:
        The merged :class:`AnalysisResult` (metrics, figures, tables, arrays, files), as the run logs it.

    Raises:
        ValueError: an empty stack, a matrix that is not 2-d and finite, or consecutive shapes that do not chain.
    """
    from dbn_jax.train import TrainEnd

    layers = tuple(_as_layer(w, i) for i, w in enumerate(weights))
    if not layers:
        raise ValueError("invalid weights: an empty stack; allowed: one or more (n_in, n_out) matrices")
    for i in range(1, len(layers)):
        if layers[i - 1].w.shape[1] != layers[i].w.shape[0]:
            raise ValueError(
                f"invalid weights[{i}]: shape {layers[i].w.shape} does not follow weights[{i - 1}] of shape "
                f"{layers[i - 1].w.shape}; allowed: n_out of each matrix = n_in of the next"
            )
    init = tuple(_as_layer(w, i) for i, w in enumerate(initial)) if initial is not None else ()
    if init and [p.w.shape for p in init] != [p.w.shape for p in layers]:
        raise ValueError("invalid initial: shapes differ from weights; allowed: the same stack before training")
    if callbacks is None:
        callbacks = [WeightStatsCallback(), GraphCallback()]
        if layers[0].w.shape[0] == 28 * 28:
            callbacks.append(ClusterCallback(cluster_layers=[x for x in (1, 2) if x <= len(layers)]))
    event = TrainEnd(layers, init)
    out = AnalysisResult()
    for cb in callbacks:
        result = cb(event, CallbackContext(results=out)) if getattr(cb, "wants_context", False) else cb(event)
        if result is not None:
            out.update(result)
    return out
