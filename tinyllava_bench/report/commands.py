"""CLI verbs `report`, `leaderboard`, `regress` and `view`; light at import (pandas, numpy, matplotlib load on use)."""

from __future__ import annotations

import argparse
import sys

from tinyllava_bench.report import CARD_AXES
from tinyllava_bench.report.table_render import TABLE_FORMATS
from tinyllava_bench.report.thumbnails import DEFAULT_THUMBNAIL_PX


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


def run_view(args: argparse.Namespace) -> int:
    from tinyllava_bench.report.view import write_view

    path, view = write_view(
        args.run,
        compare=args.compare,
        output=args.output,
        data_root=args.data_root,
        thumbnails=not args.no_thumbnails,
        thumbnail_px=args.thumbnail_size,
    )
    for note in view["notes"]:
        print(f"note: {note}", file=sys.stderr)
    samples = view["samples"]
    summary = f"wrote {path}: {len(samples)} sample(s) of {len(view['tasks'])} task(s), "
    summary += f"{view['n_thumbnailed']} with a thumbnail"
    if args.compare is not None:
        to_here = sum(1 for s in samples if s.get("x") == "a")
        to_other = sum(1 for s in samples if s.get("x") == "b")
        summary += (
            f"; {to_here + to_other} flipped ({to_here} right only here, {to_other} right only in the other)"
        )
    print(summary, file=sys.stderr)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"no browser could be started; open {path.resolve()} yourself", file=sys.stderr)
    return 0


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

    view = subparsers.add_parser(
        "view",
        help="a self-contained HTML page to read a run's samples (and compare two runs)",
        description=(
            "Writes one offline HTML page: per-task metrics and every sample (thumbnail, exact prompt, "
            "prediction, gold answer, score, judge error or error), filtered by task, category, right/wrong and "
            "error, searchable, paginated. With --compare, the other run's answer and score sit beside each "
            "sample and a filter shows the samples that flipped. Thumbnails come from the task data the run read "
            "(its --data-root or recorded data path, checked against the recorded fingerprint)."
        ),
    )
    view.add_argument("run", metavar="RUN_FOLDER", help="a run folder written by `eval --output`")
    view.add_argument("--compare", metavar="OTHER_RUN", help="another run folder to show side by side")
    view.add_argument(
        "--output",
        metavar="FILE.html",
        help="where to write the page (default RUN_FOLDER/view.html, or view-vs-OTHER.html with --compare)",
    )
    view.add_argument("--open", action="store_true", help="open the page in the web browser")
    view.add_argument(
        "--data-root",
        metavar="DIR",
        help="where the tasks' data is, when it moved since the run (default: where the run read it)",
    )
    view.add_argument(
        "--no-thumbnails", action="store_true", help="do not read the task data; show no images"
    )
    view.add_argument(
        "--thumbnail-size",
        type=int,
        default=DEFAULT_THUMBNAIL_PX,
        metavar="PX",
        help=f"longest side of a thumbnail in pixels (default {DEFAULT_THUMBNAIL_PX})",
    )
    view.set_defaults(func=run_view)
