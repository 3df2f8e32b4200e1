"""CLI verbs `report`, `leaderboard`, `regress` and `view`; light at import (pandas, numpy, matplotlib load on use)."""

from __future__ import annotations

import argparse
import sys

from tinyllava_bench.report.runs import CARD_AXES
from tinyllava_bench.report.tables import TABLE_FORMATS


def run_report(args: argparse.Namespace) -> int:
    from tinyllava_bench.api import report

    result = report(
        args.runs,
        paper=args.paper,
        group_by=args.group_by,
        format=args.format,
        out=args.out,
        plots=args.plots,
        blind_scores=args.blind_scores,
    )
    if result.out is None:
        sys.stdout.write(result.table)
    else:
        print(f"wrote {result.out}", file=sys.stderr)
    for path in result.plots:
        print(f"wrote {path}", file=sys.stderr)
    return 0


def run_leaderboard(args: argparse.Namespace) -> int:
    from tinyllava_bench.report.leaderboard import write_leaderboard
    from tinyllava_bench.report.runs import load_runs

    update = write_leaderboard(load_runs(args.runs), args.out, append=args.append)
    for notice in update.notices:
        print(notice, file=sys.stderr)
    print(
        f"{update.path}: {update.added} row(s) added, {update.replaced} replaced, {update.total} in total",
        file=sys.stderr,
    )
    return 0


def run_regress(args: argparse.Namespace) -> int:
    from tinyllava_bench.api import regress

    result = regress(
        baseline=args.baseline,
        current=args.current,
        tolerance=args.tolerance,
        alpha=args.alpha,
        allow_data_change=args.allow_data_change,
        out=args.out,
    )
    sys.stdout.write(result.summary)
    if result.out is not None:
        print(f"wrote {result.out}", file=sys.stderr)
    return result.exit_status


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the report, leaderboard, regress and view verbs."""
    report = subparsers.add_parser(
        "report",
        help="paper-shaped tables (and plots) from run folders",
        description=(
            "Models by benchmark in the paper's order (VQAv2, GQA, SQA-I, TextVQA, MM-Vet, POPE, LLaVA-W, MME), "
            "headline metric per task, one decimal. `report --paper` with no RUN prints the paper's Table A1."
        ),
    )
    report.add_argument(
        "runs",
        nargs="*",
        metavar="RUN",
        help="run folders written by `eval --output`, or folders holding them",
    )
    report.add_argument("--format", choices=TABLE_FORMATS, default="md", help="table format (default: md)")
    report.add_argument(
        "--paper",
        action="store_true",
        help="show the paper's number and the difference beside each measured one",
    )
    report.add_argument(
        "--group-by",
        choices=CARD_AXES,
        help="ablation view: group rows by the other card axes, this one varying, differences to each group's first row",
    )
    report.add_argument("--out", metavar="FILE", help="write the table here instead of stdout")
    report.add_argument("--plots", metavar="DIR", help="also write PNG charts into DIR")
    report.add_argument(
        "--blind-scores",
        metavar="FILE",
        help="JSON of task -> the headline score of answering without the picture (a demo's demo.json works), "
        "drawn as a dashed line on each benchmark's panel of --plots",
    )
    report.set_defaults(func=run_report)

    leaderboard = subparsers.add_parser(
        "leaderboard",
        help="write or update a leaderboard CSV from run folders",
        description=(
            "One row per (model, protocol) of each run. Columns, in this order: model, protocol, layout, llm, "
            "vision, connector, recipe, data, template, image_aspect, one per paper benchmark (the task YAMLs' "
            "benchmark.paper_column, in the paper's order), n_<each benchmark>, judge_model, datasets, tool_version, "
            "git_commit, "
            "checkpoint_fingerprint, date. With --append a row is merged into the one with the same model, protocol, "
            "checkpoint_fingerprint and tool_version: the benchmarks it carries replace theirs, the others stay. "
            "Runs of one evaluation given together are merged in order (stderr says which run's value was kept). "
            "The file is locked (FILE.lock) while it is read and rewritten, and replaced atomically. Text that a "
            "spreadsheet would run as a formula (starting with = + - @) is written with a leading apostrophe."
        ),
    )
    leaderboard.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run folders written by `eval --output`, or folders holding them",
    )
    leaderboard.add_argument("--out", required=True, metavar="FILE", help="the leaderboard CSV")
    leaderboard.add_argument(
        "--append", action="store_true", help="merge into an existing FILE instead of overwriting it"
    )
    leaderboard.set_defaults(func=run_leaderboard)

    regress = subparsers.add_parser(
        "regress",
        help="did a checkpoint get worse? paired tests against a baseline run; exit 1 on a regression",
        description=(
            "Compares every metric of the tasks both runs have. Exit 0: no headline metric dropped significantly "
            "(paired McNemar / bootstrap on per-sample scores) by more than its tolerance, and the current run is "
            "complete. Exit 1: a regression, or a current run that cannot be vouched for (samples the baseline "
            "scored missing, errored samples or judge failures, a metric missing or not a number), or runs on "
            "different data, protocol or scorer (refused unless --allow-data-change). Exit 2: usage error. "
            "See docs/ci_regression.md."
        ),
    )
    regress.add_argument("--baseline", required=True, metavar="RUN", help="the reference run folder")
    regress.add_argument("--current", required=True, metavar="RUN", help="the run folder to check")
    regress.add_argument(
        "--tolerance",
        nargs="+",
        action="extend",
        metavar="NAME=POINTS",
        help=(
            "allowed drop in metric points: TASK=POINTS (the task's headline, gqa=0.5), TASK.METRIC=POINTS "
            "(gqa.accuracy=0.5) or METRIC=POINTS (every task, accuracy=0.5); the most specific wins; default 0. "
            "A name that is no task or metric of the two runs is an error"
        ),
    )
    regress.add_argument(
        "--allow-data-change",
        action="store_true",
        help=(
            "compare even when the runs' dataset fingerprint, protocol or scorer differ (refused otherwise); "
            "the verdict says so"
        ),
    )
    regress.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    regress.add_argument("--out", metavar="FILE", help="also write the Markdown summary here")
    regress.set_defaults(func=run_regress)

    from tinyllava_bench.report.view import add_view_parser

    add_view_parser(subparsers)
