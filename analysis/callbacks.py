"""Analysis callbacks: an :mod:`analysis.events` event in, an :class:`AnalysisResult` out.

:func:`dispatch` runs the callbacks due at an event (:func:`due`) in their declared order and yields what each
produced (the caller logs it); :func:`analyze_weights` runs them once on any stack of weight matrices.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from analysis.events import EpochEnd, TrainEnd


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
        labels: in memory only, for the callbacks after this one (not logged: the tracker ignores it): unit
            labels per layer, e.g. the EMD cluster of every unit of ``h1`` under ``"h1"`` (int array).
        images: keys (``receptive_fields/h1``) to images logged with the event's step (a series per key: the
            MLflow UI's step slider): ``uint8`` arrays ``(h, w)`` or ``(h, w, 3)``, or zero-argument callables
            making one (the MLflow tracker calls them on its writer).
    """

    metrics: dict[str, float] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    files: LazyFiles = field(default_factory=LazyFiles)
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    images: dict[str, Any] = field(default_factory=dict)

    def update(self, other: AnalysisResult) -> AnalysisResult:
        """Merge ``other`` into this result (its entries win) and return this result."""
        self.metrics.update(other.metrics)
        self.figures.update(other.figures)
        self.tables.update(other.tables)
        self.arrays.update(other.arrays)
        self.files.update(other.files)
        self.labels.update(other.labels)
        self.images.update(other.images)
        return self

    def artifacts(self) -> list[tuple[str, Callable[[], bytes] | bytes]]:
        """``(artifact path, bytes or a zero-argument callable making them)`` for every figure (PNG, zlib level 1:
        ~10% larger, 2-4x faster than the default; the figure is cleared once rendered), table (CSV), array set
        (``.npz``) and file, so a writer can make the bytes when it stores them."""
        out: list[tuple[str, Callable[[], bytes] | bytes]] = []
        out += [(k, functools.partial(_png_bytes, v)) for k, v in self.figures.items()]
        out += [(k, functools.partial(csv_bytes, v)) for k, v in self.tables.items()]
        out += [(k, functools.partial(_npz_bytes, v)) for k, v in self.arrays.items()]
        return out + list(dict.items(self.files))  # as logged: a callable stays unmade until needed


def csv_bytes(table: Mapping[str, Any]) -> bytes:
    """A column table ``{name: 1-d array}`` as CSV."""
    cols = {k: np.asarray(v).reshape(-1) for k, v in table.items()}
    if len({len(v) for v in cols.values()}) > 1:
        raise ValueError(f"table columns differ in length: { {k: len(v) for k, v in cols.items()} }")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(cols)
    writer.writerows([x.item() for x in row] for row in zip(*cols.values(), strict=True))
    return out.getvalue().encode()


def _png_bytes(figure: Any) -> bytes:
    buf = io.BytesIO()
    try:
        figure.savefig(buf, format="png", pil_kwargs={"compress_level": 1})
    finally:
        figure.clear()  # free the figure's memory once rendered
    return buf.getvalue()


def _npz_bytes(arrays: Mapping[str, Any]) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return buf.getvalue()


@dataclass
class CallbackContext:
    """What :func:`dispatch` hands to a callback that declares ``wants_context = True`` (``cb(event, context)``).

    Attributes:
        results: everything the callbacks before it produced at this event (merged), e.g. the EMD cluster labels
            in ``results.labels``.
        dataset: the run's data (``x_train``, ``y_train``, ``x_test``, ``y_test``), or ``None``.
        seed: the run's seed.
    """

    results: AnalysisResult
    dataset: Any = None
    seed: int = 0


def _matrices(weights: Any) -> list[np.ndarray]:
    return [np.asarray(w, dtype=np.float64) for w in weights]


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

    every_n_epochs: int = 5
    bins: int = 100
    _at_last_epoch: dict = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        _require(_is_int(self.every_n_epochs) and self.every_n_epochs >= 0, "every_n_epochs", self.every_n_epochs,
                 "an integer >= 0 (0 = at the end only)")  # fmt: skip
        _require(_is_int(self.bins) and self.bins >= 1, "bins", self.bins, "an integer >= 1")

    def __call__(self, event: Any) -> AnalysisResult | None:
        from analysis import distributions as D
        from analysis import figures as F
        from analysis import graph as G

        if isinstance(event, EpochEnd):
            l = event.layer  # noqa: E741 - layer index, as in the paper
            w = np.asarray(event.weights, dtype=np.float64)
            stats = {f"weights/w{l}/{k}": v for k, v in D.distribution_stats(w).items() if k != "n"}
            lower, upper = ("v" if l == 1 else f"h{l - 1}"), f"h{l}"
            for side, layer, x in (("out", lower, w.sum(axis=1)), ("in", upper, w.sum(axis=0))):
                stats.update({f"strength/{layer}/{side}/{k}": v for k, v in D.distribution_stats(x).items()
                              if k != "n"})  # fmt: skip
            if event.epoch == event.n_epochs:
                self._at_last_epoch.update(stats)
            return AnalysisResult(metrics=stats)
        if not isinstance(event, TrainEnd):
            return None
        trained, initial = _matrices(event.weights), _matrices(event.initial)
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


def _require(ok: bool, name: str, value: Any, allowed: str) -> None:
    """Raise ``ValueError("invalid <name>: <value>; allowed: <allowed>")`` unless ``ok`` (the app reports it under
    the config key that set ``name``)."""
    if not ok:
        raise ValueError(f"invalid {name}: {value!r}; allowed: {allowed}")


def _is_int(x: Any) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool)


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
    every_n_epochs: int = 5
    export_graphml: bool = True

    def __post_init__(self) -> None:
        self.threshold = _threshold(self.threshold or {"sign": "positive", "quantile": 0.9})
        _require(_is_int(self.every_n_epochs) and self.every_n_epochs >= 0, "every_n_epochs", self.every_n_epochs,
                 "an integer >= 0 (0 = at the end only)")  # fmt: skip

    def __call__(self, event: Any) -> AnalysisResult | None:
        from analysis import figures as F
        from analysis import graph as G

        if isinstance(event, EpochEnd):
            l = event.layer  # noqa: E741
            w = np.asarray(event.weights, dtype=np.float64)
            (mask,), (theta,) = G.threshold_masks([w], self.threshold)
            n_edges = int(mask.sum())
            return AnalysisResult(metrics={
                f"graph/per_matrix/w{l}/threshold": theta,
                f"graph/per_matrix/w{l}/kept_fraction": n_edges / mask.size,
                f"graph/per_matrix/w{l}/mean_degree": 2.0 * n_edges / sum(mask.shape),
                f"graph/per_matrix/w{l}/assortativity": G.degree_assortativity([mask]),
            })  # fmt: skip
        if not isinstance(event, TrainEnd):
            return None
        weights = _matrices(event.weights)
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
    (``.../perm_mean``, ``/perm_z``, ``/perm_p``), seeded from the run's seed and the layer. The EMD cluster of
    every unit also goes, in memory only, to ``AnalysisResult.labels["h<l>"]`` for the callbacks after it (e.g.
    :class:`~analysis.beyond.BeyondPaperCallback`); it is logged as the table ``tables/cluster_labels_h<l>.csv``.
    ``input_shape``: the image shape ``[height, width]`` of the input layer, row-major (the app sets it from
    ``model.input_shape``); ``None``: no image, nothing to do (``needs_input_shape``: the app leaves it out then).
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
    input_shape: Any = field(default_factory=lambda: [28, 28])
    wants_context: ClassVar[bool] = True
    needs_input_shape: ClassVar[bool] = True

    def __post_init__(self) -> None:
        from analysis import emd as E
        from analysis.clustering import METHODS
        from analysis.structure import SIDES

        self.threshold = _threshold(self.threshold or {"sign": "positive", "quantile": 0.9})
        self.emd = {
            "method": "pooled",
            "metric": "euclidean",
            "n_jobs": None,
            "n_projections": 64,
            **dict(self.emd or {}),
        }
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
        _require(
            _is_int(n_perm) and n_perm >= 0, "label_null.n_permutations", n_perm, "an integer >= 0 (0 = no null)"
        )
        _require(
            _is_int(self.n_clusters) and self.n_clusters >= 2, "n_clusters", self.n_clusters, "an integer >= 2"
        )
        layers_ok = bool(self.cluster_layers) and min(self.cluster_layers) >= 1
        _require(layers_ok, "cluster_layers", self.cluster_layers, "a non-empty list of hidden layers >= 1")
        _require(
            _is_int(self.mosaic_units) and self.mosaic_units >= 1,
            "mosaic_units",
            self.mosaic_units,
            "an integer >= 1",
        )
        e = self.emd
        unknown = sorted(set(e) - {"method", "metric", "n_jobs", "n_projections"})
        _require(
            not unknown, f"emd.{unknown[0] if unknown else ''}", None, "method, metric, n_jobs, n_projections"
        )
        _require(e.get("method", "pooled") in E.METHODS, "emd.method", e.get("method"), " | ".join(E.METHODS))
        _require(e.get("metric", "euclidean") in E.METRICS, "emd.metric", e.get("metric"), " | ".join(E.METRICS))
        n_jobs = e.get("n_jobs")
        jobs_ok = n_jobs is None or (_is_int(n_jobs) and (n_jobs >= 1 or n_jobs == -1))
        _require(jobs_ok, "emd.n_jobs", n_jobs, "null (all cores), -1 or an integer >= 1")
        n_proj = e.get("n_projections", 64)
        _require(_is_int(n_proj) and n_proj >= 1, "emd.n_projections", n_proj, "an integer >= 1")
        shape = self.input_shape
        if shape is not None:
            ok = len(shape) == 2 and all(_is_int(x) and x >= 1 for x in shape)
            _require(ok, "input_shape", shape, "null (no image) or [height, width], integers >= 1")
            self.input_shape = [int(x) for x in shape]
            even = e.get("method", "pooled") != "pooled" or not (shape[0] % 2 or shape[1] % 2)
            _require(even, "input_shape", self.input_shape, "even sides with emd.method=pooled (2x2 pooling); "
                     "for odd sides emd.method=exact or sliced")  # fmt: skip

    def check_network(self, sizes: Sequence[int]) -> None:
        """Check ``cluster_layers``, ``n_clusters`` and ``input_shape`` against the layer sizes (``sizes[0]`` the
        input layer, 0 when unknown)."""
        n_in, shape = int(sizes[0]), self.input_shape
        if shape is None:  # nothing to compute (the app leaves the callback out)
            return
        if n_in and shape[0] * shape[1] != n_in:
            raise ValueError(f"invalid input_shape: {shape!r}; allowed: null (no image) or [height, width] with "
                             f"height * width = {n_in} (the input units)")  # fmt: skip
        n_hidden = len(sizes) - 1
        for layer in self.cluster_layers:
            allowed = f"hidden layers in [1, {n_hidden}] (the network has {n_hidden})"
            _require(layer <= n_hidden, "cluster_layers", self.cluster_layers, allowed)
            allowed = f"an integer in [2, {sizes[layer]}] (the {sizes[layer]} units of clustered layer h{layer})"
            _require(self.n_clusters <= sizes[layer], "n_clusters", self.n_clusters, allowed)

    def __call__(self, event: Any, context: Any = None) -> AnalysisResult | None:
        if not isinstance(event, TrainEnd) or self.input_shape is None:
            return None
        from analysis import clustering as C
        from analysis import emd as E
        from analysis import figures as F
        from analysis import graph as G
        from analysis import receptive_fields as R
        from analysis import structure as S

        seed = int(self.seed if self.seed is not None else getattr(context, "seed", None) or 0)
        weights = _matrices(event.weights)
        masks, _ = G.threshold_masks(weights, self.threshold)
        n_perm = int(self.label_null["n_permutations"])
        method = self.emd.get("method", "pooled")
        shape = (int(self.input_shape[0]), int(self.input_shape[1]))
        out = AnalysisResult()
        tables, stats = {}, {}
        for l in self.cluster_layers:  # noqa: E741
            name = f"h{l}"
            fields = R.receptive_fields(weights, l)
            dist = E.pairwise_emd(fields, shape=shape, **self.emd)
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
            out.labels[name] = np.asarray(cl.labels, dtype=np.int64)
            out.arrays[f"arrays/emd_{name}.npz"] = {"distances": dist, "labels": cl.labels, "medoids": cl.medoids}
            out.figures[f"figures/receptive_fields_{name}.png"] = F.plot_receptive_field_mosaic(
                fields, cl.labels, self.mosaic_units, shape, title=f"{name} receptive fields by EMD cluster"
            )
            out.figures[f"figures/dendrogram_{name}.png"] = F.plot_cluster_dendrogram(
                cl,
                fields,
                shape=shape,
                title=f"{name}: {cl.n_clusters} EMD clusters ({self.linkage} linkage), medoid fields",
            )
            out.figures[f"figures/emd_matrix_{name}.png"] = F.plot_distance_matrix(
                dist, cl, title=f"{name}: EMD between receptive fields ({method})"
            )
        if tables:
            out.figures["figures/structure_vs_function.png"] = F.plot_structure_function(
                tables, stats, subtitle=f"EMD {method}, {self.linkage} linkage"
            )
        return out


# ---------------------------------------------------------------------------------------------------- scheduling


def due(callback: Any, event: Any) -> bool:
    """Whether ``event`` reaches ``callback``.

    An :class:`~analysis.events.EpochEnd` reaches it every ``callback.every_n_epochs`` epochs: when
    ``epoch % every_n_epochs == 0`` (so epoch 0, the initial weights, too) or at the layer's last epoch
    (``epoch == n_epochs``); ``every_n_epochs`` 0 (or absent) means never on epochs. A
    :class:`~analysis.events.LayerEnd` or :class:`~analysis.events.TrainEnd` (or any other event) reaches every
    callback.
    """
    if not isinstance(event, EpochEnd):
        return True
    every = int(getattr(callback, "every_n_epochs", 0) or 0)
    return every > 0 and (event.epoch % every == 0 or event.epoch == event.n_epochs)


def dispatch(
    callbacks: Mapping[str, Callable[..., AnalysisResult | None]],
    event: Any,
    *,
    dataset: Any = None,
    seed: int = 0,
) -> Iterator[tuple[str, AnalysisResult, float]]:
    """Run every callback :func:`due` at ``event``; yield ``(name, result, wall seconds)`` per result.

    Order: the callbacks run in the order of ``callbacks``, stably sorted by their class attribute
    ``order: ClassVar[int]`` (0 when absent): a callback that reads what another produced at the same event
    declares a higher ``order`` than it (e.g. :class:`~analysis.beyond.BeyondPaperCallback`, order 1, reads the
    EMD labels of :class:`ClusterCallback`, order 0), whatever their positions in ``callbacks``.

    A callback with ``wants_context = True`` is called ``cb(event, CallbackContext(results, dataset, seed))``,
    ``results`` being everything the callbacks before it returned at this event (merged); the others
    ``cb(event)``. A callback returning ``None`` yields nothing. The generator merges each result into the
    running ``results`` before yielding it, so the caller may log it and go on.
    """
    ranked = sorted(callbacks.items(), key=lambda item: int(getattr(item[1], "order", 0)))
    so_far = AnalysisResult()
    for name, cb in ranked:
        if not due(cb, event):
            continue
        t0 = time.perf_counter()
        if getattr(cb, "wants_context", False):
            result = cb(event, CallbackContext(so_far, dataset, seed))
        else:
            result = cb(event)
        seconds = time.perf_counter() - t0
        if result is not None:
            so_far.update(result)
            yield name, result, seconds


# -------------------------------------------------------------------------------------------- any weight stack


def _as_matrix(w: Any, i: int) -> np.ndarray:
    """One weight matrix (numpy, JAX, PyTorch or anything array-like) as a finite 2-d float64 numpy array."""
    if hasattr(w, "detach"):  # a PyTorch tensor (possibly on a GPU, possibly requiring grad)
        w = w.detach().cpu().numpy()
    a = np.asarray(w, dtype=np.float64)
    if a.ndim != 2 or 0 in a.shape:
        raise ValueError(f"invalid weights[{i}]: shape {a.shape}; allowed: a non-empty 2-d (n_in, n_out) matrix")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"invalid weights[{i}]: NaN or inf; allowed: finite values")
    return a


def _named(callbacks: Any) -> dict[str, Any]:
    """A mapping as is; a list named by class names (``GraphCallback``, then ``GraphCallback_2``, ...)."""
    if isinstance(callbacks, Mapping):
        return dict(callbacks)
    out: dict[str, Any] = {}
    for cb in callbacks:
        base = name = type(cb).__name__
        n = 1
        while name in out:
            n += 1
            name = f"{base}_{n}"
        out[name] = cb
    return out


def analyze_weights(
    weights: Any, initial: Any = None, callbacks: Any = None, input_shape: Any = (28, 28)
) -> AnalysisResult:
    """The end-of-training analysis of any stack of dense weight matrices, from any framework.

    Args:
        weights: ``weights[l]`` of shape ``(n_l, n_{l+1})``, bottom layer first (numpy, JAX or PyTorch arrays, or
            nested lists); a network with ``(out, in)`` matrices (e.g. ``torch.nn.Linear.weight``) passes their
            transposes.
        initial: the same stack before training (optional: enables "initial vs trained").
        callbacks: the analyses to run, a list or a ``{name: callback}`` mapping (default: weight and strength
            statistics, the thresholded graph, and, when the inputs are ``input_shape`` images, the EMD clusters
            of h1 and h2); each gets one :class:`~analysis.events.TrainEnd` through :func:`dispatch` (so in their
            declared ``order``), and those that declare ``wants_context`` get what the ones before them produced.
        input_shape: ``(height, width)`` of the input layer, for the default callbacks' receptive fields (28 x 28
            MNIST digits by default); ``None``: no image, no EMD clusters.

    Returns:
        The merged :class:`AnalysisResult` (metrics, figures, tables, arrays, files, labels), as the run logs it.

    Raises:
        ValueError: an empty stack, a matrix that is not 2-d and finite, or consecutive shapes that do not chain.
    """
    mats = tuple(_as_matrix(w, i) for i, w in enumerate(weights))
    if not mats:
        raise ValueError("invalid weights: an empty stack; allowed: one or more (n_in, n_out) matrices")
    for i in range(1, len(mats)):
        if mats[i - 1].shape[1] != mats[i].shape[0]:
            raise ValueError(
                f"invalid weights[{i}]: shape {mats[i].shape} does not follow weights[{i - 1}] of shape "
                f"{mats[i - 1].shape}; allowed: n_out of each matrix = n_in of the next"
            )
    init = tuple(_as_matrix(w, i) for i, w in enumerate(initial)) if initial is not None else ()
    if init and [w.shape for w in init] != [w.shape for w in mats]:
        raise ValueError("invalid initial: shapes differ from weights; allowed: the same stack before training")
    if callbacks is None:
        callbacks = [WeightStatsCallback(), GraphCallback()]
        if input_shape is not None and mats[0].shape[0] == input_shape[0] * input_shape[1]:
            layers = [x for x in (1, 2) if x <= len(mats)]
            callbacks.append(ClusterCallback(cluster_layers=layers, input_shape=list(input_shape)))
    out = AnalysisResult()
    for _, result, _ in dispatch(_named(callbacks), TrainEnd(mats, init)):
        out.update(result)
    return out
