"""Files for the official graders: VQAv2 test-dev (EvalAI), GQA's eval.py, and MM-Vet's grader.

Formats follow LLaVA's scripts/convert_vqav2_for_submission.py, convert_gqa_for_eval.py and
convert_mmvet_for_eval.py, which the TinyLLaVA paper's scripts call.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_atomic
from tinyllava_bench.tasks.config import TaskConfig


def vqav2_submission(
    question_ids: Sequence[Any],
    predictions: Sequence[str | None],
    all_question_ids: Sequence[Any] | None = None,
) -> list[dict[str, Any]]:
    """[{"question_id": int, "answer": EvalAI-processed answer}]; rows without a prediction get "" (as LLaVA's).

    EvalAI wants every test2015 question; pass `all_question_ids` (the full test split) to pad the test-dev answers.
    """
    from tinyllava_bench.metrics.answer_normalization import evalai_process

    answers = {
        int(qid): evalai_process(pred)
        for qid, pred in zip(question_ids, predictions, strict=True)
        if pred is not None
    }
    order = [int(qid) for qid in (all_question_ids if all_question_ids is not None else question_ids)]
    return [{"question_id": qid, "answer": answers.get(qid, "")} for qid in order]


def gqa_submission(question_ids: Sequence[Any], predictions: Sequence[str | None]) -> list[dict[str, Any]]:
    """[{"questionId": id, "prediction": text}] with the answer `.rstrip('.').lower()`; rows without one are left out."""
    return [
        {"questionId": qid, "prediction": pred.rstrip(".").lower()}
        for qid, pred in zip(question_ids, predictions, strict=True)
        if pred is not None
    ]


def mmvet_submission(question_ids: Sequence[Any], predictions: Sequence[str | None]) -> dict[str, str]:
    """{"v1_<id>": answer} for MM-Vet's grader; ids already spelled v1_<n> (as on the hub) are kept."""
    result = {}
    for qid, pred in zip(question_ids, predictions, strict=True):
        if pred is None:
            continue
        key = str(qid)
        result[key if key.startswith("v1_") else f"v1_{key}"] = pred
    return result


def build_submission(
    task: TaskConfig,
    question_ids: Sequence[Any],
    predictions: Sequence[str | None],
    all_question_ids: Sequence[Any] | None = None,
) -> list[dict[str, Any]] | dict[str, str]:
    """The submission object of `task` (its YAML's `submission` format)."""
    if task.submission == "vqav2_evalai":
        return vqav2_submission(question_ids, predictions, all_question_ids)
    if task.submission == "gqa":
        return gqa_submission(question_ids, predictions)
    if task.submission == "mmvet":
        return mmvet_submission(question_ids, predictions)
    raise UserError(f"task {task.name} has no submission format")


def write_submission(
    task: TaskConfig,
    question_ids: Sequence[Any],
    predictions: Sequence[str | None],
    path: str | Path,
    all_question_ids: Sequence[Any] | None = None,
) -> Path:
    """Write the submission file of `task` to `path` and return it."""
    path = Path(path)
    content = build_submission(task, question_ids, predictions, all_question_ids)
    indent = 2 if isinstance(content, Mapping) else None  # MM-Vet's converter writes indent=2
    write_atomic(
        path, json.dumps(content, indent=indent), kept="an earlier submission file is left as it was"
    )
    return path
