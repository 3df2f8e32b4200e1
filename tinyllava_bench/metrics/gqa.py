"""GQA accuracy: LLaVA's convert_gqa_for_eval.py + the GQA eval.py (official), and lmms-eval's gqa exact match.

Official: prediction `.rstrip('.').lower()`, exact match with the answer, averaged over balanced questions only.
lmms-eval: both sides stripped of whitespace (prediction only), lower-cased and cleared of ASCII punctuation.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.metrics import TaskScore

_ASCII_PUNCTUATION_DELETION = str.maketrans("", "", string.punctuation)


def official_prediction(prediction: str) -> str:
    """What LLaVA's convert_gqa_for_eval.py writes for a model output: trailing periods dropped, lower-cased."""
    return prediction.rstrip(".").lower()


def _numpy_char_lower(text: str) -> str:
    # lmms-eval lower-cases through a fixed-width numpy string array: the array's width is the input's length, so
    # a lower-case form that grows ("İ" -> "i̇") is cut to that width, and trailing NULs vanish.
    return text.lower()[: len(text)].rstrip("\x00")


def lmms_eval_form(text: str) -> str:
    """One side of lmms-eval's exact_match with ignore_case and ignore_punctuation."""
    return _numpy_char_lower(text).translate(_ASCII_PUNCTUATION_DELETION)


def _structural_kind(row: Mapping[str, Any]) -> str | None:
    types = row.get("types")
    if not isinstance(types, Mapping) or types.get("structural") is None:
        return None
    return "open" if types["structural"] == "query" else "binary"


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score GQA rows (lmms-lab/GQA testdev_balanced_instructions columns).

    Under `official`, rows with a false `isBalanced` get score None and stay out of the accuracy, as in eval.py;
    it also reports `accuracy_binary` / `accuracy_open` (structural type "query" = open) when rows carry `types`.
    """
    if protocol not in ("official", "lmms-eval"):
        raise ValueError(f"unknown protocol {protocol!r} for GQA; use 'official' or 'lmms-eval'")
    parsed: list[Any] = []
    scores: list[float | None] = []
    by_kind: dict[str, list[float]] = {}
    for row, prediction in zip(rows, predictions, strict=True):
        text = "" if prediction is None else str(prediction)
        answer = str(row["answer"])
        if protocol == "official":
            result = official_prediction(text)
            parsed.append(result)
            if not row.get("isBalanced", True):
                scores.append(None)
                continue
            value = 1.0 if result == answer else 0.0
            kind = _structural_kind(row)
            if kind is not None:
                by_kind.setdefault(kind, []).append(value)
        else:
            result = lmms_eval_form(text.strip())
            parsed.append(result)
            value = 1.0 if result == lmms_eval_form(answer) else 0.0
        scores.append(value)
    metrics: dict[str, float] = {}
    if rows:
        scored = [value for value in scores if value is not None]
        # eval.py averages an empty list to 0
        metrics["accuracy"] = 100.0 * sum(scored) / len(scored) if scored else 0.0
        for kind in ("binary", "open"):
            if kind in by_kind:
                metrics[f"accuracy_{kind}"] = 100.0 * sum(by_kind[kind]) / len(by_kind[kind])
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
