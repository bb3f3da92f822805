"""``dbn-compare`` on a fake sweep built directly in a temporary SQLite MLflow store."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient
from scipy import stats

from analysis import compare as C

EXPERIMENT = "fake-sweep"
T2 = float(stats.t.ppf(0.975, 2))  # n = 3 runs per group


def _ci(sd: float, n: int = 3) -> float:
    return float(stats.t.ppf(0.975, n - 1)) * sd / math.sqrt(n)


# Final metric values per group (cd_steps) and seed index. Means / sds are easy by hand:
# readout/h3/accuracy, cd 1: 1, 2, 3 -> mean 2, sd 1; cd 3: 4, 6, 8 -> mean 6, sd 2.
FINALS = {
    "1": [
        {"readout/h3/accuracy": 1.0, "weights/w1/mean_shift": -0.3, "strength/v/out/frac_negative": 0.95},
        {"readout/h3/accuracy": 2.0, "weights/w1/mean_shift": -0.25, "strength/v/out/frac_negative": 0.96},
        {"readout/h3/accuracy": 3.0, "weights/w1/mean_shift": -0.2, "strength/v/out/frac_negative": 0.97},
    ],
    "3": [
        {"readout/h3/accuracy": 4.0, "weights/w1/mean_shift": 0.3, "strength/v/out/frac_negative": 0.5},
        {"readout/h3/accuracy": 6.0, "weights/w1/mean_shift": 0.35, "strength/v/out/frac_negative": 0.6},
        {"readout/h3/accuracy": 8.0, "weights/w1/mean_shift": 0.4, "strength/v/out/frac_negative": 0.7},
    ],
}
COMMON = {
    "clusters/h1/pearson_k_s": 0.5,
    "clusters/h1/pearson_k_s_p": 0.01,
    "train/h9/other": 7.0,  # not a headline metric
}


def _write_csv(path: Path, header: list[str], rows: list[list[float]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> dict:
    """A parent run + 6 FINISHED children (cd_steps 1|3 x seeds 0..2), one FAILED child, one unrelated run."""
    tmp = tmp_path_factory.mktemp("store")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT, artifact_location=(tmp / "artifacts").as_uri())
    parent = client.create_run(exp, run_name="sweep", tags={"role": "sweep parent"}).info.run_id
    children = {}
    for cd, runs in FINALS.items():
        for seed, finals in enumerate(runs):
            run = client.create_run(exp, run_name=f"cd{cd}-s{seed}", tags={"mlflow.parentRunId": parent})
            rid = run.info.run_id
            params = [Param("seed", str(seed)), Param("train.cd_steps", cd), Param("model.hidden", "[20, 20, 20]")]
            metrics = [Metric(k, v, 0, 5) for k, v in (finals | COMMON).items()]
            for layer in (1, 2, 3):
                for step in range(1, 4):
                    # recon error decays with the epoch; cd_steps 3 lower
                    value = (1.0 / step) / (int(cd)) + 0.01 * seed
                    metrics.append(Metric(f"train/h{layer}/recon_error", value, 0, step))
            client.log_batch(rid, metrics=metrics, params=params)
            d = tmp / rid
            d.mkdir()
            _write_csv(d / "strength_v.csv", ["unit", "out", "total"], [[i, -i - seed, -i] for i in range(10)])
            if not (cd == "3" and seed == 2):  # one run without the units table: skipped gracefully
                _write_csv(
                    d / "units_h1.csv",
                    ["unit", "degree", "knn", "strength_out", "strength_in", "strength_total"],
                    [[i, i % 4 + int(cd), 1, 0, 0, 0] for i in range(8)],
                )
                client.log_artifact(rid, str(d / "units_h1.csv"), "tables")
            client.log_artifact(rid, str(d / "strength_v.csv"), "tables")
            client.set_terminated(rid, "FINISHED")
            children[(cd, seed)] = rid
    failed = client.create_run(exp, run_name="failed", tags={"mlflow.parentRunId": parent}).info.run_id
    client.log_batch(failed, params=[Param("seed", "9"), Param("train.cd_steps", "7")])
    client.set_terminated(failed, "FAILED")
    client.set_terminated(parent, "FINISHED")
    parent_before = client.get_run(parent).info
    return {
        "uri": uri,
        "tmp": tmp,
        "client": client,
        "exp": exp,
        "parent": parent,
        "children": children,
        "parent_status": parent_before.status,
        "parent_end": parent_before.end_time,
    }


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def result(store, tmp_path_factory) -> dict:
    """One default ``main`` call (logs to the parent)."""
    out = tmp_path_factory.mktemp("out")
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = C.main(["--experiment", EXPERIMENT, "--tracking-uri", store["uri"], "--out", str(out)])
    return {"code": code, "out": out, "stdout": stdout.getvalue(), "stderr": stderr.getvalue()}


def test_exit_code_and_stdout_table(result) -> None:
    assert result["code"] == 0, result["stderr"]
    text = result["stdout"]
    header = next(line for line in text.splitlines() if line.startswith("| metric"))
    assert "train.cd_steps=1 mean" in header and "train.cd_steps=3 mean" in header
    # grouping shows only the varying param: not seed, not the constant model.hidden
    assert "seed=" not in text and "model.hidden" not in text
    row = next(line for line in text.splitlines() if line.startswith("| `readout/h3/accuracy`"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1:5] == ["2", "1", f"{_ci(1.0):.4g}", "3"]
    assert cells[5:9] == ["6", "2", f"{_ci(2.0):.4g}", "3"]
    # headline filter: pearson shown, its p-value and non-headline metrics not (without --all-metrics)
    assert "`clusters/h1/pearson_k_s`" in text
    assert "`clusters/h1/pearson_k_s_p`" not in text and "`train/h9/other`" not in text
    assert "Paper vs measured" in text


def test_summary_csv(result) -> None:
    rows = _read(result["out"] / "summary.csv")
    assert set(rows[0]) == {"group", "metric", "mean", "sd", "ci95", "n"}
    by = {(r["group"], r["metric"]): r for r in rows}
    r = by[("train.cd_steps=1", "readout/h3/accuracy")]
    assert float(r["mean"]) == pytest.approx(2.0)
    assert float(r["sd"]) == pytest.approx(1.0)
    assert float(r["ci95"]) == pytest.approx(T2 / math.sqrt(3))
    assert r["n"] == "3"
    r = by[("train.cd_steps=3", "readout/h3/accuracy")]
    assert (float(r["mean"]), float(r["sd"])) == pytest.approx((6.0, 2.0))
    assert float(r["ci95"]) == pytest.approx(T2 * 2 / math.sqrt(3))
    # all metrics are in the CSV, including non-headline ones and the final recon error (step 3)
    assert ("train.cd_steps=1", "train/h9/other") in by
    assert ("train.cd_steps=1", "clusters/h1/pearson_k_s_p") in by
    r = by[("train.cd_steps=3", "train/h1/recon_error")]
    assert float(r["mean"]) == pytest.approx((1 / 3) / 3 + 0.01)
    # identical values: sd 0, ci 0
    assert float(by[("train.cd_steps=1", "train/h9/other")]["sd"]) == 0.0
    assert {r["group"] for r in rows} == {"train.cd_steps=1", "train.cd_steps=3"}  # FAILED run left out


def test_paper_claims(result) -> None:
    rows = _read(result["out"] / "paper_claims.csv")
    by = {(r["group"], r["metric"]): r for r in rows}
    a1 = by[("train.cd_steps=1", "weights/w1/mean_shift")]
    assert a1["verdict"] == "holds" and float(a1["mean"]) == pytest.approx(-0.25)
    assert by[("train.cd_steps=3", "weights/w1/mean_shift")]["verdict"] == "does not hold"
    assert by[("train.cd_steps=1", "strength/v/out/frac_negative")]["verdict"] == "holds"
    assert by[("train.cd_steps=3", "strength/v/out/frac_negative")]["verdict"] == "does not hold"
    # missing metric -> inconclusive, n 0
    w3 = by[("train.cd_steps=1", "weights/w3/mean_shift")]
    assert (w3["verdict"], w3["n"]) == ("inconclusive", "0")
    # constant r = 0.5 -> sd 0 -> CI inside (-0.95, 0.95): not proportional
    f1 = by[("train.cd_steps=1", "clusters/h1/pearson_k_s")]
    assert (f1["verdict"], f1["paper"]) == ("holds", "0.56")
    md = (result["out"] / "summary.md").read_text()
    assert "Paper vs measured" in md and "**does not hold**" in md
    assert "`train/h9/other`" in md  # summary.md has every metric


def test_figures_written_and_logged_to_parent(result, store) -> None:
    names = ["learning_curves.png", "pearson_per_layer.png", "histograms.png"]
    for name in names:
        data = (result["out"] / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    client = store["client"]
    logged = {Path(f.path).name for f in client.list_artifacts(store["parent"], "comparison")}
    assert logged >= {"summary.csv", "summary.md", "paper_claims.csv", *names}
    info = client.get_run(store["parent"]).info
    assert info.status == store["parent_status"] == "FINISHED"
    assert info.end_time == store["parent_end"]
    # no extra comparison run was created
    runs = client.search_runs([store["exp"]], "tags.role = 'comparison'")
    assert runs == []


def _main(capsys, store, *args: str) -> tuple[int, str, str]:
    code = C.main(["--experiment", EXPERIMENT, "--tracking-uri", store["uri"], *args])
    cap = capsys.readouterr()
    return code, cap.out, cap.err


def test_parent_and_filter_and_group_by(capsys, store, tmp_path) -> None:
    code, out, err = _main(capsys, store, "--parent", store["parent"], "--out", str(tmp_path / "a"), "--no-log")
    assert code == 0, err
    assert "6 FINISHED runs in 2 group(s)" in out
    code, out, err = _main(
        capsys, store, "--filter", "params.`train.cd_steps` = '3'", "--out", str(tmp_path / "b"), "--no-log"
    )
    assert code == 0, err
    assert "3 FINISHED runs in 1 group(s)" in out
    rows = _read(tmp_path / "b" / "summary.csv")
    acc = next(r for r in rows if r["metric"] == "readout/h3/accuracy")
    assert (acc["group"], float(acc["mean"])) == ("all", 6.0)
    code, out, err = _main(capsys, store, "--group-by", "seed", "--out", str(tmp_path / "c"), "--no-log")
    assert code == 0, err
    rows = _read(tmp_path / "c" / "summary.csv")
    acc = {r["group"]: float(r["mean"]) for r in rows if r["metric"] == "readout/h3/accuracy"}
    assert acc == {"seed=0": 2.5, "seed=1": 4.0, "seed=2": 5.5}
    assert all(r["n"] == "2" for r in rows if r["metric"] == "readout/h3/accuracy")
    code, out, _ = _main(capsys, store, "--all-metrics", "--out", str(tmp_path / "d"), "--no-log")
    assert code == 0 and "`train/h9/other`" in out


def test_unknown_parent_or_experiment_or_bad_filter_exit_2(capsys, store, tmp_path) -> None:
    code = C.main(["--experiment", "nope", "--tracking-uri", store["uri"], "--out", str(tmp_path)])
    cap = capsys.readouterr()
    assert code == 2 and cap.out == ""
    assert len(cap.err.strip().splitlines()) == 1 and "unknown experiment 'nope'" in cap.err
    code, _, err = _main(capsys, store, "--parent", "0" * 32, "--out", str(tmp_path), "--no-log")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "no FINISHED" in err
    code, _, err = _main(capsys, store, "--filter", "this is not a filter", "--out", str(tmp_path), "--no-log")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    missing = tmp_path / "none" / "mlflow.db"
    code = C.main(["--experiment", EXPERIMENT, "--tracking-uri", f"sqlite:///{missing}", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "no MLflow store" in err and not missing.exists()


def test_comparison_run_when_no_common_parent(tmp_path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("singles", artifact_location=(tmp_path / "art").as_uri())
    for seed in range(2):
        rid = client.create_run(exp, run_name=f"s{seed}").info.run_id
        client.log_batch(
            rid, metrics=[Metric("readout/h3/accuracy", 0.5 + seed, 0, 0)], params=[Param("seed", str(seed))]
        )
        client.set_terminated(rid, "FINISHED")
    parent = client.create_run(exp, run_name="p", tags={"role": "sweep parent"}).info.run_id
    client.set_terminated(parent, "FINISHED")
    code = C.main(["--experiment", "singles", "--tracking-uri", uri, "--out", str(tmp_path / "o")])
    cap = capsys.readouterr()
    assert code == 0, cap.err
    assert "2 FINISHED runs in 1 group(s)" in cap.out  # the sweep parent is not compared
    runs = client.search_runs([exp], "tags.role = 'comparison'")
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    names = {Path(f.path).name for f in client.list_artifacts(runs[0].info.run_id, "comparison")}
    assert "summary.csv" in names and "histograms.png" in names  # no artifacts: figure notes, no crash
    # the figure still exists even though runs have no table artifacts / histories
    assert (tmp_path / "o" / "histograms.png").stat().st_size > 1000


def test_env_tracking_uri(tmp_path, capsys, monkeypatch, store) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store["uri"])
    code = C.main(["--experiment", EXPERIMENT, "--out", str(tmp_path), "--no-log"])
    assert code == 0, capsys.readouterr().err


# ------------------------------------------------------------------------------------------------- pure functions


def test_summarize() -> None:
    s = C.summarize([1.0, 2.0, 3.0])
    assert (s.mean, s.sd, s.n) == (2.0, 1.0, 3)
    assert s.ci95 == pytest.approx(T2 / math.sqrt(3))
    one = C.summarize([4.0, float("nan")])
    assert one.mean == 4.0 and one.n == 1 and math.isnan(one.sd) and math.isnan(one.ci95)
    assert C.summarize([]).n == 0


@pytest.mark.parametrize(
    ("estimate", "half_width", "low", "high", "expected"),
    [
        (-0.2, 0.1, -math.inf, 0.0, "holds"),  # CI [-0.3, -0.1] < 0
        (0.2, 0.1, -math.inf, 0.0, "does not hold"),
        (-0.05, 0.1, -math.inf, 0.0, "inconclusive"),  # spans 0
        (0.95, 0.02, 0.9, math.inf, "holds"),
        (0.5, 0.1, 0.9, math.inf, "does not hold"),
        (10.0, 2.0, 5.0, 20.0, "holds"),
        (19.0, 2.0, 5.0, 20.0, "inconclusive"),
        (30.0, 2.0, 5.0, 20.0, "does not hold"),
        (2.0, 1.0, 5.0, 20.0, "does not hold"),
        (0.99, 0.01, -0.95, 0.95, "does not hold"),
        (-1.0, 0.2, -0.95, 0.95, "inconclusive"),
        (1.0, float("nan"), -math.inf, 0.0, "inconclusive"),  # n < 2
    ],
)
def test_verdict_interval(estimate, half_width, low, high, expected) -> None:
    assert C.verdict_interval(estimate, half_width, low, high) == expected


def test_verdict_includes_and_combine() -> None:
    assert C.verdict_includes(0.1, 0.2) == "holds"
    assert C.verdict_includes(-0.5, 0.2) == "does not hold"
    assert C.verdict_includes(0.1, float("nan")) == "inconclusive"
    assert C.combine_verdicts(["holds", "holds"]) == "holds"
    assert C.combine_verdicts(["holds", "inconclusive"]) == "inconclusive"
    assert C.combine_verdicts(["inconclusive", "does not hold"]) == "does not hold"
    assert C.combine_verdicts([]) == "inconclusive"


def test_group_runs_and_headline() -> None:
    params = [
        {"seed": "0", "a": "1", "b": "x"},
        {"seed": "1", "a": "2", "b": "x"},
    ]
    labels, keys = C.group_runs(params)
    assert (labels, keys) == (["a=1", "a=2"], ["a"])
    labels, keys = C.group_runs(params, ["b", "a"])
    assert labels == ["b=x, a=1", "b=x, a=2"]
    assert C.group_runs([{"seed": "0"}, {"seed": "1"}])[0] == ["all", "all"]
    # a long value that only resolves a swept key (a list of callback configs) does not repeat it in the label;
    # one that varies on its own is kept
    derived = [
        {"seed": s, "q": q, "cd": cd, "callbacks": f"[{{'threshold': {{'quantile': {q}}}}}]"}
        for s in "01" for q in ("0.8", "0.9") for cd in ("1", "5")
    ]  # fmt: skip
    labels, keys = C.group_runs(derived)
    assert keys == ["cd", "q"] and labels[:2] == ["cd=1, q=0.8", "cd=5, q=0.8"]
    derived[0]["callbacks"] = "[{'other': 1}]"
    assert C.group_runs(derived)[1] == ["callbacks", "cd", "q"]
    assert C.is_headline("weights/w2/skewness") and C.is_headline("graph/all/assortativity")
    assert C.is_headline("clusters/h2/pearson_k_knn") and not C.is_headline("clusters/h2/pearson_k_knn_p")
    assert not C.is_headline("weights/w2/sd") and not C.is_headline("graph/h1/mean_degree")


def test_claims_paired_skewness() -> None:
    runs = [
        {"weights/w1/skewness_shift": -1.0, "weights/w2/skewness_shift": 0.1, "weights/w3/skewness_shift": 0.8},
        {"weights/w1/skewness_shift": -1.2, "weights/w2/skewness_shift": -0.1, "weights/w3/skewness_shift": 0.9},
        {"weights/w1/skewness_shift": -1.1, "weights/w2/skewness_shift": 0.0, "weights/w3/skewness_shift": 1.0},
    ]
    rows = [r for r in C.evaluate_claims({"g": runs}) if r["claim"] == "(a')"]
    assert [r["verdict"] for r in rows] == ["holds", "holds"]
    assert rows[0]["mean"] == pytest.approx(1.1 - 0.2 / 3)


# ------------------------------------------------------------------------------------------------ the report


def test_z_verdict() -> None:
    from analysis.report import ABOVE, AS_NULL, BELOW, z_verdict

    assert z_verdict(C.summarize([5.0, 6.0, 7.0])) == ABOVE
    assert z_verdict(C.summarize([-5.0, -6.0, -7.0])) == BELOW
    assert z_verdict(C.summarize([0.1, -0.2, 0.3])) == AS_NULL
    assert z_verdict(C.summarize([-3.0, 4.0, 0.0])) == C.INCONCLUSIVE  # the CI spans a boundary
    assert z_verdict(C.summarize([9.0])) == C.INCONCLUSIVE  # one run: no interval


def test_report_markdown_and_html_with_null_verdicts_logged_to_parent(tmp_path, capsys) -> None:
    from matplotlib.figure import Figure

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rep", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(exp, run_name="sweep").info.run_id
    for seed, (z_assort, z_knn) in enumerate([(5.0, 0.1), (6.0, -0.2), (7.0, 0.3)]):
        rid = client.create_run(exp, run_name=f"s{seed}", tags={"mlflow.parentRunId": parent}).info.run_id
        metrics = {
            "graph/all/assortativity": -0.1 - 0.01 * seed,
            "graph/all/assortativity/null_z": z_assort,
            "graph/h1/mean_knn": 40.0 + seed,
            "graph/h1/mean_knn/null_z_shuffle": z_knn,
            "weights/w2/excess_kurtosis": 1.0 + 0.1 * seed,
            "readout/h3/accuracy": 0.9 + 0.01 * seed,
            "quality/h1/test_log_likelihood": -100.0 - seed,
        }
        client.log_batch(rid, metrics=[Metric(k, v, 0, 0) for k, v in metrics.items()],
                         params=[Param("seed", str(seed))])  # fmt: skip
        fig = Figure()
        fig.add_subplot().plot([0, 1], [0, 1])
        client.log_figure(rid, fig, "figures/rich_club.png")
        client.set_terminated(rid, "FINISHED")
    report = tmp_path / "report"
    code = C.main(["--experiment", "rep", "--tracking-uri", uri, "--out", str(tmp_path / "cmp"),
                   "--report", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    md = (report / "report.md").read_text()
    assert md.startswith("# Reproduction report: rep")
    assert "How to read a z-score" in md and "## Paper vs measured" in md
    row = next(line for line in md.splitlines() if "`graph/all/assortativity`" in line and "rewiring" in line)
    assert "**above the null**" in row and f"{6.0:.4g} ± " in row
    row = next(line for line in md.splitlines() if "`graph/h1/mean_knn`" in line)
    assert "weight shuffle" in row and "**as the null**" in row
    assert "`weights/w2/excess_kurtosis`" in md and "**holds**" in md  # claim (b): CI > 0
    assert "`quality/h1/test_log_likelihood`" in md and "run_rich_club.png" in md
    assert (report / "run_rich_club.png").is_file() and (report / "learning_curves.png").is_file()
    page = (report / "report.html").read_text()
    assert "<table>" in page and 'src="data:image/png;base64,' in page and "run_rich_club.png" not in page
    logged = {a.path for a in client.list_artifacts(parent, "report")}
    assert {"report/report.md", "report/report.html", "report/run_rich_club.png"} <= logged
