"""`score`: re-score a predictions file offline against a task's data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from tinyllava_bench.api.evaluation import check_max_error_rate
from tinyllava_bench.api.results import PathLike, ScoreResult
from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, UserError, run_phase


def score(
    task: str,
    *,
    predictions: PathLike,
    data: PathLike | None = None,
    data_root: PathLike | None = None,
    protocol: str = "official",
    output: PathLike | None = None,
    missing_as_wrong: bool = False,
    judge_model: str | None = None,
    judge_temperature: float | None = None,
    judge_max_tokens: int | None = None,
    judge_retries: int | None = None,
    judge_base_url: str | None = None,
    judge_cache: PathLike | None = None,
    submission: PathLike | None = None,
    test_questions: PathLike | None = None,
    max_error_rate: float = 0.0,
) -> ScoreResult:
    """Score a predictions jsonl (`{"question_id": ..., "prediction": ...}` per line) against `task`'s data.

    The keywords are `tinyllava-bench score`'s flags. Writes the score file (`output`, default beside the
    predictions) and, for a task with a submission format, the official grader's file. `exit_status` is 3 when
    more than `max_error_rate` of the rows went without a prediction, a score or a judge score.
    """
    from tinyllava_bench.tasks.registry import load_task, submission_tasks
    from tinyllava_bench.tasks.rescore import refuse_inputs_as_outputs, rescore

    spec = load_task(task)
    predictions_path = Path(predictions)
    out = (
        Path(output)
        if output
        else predictions_path.with_name(f"{predictions_path.stem}.{spec.name}.score.json")
    )
    if submission and spec.submission is None:
        raise UserError(
            f"task {spec.name} has no submission format (tasks with one: {', '.join(submission_tasks())})"
        )
    check_max_error_rate(max_error_rate)
    judge_flags = {
        "judge_model": judge_model,
        "judge_temperature": judge_temperature,
        "judge_max_tokens": judge_max_tokens,
        "judge_retries": judge_retries,
        "judge_base_url": judge_base_url,
        "judge_cache": judge_cache,
    }
    judge_settings = None
    if spec.judged:
        from tinyllava_bench.judge.settings import judge_overrides, resolve_judge_settings

        judge_settings = resolve_judge_settings(
            spec, protocol, **judge_overrides(SimpleNamespace(**judge_flags))
        )
    else:
        given = [flag for flag, value in judge_flags.items() if value is not None]
        if given:
            raise UserError(
                f"task {spec.name} has no judge: drop --{given[0].replace('_', '-')} "
                "(the judge flags apply to mmvet and llava_wild)"
            )
    submission_path = Path(submission) if submission else None
    refuse_inputs_as_outputs(
        [out, submission_path], [predictions_path, data, test_questions]
    )  # a usage error
    with run_phase():
        judge = None
        if judge_settings is not None:
            # before the data is read: a missing key or an unwritable cache must cost nothing
            from tinyllava_bench.judge.settings import open_judge_client

            judge = open_judge_client(
                judge_settings, Path(judge_cache) if judge_cache else out.parent / "judge_cache"
            )
        scored = rescore(
            spec,
            predictions_path,
            out,
            judge,
            data=os.fspath(data) if data else None,
            data_root=os.fspath(data_root) if data_root else None,
            protocol=protocol,
            missing_as_wrong=missing_as_wrong,
            submission=submission_path,
            test_questions=os.fspath(test_questions) if test_questions else None,
        )
    status, message = _score_status(scored.result, max_error_rate)
    return ScoreResult(
        result=scored.result,
        output=out,
        submission=scored.submission,
        exit_status=status,
        notes=tuple(scored.notes),
        message=message,
    )


def _score_status(result: Mapping[str, Any], max_error_rate: float) -> tuple[int, str | None]:
    """3 when rows went without a prediction, without a score or without a judge score (beyond the accepted share)."""
    n_missing = int(result.get("n_missing") or 0)
    n_errors = sum(1 for sample in result.get("samples", []) if sample.get("error"))
    n_judge = int(result.get("n_judge_failures", result.get("judge_failures")) or 0)
    failed = n_missing + n_errors + n_judge
    rate = failed / result["n_rows"] if result.get("n_rows") else 0.0
    if not failed or rate <= max_error_rate:
        return EXIT_OK, None
    return EXIT_INCOMPLETE, (
        f"incomplete: {n_missing} row(s) without a prediction, {n_errors} not scored, {n_judge} without a judge "
        f"score, of {result.get('n_rows')} (exit status 3; --max-error-rate accepts a share of them)"
    )
