"""Figures: each renders, has the expected axes, labels and titles; no pyplot anywhere."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy.cluster.hierarchy import leaves_list
from scipy.spatial.distance import cdist

from analysis import figures
from analysis.clustering import cluster_fields, sample_members
from analysis.structure import cluster_structure, structure_function_stats

REPO = Path(__file__).resolve().parent.parent
OWNED = ["receptive_fields.py", "clustering.py", "structure.py", "figures.py"]


def render(fig: Figure) -> Figure:
    assert isinstance(fig, Figure)
    FigureCanvasAgg(fig)  # attach an Agg canvas (savefig draws on it) without touching any global state
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"
    return fig


def main_axes(fig: Figure):
    """Axes that are not colour bars."""
    return [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]


def legend_texts(ax) -> list[str]:
    legend = ax.get_legend()
    return [] if legend is None else [t.get_text() for t in legend.get_texts()]


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    fields = rng.normal(size=(40, 784))
    fields[:20] += 3.0 * rng.normal(size=784)  # two families of fields
    d = cdist(fields, fields, "cityblock") / 784
    clustering = cluster_fields(d, 5)
    return {"fields": fields, "d": d, "clustering": clustering, "rng": rng}


def test_weight_histograms(data):
    rng = data["rng"]
    initial = {k: rng.normal(scale=0.1, size=s) for k, s in [("w1", (30, 20)), ("w2", (20, 20)), ("w3", (20, 40))]}
    trained = {k: 3 * v for k, v in initial.items()}
    initial["all"] = np.concatenate([v.ravel() for v in initial.values()])
    trained["all"] = np.concatenate([v.ravel() for v in list(trained.values())])
    fig = render(figures.plot_weight_histograms(initial, trained, bins=30, log_y=True))
    axes = main_axes(fig)
    assert [ax.get_title().split(" ")[0] for ax in axes] == ["w1", "w2", "w3", "all"]
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() == "density"
        texts = legend_texts(ax)
        assert "initial (epoch 0)" in texts and "trained" in texts
        assert sum(t.startswith("mean") for t in texts) == 2
        assert ax.get_yscale() == "log"
    assert fig.get_suptitle()


def test_weight_histograms_missing_initial_key_shows_trained_only():
    fig = render(figures.plot_weight_histograms({"w1": np.ones(5)}, {"w1": np.arange(5.0), "w2": np.arange(4.0)}))
    axes = main_axes(fig)
    assert len(axes) == 2
    assert "initial (epoch 0)" not in legend_texts(axes[1]) and "trained" in legend_texts(axes[1])


def test_weight_histograms_validation():
    with pytest.raises(ValueError, match="trained"):
        figures.plot_weight_histograms({"w1": np.ones(3)}, {})
    with pytest.raises(ValueError, match="bins"):
        figures.plot_weight_histograms({"w1": np.ones(3)}, {"w1": np.ones(3)}, bins=0)
    with pytest.raises(ValueError, match=r"initial\['w1'\]"):
        figures.plot_weight_histograms({"w1": np.array([np.nan])}, {"w1": np.ones(3)})


def test_strength_histograms(data):
    rng = data["rng"]
    keys = ["v/out", "h1/in", "h1/out", "h2/in", "h2/out"]
    strengths = {k: rng.gamma(2.0, size=50) for k in keys}
    alone = main_axes(render(figures.plot_strength_histograms(strengths, bins=20)))
    assert [ax.get_title().split(" ")[0] for ax in alone] == keys
    assert all(legend_texts(ax)[0] == "trained" and "initial (epoch 0)" not in legend_texts(ax) for ax in alone)
    assert all(ax.get_xlabel() == "strength s" for ax in alone)
    both = main_axes(render(figures.plot_strength_histograms(strengths, {k: v / 2 for k, v in strengths.items()})))
    assert len(both) == 5 and all("initial (epoch 0)" in legend_texts(ax) for ax in both)


def test_degree_distributions(data):
    rng = data["rng"]
    degrees = {"h1": rng.poisson(4, 300), "h2": rng.poisson(200, 300), "h3": np.zeros(10, dtype=int)}
    fig = render(figures.plot_degree_distributions(degrees))
    axes = main_axes(fig)
    assert len(axes) == 6
    top, bottom = axes[:3], axes[3:]
    assert all(ax.get_xlabel() == "degree k" and ax.get_ylabel() == "units" for ax in top)
    assert all(ax.get_ylabel() == "P(k)" for ax in bottom)
    assert bottom[0].get_xscale() == "log" and bottom[0].get_yscale() == "log"
    assert [ax.get_title().split(":")[0] for ax in bottom] == ["h1", "h2", "h3"]
    assert any("k > 0" in t.get_text() for t in bottom[2].texts)  # all zeros: nothing on the log axes
    # The plotted log-binned density integrates to 1 over k > 0: sum of density x bin width over the plotted
    # (non-empty) bins, the bins' edges taken from _log_bins and the points matched to their centres. h1 has
    # units with k = 0 (Poisson(4)), which must not count in the normalisation.
    assert np.any(degrees["h1"] == 0)
    for ax, k in zip(bottom[:2], (degrees["h1"], degrees["h2"]), strict=True):
        x, y = ax.get_lines()[0].get_data()
        positive = k[k > 0]
        edges, _, centres = figures._log_bins(positive, 20)  # 20: plot_degree_distributions' default log_bins
        plotted = np.histogram(positive, bins=edges)[0] > 0
        np.testing.assert_allclose(x, centres[plotted])
        assert abs(np.sum(y * np.diff(edges)[plotted]) - 1.0) < 1e-9


def test_degree_distributions_validation():
    with pytest.raises(ValueError, match="negative"):
        figures.plot_degree_distributions({"h1": np.array([-1, 2])})
    with pytest.raises(ValueError, match="degrees"):
        figures.plot_degree_distributions({})


def test_log_bins_integer_density_normalised():
    # Known answers, by hand: k = 1..4 in 2 bins: logspace(0, log10(5), 3) = 1, 2.24, 5 -> edges 1, 2, 5; bins
    # [1, 2) and [2, 5) hold 1 and 3 integers; centres sqrt(1 * 1), sqrt(2 * 4).
    edges, widths, centres = figures._log_bins(np.array([1.0, 2.0, 3.0, 4.0]), 2)
    np.testing.assert_array_equal(edges, [1, 2, 5])
    np.testing.assert_array_equal(widths, [1, 3])
    np.testing.assert_allclose(centres, [1, np.sqrt(8)])
    # 1..10 in 10 bins: 11**(i / 10) floors to 1, 1, 1, 2, 2, 3, 4, 5, 6, 8, 11; the repeated edges merge.
    edges, widths, centres = figures._log_bins(np.array([1.0, 1.0, 2.0, 10.0]), 10)
    np.testing.assert_array_equal(edges, [1, 2, 3, 4, 5, 6, 8, 11])
    np.testing.assert_array_equal(widths, [1, 1, 1, 1, 1, 2, 3])
    np.testing.assert_allclose(centres, [1, 2, 3, 4, 5, np.sqrt(6 * 7), np.sqrt(8 * 10)])

    # The density count / (n * width) that plot_degree_distributions draws integrates to 1 over the integers: the
    # sum of P(j) over every integer j of the bins and of the data, P(j) the density of j's bin (np.histogram's
    # rule, the one that counts the data: [e_i, e_i+1), the last bin closed). It holds only if each bin's width
    # is the number of integers it takes, the largest value included.
    k = np.random.default_rng(1).integers(1, 500, 2000).astype(float)
    edges, widths, centres = figures._log_bins(k, 15)
    counts, _ = np.histogram(k, bins=edges)
    assert counts.sum() == k.size  # every value falls in a bin
    density = counts / (k.size * widths)
    integers = np.arange(min(edges[0], k.min()), max(edges[-1] - 1, k.max()) + 1)
    integers_per_bin, _ = np.histogram(integers, bins=edges)
    assert integers_per_bin.sum() == integers.size
    assert abs(np.sum(density * integers_per_bin) - 1.0) < 1e-9


def test_receptive_field_mosaic_plain(data):
    fig = render(figures.plot_receptive_field_mosaic(data["fields"], n=10, title="h1 fields"))
    axes = main_axes(fig)
    assert len(axes) == 1 and len(fig.axes) == 2  # mosaic + colour bar
    ax = axes[0]
    assert ax.get_title() == "h1 fields" and ax.get_xlabel().startswith("10 of 40")
    image = ax.images[0]
    assert image.get_clim() == (-1.0, 1.0) and image.get_cmap().name.startswith("RdBu_r")
    mosaic = np.ma.filled(image.get_array(), np.nan)
    assert mosaic.shape == (3 * 29 - 1, 4 * 29 - 1)  # 10 fields on a 4-wide grid, 1-pixel gaps
    # each field scaled by its own max |w|: every tile reaches +-1
    first = mosaic[:28, :28]
    assert np.nanmax(np.abs(first)) == pytest.approx(1.0)
    assert np.count_nonzero(~np.isnan(mosaic)) == 10 * 784


def test_receptive_field_mosaic_grouped_by_cluster(data):
    c = data["clustering"]
    fig = render(figures.plot_receptive_field_mosaic(data["fields"], c.labels, n=20))
    ax = main_axes(fig)[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks == [f"c{i} (n={c.sizes[i]})" for i in range(c.n_clusters)]
    assert ax.get_ylabel() == "cluster"
    mosaic = np.ma.filled(ax.images[0].get_array(), np.nan)
    per = min(20 // c.n_clusters, int(c.sizes.max()))
    shown = sum(min(per, s) for s in c.sizes)
    assert np.count_nonzero(~np.isnan(mosaic)) == shown * 784


def test_receptive_field_mosaic_of_a_sample_labels_full_cluster_sizes(data):
    c = data["clustering"]
    idx = np.concatenate(sample_members(c, k=3))
    fig = render(figures.plot_receptive_field_mosaic(data["fields"][idx], c.labels[idx], sizes=c.sizes))
    ticks = [t.get_text() for t in main_axes(fig)[0].get_yticklabels()]
    assert ticks == [f"c{i} (n={c.sizes[i]})" for i in range(c.n_clusters)]
    with pytest.raises(ValueError, match="sizes"):
        figures.plot_receptive_field_mosaic(data["fields"][idx], c.labels[idx], sizes=c.sizes[:2])


def test_receptive_field_mosaic_validation(data):
    with pytest.raises(ValueError, match="pixels"):
        figures.plot_receptive_field_mosaic(np.zeros((4, 10)))
    with pytest.raises(ValueError, match="labels"):
        figures.plot_receptive_field_mosaic(data["fields"], np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="n"):
        figures.plot_receptive_field_mosaic(data["fields"], n=0)


def test_cluster_dendrogram(data):
    c = data["clustering"]
    fig = render(figures.plot_cluster_dendrogram(c, data["fields"], title="h1 clusters"))
    image_axes = [ax for ax in fig.axes if ax.images]
    tree_axes = [ax for ax in fig.axes if not ax.images]
    assert len(image_axes) == c.n_clusters and len(tree_axes) == 1
    tree = tree_axes[0]
    assert tree.get_title() == "h1 clusters" and tree.get_ylabel() and tree.get_xlabel()
    labels = [t.get_text() for t in tree.get_xticklabels()]
    order = leaves_list(c.cluster_linkage)
    assert labels == [f"c{i} (n={c.sizes[i]})" for i in order]
    # medoid images under the leaves, left to right in leaf order
    image_axes.sort(key=lambda ax: ax.get_position().x0)
    assert [ax.get_title() for ax in image_axes] == [f"c{i}" for i in order]
    for ax, cluster in zip(image_axes, order, strict=True):
        np.testing.assert_array_equal(ax.images[0].get_array(), data["fields"][c.medoids[cluster]].reshape(28, 28))
        lo, hi = ax.images[0].get_clim()
        assert lo == -hi
    # each image centred under its leaf
    x_leaf = tree.transData.transform([(5 + 10 * i, 0) for i in range(c.n_clusters)])[:, 0]
    x_image = [ax.get_window_extent().x0 + ax.get_window_extent().width / 2 for ax in image_axes]
    np.testing.assert_allclose(x_image, x_leaf, atol=2.0)


def test_cluster_dendrogram_single_cluster():
    d = np.ones((4, 4)) - np.eye(4)
    c = cluster_fields(d, 2)
    fig = render(figures.plot_cluster_dendrogram(c, np.arange(4 * 9.0).reshape(4, 9), shape=(3, 3)))
    assert sum(bool(ax.images) for ax in fig.axes) == 1


def test_cluster_dendrogram_rejects_mismatched_fields(data):
    with pytest.raises(ValueError, match="one per clustered unit"):
        figures.plot_cluster_dendrogram(data["clustering"], data["fields"][:5])


def test_structure_function(data):
    rng = data["rng"]
    tables, stats = {}, {}
    for layer, n in [("h1", 60), ("h2", 45)]:
        labels = np.arange(n) % 6
        knn = rng.normal(10, 2, n)
        knn[labels == 5] = np.nan  # an all-isolated cluster
        tables[layer] = cluster_structure(labels, rng.integers(0, 30, n), rng.gamma(2.0, size=n), knn)
        stats[layer] = structure_function_stats(tables[layer])
    fig = render(figures.plot_structure_function(tables, {"h1": stats["h1"]}))  # h2 stats computed inside
    axes = main_axes(fig)
    assert len(axes) == 6
    for ax, layer in zip(axes, ["h1"] * 3 + ["h2"] * 3, strict=True):
        assert ax.get_title().startswith(f"{layer}: r = ")
        assert ax.get_xlabel() and ax.get_ylabel()
    assert (
        axes[1].get_title() == f"h1: r = {stats['h1']['pearson_k_s']:.2f}, p = {stats['h1']['pearson_k_s_p']:.2g}"
    )
    assert (
        axes[4].get_title() == f"h2: r = {stats['h2']['pearson_k_s']:.2f}, p = {stats['h2']['pearson_k_s_p']:.2g}"
    )
    assert "degree" in axes[0].get_xlabel() and "neighbour" in axes[0].get_ylabel()
    sizes = axes[1].collections[0].get_sizes()
    np.testing.assert_allclose(sizes / sizes.max(), tables["h1"]["size"] / tables["h1"]["size"].max())


def test_structure_function_nan_stats_say_na():
    table = cluster_structure(np.array([0, 0, 1]), np.ones(3), np.ones(3), np.ones(3))
    fig = render(figures.plot_structure_function({"h3": table}))
    assert all(ax.get_title() == "h3: r = n/a" for ax in main_axes(fig))
    with pytest.raises(ValueError, match="mean_knn"):
        figures.plot_structure_function({"h1": {k: v for k, v in table.items() if k != "mean_knn"}})
    with pytest.raises(ValueError, match="tables"):
        figures.plot_structure_function({})


def test_distance_matrix(data):
    c, d = data["clustering"], data["d"]
    fig = render(figures.plot_distance_matrix(d, c, title="h1 EMD"))
    ax = main_axes(fig)[0]
    assert len(fig.axes) == 2 and ax.get_title() == "h1 EMD" and ax.get_xlabel() and ax.get_ylabel()
    order = leaves_list(c.linkage)
    np.testing.assert_allclose(ax.images[0].get_array(), d[np.ix_(order, order)])
    assert len(ax.get_lines()) == 2 * (c.n_clusters - 1)  # one h + one v line per cluster boundary
    plain = main_axes(render(figures.plot_distance_matrix(d)))[0]
    assert not plain.get_lines()
    with pytest.raises(ValueError, match="clustering"):
        figures.plot_distance_matrix(d[:10, :10], c)


@pytest.mark.parametrize("name", OWNED)
def test_no_pyplot_in_owned_sources(name):
    assert "pyplot" not in (REPO / "analysis" / name).read_text()


def test_drawing_every_figure_never_imports_pyplot():
    code = """
import sys
import numpy as np
from analysis import figures
from analysis.clustering import cluster_fields
from analysis.structure import cluster_structure
rng = np.random.default_rng(0)
f = rng.normal(size=(12, 16))
d = np.abs(f[:, None, :] - f[None, :, :]).sum(-1)
c = cluster_fields(d, 3)
t = cluster_structure(c.labels, rng.random(12), rng.random(12), rng.random(12))
figs = [
    figures.plot_weight_histograms({"w": f}, {"w": f}),
    figures.plot_strength_histograms({"h1/in": f[0]}),
    figures.plot_degree_distributions({"h1": rng.integers(0, 9, 12)}),
    figures.plot_receptive_field_mosaic(f, c.labels, shape=(4, 4)),
    figures.plot_cluster_dendrogram(c, f, shape=(4, 4)),
    figures.plot_structure_function({"h1": t}),
    figures.plot_distance_matrix(d, c),
]
import io
for fig in figs:
    fig.savefig(io.BytesIO(), format="png", dpi=20)
assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
"""
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
