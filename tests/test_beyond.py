"""Beyond the paper: array graph measures against networkx, the callback on weight stacks and end to end."""

from __future__ import annotations

import math

import numpy as np
import pytest
from conftest import store_runs
from networkx.algorithms import bipartite

from analysis import graph as G
from analysis import spectra as SP
from analysis.beyond import BeyondPaperCallback, bipartite_clustering_masks, rich_club_masks
from analysis.callbacks import AnalysisResult, CallbackContext
from analysis.events import EpochEnd, LayerEnd, TrainEnd


def _random_masks(rng: np.random.Generator, sizes: list[int], density: float) -> list[np.ndarray]:
    return [rng.random((a, b)) < density for a, b in zip(sizes[:-1], sizes[1:], strict=True)]


def test_rich_club_of_a_literal_graph():
    # v0-h0, v0-h1, v1-h0, v2-h0 ; h0-t0, h1-t0  -> degrees v: 2,1,1  h: 4,2  t: 2
    m1 = np.array([[1, 1], [1, 0], [1, 0]], dtype=bool)
    m2 = np.array([[1], [1]], dtype=bool)
    phi = rich_club_masks([m1, m2])
    # k=0: 6 nodes, 6 edges -> 2*6/30; k=1: v0,h0,h1,t0 (4 nodes), edges v0-h0,v0-h1,h0-t0,h1-t0 -> 8/12
    # k=2: only h0 (1 node) -> stop
    assert phi == pytest.approx({0: 12 / 30, 1: 8 / 12})


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rich_club_matches_networkx(seed):
    masks = _random_masks(np.random.default_rng(seed), [30, 20, 25], 0.2)
    expected = SP.rich_club_coefficients(G.to_networkx([m.astype(float) for m in masks], masks))
    assert rich_club_masks(masks) == pytest.approx(expected)


@pytest.mark.parametrize("seed", [0, 1])
def test_bipartite_clustering_matches_networkx(seed):
    rng = np.random.default_rng(seed)
    mask = rng.random((25, 18)) < 0.15
    mask[3] = False  # an isolated unit (c = 0)
    graph = G.to_networkx([mask.astype(float)], [mask])
    expected = bipartite.average_clustering(graph, mode="dot")
    assert bipartite_clustering_masks(mask) == pytest.approx(expected, rel=1e-12)
    assert SP.bipartite_clustering_per_layer(graph, "v", "h1") == pytest.approx(expected, rel=1e-12)


class _Data:
    def __init__(self, rng: np.random.Generator):
        self.x_train = (rng.random((200, 36)) < 0.3).astype(np.float32)
        self.x_test = rng.random((50, 36)).astype(np.float32)


def _stack(rng: np.random.Generator, sizes: list[int], scale: float) -> tuple[np.ndarray, ...]:
    return tuple(rng.normal(0, scale, (a, b)) for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def test_callback_logs_every_statistic_with_null_z_scores():
    rng = np.random.default_rng(0)
    sizes = [36, 24, 16, 30]
    trained, initial = _stack(rng, sizes, 1.0), _stack(rng, sizes, 0.1)
    context = CallbackContext(results=AnalysisResult(labels={"h1": np.arange(24) % 4}), dataset=_Data(rng), seed=0)
    cb = BeyondPaperCallback(null={"n_samples": 6, "modularity": True})
    assert cb.order == 1 and cb.wants_context  # after the clustering callback (order 0), whose labels it reads
    assert cb(EpochEnd(1, 1, 1, trained[0]), context) is None  # only the end of training
    assert cb(LayerEnd(1), context) is None
    out = cb(TrainEnd(trained, initial), context)
    m = out.metrics
    for key in (
        "communities/thresholded/modularity",
        "communities/abs_w/modularity",
        "communities/h1/nmi",
        "communities/h1/ari",
        "richclub/all/phi",
        "richclub/all/k",
        "kcore/h1/max_core",
        "kcore/v/mean_core",
        "bipartite/v_h1/clustering",
        "spectra/w1/alpha",
        "spectra/w1/alpha_std_err",
        "spectra/w3/initial_alpha",
        "graph/all/assortativity/null_z",
        "graph/all/assortativity/null_z_shuffle",
        "graph/h1/mean_knn/null_z",
        "clusters/h1/out/pearson_k_knn/null_z",
        "clusters/h1/total/pearson_k_knn/null_z",
        "clusters/h1/in/pearson_k_s/null_z_shuffle",
        "communities/thresholded/modularity/null_z",
        "bipartite/v_h1/clustering/null_z",
    ):
        assert key in m and math.isfinite(m[key]), key
    # the rewiring null keeps the degrees: the strength-based Pearson is not tested against it
    assert "clusters/h1/out/pearson_k_s/null_z" not in m
    assert -1 <= m["graph/all/assortativity"] <= 1
    assert "communities/h2/nmi" not in m  # h2 has no labels
    # the model's quality is not network science: no AIS, no fantasies, even with the data at hand
    assert not any(k.startswith("quality/") for k in m)
    assert set(out.figures) == {"figures/singular_values.png", "figures/rich_club.png"}
    again = cb(TrainEnd(trained, initial), context).metrics
    assert again == m  # seeded: same run, same numbers
    # the seed comes from the run (the context) unless given: seed 3 in the context == seed=3 explicitly
    context.seed = 3
    from_run = cb(TrainEnd(trained, initial), context).metrics
    explicit = BeyondPaperCallback(null={"n_samples": 6, "modularity": True}, seed=3)(
        TrainEnd(trained, initial), CallbackContext(results=context.results, dataset=context.dataset, seed=0)
    )
    assert from_run == explicit.metrics
    assert from_run["graph/all/assortativity/null_z"] != m["graph/all/assortativity/null_z"]


def test_null_z_detects_planted_structure():
    """A layer whose strongest weights form a block (assortative by construction) is far from its nulls."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (40, 40))
    w[:10, :10] += 3.0  # the ten most connected units of each side are connected among themselves
    layers = (w,)
    cb = BeyondPaperCallback(
        threshold={"sign": "positive", "quantile": 0.85},
        rich_club_quantile=0.75,  # k* below the planted units' degrees: the rich club is the block
        null={"n_samples": 10, "kinds": ["rewire", "shuffle"]},
        communities={"abs_weights": False},
    )
    m = cb(TrainEnd(layers, ()), CallbackContext(results=AnalysisResult())).metrics
    assert m["graph/all/assortativity/null_z_shuffle"] > 3  # weights shuffled: the block is gone
    assert m["richclub/all/phi/null_z"] > 3 and m["richclub/all/rho"] > 1  # same degrees, rewired: the hubs part


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"null": {"n_samples": 1}}, "null.n_samples"),
        ({"null": {"kinds": ["permute"]}}, "null.kinds"),
        ({"rich_club_quantile": 1.0}, "rich_club_quantile"),
    ],
)
def test_callback_rejects_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BeyondPaperCallback(**kwargs)


@pytest.mark.parametrize("removed", ["ais", "samples"])
def test_callback_has_no_model_quality_options(removed):
    """AIS and the top-RBM fantasies moved to dbn_jax.quality: the network callback no longer takes them."""
    with pytest.raises(TypeError, match=removed):
        BeyondPaperCallback(**{removed: {}})


@pytest.mark.slow  # ~25 s through the CLI; CI runs the slow tests too
def test_analysis_beyond_end_to_end_logs_every_statistic(cli, tmp_path):
    """The app hands the callback the data (AIS) and the EMD clusters of the callbacks before it (NMI / ARI)."""
    from mlflow.tracking import MlflowClient

    proc = cli(
        ["experiment=smoke", "analysis=beyond", "analysis.cluster_layers=[1]", "analysis.null.n_samples=3",
         "analysis.samples.gibbs_steps=20", "analysis.ais.n_betas=50", f"hydra.run.dir={tmp_path}/out"],
        tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    (run,) = store_runs(client.tracking_uri)
    m = run.data.metrics
    for key in ("communities/h1/nmi", "communities/abs_w/modularity", "quality/h1/test_log_likelihood",
                "graph/all/assortativity/null_z", "clusters/h1/out/pearson_k_s/null_z_shuffle",
                "kcore/h3/max_core", "spectra/w2/alpha", "bipartite/v_h1/clustering",
                "richclub/all/rho"):  # fmt: skip
        assert key in m, key
    assert "communities/h2/nmi" not in m  # h2 was not clustered
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {"figures/rich_club.png", "figures/singular_values.png", "figures/top_rbm_samples.png"} <= figures


def _small(**kw) -> BeyondPaperCallback:
    return BeyondPaperCallback(null={"n_samples": 3}, communities={"abs_weights": False}, **kw)


def test_callback_reads_the_labels_from_the_context_only():
    """The EMD labels come from ``context.results.labels``; the logged label table is not read back."""
    rng = np.random.default_rng(2)
    end = TrainEnd(_stack(rng, [36, 24, 16], 1.0))
    labels = np.arange(24) % 3
    with_labels = _small()(end, CallbackContext(AnalysisResult(labels={"h1": labels}))).metrics
    assert "communities/h1/nmi" in with_labels and "clusters/h1/out/pearson_k_knn" in with_labels
    table = {"unit": np.arange(24), "cluster": labels}
    table_only = AnalysisResult(tables={"tables/cluster_labels_h1.csv": table})
    without = _small()(end, CallbackContext(table_only)).metrics
    assert not any(k.startswith(("communities/h1/", "clusters/")) for k in without)
    # no context at all: no labels, seed 0 (the same numbers as an empty context of seed 0)
    assert _small()(end).metrics == without
    assert _small()(end, CallbackContext(AnalysisResult(), seed=0)).metrics == without
    with pytest.raises(ValueError, match=r"labels\['h1'\]"):
        _small()(end, CallbackContext(AnalysisResult(labels={"h1": labels[:10]})))
