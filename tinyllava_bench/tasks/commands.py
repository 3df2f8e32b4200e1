"""CLI verbs `tasks` (list the task registry) and `score` (re-score a predictions file offline); light at import."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
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


def _refuse_inputs_as_outputs(outputs: list[Path | None], inputs: list[str | Path | None]) -> None:
    """An --output or --submission that names an input file (predictions, data, test questions) would overwrite
    it with the score: refuse before anything is read or written."""
    from tinyllava_bench.errors import UserError

    for output in filter(None, outputs):
        for source in filter(None, inputs):
            same = output.exists() and Path(source).exists() and os.path.samefile(output, source)
            if same or output.resolve() == Path(source).resolve():
                raise UserError(
                    f"{output} is an input of this score ({source}); write the score to another file"
                )


def run_score(args: argparse.Namespace) -> int:
    from tinyllava_bench.errors import UserError, run_phase
    from tinyllava_bench.tasks.registry import load_task, submission_tasks

    task = load_task(args.task)
    predictions_path = Path(args.predictions)
    output = Path(args.output) if args.output else _default_output(predictions_path, task.name)
    if args.submission and task.submission is None:
        raise UserError(
            f"task {task.name} has no submission format (tasks with one: {', '.join(submission_tasks())})"
        )
    if not 0.0 <= args.max_error_rate <= 1.0:
        raise UserError(f"--max-error-rate is a share between 0 and 1, got {args.max_error_rate}")
    judge_settings = None
    if task.judged:
        from tinyllava_bench.judge import judge_overrides, resolve_judge_settings

        judge_settings = resolve_judge_settings(task, args.protocol, **judge_overrides(args))
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
    outputs = [output, Path(args.submission) if args.submission else None]
    _refuse_inputs_as_outputs(outputs, [predictions_path, args.data, args.test_questions])  # a usage error
    with run_phase():
        judge = None
        if judge_settings is not None:
            # before the data is read: a missing key or an unwritable cache must cost nothing
            from tinyllava_bench.judge import open_judge_client

            cache = Path(args.judge_cache) if args.judge_cache else output.parent / "judge_cache"
            judge = open_judge_client(judge_settings, cache)
        return _score(args, task, predictions_path, output, judge)


def _score(args: argparse.Namespace, task: Any, predictions_path: Path, output: Path, judge: Any) -> int:
    from tinyllava_bench.tasks.data import load_task_data
    from tinyllava_bench.tasks.data_readers import read_question_ids
    from tinyllava_bench.tasks.predictions import load_predictions
    from tinyllava_bench.tasks.scoring import score_predictions, write_score_output
    from tinyllava_bench.tasks.submission import write_submission

    data = load_task_data(task, args.data, args.data_root, need_images=False, protocol=args.protocol)
    # the data file --data-root led to is known only now
    _refuse_inputs_as_outputs(
        [output, Path(args.submission) if args.submission else None], [data.provenance()["local_path"]]
    )
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
    from tinyllava_bench.engine.schema import ScoreOutput

    result = ScoreOutput.model_validate(
        {**result, "dataset": data.provenance(), "predictions_file": str(predictions_path)}
    ).dump()
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
    return _score_exit_status(result, args.max_error_rate)


def _score_exit_status(result: Mapping[str, Any], max_error_rate: float) -> int:
    """3 when rows went without a prediction, without a score or without a judge score (beyond the accepted share)."""
    from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK

    n_missing = int(result.get("n_missing") or 0)
    n_errors = sum(1 for sample in result.get("samples", []) if sample.get("error"))
    n_judge = int(result.get("n_judge_failures", result.get("judge_failures")) or 0)
    failed = n_missing + n_errors + n_judge
    rate = failed / result["n_rows"] if result.get("n_rows") else 0.0
    if not failed or rate <= max_error_rate:
        return EXIT_OK
    print(
        f"incomplete: {n_missing} row(s) without a prediction, {n_errors} not scored, {n_judge} without a judge "
        f"score, of {result.get('n_rows')} (exit status 3; --max-error-rate accepts a share of them)",
        file=sys.stderr,
    )
    return EXIT_INCOMPLETE


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
