"""ScienceQA-IMG accuracy: LLaVA's eval_science_qa.py answer parser (official) and lmms-eval's scienceqa_img rule."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.metrics import TaskScore

# eval_science_qa.py's --options default: only five letters exist, whatever the number of choices.
OFFICIAL_OPTIONS = ("A", "B", "C", "D", "E")
FAILED = "FAILED"
# Case-sensitive, and the final "." is the regex wildcard: "The answer is AB" yields "A", "The answer is A" at the
# very end yields nothing.
_ANSWER_SENTENCE = re.compile(r"The answer is ([A-Z]).")


def official_parse(prediction: str) -> str:
    """The letter eval_science_qa.py reads from a prediction, or "FAILED"."""
    if prediction in OFFICIAL_OPTIONS:
        return prediction
    if len(prediction) >= 3 and prediction[0] in OFFICIAL_OPTIONS and prediction[1:3] == ". ":
        return prediction[0]
    found = _ANSWER_SENTENCE.findall(prediction)
    # two answer sentences fail even when they agree
    return found[0] if len(found) == 1 else FAILED


def official_choice_index(parsed: str, n_choices: int) -> int:
    """get_pred_idx: the chosen index, or -1 for FAILED and letters past the choices (or past "E")."""
    allowed = OFFICIAL_OPTIONS[:n_choices]
    return OFFICIAL_OPTIONS.index(parsed) if parsed in allowed else -1


def _lmms_eval_question(prediction: str, answer_index: int, n_choices: int) -> tuple[float, str | None]:
    # lmms-eval letters are A, B, C, ... up to the number of choices; the answer must index one of them.
    letters = [chr(ord("A") + i) for i in range(n_choices)]
    target = letters[answer_index].strip().lower()
    text = prediction.strip()
    if text.lower() == target:
        return 1.0, target.upper()
    # "X." at the start with an upper-case X decides; anything else is wrong
    if len(text) >= 2 and text[0].isupper() and text[1] == ".":
        return (1.0 if text[0].lower() == target else 0.0), text[0]
    return 0.0, None


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score ScienceQA rows (lmms-lab/ScienceQA columns: choices, answer = index of the right choice).

    `parsed`: official, the letter read or "FAILED"; lmms-eval, the letter it recognised or None.
    """
    if protocol not in ("official", "lmms-eval"):
        raise ValueError(f"unknown protocol {protocol!r} for ScienceQA; use 'official' or 'lmms-eval'")
    parsed: list[Any] = []
    scores: list[float] = []  # every question is scored
    for row, prediction in zip(rows, predictions, strict=True):
        text = "" if prediction is None else str(prediction)
        answer_index = int(row["answer"])
        n_choices = len(row["choices"])
        letter: str | None
        if protocol == "official":
            letter = official_parse(text)
            value = 1.0 if official_choice_index(letter, n_choices) == answer_index else 0.0
        else:
            value, letter = _lmms_eval_question(text.strip(), answer_index, n_choices)
        parsed.append(letter)
        scores.append(value)
    metrics = {"accuracy": 100.0 * sum(scores) / len(scores)} if scores else {}
    # copied as TaskScore's list[float | None] (other scorers leave samples unscored)
    return TaskScore(metrics=metrics, parsed=parsed, scores=list(scores))
