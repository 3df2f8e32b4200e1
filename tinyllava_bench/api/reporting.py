"""`report` and `regress`: tables and plots from run folders, and the regression verdict between two runs."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tinyllava_bench.api.results import PathLike, RegressResult, ReportResult
from tinyllava_bench.errors import EXIT_FAILED, EXIT_OK, UserError


def report(
    runs: Sequence[PathLike] = (),
    *,
    paper: bool = False,
    group_by: str | None = None,
    format: str = "md",
    out: PathLike | None = None,
    plots: PathLike | None = None,
    blind_scores: PathLike | None = None,
) -> ReportResult:
    """The paper-shaped table of `runs` (run folders, or folders holding them), rendered as `format`.

    The keywords are `tinyllava-bench report`'s flags: `paper` adds the paper's number and the difference
    beside each measured one (with no runs: the paper's Table A1), `group_by` a card axis for the ablation view.
    The table is written to `out` when given, PNG charts into `plots`.
    """
    from tinyllava_bench.report.runs import load_runs
    from tinyllava_bench.report.table_render import render_table
    from tinyllava_bench.report.tables import paper_table, results_table

    if runs:
        table = results_table(load_runs([str(run) for run in runs]), paper=paper, group_by=group_by)
    elif paper:
        table = paper_table(group_by=group_by)
    else:
        raise UserError(
            "give at least one run folder (RUN ...), or --paper alone to print the paper's Table A1"
        )
    if blind_scores and not plots:
        raise UserError("--blind-scores is drawn on the plots: add --plots DIR")
    baseline = None
    if blind_scores:
        from tinyllava_bench.report.plots import read_baseline

        baseline = read_baseline(Path(blind_scores))
    text = render_table(table, format)
    out_path = _write_text(text, out)
    written: list[Path] = []
    if plots:
        from tinyllava_bench.report.plots import write_plots

        written = [Path(path) for path in write_plots(table, Path(plots), baseline=baseline)]
    return ReportResult(table=text, out=out_path, plots=written)


def regress(
    *,
    baseline: PathLike,
    current: PathLike,
    tolerance: Sequence[str] | None = None,
    alpha: float = 0.05,
    allow_data_change: bool = False,
    out: PathLike | None = None,
) -> RegressResult:
    """Did `current` get worse than `baseline` (two run folders)? Paired tests on the tasks both ran.

    The keywords are `tinyllava-bench regress`'s flags; `tolerance` holds "NAME=POINTS" entries (gqa=0.5,
    gqa.accuracy=0.5, accuracy=0.5). `exit_status` 1 (`failed`) on a regression, a current run that cannot be
    vouched for, or runs on different data, protocol or scorer without `allow_data_change`. The Markdown summary
    is written to `out` when given.
    """
    from tinyllava_bench.report.regress import compare_runs, parse_tolerances
    from tinyllava_bench.report.regress_render import render_summary
    from tinyllava_bench.report.runs import load_run

    tolerances = parse_tolerances(tolerance or [])
    found = compare_runs(
        load_run(Path(baseline)),
        load_run(Path(current)),
        tolerances=tolerances,
        alpha=alpha,
        allow_data_change=allow_data_change,
    )
    summary = render_summary(found)
    return RegressResult(
        summary=summary,
        failed=found.failed,
        exit_status=EXIT_FAILED if found.failed else EXIT_OK,
        report=found,
        out=_write_text(summary, out),
    )


def _write_text(text: str, out: PathLike | None) -> Path | None:
    if out is None:
        return None
    from tinyllava_bench.json_files import write_atomic

    path = Path(out)
    write_atomic(path, text, kept="an earlier file there is left as it was")
    return path
