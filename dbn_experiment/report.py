"""The reproduction report of a sweep (``dbn-compare --report DIR``): one self-contained Markdown file and its HTML
twin (figures embedded), saying for each claim of the paper whether it holds on the measured runs, and which
beyond-the-paper statistics differ from their null models.

Built from what :mod:`dbn_experiment.compare` already computed (per-group summaries, claim rows) and from the
figures of the comparison and of one run of the sweep; no access to the store here.
"""

from __future__ import annotations

import base64
import html
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from dbn_experiment.verdicts import (
    ABOVE,
    AS_NULL,
    BELOW,
    EQUIVALENCE_MARGIN,
    FAILS,
    HOLDS,
    INCONCLUSIVE,
    NOT_MEASURED,
    Z_LEVEL,
    Stats,
    _fmt,
    _md_escape,
    markdown_claims,
    summarize,
    z_verdict,
)

__all__ = ["Z_LEVEL", "null_rows", "write_report", "z_verdict"]
NULL_SUFFIXES = {
    "null_z": "degree-preserving rewiring",
    "null_z_shuffle": "weight shuffle",
    "perm_z": "label permutation",
}
QUALITY = re.compile(r"^(readout/[^/]+/accuracy|quality/h1/(test_log_likelihood|log_z))$")
FINDINGS = re.compile(
    r"^(communities/[^/]+/(modularity|n_communities|nmi|ari|abs_w_nmi|abs_w_ari)|richclub/all/(k|rho)"
    r"|kcore/[^/]+/(max_core|mean_core)|spectra/w\d+/(initial_)?(alpha|top_singular_value))$"
)
SHAPE = re.compile(
    r"^(graph/(scope_global|scope_layer)/kept_fraction/w\d+|graph/threshold/w\d+"
    r"|clusters/[^/]+/(largest_fraction|n_singletons|n_clusters))$"
)
CLAIM_NOTES = f"""\
**Reading the table.** Correlation claims use the paper's side, `out` (strength = the sum of the weights to the
next layer; degree and k_nn from the same edges; the top layer has only `in`); *other sides* shows `in` and
`total` beside it. Mapping the paper's three r(k̄, s̄) values (0.56, -0.72, 0.87) to h1, h2, h3 is an assumption:
the review we have lists three coefficients "across the layers" but plots only h1 and h2. *Against its null*: for
(e) the degree-preserving rewiring (is the correlation learned, or does any graph with these degrees give it?),
for (f) the label permutation (does the EMD partition give a different r than random partitions of the same
sizes?), each read from the CI of z across runs (beyond ±{Z_LEVEL:g}: differs). (e) is an equivalence test:
"uncorrelated" holds only when the whole CI lies inside ±{EQUIVALENCE_MARGIN:g}. A row whose metric no run
measured says *{NOT_MEASURED}* and is left out of the counts.
"""
RUN_FIGURES = (
    "weights_histograms.png",
    "strength_histograms.png",
    "degree_distributions.png",
    "dendrogram_h1.png",
    "structure_vs_function.png",
    "rich_club.png",
    "singular_values.png",
    "top_rbm_samples.png",
)

HOW_TO_READ = f"""\
**How to read a z-score.** For a statistic of the trained network (say the degree assortativity), the run draws
`analysis.null.n_samples` null networks that keep some of its properties and destroy the rest, computes the same
statistic on each, and reports `z = (value - mean of the nulls) / sd of the nulls`. Two null models:
*degree-preserving rewiring* (`<metric>/null_z`) keeps every unit's degree in the thresholded graph and shuffles
who connects to whom; *weight shuffle* (`<metric>/null_z_shuffle`) keeps each matrix's weight distribution and
permutes the weights; *label permutation* (`<metric>/perm_z`, cluster-level correlations only) keeps the network
and the cluster sizes and shuffles which unit belongs to which EMD cluster, so it asks whether the functional
partition matters at all. |z| > {Z_LEVEL:g} means the value is about {Z_LEVEL:g} null standard deviations away from
what the null model alone gives, so the structure the null model destroys matters for it; |z| < {Z_LEVEL:g} means
the null model explains the value. A z-score says nothing about the size of an effect, only about its distance
from the null in units of the null's spread; with few null samples it is itself noisy, which is why the table
gives its mean and 95% confidence interval across seeds. Verdict: **{ABOVE}** / **{BELOW}** when the whole CI of z
lies beyond +{Z_LEVEL:g} / -{Z_LEVEL:g}, **{AS_NULL}** when it lies inside (-{Z_LEVEL:g}, {Z_LEVEL:g}),
**{INCONCLUSIVE}** otherwise (or with fewer than two runs).
"""


def null_rows(finals: Mapping[str, Sequence[Mapping[str, float]]]) -> list[dict[str, Any]]:
    """One row per group, statistic and null model that the runs z-scored (``<metric>/null_z*`` metrics)."""
    rows = []
    for group, runs in finals.items():
        keys = sorted({k for m in runs for k in m if k.rsplit("/", 1)[-1] in NULL_SUFFIXES
                       and "_weighted/" not in k})  # fmt: skip
        for key in keys:
            base, suffix = key.rsplit("/", 1)
            value = summarize(m[base] for m in runs if base in m)
            z = summarize(m[key] for m in runs if key in m)
            rows.append({"group": group, "metric": base, "null": NULL_SUFFIXES[suffix], "value": value, "z": z,
                         "verdict": z_verdict(z)})  # fmt: skip
    return rows


def _markdown_nulls(rows: Sequence[Mapping[str, Any]]) -> str:
    head = ["group", "statistic", "null model", "value (mean ± ci95)", "z (mean ± ci95)", "n", "verdict"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        v, z = r["value"], r["z"]
        lines.append("| " + " | ".join([
            _md_escape(r["group"]), f"`{r['metric']}`", r["null"], f"{_fmt(v.mean)} ± {_fmt(v.ci95)}",
            f"{_fmt(z.mean)} ± {_fmt(z.ci95)}", str(z.n), f"**{r['verdict']}**",
        ]) + " |")  # fmt: skip
    return "\n".join(lines)


def _markdown_quality(
    summary: Mapping[str, Mapping[str, Stats]], groups: Sequence[str], pattern: re.Pattern[str] = QUALITY
) -> str:
    metrics = sorted({m for g in groups for m in summary[g] if pattern.match(m)})
    if not metrics:
        return "_None of these metrics in these runs._"
    head = ["group", "metric", "mean ± ci95", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for g in groups:
        for m in metrics:
            s = summary[g].get(m)
            if s is not None and s.n:
                lines.append(f"| {_md_escape(g)} | `{m}` | {_fmt(s.mean)} ± {_fmt(s.ci95)} | {s.n} |")
    return "\n".join(lines)


def _counts(verdicts: Sequence[str], kinds: Sequence[str]) -> str:
    return ", ".join(f"{sum(v == k for v in verdicts)} {k}" for k in kinds)


def _html(markdown_text: str, folder: Path, title: str) -> str:
    import markdown

    body = markdown.markdown(markdown_text, extensions=["tables"])

    def embed(match: re.Match[str]) -> str:
        path = folder / html.unescape(match.group(1))
        if not path.is_file():
            return match.group(0)
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        return f'src="data:image/png;base64,{data}"'

    body = re.sub(r'src="([^"]+\.png)"', embed, body)
    style = (
        "body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;line-height:1.45}"
        "table{border-collapse:collapse;font-size:0.85em;margin:1em 0}"
        "th,td{border:1px solid #ccc;padding:3px 6px;text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%;border:1px solid #eee}code{font-size:0.95em}"
    )
    return (
        f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n{body}\n</body></html>\n"
    )


def write_report(
    folder: Path,
    *,
    experiment: str,
    header: Sequence[str],
    summary: Mapping[str, Mapping[str, Stats]],
    groups: Sequence[str],
    finals: Mapping[str, Sequence[Mapping[str, float]]],
    claims: Sequence[Mapping[str, Any]],
    comparison_figures: Sequence[Path],
    run_figures: Mapping[str, Path],
    example_run: str | None,
    settings: Sequence[tuple[str, str]] = (),
    commands: Mapping[str, Sequence[str]] | None = None,
) -> list[Path]:
    """Write ``report.md``, ``report.html`` and the figures they show into ``folder``; returns the files.

    Args:
        folder: the report folder (created).
        experiment: the experiment name (title).
        header: the comparison's header lines (runs, grouping).
        summary: group -> metric -> :class:`Stats`.
        groups: the groups in display order.
        finals: group -> final metrics of each run.
        claims: the rows of :func:`dbn_experiment.verdicts.evaluate_claims`.
        comparison_figures: PNG files of the comparison (copied into the report).
        run_figures: artifact name -> local PNG of one run of the sweep (copied as ``run_<name>``).
        example_run: that run's id (for the caption).
        settings: ``(what, value)`` rows of the runs' data and settings
            (:func:`dbn_experiment.compare.describe_runs`).
        commands: ``{"sweep": [...], "report": [...]}``: the command lines that made the runs and this report.
    """
    folder.mkdir(parents=True, exist_ok=True)
    files = []
    for src in comparison_figures:
        shutil.copyfile(src, folder / src.name)
        files.append(folder / src.name)
    for name, src in run_figures.items():
        dst = folder / f"run_{name}"
        shutil.copyfile(src, dst)
        files.append(dst)
    nulls = null_rows(finals)
    title = f"Reproduction report: {experiment}"
    claim_verdicts = [r["verdict"] for r in claims if r["verdict"] != NOT_MEASURED]
    not_measured = sum(r["verdict"] == NOT_MEASURED for r in claims)
    null_verdicts = [r["verdict"] for r in nulls]
    commands = commands or {}
    lines = [
        f"# {title}",
        "",
        "## Data and settings",
        "",
        "| | |",
        "|---|---|",
        *(f"| {_md_escape(what)} | {_md_escape(value)} |" for what, value in settings),
        "",
        "Made by:",
        "",
        "```bash",
        *(commands.get("sweep") or ["# (the sweep's command was not recorded in these runs)"]),
        *commands.get("report", []),
        "```",
        "",
        *header[1:],
        "",
        "Testolin, Piccolini & Suweis (2018), *Deep learning systems as complex networks* (arXiv 1809.10941), "
        "read again on these runs: each claim is tested by a metric of every run, summarised across the runs of a "
        "group (mean and 95% confidence interval, Student t), and decided by the rule in its row.",
        "",
        "## Summary",
        "",
        f"- Claims of the paper: {len(claim_verdicts)} measured tests — "
        f"{_counts(claim_verdicts, (HOLDS, FAILS, INCONCLUSIVE))}"
        + (f"; {not_measured} not measured (left out of the counts)." if not_measured else "."),
        f"- Beyond the paper: {len(nulls)} statistics z-scored against null models — "
        f"{_counts(null_verdicts, (ABOVE, BELOW, AS_NULL, INCONCLUSIVE))}.",
        "",
        "## Paper vs measured",
        "",
        markdown_claims(claims) if claims else "_No claim could be tested: the runs lack the metrics._",
        "",
        CLAIM_NOTES,
        "",
        "## Thresholds and clusters",
        "",
        "The unweighted graph keeps the weights above one threshold. Fraction of each matrix's possible edges "
        "kept by the runs' rule under a single global θ (`scope: global`, the paper's single threshold, pooling "
        "all weights) and under one θ per matrix (`scope: layer`); the graph statistics above use the runs' own "
        "`analysis.threshold.scope` (see Data and settings). Then the shape of the EMD partitions: the largest "
        "cluster's share of the layer's units and the number of one-unit clusters.",
        "",
        _markdown_quality(summary, groups, SHAPE),
        "",
        "## Beyond the paper: statistics against their null models",
        "",
        HOW_TO_READ,
        _markdown_nulls(nulls) if nulls else "_No null-model z-scores in these runs: run with analysis=beyond._",
        "",
        "## Beyond the paper: communities, rich club, cores, spectra",
        "",
        "Louvain modularity and community counts of the thresholded graph and of |w|; agreement (NMI, adjusted "
        "Rand) of each clustered layer's structural communities with its EMD clusters; the rich club's degree k* "
        "and ρ(k*) = φ / φ of the rewired nulls; core numbers; the power-law exponent α of the singular values' "
        "tail and the largest singular value, trained and initial.",
        "",
        _markdown_quality(summary, groups, FINDINGS),
        "",
        "## Model quality",
        "",
        "Linear read-out accuracy on the test split from the pixels and from each layer, and the AIS estimate of "
        "the layer-1 RBM's test log-likelihood (nats per image) and of its log partition function.",
        "",
        _markdown_quality(summary, groups),
        "",
        "## Figures",
        "",
    ]
    for src in comparison_figures:
        lines += [f"![{src.stem}]({src.name})", ""]
    if run_figures:
        lines += [f"One run of the sweep (`{example_run}`):", ""]
        for name in run_figures:
            lines += [f"![{Path(name).stem}](run_{name})", ""]
    text = "\n".join(lines) + "\n"
    (folder / "report.md").write_text(text)
    (folder / "report.html").write_text(_html(text, folder, title))
    return [folder / "report.md", folder / "report.html", *files]
