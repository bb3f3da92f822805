"""Beyond the paper: array graph measures against networkx, top-RBM fantasies, the callback end to end."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from networkx.algorithms import bipartite

from analysis import graph as G
from analysis import spectra as SP
from analysis.beyond import BeyondPaperCallback, bipartite_clustering_masks, rich_club_masks, top_rbm_samples
from analysis.callbacks import AnalysisResult, CallbackContext
from dbn_jax.rbm import RBMParams
from dbn_jax.train import TrainEnd


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


def test_top_rbm_samples_are_pixel_probabilities_and_deterministic():
    rng = np.random.default_rng(0)
    layers = [
        RBMParams(*(np.asarray(a, np.float32) for a in (rng.normal(0, 0.5, (16, 8)), np.zeros(16), np.zeros(8)))),
        RBMParams(*(np.asarray(a, np.float32) for a in (rng.normal(0, 0.5, (8, 6)), np.zeros(8), np.zeros(6)))),
    ]
    a = top_rbm_samples(jax.random.key(3), layers, n=5, gibbs_steps=20)
    b = top_rbm_samples(jax.random.key(3), layers, n=5, gibbs_steps=20)
    assert a.shape == (5, 16) and np.all((a > 0) & (a < 1))
    np.testing.assert_array_equal(a, b)


class _Data:
    def __init__(self, rng: np.random.Generator):
        self.x_train = (rng.random((200, 36)) < 0.3).astype(np.float32)
        self.x_test = rng.random((50, 36)).astype(np.float32)  # gray levels: binarised for the likelihood


def _stack(rng: np.random.Generator, sizes: list[int], scale: float) -> tuple[RBMParams, ...]:
    return tuple(
        RBMParams(
            np.asarray(rng.normal(0, scale, (a, b)), np.float32), np.zeros(a, np.float32), np.zeros(b, np.float32)
        )
        for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    )


def test_callback_logs_every_statistic_with_null_z_scores():
    rng = np.random.default_rng(0)
    sizes = [36, 24, 16, 30]
    trained, initial = _stack(rng, sizes, 1.0), _stack(rng, sizes, 0.1)
    labels = {"cluster": np.arange(24) % 4}
    context = CallbackContext(
        results=AnalysisResult(tables={"tables/cluster_labels_h1.csv": labels}), dataset=_Data(rng), seed=0
    )
    cb = BeyondPaperCallback(
        null={"n_samples": 6, "modularity": True},
        ais={"n_chains": 20, "n_betas": 200},
        samples={"n": 4, "gibbs_steps": 10},
    )
    assert cb(type("EpochEnd", (), {})(), context) is None  # only the end of training
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
        "quality/h1/log_z",
        "quality/h1/log_z_std_err",
        "quality/h1/test_log_likelihood",
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
    assert -1 <= m["graph/all/assortativity"] <= 1 and m["quality/h1/test_log_likelihood"] < 0
    figures = {"figures/singular_values.png", "figures/rich_club.png", "figures/top_rbm_samples.png"}
    assert set(out.figures) == figures
    again = cb(TrainEnd(trained, initial), context).metrics
    assert again == m  # seeded: same run, same numbers
    # the seed comes from the run (the context) unless given: seed 3 in the context == seed=3 explicitly
    context.seed = 3
    from_run = cb(TrainEnd(trained, initial), context).metrics
    explicit = BeyondPaperCallback(
        null={"n_samples": 6, "modularity": True},
        ais={"n_chains": 20, "n_betas": 200},
        samples={"n": 4, "gibbs_steps": 10},
        seed=3,
    )(TrainEnd(trained, initial), CallbackContext(results=context.results, dataset=context.dataset, seed=0))
    assert from_run == explicit.metrics
    assert from_run["graph/all/assortativity/null_z"] != m["graph/all/assortativity/null_z"]


def test_null_z_detects_planted_structure():
    """A layer whose strongest weights form a block (assortative by construction) is far from its nulls."""
    rng = np.random.default_rng(1)
    w = rng.normal(0, 0.1, (40, 40))
    w[:10, :10] += 3.0  # the ten most connected units of each side are connected among themselves
    layers = (RBMParams(np.asarray(w, np.float32), np.zeros(40, np.float32), np.zeros(40, np.float32)),)
    cb = BeyondPaperCallback(
        threshold={"sign": "positive", "quantile": 0.85},
        rich_club_quantile=0.75,  # k* below the planted units' degrees: the rich club is the block
        null={"n_samples": 10, "kinds": ["rewire", "shuffle"]},
        communities={"abs_weights": False},
        ais={"enabled": False},
        samples={"n": 0},
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
    (run,) = client.search_runs([e.experiment_id for e in client.search_experiments()])
    m = run.data.metrics
    for key in ("communities/h1/nmi", "communities/abs_w/modularity", "quality/h1/test_log_likelihood",
                "graph/all/assortativity/null_z", "clusters/h1/out/pearson_k_s/null_z_shuffle",
                "kcore/h3/max_core", "spectra/w2/alpha", "bipartite/v_h1/clustering",
                "richclub/all/rho"):  # fmt: skip
        assert key in m, key
    assert "communities/h2/nmi" not in m  # h2 was not clustered
    figures = {a.path for a in client.list_artifacts(run.info.run_id, "figures")}
    assert {"figures/rich_club.png", "figures/singular_values.png", "figures/top_rbm_samples.png"} <= figures


def test_no_rbm_quality_for_the_supervised_baseline():
    """An MLP's layers are no RBMs: no AIS likelihood, no fantasies (the network statistics stay)."""
    rng = np.random.default_rng(2)
    layers = _stack(rng, [36, 24, 16], 1.0)
    cb = BeyondPaperCallback(null={"n_samples": 3}, communities={"abs_weights": False}, samples={"n": 4})
    out = cb(TrainEnd(layers, ()), CallbackContext(AnalysisResult(), _Data(rng), 0, "mlp"))
    assert "graph/all/assortativity/null_z" in out.metrics and "spectra/w1/alpha" in out.metrics
    assert not any(k.startswith("quality/") for k in out.metrics)
    assert "figures/top_rbm_samples.png" not in out.figures
