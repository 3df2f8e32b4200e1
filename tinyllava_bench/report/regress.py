"""Regression verdict between a baseline and a current run: every metric's change, a paired significance test of
each task's headline from per-sample scores (report.paired_stats), and a pass/fail a CI job can act on
(report.regress_render writes it as Markdown)."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.paired_stats import (
    DEFAULT_ALPHA,
    PairedTest,
    SamplePairing,
    pair_samples,
    paired_test,
)
from tinyllava_bench.report.runs import Run, TaskResult, load_samples, samples_file

DEFAULT_TOLERANCE = 0.0
_TOLERANCE_SPEC = re.compile(r"^(?:(?P<task>[A-Za-z0-9_\-]+)\.)?(?P<metric>[A-Za-z0-9_.\-]+)=(?P<value>.+)$")

Status = Literal["pass", "fail", "unvouched", "info"]


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
