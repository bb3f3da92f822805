"""The report pipeline end to end on the paper's own data: a 2-seed smoke sweep over full MNIST, its report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dbn_experiment import compare as C

# The full MNIST IDX files beside the project (../shared/data/mnist, see its README; DBN_MNIST_DIR points
# elsewhere); a checkout without them falls back to the full-size Fashion-MNIST IDX files that CI installs
# (Debian's dataset-fashion-mnist), the same format and sizes.
_CANDIDATES = [
    os.environ.get("DBN_MNIST_DIR"),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
    "/work/shared/data/mnist",
    "/usr/share/datasets/fashion-mnist",
]
MNIST = next(
    (Path(c) for c in _CANDIDATES if c and (Path(c) / "train-images-idx3-ubyte.gz").is_file()),
    Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
)


@pytest.mark.slow
def test_report_pipeline_on_mnist_smoke_sweep(tmp_path, cli):
    assert (MNIST / "train-images-idx3-ubyte.gz").is_file(), f"no IDX data at {MNIST} (set DBN_MNIST_DIR)"
    proc = cli(["-m", "experiment=smoke", "dataset=idx", f"dataset.path={MNIST}", "dataset.n_train=1000",
                "seed=0,1", "analysis.label_null.n_permutations=200", f"hydra.sweep.dir={tmp_path}/sweep"],
               tmp_path, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    report = tmp_path / "report"
    code = C.main(["--experiment", "dbn-complex-networks", "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                   "--out", str(tmp_path / "cmp"), "--report", str(report), "--no-log"])  # fmt: skip
    assert code == 0
    md = (report / "report.md").read_text()
    header = md.split("## Paper vs measured")[0]
    # the header names the data, their digest and sizes, the settings and the commands that made it
    assert f"| data set | idx / {MNIST} |" in header
    digest = next(line for line in header.splitlines() if line.startswith("| content digest"))
    assert len(digest.split("|")[2].strip()) == 16  # one digest: both seeds saw the same images
    assert "| n_train / n_test | 1000 / 10000 |" in header
    assert "| EMD method | pooled |" in header and "| seeds | 0, 1 |" in header
    assert "| linkage, clusters, clustered layers | average / 20 / [1, 2] |" in header
    assert f"dbn-experiment -m experiment=smoke dataset=idx dataset.path={MNIST}" in header
    assert "dbn-compare --experiment dbn-complex-networks" in header
    # verdict rows: measured ones with a verdict and their null beside them; h3 was never clustered
    rows = [line for line in md.splitlines() if line.startswith("| all | (f)")]
    assert len(rows) == 3 and "**not measured**" in rows[2]
    assert all("label permutation" in r for r in rows[:2])
    assert any(v in rows[0] for v in ("**holds**", "**contradicted**", "**inconclusive**"))
    assert "not measured (left out of the counts)" in md
    assert "graph/scope_layer/kept_fraction/w1" in md and "clusters/h1/largest_fraction" in md
