"""ScienceQA-IMG scorer: LLaVA's eval_science_qa.py parser (official) and lmms-eval's scienceqa_img rule."""

from __future__ import annotations

import pytest

from tinyllava_bench.metrics.scienceqa import official_choice_index, official_parse, score


def sqa_row(n_choices: int, answer: int) -> dict:
    return {
        "question": "Which?",
        "choices": [f"choice {i}" for i in range(n_choices)],
        "answer": answer,
        "hint": "",
    }


@pytest.mark.parametrize(
    ("prediction", "parsed"),
    [
        ("A", "A"),
        ("E", "E"),
        ("F", "FAILED"),  # exact letters are A-E only
        ("b", "FAILED"),  # case-sensitive
        (" A", "FAILED"),  # no stripping
        ("B. a rock", "B"),
        ("B.", "FAILED"),  # "X. " needs the space and three characters
        ("B) a rock", "FAILED"),
        ("F. a rock", "FAILED"),  # "X. " only for A-E; no answer sentence either
        ("The answer is C.", "C"),
        ("The answer is C", "FAILED"),  # the pattern's final "." needs one more character
        ("The answer is CD", "C"),  # ... which can be anything
        ("Because ... The answer is F.", "F"),
        ("the answer is C.", "FAILED"),
        ("The answer is A. The answer is A.", "FAILED"),  # two matches fail even when they agree
        ("The answer is A. The answer is B.", "FAILED"),
        ("", "FAILED"),
    ],
)
def test_official_parse(prediction: str, parsed: str) -> None:
    assert official_parse(prediction) == parsed


def test_official_letters_past_the_choices_are_wrong() -> None:
    assert official_choice_index("C", 3) == 2
    assert official_choice_index("D", 3) == -1
    assert official_choice_index("F", 6) == -1  # the options list stops at E
    assert official_choice_index("FAILED", 5) == -1


@pytest.mark.parametrize(
    ("prediction", "n_choices", "answer", "official", "lmms"),
    [
        ("A", 2, 0, 1.0, 1.0),
        ("a", 2, 0, 0.0, 1.0),
        (" A\n", 2, 0, 0.0, 1.0),
        ("B.", 3, 1, 0.0, 1.0),
        ("B. choice 1", 3, 1, 1.0, 1.0),
        ("B) choice 1", 3, 1, 0.0, 0.0),
        ("The answer is B.", 3, 1, 1.0, 0.0),
        ("D", 3, 1, 0.0, 0.0),
        ("The answer is D.", 4, 3, 1.0, 0.0),
        ("The answer is E.", 4, 3, 0.0, 0.0),
        ("C", 2, 0, 0.0, 0.0),
    ],
)
def test_protocols_per_prediction(
    prediction: str, n_choices: int, answer: int, official: float, lmms: float
) -> None:
    row = sqa_row(n_choices, answer)
    assert score([row], [prediction], protocol="official").scores == [official]
    assert score([row], [prediction], protocol="lmms-eval").scores == [lmms]


def test_aggregate_and_parsed_under_both_protocols() -> None:
    rows = [sqa_row(3, 0), sqa_row(3, 1), sqa_row(4, 2), sqa_row(2, 1)]
    predictions = ["A", "b", "The answer is C.", "B.", "Z. no"]
    rows.append(sqa_row(2, 0))
    official = score(rows, predictions, protocol="official")
    assert official.parsed == ["A", "FAILED", "C", "FAILED", "FAILED"]
    assert official.scores == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert official.metrics == {"accuracy": 40.0}
    lmms = score(rows, predictions, protocol="lmms-eval")
    assert lmms.parsed == ["A", "B", None, "B", "Z"]
    assert lmms.scores == [1.0, 1.0, 0.0, 1.0, 0.0]
    assert lmms.metrics == {"accuracy": 60.0}
