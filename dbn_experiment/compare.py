"""``dbn-compare``: compare the runs of a sweep across seeds, and test the paper's claims on them.

Reads the FINISHED child runs of an experiment (or of one sweep parent) from an MLflow store, groups them by their
params (every param except ``seed`` by default), and for every final metric gives per group the mean, sd, 95 %
confidence half-width (Student t) and n. Writes ``summary.csv``, ``summary.md``, ``paper_claims.csv`` and three
figures (learning dynamics with bands, Pearson correlations per layer with CIs, overlaid per-run histograms) to
``--out``, prints the Markdown tables, and logs everything under ``comparison/`` of the sweep's parent run (or of
a new ``comparison`` run). ``--report DIR`` adds the reproduction report (:mod:`dbn_experiment.report`), logged
under ``report/``.

The claims are those of Testolin, Piccolini & Suweis (2018), *Deep learning systems as complex networks*.

MLflow is read here and written by :mod:`dbn_experiment.tracking`; the verdict rules are in
:mod:`dbn_experiment.verdicts`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import shlex
import sys
import tempfile
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from dbn_experiment.report import RUN_FIGURES, write_report
from dbn_experiment.store import default_tracking_uri, retry
from dbn_experiment.verdicts import (
    PAPER_PEARSON_K_S,
    PAPER_SIDE,
    RECON_KEYS,
    Stats,
    _fmt,
    _md_escape,
    _side,
    evaluate_claims,
    is_headline,
    markdown_claims,
    summarize,
)

__all__ = ["group_runs", "main", "select_runs"]

EXIT_USAGE = 2
SEARCH_PAGE = 1000


class UsageError(Exception):
    """A user-facing error: reported as one line on stderr, exit code 2."""


# ------------------------------------------------------------------------------------------------ run selection


def _tracking_uri(arg: str | None) -> str:
    if arg:
        return arg
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return default_tracking_uri(Path.cwd())[0]


def _check_store(uri: str) -> None:
    """A SQLite store that does not exist is an error (MLflow would silently create an empty one)."""
    if uri.startswith("sqlite:///"):
        path = uri[len("sqlite:///") :].split("?", 1)[0]
        if path and path != ":memory:" and not Path(path).exists():
            raise UsageError(f"no MLflow store at {path} (set --tracking-uri or MLFLOW_TRACKING_URI)")


@contextlib.contextmanager
def _quiet_downloads() -> Iterator[None]:
    """No per-artifact progress bars on stderr while the tables are downloaded."""
    key = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
    old = os.environ.get(key)
    os.environ[key] = "false"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = old


def _search(client: Any, experiment_id: str, query: str) -> list[Any]:
    runs: list[Any] = []
    token = None
    while True:
        page = retry(
            lambda t=token: client.search_runs(
                [experiment_id],
                query,
                max_results=SEARCH_PAGE,
                page_token=t,
                order_by=["attributes.start_time ASC"],
            )
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def select_runs(
    client: Any, experiment_id: str, parent: str | None, extra_filter: str | None, dataset: str | None = None
) -> list[Any]:
    """The FINISHED runs to compare (children of ``parent`` / of any sweep, else all non-parent runs), trained on
    ``dataset`` (an MLflow dataset input name) if given."""
    query = "attributes.status = 'FINISHED'"
    if parent:
        query += f" and tags.mlflow.parentRunId = '{parent}'"
    if dataset:
        query += f" and datasets.name = '{dataset}' and datasets.context = 'training'"
    if extra_filter and extra_filter.strip():
        query += f" and {extra_filter.strip()}"
    runs = _search(client, experiment_id, query)
    runs = [r for r in runs if r.data.tags.get("role") not in ("sweep parent", "comparison")]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    return children if (children or parent) else runs


def _natural(value: str) -> tuple[int, float, str]:
    try:
        return (0, float(value), value)
    except ValueError:
        return (1, 0.0, value)


def _determined_by(params: Sequence[Mapping[str, str]], keys: Sequence[str], key: str) -> bool:
    """Whether the value of ``key`` is a function of the values of ``keys`` over these runs."""
    seen: dict[tuple[str, ...], str] = {}
    for p in params:
        value = p.get(key, "")
        if seen.setdefault(tuple(p.get(k, "") for k in keys), value) != value:
            return False
    return True


def group_runs(
    params: Sequence[Mapping[str, str]], keys: Sequence[str] | None = None, hashes: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Group label of each run from its params, or from its setting's ``config_hash``.

    Args:
        params: each run's params.
        keys: group by these keys only; ``None`` = every key except ``seed`` whose value differs between runs,
            less the keys whose value is determined by shorter ones (e.g. a resolved list of callback configs
            that interpolates a swept ``analysis.threshold.quantile``: it would only repeat it in the label).
        hashes: each run's ``config_hash`` tag (with ``keys`` None): the runs of one hash form one group, named
            by the params that differ between groups (not those that differ inside one, such as a seed or a
            file path); two hashes with the same such params get the hash in their label.

    Returns:
        (label of each run, keys used). A label is ``"k=v, k2=v2"`` over the keys used (``"all"`` if none).
    """
    if keys is None and hashes is not None:
        inside = {k for h in set(hashes) for k in {k for p in params for k in p}
                  if len({p.get(k, "") for p, h2 in zip(params, hashes, strict=True) if h2 == h}) > 1}  # fmt: skip
        labels, used = group_runs([{k: v for k, v in p.items() if k not in inside} for p in params])
        if len(set(zip(labels, hashes, strict=True))) > len(set(labels)):  # one label, several settings
            labels = [f"{lab}, config_hash={h}" if lab != "all" else f"config_hash={h}"
                      for lab, h in zip(labels, hashes, strict=True)]  # fmt: skip
            used = [*used, "config_hash"]
        return labels, used
    if keys is None:
        every = sorted({k for p in params for k in p} - {"seed"})
        varying = [k for k in every if len({p.get(k, "") for p in params}) > 1]
        kept: list[str] = []

        # A key every run has (model.kind) names a group better than one some runs lack (a weight file's run has
        # no train.*); then shorter values first.
        def rank(k: str) -> tuple[bool, int, str]:
            return (any(k not in p for p in params), max(len(p.get(k, "")) for p in params), k)

        for k in sorted(varying, key=rank):
            if not (kept and _determined_by(params, kept, k)):
                kept.append(k)
        keys = [k for k in varying if k in kept]
    keys = list(keys)
    labels = [", ".join(f"{k}={p.get(k, '')}" for k in keys) or "all" for p in params]
    return labels, keys


# ------------------------------------------------------------------------------------------------------ output


def markdown_summary(
    summary: Mapping[str, Mapping[str, Stats]], groups: Sequence[str], metrics: Sequence[str]
) -> str:
    """Markdown table: one row per metric, a block of columns (mean, sd, ci95, n) per group."""
    head = ["metric"]
    for g in groups:
        head += [f"{_md_escape(g)} mean", "sd", "±ci95", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for m in metrics:
        cells = [f"`{m}`"]
        for g in groups:
            s = summary[g].get(m)
            cells += [_fmt(s.mean), _fmt(s.sd), _fmt(s.ci95), str(s.n)] if s else ["", "", "", "0"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


# ----------------------------------------------------------------------------------------------------- figures


def _colours(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return [cmap(i % 10) for i in range(n)]


def _note(ax: Any, text: str) -> None:
    ax.text(
        0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, fontsize=9, wrap=True,
        bbox={"facecolor": "white", "edgecolor": "0.7"},
    )  # fmt: skip


def figure_learning_curves(
    histories: Mapping[str, Mapping[str, list[dict[int, float]]]], groups: Sequence[str]
) -> Figure:
    """Mean ± sd across the runs of each group vs step, one panel per metric.

    Args:
        histories: metric key -> group label -> one ``{step: value}`` per run.
        groups: group labels in display order.
    """
    fig = Figure(figsize=(5 * len(RECON_KEYS), 4), layout="constrained")
    axes = fig.subplots(1, len(RECON_KEYS), squeeze=False)[0]
    colours = _colours(len(groups))
    for ax, key in zip(axes, RECON_KEYS, strict=True):
        ax.set_title(key, fontsize=10)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        drawn = False
        for colour, g in zip(colours, groups, strict=True):
            runs = [h for h in histories.get(key, {}).get(g, []) if h]
            if not runs:
                continue
            steps = sorted({s for h in runs for s in h})
            values = [[h[s] for h in runs if s in h] for s in steps]
            mean = np.array([np.mean(v) for v in values])
            sd = np.array([np.std(v, ddof=1) if len(v) > 1 else 0.0 for v in values])
            ax.plot(steps, mean, color=colour, label=f"{g} (n={len(runs)})")
            ax.fill_between(steps, mean - sd, mean + sd, color=colour, alpha=0.25, linewidth=0)
            drawn = True
        if drawn:
            ax.legend(fontsize=7)
        else:
            _note(ax, "no history logged")
    fig.suptitle("Learning dynamics: reconstruction error, mean ± sd across seeds")
    return fig


def figure_pearson(summary: Mapping[str, Mapping[str, Stats]], groups: Sequence[str]) -> Figure:
    """Cluster-level Pearson r per layer and group, with 95 % CI error bars and the paper's values as crosses."""
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, 2, squeeze=False)[0]
    colours = _colours(len(groups))
    layers = (1, 2, 3)
    width = 0.6 / max(len(groups), 1)
    for ax, stat, title in zip(
        axes, ("pearson_k_s", "pearson_k_knn"), ("degree vs strength", "degree vs k_nn"), strict=True
    ):
        any_point = False
        for i, (colour, g) in enumerate(zip(colours, groups, strict=True)):
            xs, ys, es = [], [], []
            for l in layers:  # noqa: E741
                s = summary[g].get(f"clusters/h{l}/{_side(l)}/{stat}")
                if s is None or not math.isfinite(s.mean):
                    continue
                xs.append(l - 0.3 + width * (i + 0.5))
                ys.append(s.mean)
                es.append(s.ci95 if math.isfinite(s.ci95) else 0.0)
            if xs:
                ax.errorbar(xs, ys, yerr=es, fmt="o", color=colour, capsize=3, label=g)
                any_point = True
        if stat == "pearson_k_s":
            ax.plot(list(PAPER_PEARSON_K_S), list(PAPER_PEARSON_K_S.values()), "kx", ms=10, mew=2, label="paper")
        else:
            ax.axhline(0.0, color="k", ls="--", lw=1, label="paper: uncorrelated")
        ax.axhline(0.0, color="0.8", lw=0.5)
        ax.set_xticks(list(layers), [f"h{layer}" for layer in layers])
        ax.set_xlim(0.5, 3.5)
        ax.set_ylim(-1.05, 1.05)
        ax.set_ylabel("Pearson r across clusters")
        ax.set_title(title, fontsize=10)
        ax.legend(fontsize=7)
        if not any_point:
            _note(ax, "no cluster metrics logged")
    fig.suptitle(f"Structure vs function: Pearson r per layer ({PAPER_SIDE} side; h3: in), mean ± 95% CI")
    return fig


def figure_histograms(
    columns: Mapping[str, Mapping[str, list[np.ndarray]]], groups: Sequence[str], missing: Mapping[str, int]
) -> Figure:
    """Overlaid per-run step histograms of the trained strength of v and the degree of h1.

    Args:
        columns: panel title -> group label -> one array per run.
        groups: group labels in display order.
        missing: panel title -> number of runs without the artifact.
    """
    fig = Figure(figsize=(10, 4), layout="constrained")
    axes = fig.subplots(1, len(columns), squeeze=False)[0]
    colours = dict(zip(groups, _colours(len(groups)), strict=True))
    for ax, (title, per_group) in zip(axes, columns.items(), strict=True):
        ax.set_title(title, fontsize=10)
        arrays = [a for g in groups for a in per_group.get(g, []) if a.size]
        if not arrays:
            _note(ax, "artifacts missing: nothing to plot")
            continue
        bins = np.histogram_bin_edges(np.concatenate(arrays), bins=40)
        for g in groups:
            for j, a in enumerate(per_group.get(g, [])):
                if a.size:
                    ax.hist(
                        a, bins=bins, histtype="step", color=colours[g], alpha=0.8, label=g if j == 0 else None
                    )
        ax.set_ylabel("units")
        ax.set_xlabel(title.split(" of ")[0])
        ax.legend(fontsize=7)
        if missing.get(title):
            ax.text(0.02, 0.98, f"{missing[title]} run(s) without the artifact", transform=ax.transAxes,
                    va="top", fontsize=7)  # fmt: skip
    fig.suptitle("Trained distributions, one histogram per run")
    return fig


def _read_column(client: Any, run_id: str, artifact: str, column: str, tmp: Path) -> np.ndarray | None:
    try:
        local = client.download_artifacts(run_id, artifact, str(tmp))
        with open(local, newline="") as f:
            return np.asarray([float(row[column]) for row in csv.DictReader(f)], dtype=np.float64)
    except Exception:  # noqa: BLE001 - a missing or malformed artifact is skipped, noted in the figure
        return None


# -------------------------------------------------------------------------------------------------------- main


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="dbn-compare", description="Compare the runs of a sweep across seeds and test the paper's claims."
    )
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument(
        "--tracking-uri", default=None, help="default: $MLFLOW_TRACKING_URI, else sqlite:///./mlflow.db"
    )
    p.add_argument("--parent", default=None, help="compare only the children of this sweep parent run id")
    p.add_argument(
        "--filter", default=None, help="extra MLflow search filter, e.g. \"params.train.cd_steps = '1'\""
    )
    p.add_argument(
        "--dataset",
        default=None,
        metavar="NAME",
        help="only runs trained on this dataset (MLflow input name: mnist5k, mnist, fashion_mnist, idx:<folder>)",
    )
    p.add_argument(
        "--group-by",
        default=None,
        help="comma-separated param keys (default: the runs' config_hash, named by the params that differ)",
    )
    p.add_argument("--out", default="comparison", help="output folder (default ./comparison)")
    p.add_argument(
        "--report",
        default=None,
        metavar="DIR",
        help="also write the reproduction report (report.md, report.html with its figures) to DIR",
    )
    p.add_argument("--no-log", action="store_true", help="do not log the results to MLflow")
    p.add_argument("--all-metrics", action="store_true", help="print every metric, not only the headline ones")
    return p


def run(args: argparse.Namespace) -> int:
    """Do the comparison described by parsed command-line ``args``; raises :class:`UsageError`."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = _tracking_uri(args.tracking_uri)
    _check_store(uri)
    client = MlflowClient(tracking_uri=uri)
    try:
        exp = retry(lambda: client.get_experiment_by_name(args.experiment))
    except MlflowException as err:
        raise UsageError(f"cannot read the tracking store {uri}: {str(err).splitlines()[0]}") from err
    if exp is None:
        raise UsageError(f"unknown experiment {args.experiment!r} in {uri}")
    try:
        runs = select_runs(client, exp.experiment_id, args.parent, args.filter, args.dataset)
    except MlflowException as err:
        raise UsageError(f"search failed: {str(err).splitlines()[0]}") from err
    if not runs:
        what = f"children of {args.parent}" if args.parent else "runs"
        extra = f" matching {args.filter!r}" if args.filter else ""
        extra += f" trained on dataset {args.dataset!r}" if args.dataset else ""
        raise UsageError(f"no FINISHED {what}{extra} in experiment {args.experiment!r}")

    keys = [k.strip() for k in args.group_by.split(",") if k.strip()] if args.group_by else None
    hashes = [r.data.tags.get("config_hash") for r in runs]
    labels, used = group_runs(
        [r.data.params for r in runs], keys, hashes if keys is None and all(hashes) else None
    )
    order = sorted(set(labels), key=lambda lab: [_natural(v.split("=", 1)[-1]) for v in lab.split(", ")])
    by_group: dict[str, list[Any]] = defaultdict(list)
    for r, lab in zip(runs, labels, strict=True):
        by_group[lab].append(r)
    finals = {g: [dict(r.data.metrics) for r in by_group[g]] for g in order}

    metrics = sorted({k for r in runs for k in r.data.metrics})
    summary = {g: {m: summarize(x[m] for x in finals[g] if m in x) for m in metrics} for g in order}
    claims = evaluate_claims(finals)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(
        out / "summary.csv",
        ["group", "metric", "mean", "sd", "ci95", "n"],
        ([g, m, s.mean, s.sd, s.ci95, s.n] for m in metrics for g in order for s in [summary[g][m]]),
    )
    claim_cols = ["group", "claim", "statement", "metric", "paper", "rule", "mean", "ci95", "n", "verdict", "null",
                  "other_sides"]  # fmt: skip
    _write_csv(out / "paper_claims.csv", claim_cols, ([r[c] for c in claim_cols] for r in claims))

    parents = {r.data.tags.get("mlflow.parentRunId") for r in runs}
    header = [
        f"# Comparison: experiment `{args.experiment}`",
        "",
        f"{len(runs)} FINISHED runs in {len(order)} group(s), grouped by "
        + (", ".join(f"`{k}`" for k in used) or "nothing (one group)")
        + (f"; parent run `{args.parent}`" if args.parent else "")
        + (f"; filter `{args.filter}`" if args.filter else "")
        + (f"; dataset `{args.dataset}`" if args.dataset else "")
        + ". Values are final metrics: mean, sd (ddof=1), 95% CI half-width (Student t), n.",
        "",
        "Groups: " + "; ".join(f"`{g}` (n={len(by_group[g])})" for g in order),
    ]
    shown = metrics if args.all_metrics else [m for m in metrics if is_headline(m)]
    table = markdown_summary(summary, order, shown)
    claims_md = markdown_claims(claims)
    print("\n".join(header))
    print()
    print("## Metrics" + ("" if args.all_metrics else " (headline; --all-metrics for every metric)"))
    print()
    print(table)
    print()
    print("## Paper vs measured (Testolin, Piccolini & Suweis 2018)")
    print()
    print(claims_md)
    (out / "summary.md").write_text(
        "\n".join(header)
        + "\n\n## Metrics\n\n"
        + markdown_summary(summary, order, metrics)
        + "\n\n## Paper vs measured (Testolin, Piccolini & Suweis 2018)\n\n"
        + claims_md
        + "\n"
    )

    # Figures.
    histories: dict[str, dict[str, list[dict[int, float]]]] = {k: defaultdict(list) for k in RECON_KEYS}
    for g in order:
        for r in by_group[g]:
            for key in RECON_KEYS:
                if key in r.data.metrics:
                    hist = retry(lambda rid=r.info.run_id, k=key: client.get_metric_history(rid, k))
                    histories[key][g].append({int(h.step): float(h.value) for h in hist})
    panels = {"trained strength of v (out)": ("tables/strength_v.csv", "out"),
              "degree of h1": ("tables/units_h1.csv", "degree")}  # fmt: skip
    columns: dict[str, dict[str, list[np.ndarray]]] = {t: defaultdict(list) for t in panels}
    missing: dict[str, int] = defaultdict(int)
    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        for g in order:
            for i, r in enumerate(by_group[g]):
                for title, (artifact, column) in panels.items():
                    dst = Path(tmp) / f"{r.info.run_id}_{i}_{column}"
                    dst.mkdir()
                    a = _read_column(client, r.info.run_id, artifact, column, dst)
                    if a is None:
                        missing[title] += 1
                    else:
                        columns[title][g].append(a)
    figures = {
        "learning_curves.png": figure_learning_curves(histories, order),
        "pearson_per_layer.png": figure_pearson(summary, order),
        "histograms.png": figure_histograms(columns, order, missing),
    }
    for name, fig in figures.items():
        fig.savefig(out / name, dpi=110)
        fig.clear()

    report_files: list[Path] = []
    if args.report:
        report_files = _report(args, client, out, header, summary, order, finals, claims, by_group, figures)

    if not args.no_log:
        target = args.parent or (next(iter(parents)) if len(parents) == 1 and None not in parents else None)
        created = False
        if target is None:
            run_ = retry(
                lambda: client.create_run(exp.experiment_id, run_name="comparison", tags={"role": "comparison"})
            )
            target, created = run_.info.run_id, True
        files = ["summary.csv", "summary.md", "paper_claims.csv", *figures]
        for name in files:
            retry(lambda n=name: client.log_artifact(target, str(out / n), "comparison"))
        for path in report_files:
            retry(lambda p=path: client.log_artifact(target, str(p), "report"))
        if created:
            retry(lambda: client.set_terminated(target, "FINISHED"))
        print(f"\nlogged to run {target} under comparison/", file=sys.stderr)
    print(f"wrote {out}/summary.csv, summary.md, paper_claims.csv, {', '.join(figures)}", file=sys.stderr)
    if report_files:
        print(f"wrote the report {args.report}/report.md and report.html", file=sys.stderr)
    return 0


SETTINGS = (
    ("data set", ("dataset.name", "dataset.path")),
    ("content digest (sha256 of the float32 images and labels, train + test)", ("tag:dataset_digest",)),
    ("n_train / n_test", ("tag:dataset_n_train", "tag:dataset_n_test")),
    ("architecture (hidden units)", ("model.kind", "model.hidden")),
    ("epochs per layer", ("train.epochs",)),
    ("CD steps (persistent)", ("train.cd_steps", "train.persistent")),
    ("threshold (sign, quantile, density, value, scope)", (
        "analysis.threshold.sign", "analysis.threshold.quantile", "analysis.threshold.density",
        "analysis.threshold.value", "analysis.threshold.scope")),
    ("EMD method", ("analysis.emd.method",)),
    ("linkage, clusters, clustered layers",
     ("analysis.linkage", "analysis.n_clusters", "analysis.cluster_layers")),
    ("label-permutation null (permutations)", ("analysis.label_null.n_permutations",)),
    ("seeds", ("seed",)),
    ("project version", ("tag:version/dbn-complex-networks",)),
    ("commit (dirty tree)", ("tag:git_commit", "tag:git_dirty")),
)  # fmt: skip


def describe_runs(runs: Sequence[Any]) -> list[tuple[str, str]]:
    """The settings of the compared runs, one ``(what, value)`` per :data:`SETTINGS` row; a value that differs
    between runs lists its distinct values (``seed`` lists them all)."""
    rows = []
    for what, keys in SETTINGS:
        per_key = []
        for key in keys:
            source = "tags" if key.startswith("tag:") else "params"
            name = key.removeprefix("tag:")
            values = [getattr(r.data, source).get(name, "–") for r in runs]
            values = ["–" if v in ("None", "null") else v for v in values]
            distinct = sorted(set(values), key=_natural)
            per_key.append(", ".join(distinct))
        rows.append((what, " / ".join(per_key)))
    return rows


def _report(
    args: argparse.Namespace,
    client: Any,
    out: Path,
    header: Sequence[str],
    summary: Mapping[str, Mapping[str, Stats]],
    order: Sequence[str],
    finals: Mapping[str, Sequence[Mapping[str, float]]],
    claims: Sequence[Mapping[str, Any]],
    by_group: Mapping[str, Sequence[Any]],
    figures: Mapping[str, Any],
) -> list[Path]:
    """Write the reproduction report (:mod:`dbn_experiment.report`) with the figures of one run of the first
    group."""
    example = by_group[order[0]][0].info.run_id
    folder = Path(args.report)
    runs = [r for g in order for r in by_group[g]]
    commands = []
    for parent in sorted({r.data.tags.get("mlflow.parentRunId") for r in runs} - {None}):
        try:
            commands.append(retry(lambda p=parent: client.get_run(p)).data.tags.get("command", ""))
        except Exception:  # noqa: BLE001 - a deleted parent: fall back to the jobs' own commands
            pass
    commands = [c for c in commands if c] or sorted({r.data.tags.get("command", "") for r in runs} - {""})
    settings = describe_runs(runs)
    report_command = shlex.join(["dbn-compare", *(getattr(args, "argv", None) or [])])
    with tempfile.TemporaryDirectory() as tmp, _quiet_downloads():
        run_figures = {}
        for name in RUN_FIGURES:
            try:
                local = client.download_artifacts(example, f"figures/{name}", tmp)
            except Exception:  # noqa: BLE001 - a run without this figure (e.g. analysis=paper): left out
                continue
            run_figures[name] = Path(local)
        return write_report(
            folder,
            experiment=args.experiment,
            header=header,
            summary=summary,
            groups=order,
            finals=finals,
            claims=claims,
            comparison_figures=[out / name for name in figures],
            run_figures=run_figures,
            example_run=example,
            settings=settings,
            commands={"sweep": commands, "report": [report_command]},
        )


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point ``dbn-compare``; returns the exit code (2 on a user error, with one line on stderr)."""
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except UsageError as err:
        print(f"dbn-compare: error: {err}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
