"""``dbn-compare``: compare the runs of a sweep across seeds, and test the paper's claims on them.

Reads the FINISHED child runs of an experiment (or of one sweep parent) from an MLflow store, groups them by their
params (every param except ``seed`` by default), and for every final metric gives per group the mean, sd, 95 %
confidence half-width (Student t) and n. Writes ``summary.csv``, ``summary.md``, ``paper_claims.csv`` and three
figures (learning dynamics with bands, Pearson correlations per layer with CIs, overlaid per-run histograms) to
``--out``, prints the Markdown tables, and logs everything under ``comparison/`` of the sweep's parent run (or of
a new ``comparison`` run). ``--report DIR`` adds the reproduction report (:mod:`analysis.report`), logged under
``report/``.

The claims are those of Testolin, Piccolini & Suweis (2018), *Deep learning systems as complex networks*.

This module and :mod:`analysis.tracking` are the only modules of the project that import mlflow.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import math
import os
import re
import shlex
import sys
import tempfile
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats as sps

from analysis.tracking import retry

__all__ = [
    "CLAIMS",
    "Claim",
    "Stats",
    "combine_verdicts",
    "group_runs",
    "is_headline",
    "main",
    "summarize",
    "verdict_interval",
    "verdict_value",
    "z_verdict",
]

HOLDS = "holds"
FAILS = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
EXIT_USAGE = 2
SEARCH_PAGE = 1000
RECON_KEYS = ("train/h1/recon_error", "train/h2/recon_error", "train/h3/recon_error")
# The paper's r(k̄, s̄) per layer; which layer each value belongs to is our reading of the review (PAPER.md).
PAPER_PEARSON_K_S = {1: 0.56, 2: -0.72, 3: 0.87}
PAPER_SIDE = "out"  # the paper's strength: "the sum of the weights from the node to all nodes of the next layer"
Z_LEVEL = 2.0  # |z| beyond this: the statistic differs from its null model
ABOVE, BELOW, AS_NULL = "above the null", "below the null", "as the null"
EQUIVALENCE_MARGIN = 0.3  # (e): |r| below this counts as "uncorrelated"

_HEADLINE = (
    re.compile(r"^readout/"),
    re.compile(r"^weights/[^/]+/(mean|skewness|mean_shift)$"),
    re.compile(r"^strength/v/out/frac_negative$"),
    re.compile(r"^strength/h3/in/max$"),
    re.compile(r"^graph/all/"),
    re.compile(r"^graph/kept_fraction/"),
    re.compile(r"^clusters/[^/]+/(largest_fraction|n_singletons)$"),
    re.compile(r"^clusters/[^/]+/out/pearson_[a-z]+_[a-z]+(/perm_p)?$"),
)


class UsageError(Exception):
    """A user-facing error: reported as one line on stderr, exit code 2."""


# ------------------------------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class Stats:
    """Summary of one metric over the runs of one group."""

    mean: float
    sd: float
    ci95: float
    n: int


def summarize(values: Iterable[float]) -> Stats:
    """Mean, sd (ddof=1), 95 % CI half-width ``t(0.975, n-1) * sd / sqrt(n)`` and n of the finite values.

    Args:
        values: one value per run (non-finite values are dropped).

    Returns:
        The :class:`Stats`; ``sd`` and ``ci95`` are NaN when n < 2, everything is NaN when n = 0.
    """
    x = np.asarray([float(v) for v in values], dtype=np.float64)
    x = x[np.isfinite(x)]
    n = int(x.size)
    if n == 0:
        return Stats(math.nan, math.nan, math.nan, 0)
    mean = float(x.mean())
    if n < 2:
        return Stats(mean, math.nan, math.nan, n)
    sd = float(x.std(ddof=1))
    ci = float(sps.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    return Stats(mean, sd, ci, n)


def is_headline(metric: str) -> bool:
    """Whether a metric is shown in the default (short) stdout table."""
    return any(p.search(metric) for p in _HEADLINE)


# ---------------------------------------------------------------------------------------------------- verdicts


def verdict_interval(estimate: float, half_width: float, low: float = -math.inf, high: float = math.inf) -> str:
    """Verdict on "the quantity lies in (low, high)" from an estimate and its CI half-width.

    Args:
        estimate: the measured mean.
        half_width: its 95 % CI half-width (NaN when unknown, e.g. n < 2).
        low: lower decision boundary (``-inf`` for a one-sided "< high" claim).
        high: upper decision boundary (``inf`` for a one-sided "> low" claim).

    Returns:
        ``"holds"`` when the whole CI is inside (low, high), ``"contradicted"`` when it lies entirely outside,
        ``"inconclusive"`` when it spans a boundary or the estimate / CI are not finite.
    """
    if not (math.isfinite(estimate) and math.isfinite(half_width)):
        return INCONCLUSIVE
    lo, hi = estimate - half_width, estimate + half_width
    if lo > low and hi < high:
        return HOLDS
    if hi <= low or lo >= high:
        return FAILS
    return INCONCLUSIVE


def verdict_value(estimate: float, half_width: float, paper: float) -> str:
    """Verdict on a signed value the paper reports (claim (f)): sign and value.

    Returns:
        ``"holds"`` when the estimate has the paper's sign and the CI contains the paper's value;
        ``"contradicted"`` when the CI excludes 0 on the other side of the paper's sign; otherwise (and for a
        non-finite estimate or CI) ``"inconclusive"``.
    """
    if not (math.isfinite(estimate) and math.isfinite(half_width)):
        return INCONCLUSIVE
    lo, hi = estimate - half_width, estimate + half_width
    if math.copysign(1.0, estimate) == math.copysign(1.0, paper) and lo <= paper <= hi:
        return HOLDS
    if (paper > 0 and hi < 0) or (paper < 0 and lo > 0):
        return FAILS
    return INCONCLUSIVE


def z_verdict(z: Stats) -> str:
    """Verdict on a z-score from its mean and 95% CI across runs: beyond +-:data:`Z_LEVEL` or inside."""
    if z.n < 2 or not (math.isfinite(z.mean) and math.isfinite(z.ci95)):
        return INCONCLUSIVE
    lo, hi = z.mean - z.ci95, z.mean + z.ci95
    if lo > Z_LEVEL:
        return ABOVE
    if hi < -Z_LEVEL:
        return BELOW
    if -Z_LEVEL < lo and hi < Z_LEVEL:
        return AS_NULL
    return INCONCLUSIVE


def combine_verdicts(verdicts: Sequence[str]) -> str:
    """A claim tested by several metrics: contradicted if any test is, holds if all hold, else inconclusive;
    tests that were not measured are left out (all not measured: not measured)."""
    measured = [v for v in verdicts if v != NOT_MEASURED]
    if not measured:
        return NOT_MEASURED
    if any(v == FAILS for v in measured):
        return FAILS
    if all(v == HOLDS for v in measured):
        return HOLDS
    return INCONCLUSIVE


Value = Callable[[Mapping[str, float]], float | None]


@dataclass(frozen=True)
class NullCheck:
    """The null model a claim's measurement is read against: per-run z-scores and what each outcome means."""

    z_key: str
    name: str
    differs: str  # the reading when the CI of z lies beyond +-Z_LEVEL
    same: str  # the reading when it lies inside
    mean_key: str | None = None  # the null's mean value of the statistic, shown beside z

    def verdict(self, runs: Sequence[Mapping[str, float]]) -> str:
        z = summarize(m[self.z_key] for m in runs if self.z_key in m)
        if z.n == 0:
            return f"{self.name}: {NOT_MEASURED}"
        v = z_verdict(z)
        reading = {ABOVE: self.differs, BELOW: self.differs, AS_NULL: self.same}.get(v, INCONCLUSIVE)
        text = f"{self.name}: **{reading}** (z = {_fmt(z.mean)} ± {_fmt(z.ci95)}"
        if self.mean_key:
            nm = summarize(m[self.mean_key] for m in runs if self.mean_key in m)
            if nm.n:
                text += f"; null r = {_fmt(nm.mean)}"
        return text + ")"


@dataclass(frozen=True)
class Claim:
    """One test of one claim of the paper.

    Attributes:
        claim: claim id, e.g. ``"(a)"``.
        statement: what the paper says.
        metric: the tested quantity (a metric key or an expression of metric keys).
        paper: the paper's value or statement for the tested quantity.
        rule: the decision rule, in words.
        value: per-run value of the tested quantity from the run's final metrics (None = missing).
        decide: ``(mean, ci95) -> verdict``.
        null: the null model read beside the verdict, if any.
        others: metric keys of the same statistic on other sides (shown beside the paper's side).
    """

    claim: str
    statement: str
    metric: str
    paper: str
    rule: str
    value: Value
    decide: Callable[[float, float], str]
    null: NullCheck | None = None
    others: tuple[tuple[str, str], ...] = ()


def _metric(key: str) -> Value:
    return lambda m: m.get(key)


def _abs_change(key: str, initial: str) -> Value:
    return lambda m: abs(m[key]) - abs(m[initial]) if key in m and initial in m else None


def _less_than_both(key: str, a: str, b: str) -> Value:
    """min(|a|, |b|) - |key| per run: > 0 when ``key`` is smaller in magnitude than both."""

    def value(m: Mapping[str, float]) -> float | None:
        if not all(k in m for k in (key, a, b)):
            return None
        return min(abs(m[a]), abs(m[b])) - abs(m[key])

    return value


def _side(layer: int, n_layers: int = 3) -> str:
    return PAPER_SIDE if layer < n_layers else "in"


def _claims() -> list[Claim]:
    out = []
    for l in (1, 2, 3):  # noqa: E741 - layer index, as in the paper
        out.append(Claim(
            "(a)", f"after training the weight mean shifts negative (W{l})", f"weights/w{l}/mean_shift", "< 0",
            "CI < 0 holds; CI > 0 contradicted", _metric(f"weights/w{l}/mean_shift"),
            lambda m, c: verdict_interval(m, c, high=0.0),
        ))  # fmt: skip
    for l in (1, 2, 3):  # noqa: E741
        out.append(Claim(
            "(a)", f"... and the skew grows (W{l})", f"|weights/w{l}/skewness| - |weights/w{l}/initial_skewness|",
            "> 0", "CI > 0 holds; CI < 0 contradicted",
            _abs_change(f"weights/w{l}/skewness", f"weights/w{l}/initial_skewness"),
            lambda m, c: verdict_interval(m, c, low=0.0),
        ))  # fmt: skip
    relative = (
        ("(a)", "the shift is clear in layers 1 and 3: W2 shifts less than W1 and W3", "Δmean", "mean_shift"),
        ("(a)", "... and so is the skew: W2's skew grows less than W1's and W3's", "Δskew", "skewness_shift"),
        ("(b)", "layer 2 is the closest to Gaussian (relative): W2 less skewed than W1, W3", "skew", "skewness"),
    )
    for i, (claim, statement, short, stat) in enumerate(relative):
        out.append(Claim(
            claim, statement, f"min(|{short} W1|, |{short} W3|) - |{short} W2|", "> 0",
            "CI > 0 holds (paired per run); CI < 0 contradicted",
            _less_than_both(f"weights/w2/{stat}", f"weights/w1/{stat}", f"weights/w3/{stat}"),
            lambda m, c: verdict_interval(m, c, low=0.0),
        ))  # fmt: skip
        if i == 1:  # the absolute reading of (b) before its relative one
            out.append(Claim(
                "(b)", "layer 2 stays close to Gaussian (absolute)", "|weights/w2/skewness|", "small",
                "CI < 0.5 holds; CI > 0.5 contradicted",
                lambda m: abs(m["weights/w2/skewness"]) if "weights/w2/skewness" in m else None,
                lambda m, c: verdict_interval(m, c, high=0.5),
            ))  # fmt: skip
    out.append(Claim(
        "(b)", "... but long-tailed", "weights/w2/excess_kurtosis", "> 0", "CI > 0 holds; CI < 0 contradicted",
        _metric("weights/w2/excess_kurtosis"), lambda m, c: verdict_interval(m, c, low=0.0),
    ))  # fmt: skip
    out.append(Claim(
        "(c)", "visible-unit strengths are almost all negative", "strength/v/out/frac_negative", "~1",
        "CI > 0.9 holds; CI < 0.9 contradicted", _metric("strength/v/out/frac_negative"),
        lambda m, c: verdict_interval(m, c, low=0.9),
    ))  # fmt: skip
    for key, reading in (
        ("strength/h3/in/max", "the top layer's in-strength"),
        ("strength/h2/out/max", "h2's out-strength, its weights to the top layer"),
    ):
        out.append(Claim(
            "(d)", f"top-layer strength reaches about 10 (read as {reading})", key, "~10",
            "CI in [5, 20] (within a factor 2) holds; CI outside contradicted", _metric(key),
            lambda m, c: verdict_interval(m, c, low=5.0, high=20.0),
        ))  # fmt: skip
    for l in (1, 2):  # noqa: E741
        key = f"clusters/h{l}/{PAPER_SIDE}/pearson_k_knn"
        out.append(Claim(
            "(e)", f"cluster mean degree and mean k_nn are uncorrelated (h{l})", key, "~0",
            f"CI inside ±{EQUIVALENCE_MARGIN:g} holds; CI outside ±{EQUIVALENCE_MARGIN:g} contradicted",
            _metric(key), lambda m, c: verdict_interval(m, c, low=-EQUIVALENCE_MARGIN, high=EQUIVALENCE_MARGIN),
            NullCheck(f"{key}/null_z", "degree-preserving rewiring", "beyond the degree sequence (learned)",
                      "explained by the degree sequence", f"{key}/null_mean"),
            tuple((s, f"clusters/h{l}/{s}/pearson_k_knn") for s in ("in", "total")),
        ))  # fmt: skip
    for l, r in PAPER_PEARSON_K_S.items():  # noqa: E741
        side = _side(l)
        key = f"clusters/h{l}/{side}/pearson_k_s"
        out.append(Claim(
            "(f)", f"cluster mean degree and mean strength: Pearson r (h{l}, {side})", key, f"{r:g}",
            "sign matches and the paper's value in CI holds; CI excludes 0 on the other side contradicted",
            _metric(key), lambda m, c, r=r: verdict_value(m, c, r),
            NullCheck(f"{key}/perm_z", "label permutation", "the EMD partition matters",
                      "as random partitions of the same sizes", f"{key}/perm_mean"),
            tuple((s, f"clusters/h{l}/{s}/pearson_k_s") for s in ("out", "in", "total") if s != side),
        ))  # fmt: skip
    return out


CLAIMS: list[Claim] = _claims()


def evaluate_claims(groups: Mapping[str, Sequence[Mapping[str, float]]]) -> list[dict[str, Any]]:
    """Rows of the paper-vs-measured table: one per group and claim test.

    Args:
        groups: group label -> the final metrics of each of its runs.

    Returns:
        Dicts with ``group, claim, statement, metric, paper, rule, mean, ci95, n, verdict, null, other_sides``;
        ``verdict`` is ``"not measured"`` when no run has the metric, ``null`` and ``other_sides`` are text
        (empty when the claim has none).
    """
    rows = []
    for c in CLAIMS:
        for label, runs in groups.items():
            values = [v for v in (c.value(m) for m in runs) if v is not None]
            s = summarize(values)
            others = []
            for side, key in c.others:
                o = summarize(m[key] for m in runs if key in m)
                if o.n:
                    others.append(f"{side}: {_fmt(o.mean)} ± {_fmt(o.ci95)}")
            rows.append({
                "group": label, "claim": c.claim, "statement": c.statement, "metric": c.metric,
                "paper": c.paper, "rule": c.rule, "mean": s.mean, "ci95": s.ci95, "n": s.n,
                "verdict": c.decide(s.mean, s.ci95) if s.n else NOT_MEASURED,
                "null": c.null.verdict(runs) if (c.null and s.n) else "",
                "other_sides": "; ".join(others),
            })  # fmt: skip
    return rows


# ------------------------------------------------------------------------------------------------ run selection


def _tracking_uri(arg: str | None) -> str:
    if arg:
        return arg
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{Path.cwd().resolve() / 'mlflow.db'}"


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


def select_runs(client: Any, experiment_id: str, parent: str | None, extra_filter: str | None) -> list[Any]:
    """The FINISHED runs to compare (children of ``parent`` / of any sweep, else all non-parent runs)."""
    query = "attributes.status = 'FINISHED'"
    if parent:
        query += f" and tags.mlflow.parentRunId = '{parent}'"
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
    params: Sequence[Mapping[str, str]], keys: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """Group label of each run from its params.

    Args:
        params: each run's params.
        keys: group by these keys only; ``None`` = every key except ``seed`` whose value differs between runs,
            less the keys whose value is determined by shorter ones (e.g. a resolved list of callback configs
            that interpolates a swept ``analysis.threshold.quantile``: it would only repeat it in the label).

    Returns:
        (label of each run, keys used). A label is ``"k=v, k2=v2"`` over the keys used (``"all"`` if none).
    """
    if keys is None:
        every = sorted({k for p in params for k in p} - {"seed"})
        varying = [k for k in every if len({p.get(k, "") for p in params}) > 1]
        kept: list[str] = []
        for k in sorted(varying, key=lambda k: (max(len(p.get(k, "")) for p in params), k)):
            if not (kept and _determined_by(params, kept, k)):
                kept.append(k)
        keys = [k for k in varying if k in kept]
    keys = list(keys)
    labels = [", ".join(f"{k}={p.get(k, '')}" for k in keys) or "all" for p in params]
    return labels, keys


# ------------------------------------------------------------------------------------------------------ output


def _fmt(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "–" if math.isnan(x) else str(x)
    return f"{x:.4g}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


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


def markdown_claims(rows: Sequence[Mapping[str, Any]]) -> str:
    """Markdown paper-vs-measured table."""
    head = ["group", "claim", "paper says", "metric", "paper", "rule", "measured (mean ± ci95)", "n", "verdict",
            "against its null", "other sides"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        measured = f"{_fmt(r['mean'])} ± {_fmt(r['ci95'])}" if r["n"] else "–"
        cells = [
            _md_escape(r["group"]), r["claim"], _md_escape(r["statement"]), f"`{_md_escape(r['metric'])}`",
            r["paper"], r["rule"], measured, str(r["n"]), f"**{r['verdict']}**", r.get("null", ""),
            r.get("other_sides", ""),
        ]  # fmt: skip
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
    p.add_argument("--group-by", default=None, help="comma-separated param keys (default: all varying but seed)")
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
        runs = select_runs(client, exp.experiment_id, args.parent, args.filter)
    except MlflowException as err:
        raise UsageError(f"search failed: {str(err).splitlines()[0]}") from err
    if not runs:
        what = f"children of {args.parent}" if args.parent else "runs"
        extra = f" matching {args.filter!r}" if args.filter else ""
        raise UsageError(f"no FINISHED {what}{extra} in experiment {args.experiment!r}")

    keys = [k.strip() for k in args.group_by.split(",") if k.strip()] if args.group_by else None
    labels, used = group_runs([r.data.params for r in runs], keys)
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
    """Write the reproduction report (:mod:`analysis.report`) with the figures of one run of the first group."""
    from analysis.report import RUN_FIGURES, write_report

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
