"""The regression verdict as Markdown for a pull-request comment: a table with ✅/❌ per headline, a line per task,
the reasons a run cannot be vouched for, and the one-line verdict."""

from __future__ import annotations

from tinyllava_bench.report.paired_stats import format_p
from tinyllava_bench.report.regress import MetricComparison, RegressionReport
from tinyllava_bench.report.table_render import markdown_escape

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
        f"Δ {c.metric} {change}; p = {format_p(test.p_value if test else None)}; {verdict}"
    )


def render_summary(report: RegressionReport) -> str:
    """A Markdown summary for a pull-request comment: a table with ✅/❌ per headline, a line per task saying what
    was compared, one line per reason the run cannot be vouched for, and a one-line verdict."""

    lines = [
        "### tinyllava-bench regress",
        "",
        f"Baseline: `{report.baseline.model_name}` ({markdown_escape(str(report.baseline.path))}) · "
        f"Current: `{report.current.model_name}` ({markdown_escape(str(report.current.path))}) · α = {report.alpha:g}",
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
            lines.append("| " + " | ".join(markdown_escape(text) for text in row) + " |")
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
        lines.extend(f"- {markdown_escape(note)}" for note in report.notes)
    lines += ["", f"**Verdict: {report.verdict()}**"]
    return "\n".join(lines) + "\n"
