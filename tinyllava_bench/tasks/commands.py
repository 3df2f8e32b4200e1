"""CLI verbs `tasks` (list the task registry) and `score` (re-score a predictions file offline); light at import."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.errors import EXIT_STATUS_HELP
from tinyllava_bench.metrics import PROTOCOLS


def _render_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[str(value) for value in header]] + [
        [("" if v is None else str(v)) for v in row] for row in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = [
        "  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)).rstrip()
        for row in cells
    ]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines) + "\n"


def run_tasks(args: argparse.Namespace) -> int:
    from tinyllava_bench.tasks.registry import list_tasks

    tasks = list_tasks()
    if args.format == "json":
        listing = [
            {
                "name": task.name,
                "aliases": list(task.aliases),
                "description": task.description,
                "dataset": task.dataset.path,
                "config": task.dataset.name,
                "split": task.dataset.split,
                "revision": task.dataset.revision,
                "size": task.size,
                "headline": task.headline,
                "scorer": task.scorer,
                "judge_model": task.judge.model if task.judge else None,
                "submission": task.submission,
                "max_new_tokens": task.generation.max_new_tokens,
            }
            for task in tasks
        ]
        sys.stdout.write(json.dumps(listing, indent=2) + "\n")
        return 0
    rows = [
        (
            task.name,
            task.dataset.path + (f" ({task.dataset.name})" if task.dataset.name else ""),
            task.dataset.split,
            task.size,
            task.headline,
            task.scorer or "- (submission only)",
            task.judge.model if task.judge else "",
        )
        for task in tasks
    ]
    sys.stdout.write(_render_table(("task", "dataset", "split", "size", "headline", "scorer", "judge"), rows))
    return 0


def _format_metric(value: Any) -> str:
    return f"{value:.2f}" if isinstance(value, float) else str(value)


def _summary(result: Mapping[str, Any]) -> str:
    lines = [f"task      {result['task']}", f"protocol  {result['protocol']}"]
    coverage = f"{result['n']} of {result['n_rows']} rows"
    if result["n_missing"]:
        coverage += f" ({result['n_missing']} without a prediction, not scored)"
    lines.append(f"scored    {coverage}")
    if "judge" in result:
        judge = result["judge"]
        lines.append(
            f"judge     {judge['model']} (temperature {judge['temperature']:g}, max_tokens {judge['max_tokens']}, "
            f"{judge['retries']} re-ask(s) of an answer that is no score)"
        )
        lines.append(f"judge failures  {result['n_judge_failures']} sample(s) (each has a judge_error)")
    metrics = result["metrics"]
    if metrics:
        headline = result["headline"]
        rows = [
            (name + (" *" if name == headline else ""), _format_metric(value))
            for name, value in metrics.items()
        ]
        lines.append("")
        lines.append(_render_table(("metric (* headline)", "value"), rows).rstrip("\n"))
    elif result.get("note"):
        lines.append(result["note"])
    return "\n".join(lines) + "\n"


def run_score(args: argparse.Namespace) -> int:
    from tinyllava_bench.api import score

    result = score(
        args.task,
        predictions=args.predictions,
        data=args.data,
        data_root=args.data_root,
        protocol=args.protocol,
        output=args.output,
        missing_as_wrong=args.missing_as_wrong,
        judge_model=args.judge_model,
        judge_temperature=args.judge_temperature,
        judge_max_tokens=args.judge_max_tokens,
        judge_retries=args.judge_retries,
        judge_base_url=args.judge_base_url,
        judge_cache=args.judge_cache,
        submission=args.submission,
        test_questions=args.test_questions,
        max_error_rate=args.max_error_rate,
    )
    sys.stdout.write(_summary(result.result))
    for note in result.notes:
        print(note, file=sys.stderr)
    print(f"wrote {result.output}")
    if result.submission is not None:
        print(f"wrote {result.submission} (submission for the official grader)")
    if result.message:
        print(result.message, file=sys.stderr)
    return result.exit_status


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the tasks, score and protocols verbs."""
    tasks = subparsers.add_parser(
        "tasks", help="list the benchmark tasks", description="List the task registry (tasks/*.yaml)."
    )
    tasks.add_argument("--format", choices=("table", "json"), default="table")
    tasks.set_defaults(func=run_tasks)

    score = subparsers.add_parser(
        "score",
        help="re-score a predictions file offline",
        description=(
            'Score a jsonl predictions file ({"question_id": ..., "prediction": "..."} per line, optionally '
            "with \"index\", the 0-based data row) against a task's data, with the official scorers or lmms-eval's."
        ),
    )
    score.add_argument(
        "task", metavar="TASK", help="task name or alias (see `tinyllava-bench tasks`) or a task YAML file"
    )
    score.add_argument(
        "--data", metavar="DATA", help="local copy of the task's data (.parquet/.jsonl/.json/folder)"
    )
    score.add_argument(
        "--data-root", metavar="DIR", help="folder holding TASK.parquet, TASK.jsonl, TASK.json or TASK/"
    )
    score.add_argument("--predictions", metavar="FILE", required=True, help="predictions jsonl")
    score.add_argument("--protocol", choices=PROTOCOLS, default="official")
    score.add_argument("--output", metavar="OUT.json", help="score file (default: next to the predictions)")
    score.add_argument(
        "--missing-as-wrong", action="store_true", help="score rows without a prediction as wrong"
    )
    from tinyllava_bench.judge.settings import add_judge_arguments

    add_judge_arguments(score, cache_default="judge_cache/ beside OUT")
    score.add_argument(
        "--submission", metavar="FILE", help="where to write the official-grader file (default: beside OUT)"
    )
    score.add_argument(
        "--test-questions",
        metavar="DATA",
        help="vqav2_testdev: local copy of the full VQAv2 test split; EvalAI wants an answer for each of its ids",
    )
    score.add_argument(
        "--max-error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="share of rows (0-1) that may lack a prediction, a score or a judge score with exit status 0",
    )
    score.set_defaults(func=run_score)
    score.epilog = EXIT_STATUS_HELP
    score.formatter_class = argparse.RawDescriptionHelpFormatter

    from tinyllava_bench.tasks.protocols import register as register_protocols

    register_protocols(subparsers)
