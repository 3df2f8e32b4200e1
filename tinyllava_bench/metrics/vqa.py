"""VQAv2 accuracy: the official GT-Vision-Lab scorer fed by LLaVA's EvalAI step, and lmms-eval's vqav2 variant.

Per question: for each of the human answers, min(1, matches among the other answers / 3), averaged.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from tinyllava_bench.metrics import TaskScore
from tinyllava_bench.metrics.answer_normalization import (
    clean_whitespace,
    evalai_normalize,
    evalai_process,
    vqa_eval_normalize,
)


def leave_one_out_accuracy(
    gt_answers: Sequence[str], prediction: str, duplicates: Sequence[int] | None = None
) -> float:
    """Mean over i of min(1, #{j left after removing answer i: gt_answers[j] == prediction} / 3), in [0, 1].

    `duplicates[i]` is how many answer records are equal to record i (itself included): the official code removes
    "the" left-out answer with `!=` on whole records, so every record equal to it goes too. None means all distinct.
    """
    answers = gt_answers if isinstance(gt_answers, list) else list(gt_answers)
    matches = answers.count(prediction)
    if matches == 0:
        return 0.0
    n = len(answers)
    if duplicates is None:
        # closed form of the per-answer loop: the `matches` answers equal to the prediction each see one match fewer
        return (matches * min(1, (matches - 1) / 3) + (n - matches) * min(1, matches / 3)) / n
    total = 0.0
    for answer, copies in zip(answers, duplicates, strict=True):
        total += min(1, (matches - copies if answer == prediction else matches) / 3)
    return total / n


def _answer_records(row: Mapping[str, Any]) -> list[Any] | None:
    """The row's answers as a list of records ({answer, answer_confidence, answer_id} dicts, or plain strings)."""
    answers = row.get("answers")
    if answers is None:
        return None
    if isinstance(answers, Mapping):  # a datasets column stored as a dict of lists
        keys = list(answers)
        return [
            dict(zip(keys, values, strict=True))
            for values in zip(*(answers[key] for key in keys), strict=True)
        ]
    return list(answers)


def _answer_texts(records: Sequence[Any]) -> list[str]:
    first = records[0]
    if isinstance(first, dict):  # the hub layout; checked first because Mapping checks are slow
        return [record["answer"] for record in records]
    return [record["answer"] if isinstance(record, Mapping) else str(record) for record in records]


_clean_whitespace_cached = lru_cache(maxsize=1 << 20)(clean_whitespace)


def _duplicate_counts(records: Sequence[Any], processed: Sequence[str]) -> list[int] | None:
    """How many records equal each record once its answer is replaced by the processed one (None: all distinct)."""
    if not isinstance(records[0], dict | Mapping):
        return None  # plain strings carry no identity beyond their position
    try:
        ids = [record["answer_id"] for record in records]
        if len(set(ids)) == len(ids):
            return None
    except (KeyError, TypeError):
        pass
    compared = [{**record, "answer": answer} for record, answer in zip(records, processed, strict=True)]
    return [sum(1 for other in compared if other == record) for record in compared]


def _official_question(records: Sequence[Any], prediction: str) -> tuple[float, str]:
    # LLaVA's convert_vqav2_for_submission.py runs the EvalAI processor; vqaEval.py then cleans both sides and
    # normalises (punctuation, digits, articles, contractions) only when the human answers are not all the same.
    result = clean_whitespace(evalai_process(prediction))
    gt_answers = list(map(_clean_whitespace_cached, _answer_texts(records)))
    if len(set(gt_answers)) > 1:
        gt_answers = list(map(vqa_eval_normalize, gt_answers))
        result = vqa_eval_normalize(result)
    duplicates = _duplicate_counts(records, gt_answers)
    return leave_one_out_accuracy(gt_answers, result, duplicates), result


def _lmms_eval_question(records: Sequence[Any], prediction: str) -> tuple[float, str]:
    # lmms-eval strips the generation, then always normalises both sides with EvalAI's punctuation and
    # digit/article steps (no lower-casing tokeniser step, no "'s" split, no all-identical gate).
    result = evalai_normalize(clean_whitespace(prediction.strip()))
    gt_answers = [evalai_normalize(_clean_whitespace_cached(answer)) for answer in _answer_texts(records)]
    duplicates = _duplicate_counts(records, gt_answers)
    return leave_one_out_accuracy(gt_answers, result, duplicates), result


def _metric_key(answer_type: str) -> str:
    return "accuracy_" + re.sub(r"\W+", "_", answer_type).strip("_")


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score VQAv2 rows (lmms-lab/VQAv2 columns); rows without answers (test splits) get score None.

    `parsed` is the answer string compared with the human answers; for unscored rows it is what the protocol puts
    in a submission file (official: the EvalAI-processed prediction).
    """
    if protocol not in ("official", "lmms-eval"):
        raise ValueError(f"unknown protocol {protocol!r} for VQAv2; use 'official' or 'lmms-eval'")
    question = _official_question if protocol == "official" else _lmms_eval_question
    parsed: list[Any] = []
    scores: list[float | None] = []
    per_type: dict[str, list[float]] = {}
    for row, prediction in zip(rows, predictions, strict=True):
        text = "" if prediction is None else str(prediction)
        records = _answer_records(row)
        if not records:
            # lmms-eval's test submission carries the stripped generation unprocessed.
            parsed.append(evalai_process(text) if protocol == "official" else text.strip())
            scores.append(None)
            continue
        accuracy, result = question(records, text)
        parsed.append(result)
        scores.append(accuracy)
        if protocol == "official" and row.get("answer_type") is not None:
            per_type.setdefault(str(row["answer_type"]), []).append(accuracy)
    scored = [value for value in scores if value is not None]
    metrics: dict[str, float] = {}
    if scored:
        # vqaEval.py prints round(100 * mean, 2); the unrounded mean is kept here so nothing is lost.
        metrics["accuracy"] = 100.0 * sum(scored) / len(scored)
        for answer_type, values in sorted(per_type.items()):
            metrics[_metric_key(answer_type)] = 100.0 * sum(values) / len(values)
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
