"""TextVQA accuracy: LLaVA's m4c TextVQAAccuracyEvaluator (official) and lmms-eval's textvqa process_results.

Both run the EvalAI answer processor on the prediction and on every human answer, then VQA leave-one-out
accuracy; they give the same number on the same prediction (the paper's gap comes from the prompt, not from here).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.metrics import TaskScore
from tinyllava_bench.metrics.answer_normalization import evalai_process
from tinyllava_bench.metrics.vqa import leave_one_out_accuracy

# m4c_evaluator asserts exactly ten human answers per question.
_OFFICIAL_ANSWER_COUNT = 10


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score TextVQA rows (lmms-lab/textvqa columns); rows without answers (test split) get score None."""
    if protocol not in ("official", "lmms-eval"):
        raise ValueError(f"unknown protocol {protocol!r} for TextVQA; use 'official' or 'lmms-eval'")
    parsed: list[Any] = []
    scores: list[float | None] = []
    for row, prediction in zip(rows, predictions, strict=True):
        text = "" if prediction is None else str(prediction)
        if protocol == "lmms-eval":
            text = text.strip()  # lmms-eval strips every generation before process_results
        result = evalai_process(text)
        parsed.append(result)
        answers = row.get("answers")
        if answers is None:
            scores.append(None)
            continue
        if protocol == "official" and len(answers) != _OFFICIAL_ANSWER_COUNT:
            raise ValueError(
                f"TextVQA question {row.get('question_id')!r} has {len(answers)} answers; the official m4c scorer "
                f"needs exactly {_OFFICIAL_ANSWER_COUNT} (use protocol 'lmms-eval' for other counts)"
            )
        gt_answers = [evalai_process(answer) for answer in answers]
        scores.append(leave_one_out_accuracy(gt_answers, result))
    scored = [value for value in scores if value is not None]
    metrics = {"accuracy": 100.0 * sum(scored) / len(scored)} if scored else {}
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
