"""CLI verbs `tasks` (list the task registry) and `score` (re-score a predictions file offline); light at import."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


def _default_output(predictions: Path, task_name: str) -> Path:
    return predictions.with_name(f"{predictions.stem}.{task_name}.score.json")


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
    from tinyllava_bench.errors import UserError
    from tinyllava_bench.tasks.data import load_task_data, read_question_ids
    from tinyllava_bench.tasks.predictions import load_predictions
    from tinyllava_bench.tasks.registry import load_task
    from tinyllava_bench.tasks.scoring import score_predictions, write_score_output
    from tinyllava_bench.tasks.submission import write_submission

    task = load_task(args.task)
    predictions_path = Path(args.predictions)
    output = Path(args.output) if args.output else _default_output(predictions_path, task.name)
    if args.submission and task.submission is None:
        raise UserError(
            f"task {task.name} has no submission format (tasks with one: vqav2_testdev, gqa, mmvet)"
        )
    judge = None
    if task.judged:
        # before the data is read: a bad setting, a missing key or an unwritable cache must cost nothing
        from tinyllava_bench.judge import judge_overrides, open_judge_client, resolve_judge_settings

        judge_settings = resolve_judge_settings(task, args.protocol, **judge_overrides(args))
        cache = Path(args.judge_cache) if args.judge_cache else output.parent / "judge_cache"
        judge = open_judge_client(judge_settings, cache)
    else:
        given = [
            flag
            for flag in (
                "judge_model",
                "judge_temperature",
                "judge_max_tokens",
                "judge_retries",
                "judge_base_url",
                "judge_cache",
            )
            if getattr(args, flag) is not None
        ]
        if given:
            raise UserError(
                f"task {task.name} has no judge: drop --{given[0].replace('_', '-')} "
                "(the judge flags apply to mmvet and llava_wild)"
            )
    data = load_task_data(task, args.data, args.data_root, need_images=False, protocol=args.protocol)
    question_ids = data.question_ids()
    matched = load_predictions(predictions_path, question_ids, task.name)
    result = score_predictions(
        task,
        data.rows,
        matched.predictions,
        args.protocol,
        judge,
        missing_as_wrong=args.missing_as_wrong,
    )
    result["dataset"] = data.provenance()
    result["predictions_file"] = str(predictions_path)
    write_score_output(result, output)
    sys.stdout.write(_summary(result))
    if len(data) != task.size:
        print(
            f"note: the data has {len(data)} rows; the full {task.dataset.split} split has {task.size}",
            file=sys.stderr,
        )
    print(f"wrote {output}")
    if task.submission is not None:
        submission_path = (
            Path(args.submission) if args.submission else output.with_name(f"{output.stem}.submission.json")
        )
        all_ids = read_question_ids(args.test_questions) if args.test_questions else None
        write_submission(task, question_ids, matched.predictions, submission_path, all_ids)
        print(f"wrote {submission_path} (submission for the official grader)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the tasks and score verbs."""
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
        "task", metavar="TASK", help="task name (see `tinyllava-bench tasks`) or a task YAML file"
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
    score.set_defaults(func=run_score)
