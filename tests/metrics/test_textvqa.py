"""TextVQA scorer: m4c's TextVQAAccuracyEvaluator (official) and lmms-eval's textvqa process_results."""

from __future__ import annotations

import pytest

from tinyllava_bench.metrics.textvqa import score


def textvqa_row(answers: list[str]) -> dict:
    return {"question_id": 3, "question": "what brand?", "answers": answers, "ocr_tokens": ["coca", "cola"]}


@pytest.mark.parametrize("protocol", ["official", "lmms-eval"])
def test_both_sides_are_always_normalised(protocol: str) -> None:
    # unlike official VQAv2 there is no all-identical gate: ten identical raw answers are processed too
    rows = [textvqa_row(["Coca-Cola"] * 10), textvqa_row(["man's"] * 10), textvqa_row(["1,000"] * 10)]
    result = score(rows, ["coca cola", "Man's", "1000?"], protocol=protocol)
    assert result.scores == [1.0, 1.0, 1.0]
    assert result.parsed == ["coca cola", "man 's", "1000"]


@pytest.mark.parametrize(("matching", "expected"), [(0, 0.0), (1, 0.3), (2, 0.6), (3, 0.9), (4, 1.0)])
def test_leave_one_out_over_ten_answers(matching: int, expected: float) -> None:
    row = textvqa_row(["Nike"] * matching + ["adidas"] * (10 - matching))
    assert score([row], ["nike."]).scores == pytest.approx([expected])


def test_numbers_and_articles_are_normalised() -> None:
    row = textvqa_row(["2"] * 3 + ["the stop sign"] * 7)
    result = score([row, row], ["Two", "A stop sign"])
    assert result.scores == pytest.approx([0.9, 1.0])
    assert result.metrics == pytest.approx({"accuracy": 95.0})


def test_official_needs_ten_answers_and_lmms_eval_does_not() -> None:
    row = textvqa_row(["nike"] * 9)
    with pytest.raises(ValueError, match="exactly 10"):
        score([row], ["nike"], protocol="official")
    # nine answers, all matching: each subset of eight sees 8 matches -> 1
    assert score([row], ["nike"], protocol="lmms-eval").scores == [1.0]


def test_rows_without_answers_are_not_scored() -> None:
    result = score([{"question_id": 1, "answers": None}], ["Nike"])
    assert result.scores == [None]
    assert result.parsed == ["nike"]
    assert result.metrics == {}
