"""POPE scorer: yes/no extraction, then accuracy, precision, recall, F1 and yes-ratio per category.

`official` is LLaVA's eval_pope.py (the script TinyLLaVA's paper ran); `lmms-eval` is lmms-eval 0.7.x pope utils.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.metrics import PROTOCOLS, TaskScore

METRIC_NAMES = ("accuracy", "precision", "recall", "f1", "yes_ratio")
_NEGATIVE_WORDS = ("No", "not", "no")


def parse_pope_answer(prediction: str, protocol: str = "official") -> str:
    """The answer the protocol reads from `prediction`: "yes"/"no" (official) or the cleaned text (lmms-eval)."""
    if protocol == "lmms-eval":
        # lmms-eval compares the whole lower-cased reply with the label, so anything but "yes"/"no" is wrong
        return prediction.lower().strip()
    text = prediction
    if "." in text:
        text = text.split(".")[0]
    # split on single spaces, not whitespace: "No\nIt is not" is one word and reads as yes, as in LLaVA's script
    words = text.replace(",", "").split(" ")
    return "no" if any(word in words for word in _NEGATIVE_WORDS) else "yes"


def _label(row: Mapping[str, Any], index: int) -> str:
    label = str(row["answer"]).lower().strip()
    if label not in ("yes", "no"):
        raise ValueError(f"POPE row {index} has answer {row['answer']!r}; POPE answers must be 'yes' or 'no'")
    return label


def _official_metrics(parsed: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    tp = fp = tn = fn = 0
    for pred, label in zip(parsed, labels, strict=True):
        if pred == "yes":
            if label == "yes":
                tp += 1
            else:
                fp += 1
        elif label == "no":
            tn += 1
        else:
            fn += 1
    # LLaVA's script divides without guards and crashes on an empty denominator; we report 0 there
    # (the limit of TinyLLaVA_Factory's eps-guarded copy, and lmms-eval's choice)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = len(parsed)
    return {
        "accuracy": (tp + tn) / total,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": parsed.count("yes") / total,
    }


def _lmms_eval_metrics(parsed: Sequence[str], labels: Sequence[str]) -> dict[str, float]:
    # replies other than exactly "yes"/"no" count in no confusion cell: they lower accuracy only
    tp = sum(1 for p, g in zip(parsed, labels, strict=True) if g == "yes" and p == "yes")
    fp = sum(1 for p, g in zip(parsed, labels, strict=True) if g == "no" and p == "yes")
    fn = sum(1 for p, g in zip(parsed, labels, strict=True) if g == "yes" and p == "no")
    precision = tp / (tp + fp) if tp + fp > 0 else 0
    recall = tp / (tp + fn) if tp + fn > 0 else 0
    f1 = 2 * (precision * recall) / (precision + recall) if precision + recall > 0 else 0
    correct = sum(1.0 for p, g in zip(parsed, labels, strict=True) if p == g)
    return {
        "accuracy": correct / len(parsed),
        "precision": float(precision),
        "recall": float(recall),
        "f1": float(f1),
        # lmms-eval's yes_ratio counts ground-truth yes, not predicted yes (its bug, reproduced on purpose)
        "yes_ratio": labels.count("yes") / len(labels),
    }


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score POPE; metrics in percent, per category as `<category>_<metric>`.

    official: headline metrics are the mean over the categories present (the paper's mean of 3).
    lmms-eval: headline metrics pool all rows, as its `pope` task does; per category as `pope_adv` etc.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    labels = [_label(row, i) for i, row in enumerate(rows)]
    parsed = [parse_pope_answer(p, protocol) for p in predictions]
    scores: list[float | None] = [1.0 if p == g else 0.0 for p, g in zip(parsed, labels, strict=True)]
    compute = _official_metrics if protocol == "official" else _lmms_eval_metrics

    by_category: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_category.setdefault(str(row["category"]), []).append(i)

    per_category = {
        category: compute([parsed[i] for i in idx], [labels[i] for i in idx])
        for category, idx in sorted(by_category.items())
    }
    metrics: dict[str, float] = {}
    if rows:
        if protocol == "official":
            for name in METRIC_NAMES:
                metrics[name] = (
                    sum(values[name] for values in per_category.values()) / len(per_category) * 100
                )
        else:
            for name, value in compute(parsed, labels).items():
                metrics[name] = value * 100
    for category, values in per_category.items():
        for name, value in values.items():
            metrics[f"{category}_{name}"] = value * 100
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
