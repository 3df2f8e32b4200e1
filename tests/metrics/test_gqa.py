"""GQA scorer: LLaVA's convert script + GQA eval.py (official) and lmms-eval's exact_match."""

from __future__ import annotations

import pytest

from tinyllava_bench.metrics.gqa import lmms_eval_form, official_prediction, score


def gqa_row(answer: str, balanced: bool = True, structural: str = "query") -> dict:
    return {
        "id": "q1",
        "question": "What is it?",
        "answer": answer,
        "fullAnswer": f"It is {answer}.",
        "isBalanced": balanced,
        "types": {"structural": structural, "semantic": "obj", "detailed": "x"},
    }


def test_official_prediction_strips_trailing_periods_and_lowercases_only() -> None:
    assert official_prediction("Yes.") == "yes"
    assert official_prediction("Yes..") == "yes"
    assert official_prediction("Yes. ") == "yes. "  # the period is not last: nothing stripped
    assert official_prediction(" Yes") == " yes"
    assert official_prediction("T-Shirt!") == "t-shirt!"


def test_lmms_eval_form_lowercases_and_drops_ascii_punctuation() -> None:
    assert lmms_eval_form("T-Shirt!") == "tshirt"
    assert lmms_eval_form("women's") == "womens"
    # numpy's fixed-width strings cut a lower-case form that grows ("İ" -> "i" + combining dot) to the input width
    assert lmms_eval_form("İ") == "i"


@pytest.mark.parametrize(
    ("answer", "prediction", "official", "lmms"),
    [
        ("yes", "Yes.", 1.0, 1.0),
        ("yes", "yes!", 0.0, 1.0),
        ("yes", " yes", 0.0, 1.0),
        ("yes", "yes. ", 0.0, 1.0),
        ("t-shirt", "T-shirt", 1.0, 1.0),
        ("t-shirt", "tshirt", 0.0, 1.0),
        ("t-shirt", "t shirt", 0.0, 0.0),
        ("dog", "the dog", 0.0, 0.0),
        ("3.5", "3.5.", 1.0, 1.0),
    ],
)
def test_protocols_per_prediction(answer: str, prediction: str, official: float, lmms: float) -> None:
    assert score([gqa_row(answer)], [prediction], protocol="official").scores == [official]
    assert score([gqa_row(answer)], [prediction], protocol="lmms-eval").scores == [lmms]


def test_official_counts_balanced_questions_only_and_splits_binary_and_open() -> None:
    rows = [
        gqa_row("yes", structural="verify"),
        gqa_row("no", structural="logical"),
        gqa_row("cat", structural="query"),
        gqa_row("dog", balanced=False),
    ]
    predictions = ["yes", "yes", "Cat.", "dog"]
    official = score(rows, predictions, protocol="official")
    assert official.scores == [1.0, 0.0, 1.0, None]
    assert official.parsed == ["yes", "yes", "cat", "dog"]
    assert official.metrics == pytest.approx(
        {"accuracy": 200 / 3, "accuracy_binary": 50.0, "accuracy_open": 100.0}
    )
    lmms = score(rows, predictions, protocol="lmms-eval")
    assert lmms.scores == [1.0, 0.0, 1.0, 1.0]
    assert lmms.metrics == {"accuracy": 75.0}


def test_official_accuracy_is_zero_when_no_question_is_balanced() -> None:
    assert score([gqa_row("yes", balanced=False)], ["yes"]).metrics["accuracy"] == 0.0
