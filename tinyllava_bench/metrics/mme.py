"""MME scorer: yes/no extraction, per-subtask acc + acc+ scores, perception and cognition totals.

`official` is MME's eval_tool/calculation.py fed by LLaVA's convert_answer_to_mme.py (the paper's path);
`lmms-eval` is lmms-eval 0.7.x mme utils.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.metrics import PROTOCOLS, TaskScore

PERCEPTION_SUBTASKS = (
    "existence",
    "count",
    "position",
    "color",
    "posters",
    "celebrity",
    "scene",
    "landmark",
    "artwork",
    "OCR",
)
COGNITION_SUBTASKS = ("commonsense_reasoning", "numerical_calculation", "text_translation", "code_reasoning")
# the subtasks each summed metric adds (tasks/mme.yaml `metric_sums` names these groups)
SUBTASK_GROUPS = {"perception": PERCEPTION_SUBTASKS, "cognition": COGNITION_SUBTASKS}


def _first_four_rule(answer: str) -> str:
    if answer in ("yes", "no"):
        return answer
    prefix = answer[:4]
    if "yes" in prefix:
        return "yes"
    if "no" in prefix:
        return "no"
    return "other"


def parse_mme_answer(prediction: str, protocol: str = "official") -> str:
    """ "yes", "no" or "other" (always wrong), read from `prediction` the protocol's way."""
    if protocol == "lmms-eval":
        answer = prediction.lower().strip().replace(".", "")
        if len(answer) == 1:
            return {"y": "yes", "n": "no"}.get(answer, "other")
        return _first_four_rule(answer)
    # calculation.py reads the reply back from a tab-separated line that keeps its "\n"; that newline can
    # never form or break "yes"/"no" inside the first four characters, so the result is the same without it
    return _first_four_rule(prediction.lower())


def _label(row: Mapping[str, Any], index: int, protocol: str) -> str:
    label = str(row["answer"]).lower().strip()
    if protocol == "lmms-eval":
        label = label.replace(".", "")
    if label not in ("yes", "no"):
        raise ValueError(f"MME row {index} has answer {row['answer']!r}; MME answers must be 'Yes' or 'No'")
    return label


def _official_subtask(correct: Sequence[bool], images: Mapping[Any, list[int]]) -> dict[str, float]:
    questions = [i for idx in images.values() for i in idx]
    acc = sum(1 for i in questions if correct[i]) / len(questions)
    # calculation.py counts an image when exactly 2 of its questions are right (it asserts 2 per image)
    acc_plus = sum(1 for idx in images.values() if sum(correct[i] for i in idx) == 2) / len(images)
    return {"score": acc * 100 + acc_plus * 100, "acc": acc * 100, "acc_plus": acc_plus * 100}


def _lmms_eval_subtask(correct: Sequence[bool], images: Mapping[Any, list[int]]) -> float:
    total = 0.0
    for idx in images.values():
        right = sum(1.0 for i in idx if correct[i])
        # lmms-eval averages acc + acc+ per image; equal to acc + acc+ when every image has its 2 questions
        total += (right == 2) * 100.0 + right / len(idx) * 100.0
    return total / len(images)


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score MME: one metric per subtask (acc + acc+, max 200), `perception` and `cognition` sums.

    Images are the rows' question_id (the image path) within a category. Under `official` also
    `<subtask>_acc` and `<subtask>_acc_plus`.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    labels = [_label(row, i, protocol) for i, row in enumerate(rows)]
    parsed = [parse_mme_answer(p, protocol) for p in predictions]
    correct = [p == g for p, g in zip(parsed, labels, strict=True)]

    # category -> image (question_id) -> row indices, in order of first appearance
    subtasks: dict[str, dict[Any, list[int]]] = {}
    for i, row in enumerate(rows):
        subtasks.setdefault(str(row["category"]), {}).setdefault(row["question_id"], []).append(i)

    metrics: dict[str, float] = {}
    subtask_scores: dict[str, float] = {}
    details: dict[str, float] = {}
    for category, images in subtasks.items():
        if protocol == "official":
            result = _official_subtask(correct, images)
            subtask_scores[category] = result["score"]
            details[f"{category}_acc"] = result["acc"]
            details[f"{category}_acc_plus"] = result["acc_plus"]
        else:
            subtask_scores[category] = _lmms_eval_subtask(correct, images)

    if protocol == "official":
        # calculation.py sums only the 14 named subtasks, in its own order
        groups = {
            "perception": [c for c in PERCEPTION_SUBTASKS if c in subtask_scores],
            "cognition": [c for c in COGNITION_SUBTASKS if c in subtask_scores],
        }
    else:
        # lmms-eval sends every category not in its perception list to cognition
        groups = {
            "perception": [c for c in subtask_scores if c in PERCEPTION_SUBTASKS],
            "cognition": [c for c in subtask_scores if c not in PERCEPTION_SUBTASKS],
        }
    for name, members in groups.items():
        if members:
            metrics[name] = sum(subtask_scores[c] for c in members)
    metrics.update(subtask_scores)
    metrics.update(details)
    scores: list[float | None] = [1.0 if ok else 0.0 for ok in correct]
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
