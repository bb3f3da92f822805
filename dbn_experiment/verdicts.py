"""The claims of Testolin, Piccolini & Suweis (2018), *Deep learning systems as complex networks*, and the rules
that turn cross-seed statistics of the runs' final metrics into verdicts (holds / contradicted / inconclusive /
not measured). Pure: metric values in, table rows out; :mod:`dbn_experiment.compare` reads the runs, the report
(:mod:`dbn_experiment.report`) prints the rows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats as sps

HOLDS = "holds"
FAILS = "contradicted"
INCONCLUSIVE = "inconclusive"
NOT_MEASURED = "not measured"
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


# ------------------------------------------------------------------------------------------------------ output


def _fmt(x: float) -> str:
    if isinstance(x, float) and not math.isfinite(x):
        return "–" if math.isnan(x) else str(x)
    return f"{x:.4g}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|")


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
