"""Regression verdict between a baseline and a current run: every metric's change, a paired significance test of
each task's headline from per-sample scores, and a pass/fail a CI job can act on."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.runs import Run, TaskResult, load_samples, sample_identity, samples_file

DEFAULT_ALPHA = 0.05
DEFAULT_TOLERANCE = 0.0
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
_TOLERANCE_SPEC = re.compile(r"^(?:(?P<task>[A-Za-z0-9_\-]+)\.)?(?P<metric>[A-Za-z0-9_.\-]+)=(?P<value>.+)$")

Status = Literal["pass", "fail", "untested", "info"]


def mcnemar_exact_p(lost: int, gained: int) -> float:
    """Two-sided exact McNemar p-value: under no change each discordant pair is a fair coin, so
    p = 2 * P(Binomial(lost + gained, 1/2) <= min(lost, gained)), capped at 1.

    Summed in log space, so it stays exact (to float precision) for any count; no normal approximation is used.
    """
    if lost < 0 or gained < 0:
        raise ValueError("discordant counts must be >= 0")
    n = lost + gained
    if n == 0:
        return 1.0
    smaller = min(lost, gained)
    ks = np.arange(smaller + 1, dtype=float)
    log_terms = (
        math.lgamma(n + 1)
        - np.array([math.lgamma(k + 1) + math.lgamma(n - k + 1) for k in ks])
        - n * math.log(2.0)
    )
    peak = log_terms.max()
    tail = math.exp(peak) * float(np.exp(log_terms - peak).sum())
    return min(1.0, 2.0 * tail)


def paired_bootstrap_ci(
    differences: Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile (1 - alpha) confidence interval of the mean of paired differences, resampling pairs with a fixed
    seed so the same inputs always give the same interval."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        raise ValueError("no paired differences")
    rng = np.random.default_rng(seed)
    means = np.empty(resamples)
    # Chunks keep memory at ~chunk * n indices even for 200k-sample tasks.
    chunk = max(1, min(resamples, 2_000_000 // values.size))
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        picks = rng.integers(0, values.size, size=(stop - start, values.size))
        means[start:stop] = values[picks].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


@dataclass(frozen=True)
class PairedTest:
    """A paired test of per-sample scores (current - baseline) on the samples both runs scored."""

    method: Literal["mcnemar-exact", "paired-bootstrap"]
    n_paired: int
    mean_baseline: float
    mean_current: float
    alpha: float
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    lost: int | None = None
    gained: int | None = None

    @property
    def mean_difference(self) -> float:
        return self.mean_current - self.mean_baseline

    @property
    def significant_drop(self) -> bool:
        if self.method == "mcnemar-exact":
            return (
                self.p_value is not None
                and self.p_value < self.alpha
                and (self.lost or 0) > (self.gained or 0)
            )
        return self.ci_high is not None and self.ci_high < 0

    def describe(self) -> str:
        if self.method == "mcnemar-exact":
            return (
                f"McNemar exact, {self.n_paired} pairs: {self.lost} lost / {self.gained} gained, "
                f"p = {_format_p(self.p_value)}"
            )
        level = round((1 - self.alpha) * 100)
        return (
            f"paired bootstrap, {self.n_paired} pairs: mean Δ {self.mean_difference:+.4f}, "
            f"{level}% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}]"
        )


def _format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


@dataclass(frozen=True)
class SamplePairing:
    """Per-sample scores of one task in both runs, paired by sample identity."""

    baseline: np.ndarray
    current: np.ndarray
    only_baseline: int
    only_current: int
    unscored: int  # in either run: errors and questions the task does not score (GQA's unbalanced ones)
    errored: int  # of the unscored: an error in either run
    unidentified: int


def _scored_by_identity(samples: Iterable[Mapping]) -> tuple[dict[tuple, float | None], set[tuple], int]:
    by_identity: dict[tuple, float | None] = {}
    errored: set[tuple] = set()
    unidentified = 0
    for sample in samples:
        identity = sample_identity(sample)
        if identity is None:
            unidentified += 1
            continue
        score = sample.get("score")
        valid = isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
        # A later line for the same sample (a resumed run) supersedes an earlier one.
        by_identity[identity] = float(score) if valid else None
        if sample.get("error"):
            errored.add(identity)
        else:
            errored.discard(identity)
    return by_identity, errored, unidentified


def pair_samples(baseline: Iterable[Mapping], current: Iterable[Mapping]) -> SamplePairing:
    """Pair two tasks' sample lines by question_id + index (or key); unscored and one-sided samples are counted
    and left out."""
    base, base_errored, base_unidentified = _scored_by_identity(baseline)
    curr, curr_errored, curr_unidentified = _scored_by_identity(current)
    common = [identity for identity in base if identity in curr]
    both_scored = [i for i in common if base[i] is not None and curr[i] is not None]
    unscored = [i for i in common if base[i] is None or curr[i] is None]
    return SamplePairing(
        baseline=np.array([base[i] for i in both_scored], dtype=float),
        current=np.array([curr[i] for i in both_scored], dtype=float),
        only_baseline=sum(1 for i in base if i not in curr),
        only_current=sum(1 for i in curr if i not in base),
        unscored=len(unscored),
        errored=sum(1 for i in unscored if i in base_errored or i in curr_errored),
        unidentified=base_unidentified + curr_unidentified,
    )


def paired_test(pairing: SamplePairing, *, alpha: float = DEFAULT_ALPHA) -> PairedTest | None:
    """McNemar when every paired score is 0 or 1, else a paired bootstrap; None with no pairs."""
    base, curr = pairing.baseline, pairing.current
    if base.size == 0:
        return None
    means = {
        "n_paired": int(base.size),
        "mean_baseline": float(base.mean()),
        "mean_current": float(curr.mean()),
    }
    if np.isin(base, (0.0, 1.0)).all() and np.isin(curr, (0.0, 1.0)).all():
        lost = int(((base == 1.0) & (curr == 0.0)).sum())
        gained = int(((base == 0.0) & (curr == 1.0)).sum())
        return PairedTest(
            "mcnemar-exact",
            **means,
            alpha=alpha,
            p_value=mcnemar_exact_p(lost, gained),
            lost=lost,
            gained=gained,
        )
    low, high = paired_bootstrap_ci(curr - base, alpha=alpha)
    return PairedTest("paired-bootstrap", **means, alpha=alpha, ci_low=low, ci_high=high)


def parse_tolerances(specs: Iterable[str]) -> dict[str, float]:
    """`TASK.METRIC=POINTS` or `METRIC=POINTS` (all tasks) into a {"task.metric" | "metric": points} map."""
    tolerances: dict[str, float] = {}
    for spec in specs:
        match = _TOLERANCE_SPEC.match(spec.strip())
        if not match:
            raise UserError(
                f"--tolerance {spec!r}: write METRIC=POINTS or TASK.METRIC=POINTS, e.g. gqa.accuracy=0.5"
            )
        try:
            value = float(match["value"])
        except ValueError:
            raise UserError(
                f"--tolerance {spec!r}: {match['value']!r} is not a number of metric points"
            ) from None
        if not math.isfinite(value) or value < 0:
            raise UserError(
                f"--tolerance {spec!r}: the tolerance must be a finite number >= 0 (metric points)"
            )
        name = f"{match['task']}.{match['metric']}" if match["task"] else match["metric"]
        tolerances[name] = value
    return tolerances


def _tolerance_for(task: str, metric: str, tolerances: Mapping[str, float]) -> tuple[float, str | None]:
    for name in (f"{task}.{metric}", metric):
        if name in tolerances:
            return tolerances[name], name
    return DEFAULT_TOLERANCE, None


@dataclass
class MetricComparison:
    """One metric of one task in both runs; only a task's headline gets a test and a pass/fail status."""

    task: str
    metric: str
    baseline: float | None
    current: float | None
    is_headline: bool
    status: Status
    tolerance: float | None = None
    test: PairedTest | None = None
    note: str = ""

    @property
    def change(self) -> float | None:
        return None if self.baseline is None or self.current is None else self.current - self.baseline


@dataclass
class RegressionReport:
    """Everything `regress` found; `failed` is the CI verdict."""

    baseline: Run
    current: Run
    alpha: float
    comparisons: list[MetricComparison]
    notes: list[str] = field(default_factory=list)

    @property
    def failures(self) -> list[MetricComparison]:
        return [c for c in self.comparisons if c.status == "fail"]

    @property
    def failed(self) -> bool:
        return bool(self.failures)

    def verdict(self) -> str:
        headlines = [c for c in self.comparisons if c.is_headline]
        untested = [f"{c.task}.{c.metric}" for c in headlines if c.status == "untested"]
        untested_text = f"; not tested: {', '.join(untested)}" if untested else ""
        if self.failed:
            worst = ", ".join(f"{c.task}.{c.metric} ({c.change:+.2f})" for c in self.failures)
            return (
                f"❌ FAIL: {len(self.failures)} headline metric(s) dropped significantly (α = {self.alpha:g}) "
                f"and by more than the tolerance: {worst}{untested_text}."
            )
        tested = len(headlines) - len(untested)
        return (
            f"✅ PASS: no headline metric dropped significantly (α = {self.alpha:g}) by more than its tolerance "
            f"({tested} tested{untested_text})."
        )


def _metric_order(baseline: TaskResult, current: TaskResult, headline: str | None) -> list[str]:
    order = [headline] if headline else []
    for name in [*baseline.metrics, *current.metrics]:
        if name not in order:
            order.append(name)
    return order


def _task_notes(name: str, baseline: TaskResult, current: TaskResult) -> list[str]:
    notes = []
    for label, before, after in (
        ("protocol", baseline.protocol, current.protocol),
        ("judge model", baseline.judge_model, current.judge_model),
        ("--limit", baseline.limit, current.limit),
        ("dataset revision", baseline.dataset.get("revision"), current.dataset.get("revision")),
        ("headline metric", baseline.headline, current.headline),
    ):
        if before != after:
            notes.append(
                f"{name}: {label} differs (baseline {before}, current {after}); the numbers may not compare."
            )
    return notes


def _pairing_notes(name: str, pairing: SamplePairing) -> list[str]:
    parts = []
    if pairing.only_baseline:
        parts.append(f"{pairing.only_baseline} only in the baseline")
    if pairing.only_current:
        parts.append(f"{pairing.only_current} only in the current run")
    if pairing.errored:
        parts.append(f"{pairing.errored} with an error in a run")
    if pairing.unscored - pairing.errored:
        parts.append(
            f"{pairing.unscored - pairing.errored} the task does not score (as GQA's unbalanced questions)"
        )
    if pairing.unidentified:
        parts.append(f"{pairing.unidentified} without question_id, index or key")
    if not parts:
        return []
    return [f"{name}: samples left out of the paired test: {', '.join(parts)}."]


def compare_runs(
    baseline: Run,
    current: Run,
    *,
    tolerances: Mapping[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
) -> RegressionReport:
    """Compare every task both runs have; a headline fails only on a significant drop larger than its tolerance."""
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: the significance level must be between 0 and 1 (e.g. 0.05)")
    tolerances = dict(tolerances or {})
    common = [name for name in baseline.tasks if name in current.tasks]
    if not common:
        raise UserError(
            f"{baseline.path} and {current.path} share no task; evaluate the current checkpoint on the baseline's "
            f"tasks ({', '.join(baseline.tasks) or 'none'})"
        )
    notes: list[str] = []
    used_tolerances: set[str] = set()
    comparisons: list[MetricComparison] = []
    for name in common:
        base_task, curr_task = baseline.tasks[name], current.tasks[name]
        headline = base_task.headline or curr_task.headline
        notes += _task_notes(name, base_task, curr_task)
        for metric in _metric_order(base_task, curr_task, headline):
            comparison = MetricComparison(
                task=name,
                metric=metric,
                baseline=base_task.metrics.get(metric),
                current=curr_task.metrics.get(metric),
                is_headline=metric == headline,
                status="info",
            )
            if comparison.is_headline:
                tolerance, tolerance_name = _tolerance_for(name, metric, tolerances)
                if tolerance_name:
                    used_tolerances.add(tolerance_name)
                comparison.tolerance = tolerance
                _judge_headline(comparison, baseline, current, alpha, notes)
            comparisons.append(comparison)
    for only_run, other, where in ((baseline, current, "baseline"), (current, baseline, "current run")):
        missing = [name for name in only_run.tasks if name not in other.tasks]
        if missing:
            notes.append(f"Only in the {where}, not compared: {', '.join(missing)}.")
    unused = sorted(set(tolerances) - used_tolerances)
    if unused:
        notes.append(f"Tolerances that matched no compared headline metric: {', '.join(unused)}.")
    notes.append(
        "The paired test uses each task's per-sample `score` (McNemar for 0/1 scores, else a bootstrap of the mean "
        "difference); for POPE F1 and MME scores that is per-question correctness, not the aggregate itself. "
        "Other metrics are shown without a test."
    )
    return RegressionReport(
        baseline=baseline, current=current, alpha=alpha, comparisons=comparisons, notes=notes
    )


def _judge_headline(
    comparison: MetricComparison, baseline: Run, current: Run, alpha: float, notes: list[str]
) -> None:
    name = comparison.task
    files = [samples_file(baseline, name), samples_file(current, name)]
    missing = [str(f) for f in files if not f.is_file()]
    if comparison.change is None:
        comparison.status, comparison.note = "untested", "metric missing in one run"
        return
    if missing:
        comparison.status, comparison.note = "untested", "no per-sample file"
        notes.append(f"{name}: cannot test without {', '.join(missing)}.")
        return
    pairing = pair_samples(load_samples(files[0]), load_samples(files[1]))
    notes += _pairing_notes(name, pairing)
    comparison.test = paired_test(pairing, alpha=alpha)
    if comparison.test is None:
        comparison.status, comparison.note = "untested", "no sample scored in both runs"
        return
    dropped_beyond = comparison.change < -(comparison.tolerance or 0.0)
    if comparison.test.significant_drop and dropped_beyond:
        comparison.status = "fail"
    else:
        comparison.status = "pass"
        if comparison.test.significant_drop:
            comparison.note = "significant drop, within tolerance"


_STATUS_MARK = {"pass": "✅", "fail": "❌", "untested": "⚠️", "info": ""}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def render_summary(report: RegressionReport) -> str:
    """A Markdown summary for a pull-request comment: a table with ✅/❌ per headline and a one-line verdict."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "### tinyllava-bench regress",
        "",
        f"Baseline: `{report.baseline.model_name}` ({escape(str(report.baseline.path))}) · "
        f"Current: `{report.current.model_name}` ({escape(str(report.current.path))}) · α = {report.alpha:g}",
        "",
        "| | Task | Metric | Baseline | Current | Change | Tolerance | Paired test |",
        "|:-:|:--|:--|--:|--:|--:|--:|:--|",
    ]
    for c in report.comparisons:
        metric = f"**{c.metric}** (headline)" if c.is_headline else c.metric
        change = "" if c.change is None else f"{c.change:+.2f}"
        if c.is_headline:
            test = c.test.describe() if c.test else "not tested"
            if c.note:
                test += f" ({c.note})"
        else:
            test = "not tested (not the headline)"
        tolerance = "" if c.tolerance is None else f"{c.tolerance:g}"
        row = [
            _STATUS_MARK[c.status],
            c.task,
            metric,
            _number(c.baseline),
            _number(c.current),
            change,
            tolerance,
            test,
        ]
        lines.append("| " + " | ".join(escape(text) for text in row) + " |")
    if report.notes:
        lines.append("")
        lines.extend(f"- {escape(note)}" for note in report.notes)
    lines += ["", f"**Verdict: {report.verdict()}**"]
    return "\n".join(lines) + "\n"
