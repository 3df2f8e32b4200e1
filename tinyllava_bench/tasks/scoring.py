"""Score one task's predictions: place them on the rows, ask the judge where the task needs one, run the scorer.

`score_predictions` is the library entry the `score` verb and the eval engine share; its dict is what
`score --output` writes, built through `tinyllava_bench.schema.ScoreOutput`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_atomic
from tinyllava_bench.schema import (
    SCORE_OUTPUT_VERSION,
    JudgeRecord,
    MissingRow,
    ScoredSample,
    ScoreOutput,
)
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.registry import load_task

__all__ = ["SCORE_OUTPUT_VERSION", "row_question_ids", "score_predictions", "write_score_output"]


def row_question_ids(task: TaskConfig, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
    """Each row's question id: the task's id column, or the 0-based row index when it has none."""
    column = task.columns.question_id
    if column is None:
        return list(range(len(rows)))
    return [row[column] for row in rows]


def score_predictions(
    task: TaskConfig | str,
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str | None],
    protocol: str = "official",
    judge: Any = None,
    *,
    missing_as_wrong: bool = False,
) -> dict[str, Any]:
    """Score `predictions` (aligned with `rows`; None = no prediction) and return the output document.

    Rows without a prediction are listed under "missing" and left out of the metrics, unless `missing_as_wrong`
    scores them as empty answers. Judged tasks (mmvet, llava_wild) need `judge`, a tinyllava_bench.judge.JudgeClient,
    asked as its `settings` say (tinyllava_bench.judge.open_judge_client; default: the task file's for `protocol`).

    The document always has "n_judge_failures" (0 for tasks without a judge); each sample the judge failed on has
    a "judge_error", and each sample that got no score at all an "error".
    """
    from tinyllava_bench.metrics import score_task

    task = load_task(task)
    task.prompt_for(protocol)  # rejects an unknown protocol with a UserError
    if hasattr(rows, "to_list"):  # a datasets.Dataset: one conversion instead of a slow read per row
        rows = rows.to_list()
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    question_ids = row_question_ids(task, rows)
    if missing_as_wrong:
        predictions = ["" if prediction is None else prediction for prediction in predictions]
    scored = [i for i, prediction in enumerate(predictions) if prediction is not None]
    missing = [i for i, prediction in enumerate(predictions) if prediction is None]
    scored_rows = [rows[i] for i in scored]
    scored_predictions = [str(predictions[i]) for i in scored]

    errors: list[str | None] = [None] * len(scored)
    result = ScoreOutput(
        schema_version=SCORE_OUTPUT_VERSION,
        task=task.name,
        protocol=protocol,
        headline=task.headline,
        n=len(scored),
        n_rows=len(rows),
        n_missing=len(missing),
        n_judge_failures=0,
    )
    judgements = None
    judge_errors: list[str | None] = [None] * len(scored)
    if task.judged:
        if judge is None:
            raise UserError(
                f"task {task.name} is scored by an LLM judge; give one with --judge-model (default "
                f"{task.judge.model if task.judge else '?'}) and --judge-base-url, with its API key in OPENAI_API_KEY"
            )
        from tinyllava_bench.judge.settings import resolve_judge_settings

        judge_settings = judge.settings or resolve_judge_settings(
            task, protocol, model=judge.model, base_url=judge.base_url
        )
        outcomes = _run_judge(task, judge, scored_rows, scored_predictions, protocol, judge_settings)
        judgements = [outcome.score for outcome in outcomes]
        errors = [_judge_error(outcome) for outcome in outcomes]
        judge_errors = [outcome.judge_error or None for outcome in outcomes]
        result.judge_model = judge.model
        result.judge = JudgeRecord(**judge_settings.public())
        result.n_judge_failures = sum(error is not None for error in judge_errors)

    if task.scorer is None:
        parsed: list[Any] = [None] * len(scored)
        scores: list[float | None] = [None] * len(scored)
        result.metrics = {}
    else:
        try:
            task_score = score_task(task.scorer, scored_rows, scored_predictions, protocol, judgements)
        except (ValueError, KeyError, TypeError) as exc:
            raise UserError(f"cannot score task {task.name}: {type(exc).__name__}: {exc}") from None
        result.metrics = dict(task_score.metrics)
        parsed = list(task_score.parsed) or [None] * len(scored)
        scores = list(task_score.scores) or [None] * len(scored)
    if not result.metrics and task.submission is not None:
        result.note = (
            f"task {task.name} has no local answers: grade its submission file on the official server"
        )

    samples = []
    for position, row_index in enumerate(scored):
        # "error" and "judge_error" are present only on a sample that has one
        problems = {"error": errors[position], "judge_error": judge_errors[position]}
        samples.append(
            ScoredSample(
                index=row_index,
                question_id=question_ids[row_index],
                prediction=scored_predictions[position],
                parsed=parsed[position] if position < len(parsed) else None,
                score=_plain_score(scores[position] if position < len(scores) else None),
                **{key: value for key, value in problems.items() if value is not None},
            )
        )
    result.missing = [MissingRow(index=i, question_id=question_ids[i]) for i in missing]
    result.samples = samples
    return result.dump()


def _run_judge(
    task: TaskConfig,
    judge: Any,
    rows: list[Mapping[str, Any]],
    predictions: list[str],
    protocol: str,
    settings: Any,
) -> list[Any]:
    from tinyllava_bench.judge.tasks import judge_for_scorer

    judge_function = judge_for_scorer(task.scorer)
    outcomes = list(judge_function(judge, rows, predictions, protocol, settings=settings))
    if len(outcomes) != len(rows):
        raise RuntimeError(f"the judge returned {len(outcomes)} outcomes for {len(rows)} samples")
    return outcomes


def _judge_error(outcome: Any) -> str | None:
    error = getattr(outcome, "error", None)
    if error:
        return str(error)
    if getattr(outcome, "score", None) is None:
        return "the judge gave no score"
    return None


def _plain_score(score: Any) -> float | None:
    if score is None:
        return None
    value = float(score)
    return None if math.isnan(value) else value


def write_score_output(result: Mapping[str, Any], path: str | Path) -> Path:
    """Write a score document as JSON (values JSON cannot hold, like tuples of parsed answers, become lists/text).

    NaN and Infinity are refused (ValueError): they are not JSON, and a score that is one is a bug upstream.
    """
    path = Path(path)
    text = json.dumps(result, indent=2, ensure_ascii=False, default=str, allow_nan=False) + "\n"
    write_atomic(path, text, kept="an earlier score file there is left as it was; pass another --output")
    return path
