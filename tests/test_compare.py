"""``dbn-compare`` on a fake sweep built directly in a temporary SQLite MLflow store."""

from __future__ import annotations

import contextlib
import csv
import io
import math
from pathlib import Path

import pytest
from mlflow.entities import Metric, Param, RunTag
from mlflow.tracking import MlflowClient
from scipy import stats

from dbn_experiment import compare as C
from dbn_experiment import verdicts as V

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
    "clusters/h1/out/pearson_k_s": 0.5,
    "clusters/h1/out/pearson_k_s_p": 0.01,
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
    assert "`clusters/h1/out/pearson_k_s`" in text
    assert "`clusters/h1/out/pearson_k_s_p`" not in text and "`train/h9/other`" not in text
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
    assert ("train.cd_steps=1", "clusters/h1/out/pearson_k_s_p") in by
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
    assert by[("train.cd_steps=3", "weights/w1/mean_shift")]["verdict"] == "contradicted"
    assert by[("train.cd_steps=1", "strength/v/out/frac_negative")]["verdict"] == "holds"
    assert by[("train.cd_steps=3", "strength/v/out/frac_negative")]["verdict"] == "contradicted"
    # missing metric -> not measured, n 0
    w3 = by[("train.cd_steps=1", "weights/w3/mean_shift")]
    assert (w3["verdict"], w3["n"]) == ("not measured", "0")
    # constant r = 0.5 -> CI [0.5, 0.5]: the paper's sign, but not its value 0.56 -> inconclusive
    f1 = by[("train.cd_steps=1", "clusters/h1/out/pearson_k_s")]
    assert (f1["verdict"], f1["paper"]) == ("inconclusive", "0.56")
    assert f1["null"] == "label permutation: not measured"
    md = (result["out"] / "summary.md").read_text()
    assert "Paper vs measured" in md and "**contradicted**" in md
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
        (0.2, 0.1, -math.inf, 0.0, "contradicted"),
        (-0.05, 0.1, -math.inf, 0.0, "inconclusive"),  # spans 0
        (0.95, 0.02, 0.9, math.inf, "holds"),
        (0.5, 0.1, 0.9, math.inf, "contradicted"),
        (10.0, 2.0, 5.0, 20.0, "holds"),
        (19.0, 2.0, 5.0, 20.0, "inconclusive"),
        (30.0, 2.0, 5.0, 20.0, "contradicted"),
        (2.0, 1.0, 5.0, 20.0, "contradicted"),
        (0.99, 0.01, -0.95, 0.95, "contradicted"),
        (-1.0, 0.2, -0.95, 0.95, "inconclusive"),
        (1.0, float("nan"), -math.inf, 0.0, "inconclusive"),  # n < 2
    ],
)
def test_verdict_interval(estimate, half_width, low, high, expected) -> None:
    assert V.verdict_interval(estimate, half_width, low, high) == expected


def test_combine_verdicts() -> None:
    assert V.combine_verdicts(["holds", "holds"]) == "holds"
    assert V.combine_verdicts(["holds", "inconclusive"]) == "inconclusive"
    assert V.combine_verdicts(["inconclusive", "contradicted"]) == "contradicted"
    assert V.combine_verdicts(["holds", "not measured"]) == "holds"
    assert V.combine_verdicts([]) == V.combine_verdicts(["not measured"]) == "not measured"


@pytest.mark.parametrize(
    ("estimate", "half_width", "paper", "expected"),
    [
        (0.5, 0.1, 0.56, "holds"),  # sign matches, 0.56 in [0.4, 0.6]
        (0.9, 0.05, 0.87, "holds"),
        (-0.7, 0.1, -0.72, "holds"),
        (0.44, 0.11, -0.72, "contradicted"),  # CI [0.33, 0.55] excludes 0 on the positive side
        (-0.3, 0.1, 0.56, "contradicted"),
        (0.95, 0.02, 0.56, "inconclusive"),  # right sign, value far outside the CI
        (0.05, 0.1, 0.56, "inconclusive"),  # CI spans 0, paper value outside
        (-0.05, 0.7, 0.56, "inconclusive"),  # CI contains 0.56 but the estimate has the other sign
        (0.5, float("nan"), 0.56, "inconclusive"),  # one run
    ],
)
def test_verdict_value(estimate, half_width, paper, expected) -> None:
    assert V.verdict_value(estimate, half_width, paper) == expected


def _row(rows, claim, metric):
    return next(r for r in rows if r["claim"] == claim and r["metric"] == metric)


def test_claim_rules_every_outcome_from_synthetic_runs() -> None:
    base = {"weights/w1/mean_shift": -0.04, "weights/w2/mean_shift": -0.01, "weights/w3/mean_shift": -0.02,
            "weights/w1/skewness": 1.5, "weights/w2/skewness": 1.3, "weights/w3/skewness": 1.0,
            "weights/w1/initial_skewness": 0.0, "weights/w2/initial_skewness": 0.01,
            "weights/w3/initial_skewness": -0.01, "weights/w1/skewness_shift": 1.5,
            "weights/w2/skewness_shift": 1.29, "weights/w3/skewness_shift": 1.01,
            "strength/h3/in/max": 18.0, "strength/h2/out/max": 40.0,
            "clusters/h1/out/pearson_k_knn": 0.05, "clusters/h2/out/pearson_k_knn": -0.7,
            "clusters/h2/in/pearson_k_knn": -0.5,
            "clusters/h1/out/pearson_k_s": 0.55, "clusters/h2/out/pearson_k_s": 0.44}  # fmt: skip
    runs = []
    for i, d in enumerate((-1.0, 0.0, 1.0)):
        m = {k: v * (1 + 0.02 * d) for k, v in base.items()}
        m["clusters/h2/out/pearson_k_knn/null_z"] = 0.5 * d + 0.1 * i  # as the degree sequence gives
        m["clusters/h1/out/pearson_k_s/perm_z"] = 6.0 + 0.5 * d  # the EMD partition matters
        m["clusters/h1/out/pearson_k_s/perm_mean"] = 0.3
        runs.append(m)
    rows = C.evaluate_claims({"g": runs})
    assert _row(rows, "(a)", "weights/w2/mean_shift")["verdict"] == "holds"
    relative = next(r for r in rows if r["statement"].startswith("the shift is clear"))
    assert relative["verdict"] == "holds" and relative["mean"] == pytest.approx(0.01, rel=0.05)
    skew_rel = next(r for r in rows if r["statement"].startswith("layer 2 is the closest"))
    assert skew_rel["verdict"] == "contradicted"  # |skew W2| = 1.3 > |skew W3| = 1.0
    assert _row(rows, "(b)", "|weights/w2/skewness|")["verdict"] == "contradicted"  # 1.3 > 0.5
    assert _row(rows, "(d)", "strength/h3/in/max")["verdict"] == "holds"
    assert _row(rows, "(d)", "strength/h2/out/max")["verdict"] == "contradicted"
    e1, e2 = _row(rows, "(e)", "clusters/h1/out/pearson_k_knn"), _row(rows, "(e)", "clusters/h2/out/pearson_k_knn")
    assert e1["verdict"] == "holds" and e2["verdict"] == "contradicted"
    assert e1["null"] == "degree-preserving rewiring: not measured"
    assert "**explained by the degree sequence**" in e2["null"]
    assert e2["other_sides"].startswith("in: -0.5")
    f1, f2 = _row(rows, "(f)", "clusters/h1/out/pearson_k_s"), _row(rows, "(f)", "clusters/h2/out/pearson_k_s")
    assert (f1["verdict"], f2["verdict"]) == ("holds", "contradicted")
    assert "**the EMD partition matters**" in f1["null"] and "null r = 0.3" in f1["null"]
    f3 = _row(rows, "(f)", "clusters/h3/in/pearson_k_s")  # the top layer has only in
    assert (f3["verdict"], f3["n"], f3["null"]) == ("not measured", 0, "")
    assert _row(rows, "(c)", "strength/v/out/frac_negative")["verdict"] == "not measured"
    one = C.evaluate_claims({"g": runs[:1]})
    assert _row(one, "(f)", "clusters/h1/out/pearson_k_s")["verdict"] == "inconclusive"  # no CI from 1 run


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
    assert C.is_headline("clusters/h2/out/pearson_k_knn") and not C.is_headline("clusters/h2/in/pearson_k_knn_p")
    assert C.is_headline("clusters/h1/out/pearson_k_s/perm_p") and C.is_headline("graph/kept_fraction/w3")
    assert not C.is_headline("clusters/h1/total/pearson_k_s")
    assert not C.is_headline("weights/w2/sd") and not C.is_headline("graph/h1/mean_degree")


# ------------------------------------------------------------------------------------------------ the report


def test_z_verdict() -> None:
    from dbn_experiment.verdicts import ABOVE, AS_NULL, BELOW, z_verdict

    assert z_verdict(C.summarize([5.0, 6.0, 7.0])) == ABOVE
    assert z_verdict(C.summarize([-5.0, -6.0, -7.0])) == BELOW
    assert z_verdict(C.summarize([0.1, -0.2, 0.3])) == AS_NULL
    assert z_verdict(C.summarize([-3.0, 4.0, 0.0])) == V.INCONCLUSIVE  # the CI spans a boundary
    assert z_verdict(C.summarize([9.0])) == V.INCONCLUSIVE  # one run: no interval


def test_report_markdown_and_html_with_null_verdicts_logged_to_parent(tmp_path, capsys) -> None:
    from matplotlib.figure import Figure

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment("rep", artifact_location=(tmp_path / "artifacts").as_uri())
    parent = client.create_run(
        exp, run_name="sweep", tags={"command": "dbn-experiment -m dataset=idx seed=0,1,2"}
    ).info.run_id
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
                         params=[Param("seed", str(seed)), Param("dataset.name", "idx"),
                                 Param("analysis.emd.method", "pooled")],
                         tags=[RunTag("dataset_digest", "abc123"),
                               RunTag("dataset_n_train", "60000")])  # fmt: skip
        fig = Figure()
        fig.add_subplot().plot([0, 1], [0, 1])
        client.log_figure(rid, fig, "figures/rich_club.png")
        client.set_terminated(rid, "FINISHED")
    report = tmp_path / "report"
    code = C.main(["--experiment", "rep", "--tracking-uri", uri, "--out", str(tmp_path / "cmp"),
                   "--report", str(report)])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    md = (report / "report.md").read_text()
    assert md.startswith("# Reproduction report: rep\n\n## Data and settings")
    assert "| data set | idx / – |" in md and "| EMD method | pooled |" in md and "| seeds | 0, 1, 2 |" in md
    assert "abc123" in md and "| n_train / n_test | 60000 / – |" in md
    assert "dbn-experiment -m dataset=idx seed=0,1,2\ndbn-compare --experiment rep" in md
    assert "not measured (left out of the counts)" in md
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


def test_group_runs_by_config_hash() -> None:
    # seeds and weight-file paths vary inside a setting; the label names only what differs between settings
    params = [{"seed": s, "model.path": f"/w/{h}{s}.safetensors", "train.cd_steps": cd}
              for h, cd in (("a", "1"), ("b", "3")) for s in "01"]  # fmt: skip
    hashes = ["ha", "ha", "hb", "hb"]
    labels, keys = C.group_runs(params, hashes=hashes)
    assert (labels, keys) == (["train.cd_steps=1"] * 2 + ["train.cd_steps=3"] * 2, ["train.cd_steps"])
    # two settings that no logged param tells apart keep apart, named by their hash
    same = [{"seed": s, "x": "1"} for s in "0101"]
    labels, keys = C.group_runs(same, hashes=hashes)
    assert labels == ["config_hash=ha"] * 2 + ["config_hash=hb"] * 2 and keys == ["config_hash"]
    assert C.group_runs(same, hashes=["h"] * 4)[0] == ["all"] * 4


def test_default_grouping_by_config_hash_and_dataset_filter(tmp_path, capsys) -> None:
    import numpy as np
    from mlflow.entities import Dataset, DatasetInput, InputTag

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(EXPERIMENT)
    for name, h, lr in (("mnist", "h1", "0.1"), ("fashion_mnist", "h2", "0.05")):
        for seed in range(3):
            rid = client.create_run(exp, run_name=f"{name}-{seed}", tags={"config_hash": h}).info.run_id
            client.log_batch(rid, params=[Param("seed", str(seed)), Param("train.learning_rate", lr),
                                          Param("resume", f"/runs/{name}{seed}")],
                             metrics=[Metric("readout/h3/accuracy", 0.9 + 0.01 * seed, 0, 0)])  # fmt: skip
            data = Dataset(name=name, digest=f"d-{name}", source_type="local", source="{}")
            client.log_inputs(rid, datasets=[DatasetInput(data, [InputTag("mlflow.data.context", "training")])])
            client.set_terminated(rid, "FINISHED")
    base = ["--experiment", EXPERIMENT, "--tracking-uri", uri, "--no-log"]
    assert C.main([*base, "--out", str(tmp_path / "a")]) == 0
    out = capsys.readouterr().out
    assert "6 FINISHED runs in 2 group(s), grouped by `train.learning_rate`" in out
    rows = _read(tmp_path / "a" / "summary.csv")
    acc = {r["group"]: (float(r["mean"]), r["n"]) for r in rows if r["metric"] == "readout/h3/accuracy"}
    assert acc.keys() == {"train.learning_rate=0.1", "train.learning_rate=0.05"}
    assert all(n == "3" and np.isclose(m, 0.91) for m, n in acc.values())
    assert C.main([*base, "--dataset", "fashion_mnist", "--out", str(tmp_path / "b")]) == 0
    out = capsys.readouterr().out
    assert "3 FINISHED runs in 1 group(s)" in out and "dataset `fashion_mnist`" in out
    assert C.main([*base, "--dataset", "idx:mine", "--out", str(tmp_path / "c")]) == 2
    assert "no FINISHED runs trained on dataset 'idx:mine'" in capsys.readouterr().err
