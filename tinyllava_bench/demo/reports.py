"""The demo's reports from its run folders: ablation table, leaderboard, plots, and regress's paired tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllava_bench.demo.settings import ABLATION_AXIS


def write_reports(
    output: Path, run_folders: list[Path], blind: dict[str, float | None] | None = None
) -> tuple[Path, str, Path, list[Path], dict[str, dict[str, float | None]]]:
    """The ablation table (markdown), the leaderboard CSV and the plots (with the blind scores drawn on the
    benchmark panels), from the run folders."""
    from tinyllava_bench.report.leaderboard import write_leaderboard
    from tinyllava_bench.report.plots import write_plots
    from tinyllava_bench.report.runs import load_runs
    from tinyllava_bench.report.tables import render_table, results_table

    runs = load_runs(run_folders)
    table = results_table(runs, group_by=ABLATION_AXIS)
    markdown = render_table(table, "md")
    table_path = output / "ablation.md"
    table_path.write_text(markdown, encoding="utf-8")
    leaderboard = write_leaderboard(runs, output / "leaderboard.csv").path
    plots = write_plots(table, output / "plots", blind)
    # run folders are named after their variants
    scores = {run.path.name: {name: task.headline_value for name, task in run.tasks.items()} for run in runs}
    return table_path, markdown, Path(leaderboard), plots, scores


def regress_summary(baseline: Path, current: Path) -> dict[str, dict[str, Any]]:
    """`regress --baseline baseline --current current` per task: the headline's change and its paired test."""
    from tinyllava_bench.report.regress import compare_runs
    from tinyllava_bench.report.runs import load_runs

    base_run, current_run = load_runs([baseline, current])
    report = compare_runs(base_run, current_run)
    out: dict[str, dict[str, Any]] = {}
    for comparison in report.comparisons:
        if not comparison.is_headline:
            continue
        test = comparison.test
        out[comparison.task] = {
            "metric": comparison.metric,
            "baseline": comparison.baseline,
            "current": comparison.current,
            "method": test.method if test else None,
            "p_value": test.p_value if test else None,
            "lost": test.lost if test else None,
            "gained": test.gained if test else None,
            "significant": bool(test and test.p_value is not None and test.p_value < test.alpha),
            "status": comparison.status,
        }
    return out
