"""POPE scorer: LLaVA's yes/no rule and per-category metrics (official), lmms-eval's exact match and quirks."""

import pytest

from tinyllava_bench.metrics import score_task
from tinyllava_bench.metrics.pope import parse_pope_answer, score


def _rows(answers, category="random"):
    return [
        {"question_id": i, "question": "Is there a dog?", "answer": a, "category": category}
        for i, a in enumerate(answers)
    ]


@pytest.mark.parametrize(
    ("prediction", "expected"),
    [
        ("Yes", "yes"),
        ("No", "no"),
        ("No, there is not.", "no"),
        ("Yes, no", "no"),  # the comma goes, leaving the word "no"
        ("not sure", "no"),
        ("There is a dog. It is not a cat.", "yes"),  # only the first sentence counts
        ("Nope", "yes"),
        ("NO", "yes"),  # only "No", "not", "no" are negative words
        ("No\nthere is none", "yes"),  # split on spaces only: "No\nthere" is one word
        ("", "yes"),
    ],
)
def test_official_parse(prediction, expected):
    assert parse_pope_answer(prediction) == expected


def test_lmms_eval_parse_keeps_the_cleaned_reply():
    assert parse_pope_answer("  Yes \n", "lmms-eval") == "yes"
    assert parse_pope_answer("Yes.", "lmms-eval") == "yes."


def test_official_metrics_of_one_category():
    rows = _rows(["yes", "yes", "yes", "no", "no"])
    result = score(rows, ["Yes", "Yes.", "No", "Yes, there is", "No"])
    # TP 2, FN 1, FP 1, TN 1
    assert result.parsed == ["yes", "yes", "no", "yes", "no"]
    assert result.scores == [1.0, 1.0, 0.0, 0.0, 1.0]
    assert result.metrics["random_accuracy"] == pytest.approx(60.0)
    assert result.metrics["random_precision"] == pytest.approx(200 / 3)
    assert result.metrics["random_recall"] == pytest.approx(200 / 3)
    assert result.metrics["random_f1"] == pytest.approx(200 / 3)
    assert result.metrics["random_yes_ratio"] == pytest.approx(60.0)  # 3 of 5 predictions are yes
    assert result.metrics["f1"] == pytest.approx(200 / 3)


def test_official_headline_is_the_mean_over_categories():
    rows = _rows(["yes", "no"], "adversarial") + _rows(["yes", "yes", "no", "no"], "popular")
    predictions = ["Yes", "Yes", "Yes", "No", "No", "No"]
    result = score(rows, predictions)
    assert result.metrics["adversarial_accuracy"] == pytest.approx(50.0)
    assert result.metrics["popular_accuracy"] == pytest.approx(75.0)
    assert result.metrics["accuracy"] == pytest.approx(62.5)  # not the pooled 4/6
    assert result.metrics["adversarial_f1"] == pytest.approx(200 / 3)  # P 1/2, R 1
    assert result.metrics["popular_f1"] == pytest.approx(200 / 3)  # P 1, R 1/2
    assert result.metrics["yes_ratio"] == pytest.approx((100 + 25) / 2)


def test_protocols_differ_on_the_same_replies():
    rows = _rows(["yes", "yes", "no", "no"])
    predictions = ["Yes.", "Yes", "No, there is none", "Maybe"]
    official = score(rows, predictions, "official")
    lmms = score(rows, predictions, "lmms-eval")
    assert official.scores == [1.0, 1.0, 1.0, 0.0]  # "Maybe" reads as yes
    assert lmms.scores == [0.0, 1.0, 0.0, 0.0]  # only the exact words count
    assert official.metrics["accuracy"] == pytest.approx(75.0)
    assert lmms.metrics["accuracy"] == pytest.approx(25.0)
    # lmms-eval's yes_ratio counts ground-truth yes; official counts predicted yes
    assert official.metrics["yes_ratio"] == pytest.approx(75.0)
    assert lmms.metrics["yes_ratio"] == pytest.approx(50.0)
    # "yes." is neither yes nor no to lmms-eval, so it is not a false negative: recall 1/1
    assert lmms.metrics["recall"] == pytest.approx(100.0)
    assert lmms.metrics["precision"] == pytest.approx(100.0)
    assert official.metrics["precision"] == pytest.approx(200 / 3)


def test_lmms_eval_headline_pools_all_rows():
    rows = _rows(["yes", "no"], "adversarial") + _rows(["yes", "yes", "no", "no"], "popular")
    predictions = ["yes", "yes", "yes", "no", "no", "no"]
    result = score(rows, predictions, "lmms-eval")
    assert result.metrics["accuracy"] == pytest.approx(400 / 6)
    assert result.metrics["adversarial_accuracy"] == pytest.approx(50.0)
    assert result.metrics["popular_accuracy"] == pytest.approx(75.0)


def test_empty_denominators_give_zero():
    result = score(_rows(["yes", "no"]), ["No", "No"])  # no predicted yes: precision 0/0
    assert result.metrics["precision"] == 0.0
    assert result.metrics["f1"] == 0.0
    assert result.metrics["accuracy"] == pytest.approx(50.0)


def test_bad_label_and_protocol_are_rejected():
    with pytest.raises(ValueError, match="answers must be 'yes' or 'no'"):
        score(_rows(["maybe"]), ["yes"])
    with pytest.raises(ValueError, match="unknown protocol"):
        score(_rows(["yes"]), ["yes"], "vlmevalkit")


def test_registry_dispatches_to_pope():
    assert score_task("pope", _rows(["yes"]), ["Yes"]).metrics["accuracy"] == pytest.approx(100.0)
