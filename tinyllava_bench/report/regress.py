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

Status = Literal["pass", "fail", "unvouched", "info"]


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


def _bootstrap_means(values: np.ndarray, *, resamples: int, seed: int) -> np.ndarray:
    """Means of `resamples` resamples of `values` (pairs drawn with replacement), with a fixed seed."""
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
    return means


def paired_bootstrap_ci(
    differences: Sequence[float] | np.ndarray,
    *,
    alpha: float = DEFAULT_ALPHA,
    resamples: int = BOOTSTRAP_RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[float, float]:
    """Percentile (1 - alpha) confidence interval of the mean of paired differences, resampling pairs with a fixed
    seed so the same inputs always give the same interval."""
    means = _bootstrap_means(np.asarray(differences, dtype=float), resamples=resamples, seed=seed)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


def _bootstrap_p(means: np.ndarray) -> float:
    """Two-sided bootstrap p-value of "the mean difference is 0": twice the smaller share of resampled means on
    either side of 0, with the +1 correction so that it is never 0 from a finite number of resamples."""
    below = int((means <= 0).sum())
    above = int((means >= 0).sum())
    return min(1.0, 2.0 * (min(below, above) + 1) / (means.size + 1))


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
            f"{level}% CI [{self.ci_low:+.4f}, {self.ci_high:+.4f}], p = {_format_p(self.p_value)}"
        )

    @property
    def label(self) -> str:
        return "McNemar exact" if self.method == "mcnemar-exact" else "paired bootstrap"


def _format_p(p: float | None) -> str:
    if p is None:
        return "-"
    return f"{p:.3g}" if p >= 1e-4 else f"{p:.1e}"


@dataclass(frozen=True)
class SamplePairing:
    """Per-sample scores of one task in both runs, paired by sample identity, and what the current run lacks."""

    baseline: np.ndarray
    current: np.ndarray
    only_baseline: int
    only_current: int
    unscored: int  # in either run: errors and questions the task does not score (GQA's unbalanced ones)
    errored: int  # of the unscored: an error in either run
    unidentified: int
    # Samples the baseline scored that the current run lacks, or has without a score and without an error.
    missing: tuple[str, ...] = ()
    unscored_in_current: tuple[str, ...] = ()
    # Every sample of the current run with an error, paired or not: (sample, error message).
    current_errors: tuple[tuple[str, str], ...] = ()


def _label(identity: tuple) -> str:
    """How a report names one sample: its question_id, else its index, else its key."""
    if identity[0] == "row":
        return identity[1] or identity[2]
    return identity[1]


@dataclass
class _ScoredSamples:
    scores: dict[tuple, float | None] = field(default_factory=dict)
    errors: dict[tuple, str] = field(default_factory=dict)
    unidentified_errors: list[str] = field(default_factory=list)
    unidentified: int = 0


def _scored_by_identity(samples: Iterable[Mapping]) -> _ScoredSamples:
    found = _ScoredSamples()
    for sample in samples:
        identity = sample_identity(sample)
        error = sample.get("error")
        if identity is None:
            found.unidentified += 1
            if error:
                found.unidentified_errors.append(str(error))
            continue
        score = sample.get("score")
        valid = isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score)
        # A later line for the same sample (a resumed run) supersedes an earlier one.
        found.scores[identity] = float(score) if valid else None
        if error:
            found.errors[identity] = str(error)
        else:
            found.errors.pop(identity, None)
    return found


def pair_samples(baseline: Iterable[Mapping], current: Iterable[Mapping]) -> SamplePairing:
    """Pair two tasks' sample lines by question_id + index (or key); unscored and one-sided samples are counted
    and left out."""
    base_found, curr_found = _scored_by_identity(baseline), _scored_by_identity(current)
    base, curr = base_found.scores, curr_found.scores
    common = [identity for identity in base if identity in curr]
    both_scored = [i for i in common if base[i] is not None and curr[i] is not None]
    unscored = [i for i in common if base[i] is None or curr[i] is None]
    errored = set(base_found.errors) | set(curr_found.errors)
    scored_by_baseline = [i for i in base if base[i] is not None]
    return SamplePairing(
        baseline=np.array([base[i] for i in both_scored], dtype=float),
        current=np.array([curr[i] for i in both_scored], dtype=float),
        only_baseline=sum(1 for i in base if i not in curr),
        only_current=sum(1 for i in curr if i not in base),
        unscored=len(unscored),
        errored=sum(1 for i in unscored if i in errored),
        unidentified=base_found.unidentified + curr_found.unidentified,
        missing=tuple(_label(i) for i in scored_by_baseline if i not in curr),
        unscored_in_current=tuple(
            _label(i)
            for i in scored_by_baseline
            if i in curr and curr[i] is None and i not in curr_found.errors
        ),
        current_errors=(
            *((_label(i), message) for i, message in curr_found.errors.items()),
            *(("(no id)", message) for message in curr_found.unidentified_errors),
        ),
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
    resampled = _bootstrap_means(curr - base, resamples=BOOTSTRAP_RESAMPLES, seed=BOOTSTRAP_SEED)
    low, high = np.quantile(resampled, [alpha / 2, 1 - alpha / 2])
    return PairedTest(
        "paired-bootstrap",
        **means,
        alpha=alpha,
        p_value=_bootstrap_p(resampled),
        ci_low=float(low),
        ci_high=float(high),
    )


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


def _metrics_by_task(baseline: Run, current: Run) -> dict[str, set[str]]:
    """Every task of either run with the metric names it has in either run (numbers or not)."""
    found: dict[str, set[str]] = {}
    for run in (baseline, current):
        for name, task in run.tasks.items():
            found.setdefault(name, set()).update(task.metrics, task.invalid_metrics)
    return found


def _some(names: Sequence[str], limit: int = 8) -> str:
    return ", ".join(names[:limit]) + (", …" if len(names) > limit else "")


def _check_tolerance_names(tolerances: Mapping[str, float], baseline: Run, current: Run) -> None:
    """A tolerance that names no task or metric of the two runs is a typo that would otherwise be ignored."""
    metrics_by_task = _metrics_by_task(baseline, current)
    all_metrics = set().union(*metrics_by_task.values())
    for name in tolerances:
        task, dot, metric = name.partition(".")
        if dot and task in metrics_by_task:
            if metric not in metrics_by_task[task]:
                raise UserError(
                    f"--tolerance {name}=…: task {task} has no metric {metric!r} "
                    f"(it has {_some(sorted(metrics_by_task[task]))}); fix the name"
                )
        elif name not in metrics_by_task and name not in all_metrics:
            raise UserError(
                f"--tolerance {name}=…: {name!r} is no task or metric of the two runs; give TASK=POINTS "
                f"(tasks: {_some(sorted(metrics_by_task))}), TASK.METRIC=POINTS or METRIC=POINTS"
            )


def _tolerance_for(
    task: str, metric: str, tolerances: Mapping[str, float], task_names: set[str]
) -> tuple[float, str | None]:
    """A headline's tolerance, most specific first: TASK.METRIC, then TASK, then METRIC (unless it names a task)."""
    for name in (f"{task}.{metric}", task):
        if name in tolerances:
            return tolerances[name], name
    if metric in tolerances and metric not in task_names:
        return tolerances[metric], metric
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
    """Everything `regress` found; `failed` is the CI verdict.

    `problems` are why the current run cannot be vouched for (each fails the verdict); `differences` are what
    makes the two runs not like for like (data, protocol, scorer): they refuse the comparison unless
    `allow_data_change`, which compares and says so."""

    baseline: Run
    current: Run
    alpha: float
    comparisons: list[MetricComparison]
    notes: list[str] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)
    differences: list[tuple[str, str]] = field(default_factory=list)
    allow_data_change: bool = False

    @property
    def failures(self) -> list[MetricComparison]:
        """Headlines that dropped significantly and beyond their tolerance: the regressions."""
        return [c for c in self.comparisons if c.status == "fail"]

    @property
    def refused(self) -> bool:
        return bool(self.differences) and not self.allow_data_change

    @property
    def failed(self) -> bool:
        return self.refused or bool(self.problems) or bool(self.failures)

    def verdict(self) -> str:
        if self.refused:
            return (
                "❌ REFUSED: the runs differ in data, protocol or scorer (listed above), so a change in their numbers "
                "would not be the checkpoint's; regenerate the baseline with the current run's data, protocol and "
                "scorer, or pass --allow-data-change to compare anyway."
            )
        allowed = ""
        if self.differences:
            allowed = " Compared despite these differences (--allow-data-change): " + "; ".join(
                f"{task}: {text}" for task, text in self.differences
            )
            allowed += "."
        if self.failed:
            parts = []
            if self.failures:
                worst = ", ".join(f"{c.task}.{c.metric} ({c.change:+.2f})" for c in self.failures)
                parts.append(
                    f"{len(self.failures)} headline metric(s) dropped significantly (α = {self.alpha:g}) "
                    f"and by more than the tolerance: {worst}"
                )
            if self.problems:
                tasks = ", ".join(dict.fromkeys(task for task, _ in self.problems))
                parts.append(f"cannot vouch for {tasks} ({len(self.problems)} reason(s) listed above)")
            return f"❌ FAIL: {'; '.join(parts)}.{allowed}"
        tested = sum(1 for c in self.comparisons if c.is_headline)
        return (
            f"✅ PASS: no headline metric dropped significantly (α = {self.alpha:g}) by more than its tolerance "
            f"({tested} tested).{allowed}"
        )


def _metric_order(baseline: TaskResult, current: TaskResult, headline: str | None) -> list[str]:
    order = [headline] if headline else []
    for task in (baseline, current):
        for name in [*task.metrics, *task.invalid_metrics]:
            if name not in order:
                order.append(name)
    return order


# What identifies the data a task ran on; `local_path` and `rows` are left out: the same file at another path (a
# CI checkout) is the same data, and the fingerprint covers the content.
_DATA_IDENTITY = ("id", "config", "split", "revision", "fingerprint")


def _differences(baseline: TaskResult, current: TaskResult) -> list[str]:
    """What makes one task of the two runs not like for like: its data, protocol or scorer."""
    found = []
    if baseline.dataset.get("fingerprint") is None and current.dataset.get("fingerprint") is None:
        found.append(
            "neither run records its dataset fingerprint, so the data cannot be checked; re-run `eval` "
            "(it records it) or pass --allow-data-change"
        )
    for key in _DATA_IDENTITY:
        before, after = baseline.dataset.get(key), current.dataset.get(key)
        if before != after:
            found.append(f"dataset {key} differs (baseline {before}, current {after})")
    for label, before, after in (
        ("protocol", baseline.protocol, current.protocol),
        ("scorer", baseline.scorer, current.scorer),
        ("judge model", baseline.judge_model, current.judge_model),
    ):
        if before != after:
            found.append(f"{label} differs (baseline {before}, current {after})")
    return found


def _task_notes(name: str, baseline: TaskResult, current: TaskResult) -> list[str]:
    notes = []
    for label, before, after in (
        ("--limit", baseline.limit, current.limit),
        ("headline metric", baseline.headline, current.headline),
    ):
        if before != after:
            notes.append(
                f"{name}: {label} differs (baseline {before}, current {after}); the numbers may not compare."
            )
    return notes


def _metric_problems(baseline: TaskResult, current: TaskResult, headline: str | None) -> list[str]:
    """Metrics a verdict cannot rest on: not numbers in either run, or the baseline's missing in the current."""
    if headline is None:
        return ["neither run names its headline metric, so nothing can be tested"]
    problems = []
    for owner, task in (("the baseline's", baseline), ("the current run's", current)):
        problems += [
            f"{owner} {name} is not a number ({value})" for name, value in task.invalid_metrics.items()
        ]
    if headline not in baseline.metrics and headline not in baseline.invalid_metrics:
        problems.append(f"the baseline has no {headline} metric")
    for name in dict.fromkeys([headline, *baseline.metrics]):
        if name not in current.metrics and name not in current.invalid_metrics:
            problems.append(f"the current run has no {name} metric")
    return problems


def _first(labels: Sequence[str]) -> str:
    return ", ".join(labels[:3])


def _pairing_problems(pairing: SamplePairing) -> list[str]:
    problems = []
    if pairing.missing:
        problems.append(
            f"{len(pairing.missing)} sample(s) the baseline scored are missing from the current run "
            f"(first: {_first(pairing.missing)})"
        )
    if pairing.unscored_in_current:
        problems.append(
            f"{len(pairing.unscored_in_current)} sample(s) the baseline scored have no score and no error in the "
            f"current run (first: {_first(pairing.unscored_in_current)})"
        )
    if pairing.current_errors:
        label, message = pairing.current_errors[0]
        message = " ".join(message.split())
        message = message if len(message) <= 80 else message[:79] + "…"
        problems.append(
            f"{len(pairing.current_errors)} sample(s) errored in the current run (first: {label}: {message})"
        )
    return problems


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
    allow_data_change: bool = False,
) -> RegressionReport:
    """Compare every task both runs have. A headline fails on a significant drop larger than its tolerance; the
    report fails too when the current run cannot be vouched for, and refuses runs on different data, protocol or
    scorer unless `allow_data_change`."""
    if not 0 < alpha < 1:
        raise UserError(f"--alpha {alpha}: the significance level must be between 0 and 1 (e.g. 0.05)")
    tolerances = dict(tolerances or {})
    common = [name for name in baseline.tasks if name in current.tasks]
    if not common:
        raise UserError(
            f"{baseline.path} and {current.path} share no task; evaluate the current checkpoint on the baseline's "
            f"tasks ({', '.join(baseline.tasks) or 'none'})"
        )
    _check_tolerance_names(tolerances, baseline, current)
    report = RegressionReport(
        baseline=baseline, current=current, alpha=alpha, comparisons=[], allow_data_change=allow_data_change
    )
    for name in common:
        report.differences += [
            (name, text) for text in _differences(baseline.tasks[name], current.tasks[name])
        ]
    for only_run, other, where in ((baseline, current, "baseline"), (current, baseline, "current run")):
        missing = [name for name in only_run.tasks if name not in other.tasks]
        if missing:
            report.notes.append(f"Only in the {where}, not compared: {', '.join(missing)}.")
    if report.refused:
        return report
    task_names = set(baseline.tasks) | set(current.tasks)
    used_tolerances: set[str] = set()
    for name in common:
        base_task, curr_task = baseline.tasks[name], current.tasks[name]
        headline = base_task.headline or curr_task.headline
        report.notes += _task_notes(name, base_task, curr_task)
        problems = _metric_problems(base_task, curr_task, headline)
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
                tolerance, tolerance_name = _tolerance_for(name, metric, tolerances, task_names)
                if tolerance_name:
                    used_tolerances.add(tolerance_name)
                comparison.tolerance = tolerance
                problems += _judge_headline(comparison, baseline, current, alpha, report.notes)
                if problems and comparison.status != "fail":
                    comparison.status = "unvouched"
            report.comparisons.append(comparison)
        report.problems += [(name, text) for text in problems]
    unused = sorted(set(tolerances) - used_tolerances)
    if unused:
        report.notes.append(f"Tolerances that matched no compared headline metric: {', '.join(unused)}.")
    report.notes.append(
        "The paired test uses each task's per-sample `score` (McNemar for 0/1 scores, else a bootstrap of the mean "
        "difference); for POPE F1 and MME scores that is per-question correctness, not the aggregate itself. "
        "Other metrics are shown without a test."
    )
    return report


def _judge_headline(
    comparison: MetricComparison, baseline: Run, current: Run, alpha: float, notes: list[str]
) -> list[str]:
    """Test one headline on its paired samples; returns why the current run cannot be vouched for, if it cannot."""
    name = comparison.task
    base_task, curr_task = baseline.tasks[name], current.tasks[name]
    problems = []
    files = [samples_file(baseline, name), samples_file(current, name)]
    missing_files = [f for f in files if not f.is_file()]
    pairing = None
    if missing_files:
        problems += [
            f"no per-sample file {f}, so the drop cannot be tested; keep samples_{name}.jsonl in both run folders"
            for f in missing_files
        ]
        before, after = base_task.n_samples, curr_task.n_samples
        if before is not None and (after is None or after < before):
            problems.append(
                f"the current run covers {after if after is not None else 'no'} sample(s), the baseline {before}"
            )
    else:
        pairing = pair_samples(load_samples(files[0]), load_samples(files[1]))
        notes += _pairing_notes(name, pairing)
        problems += _pairing_problems(pairing)
        comparison.test = paired_test(pairing, alpha=alpha)
        if comparison.test is None:
            problems.append("no sample is scored in both runs, so the drop cannot be tested")
    # Counts results.json keeps (errors the samples file already showed are not counted twice).
    if curr_task.n_errors and not (pairing and pairing.current_errors):
        problems.append(
            f"results.json counts {curr_task.n_errors} errored sample(s) (n_errors) in the current run"
        )
    if curr_task.n_judge_failures:
        problems.append(
            f"results.json counts {curr_task.n_judge_failures} failed judge review(s) (n_judge_failures) in the "
            "current run"
        )
    if comparison.test is None or comparison.change is None:
        comparison.status = "unvouched"
        return problems
    dropped_beyond = comparison.change < -(comparison.tolerance or 0.0)
    if comparison.test.significant_drop and dropped_beyond:
        comparison.status = "fail"
    else:
        comparison.status = "pass"
        if comparison.test.significant_drop:
            comparison.note = "significant drop, within tolerance"
    return problems


_STATUS_MARK = {"pass": "✅", "fail": "❌", "unvouched": "❌", "info": ""}


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _task_line(report: RegressionReport, c: MetricComparison) -> str:
    """What was compared for one task: samples paired, test, change, p-value, verdict."""
    test = c.test
    change = "-" if c.change is None else f"{c.change:+.2f}"
    vouched = not any(task == c.task for task, _ in report.problems)
    if c.status == "fail":
        verdict = "❌ regression" if vouched else "❌ regression; cannot vouch"
    elif not vouched or c.status == "unvouched":
        verdict = "❌ cannot vouch"
    else:
        verdict = "✅ pass" + (f" ({c.note})" if c.note else "")
    return (
        f"- {c.task}: {test.n_paired if test else 0} sample(s) paired; {test.label if test else 'no test'}; "
        f"Δ {c.metric} {change}; p = {_format_p(test.p_value if test else None)}; {verdict}"
    )


def render_summary(report: RegressionReport) -> str:
    """A Markdown summary for a pull-request comment: a table with ✅/❌ per headline, a line per task saying what
    was compared, one line per reason the run cannot be vouched for, and a one-line verdict."""

    def escape(text: str) -> str:
        return text.replace("|", "\\|")

    lines = [
        "### tinyllava-bench regress",
        "",
        f"Baseline: `{report.baseline.model_name}` ({escape(str(report.baseline.path))}) · "
        f"Current: `{report.current.model_name}` ({escape(str(report.current.path))}) · α = {report.alpha:g}",
        "",
    ]
    if report.refused:
        lines += ["Not compared: the runs differ in what decides their numbers.", ""]
        lines += [f"- ❌ {task}: {text}." for task, text in report.differences]
    else:
        lines += [
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
        lines += ["", "Per task:", ""]
        lines += [_task_line(report, c) for c in report.comparisons if c.is_headline]
        if report.problems:
            lines += ["", "Cannot vouch for the current run:", ""]
            lines += [f"- ❌ {task}: {text}." for task, text in report.problems]
        if report.differences:
            lines += ["", "Compared although the runs differ (--allow-data-change):", ""]
            lines += [f"- ⚠️ {task}: {text}." for task, text in report.differences]
    if report.notes:
        lines.append("")
        lines.extend(f"- {escape(note)}" for note in report.notes)
    lines += ["", f"**Verdict: {report.verdict()}**"]
    return "\n".join(lines) + "\n"
