"""LLaVA-Bench-in-the-Wild: review parsing, and the relative-score summary with its quirks."""

import pytest

from tinyllava_bench.metrics.llava_wild import (
    parse_llava_review,
    review_is_valid,
    score,
)

ROW = {
    "question_id": 0,
    "question": "What is {odd} here?",
    "caption": "A dog on a sofa.",
    "gpt_answer": "A dog.",
    "category": "conv",
}


@pytest.mark.parametrize(
    ("review", "official", "lmms"),
    [
        ("8 9", [8.0, 9.0], [8.0, 9.0]),
        ("8,9\nAssistant 1 was vague", [8.0, 9.0], [8.0, 9.0]),
        ("7.5 8", [7.5, 8.0], [7.5, 8.0]),
        ("8, 9", [-1.0, -1.0], [8.0, 9.0]),  # official: "8  9" splits into 3 tokens
        ("7;8", [-1.0, -1.0], [7.0, 8.0]),
        ("Assistant 1: 8, Assistant 2: 9", [-1.0, -1.0], [1.0, 8.0]),  # lmms-eval takes the first 2 numbers
        ("\n8 9", [-1.0, -1.0], [8.0, 9.0]),  # lmms-eval strips first
        ("8", [-1.0, -1.0], [-1.0, -1.0]),
        ("good bad", [-1.0, -1.0], [-1.0, -1.0]),
        (None, [-1.0, -1.0], [-1.0, -1.0]),
    ],
)
def test_parse_review(review, official, lmms):
    assert parse_llava_review(review) == official
    assert parse_llava_review(review, "lmms-eval") == lmms


def _rows(categories):
    return [dict(ROW, question_id=i, category=c) for i, c in enumerate(categories)]


def test_relative_scores_average_failed_reviews_in():
    rows = _rows(["conv", "conv", "detail", "complex"])
    judgements = [[8, 6], [10, 9], [9, 9], [-1, -1]]
    result = score(rows, ["a"] * 4, judgements=judgements)
    # all: mean ref (8+10+9-1)/4 = 6.5, mean model (6+9+9-1)/4 = 5.75 -> 88.46… -> 88.5
    assert result.metrics["relative_score"] == 88.5
    assert result.metrics["reference_score"] == 65.0
    assert result.metrics["model_score"] == 57.5
    assert result.metrics["relative_score_conv"] == 83.3
    assert result.metrics["relative_score_detail"] == 100.0
    # complex holds only a failed review: the graders' -1 / -1 would print 100.0, which is no score
    assert "relative_score_complex" not in result.metrics and "model_score_complex" not in result.metrics
    assert result.parsed[0] == [8.0, 6.0]
    assert result.scores == [6.0, 9.0, 9.0, -1.0]
    assert result.metrics["unscored"] == 0.0


def test_a_run_whose_reviews_all_failed_has_no_score():
    result = score(_rows(["conv", "detail"]), ["a", "b"], judgements=[[-1, -1], [-1, -1]])
    assert not [name for name in result.metrics if name != "unscored"], result.metrics
    assert result.scores == [-1.0, -1.0]


@pytest.mark.parametrize(
    ("pair", "valid"),
    [
        ([1, 10], True),
        ([8, 6.5], True),
        ([-1, -1], False),
        ([100, -5], False),
        ([0, 5], False),
        ([5, 11], False),
        ([float("nan"), 5], False),
    ],
)
def test_a_valid_review_holds_two_scores_in_1_to_10(pair, valid):
    assert review_is_valid(pair) is valid


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_judgement_that_is_not_finite_never_becomes_a_metric(bad):
    with pytest.raises(ValueError, match="finite"):
        score(_rows(["conv", "conv"]), ["a", "b"], judgements=[[8, 6], [8, bad]])


def test_means_are_rounded_to_3_decimals_before_the_ratio():
    judgements = [[5, 3], [9, 3], [6, 5], [10, 4], [8, 6], [10, 3], [10, 3]]
    result = score(_rows(["conv"] * 7), ["a"] * 7, judgements=judgements)
    # means 58/7 -> 8.286 and 27/7 -> 3.857: 3.857 / 8.286 = 46.548… -> 46.5; unrounded means give 46.6
    assert round(27 / 58 * 100, 1) == 46.6
    assert result.metrics["relative_score"] == 46.5
    assert result.metrics["reference_score"] == 82.9
    assert result.metrics["model_score"] == 38.6


def test_failed_judge_calls_are_excluded_and_counted():
    rows = _rows(["conv", "conv"])
    result = score(rows, ["a", "b"], judgements=[[8, 4], None])
    assert result.metrics["relative_score"] == 50.0
    assert result.metrics["unscored"] == 1.0
    assert result.scores == [4.0, None]


def test_protocols_differ_on_lmms_eval_skip_marker():
    rows = _rows(["conv", "conv"])
    judgements = [[8, 4], [-999, 3]]  # lmms-eval drops any pair holding -999 from every mean
    assert score(rows, ["a", "b"], judgements=judgements).metrics["relative_score"] == pytest.approx(
        round(round(3.5, 3) / round(-495.5, 3) * 100, 1)
    )
    assert score(rows, ["a", "b"], "lmms-eval", judgements).metrics["relative_score"] == 50.0


def test_undefined_ratio_and_missing_judgements():
    assert "relative_score" not in score(_rows(["conv"]), ["a"], judgements=[[0, 5]]).metrics
    with pytest.raises(ValueError, match="one judge result per row"):
        score(_rows(["conv"]), ["a"])
    with pytest.raises(ValueError, match="reference_score, model_score"):
        score(_rows(["conv"]), ["a"], judgements=[[1, 2, 3]])
