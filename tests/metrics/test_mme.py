"""MME scorer: the first-four-characters yes/no rule, acc + acc+ per subtask, perception and cognition sums."""

import pytest

from tinyllava_bench.metrics.mme import parse_mme_answer, score


def _pair(category, image, first, second):
    return [
        {
            "question_id": f"{category}/{image}",
            "question": "Q1 Please answer yes or no.",
            "answer": first,
            "category": category,
        },
        {
            "question_id": f"{category}/{image}",
            "question": "Q2 Please answer yes or no.",
            "answer": second,
            "category": category,
        },
    ]


@pytest.mark.parametrize(
    ("prediction", "official", "lmms"),
    [
        ("Yes", "yes", "yes"),
        ("No.", "no", "no"),
        ("yes, it is", "yes", "yes"),
        ("Not really", "no", "no"),
        ("know", "no", "no"),  # "no" anywhere in the first four characters
        ("nyes", "yes", "yes"),  # yes is checked before no
        (" yes", "yes", "yes"),
        ("The answer is yes", "other", "other"),
        ("y", "other", "yes"),  # lmms-eval's single-letter rule
        ("N.", "other", "no"),  # lmms-eval drops periods first
        ("ye.s", "other", "yes"),
        ("", "other", "other"),
    ],
)
def test_parse_by_protocol(prediction, official, lmms):
    assert parse_mme_answer(prediction) == official
    assert parse_mme_answer(prediction, "lmms-eval") == lmms


def test_subtask_score_is_acc_plus_acc_plus():
    rows = _pair("existence", "1.png", "Yes", "No") + _pair("existence", "2.png", "Yes", "No")
    result = score(rows, ["Yes", "No", "Yes", "Yes"])
    assert result.parsed == ["yes", "no", "yes", "yes"]
    assert result.scores == [1.0, 1.0, 1.0, 0.0]
    assert result.metrics["existence_acc"] == pytest.approx(75.0)
    assert result.metrics["existence_acc_plus"] == pytest.approx(50.0)
    assert result.metrics["existence"] == pytest.approx(125.0)
    assert result.metrics["perception"] == pytest.approx(125.0)
    assert "cognition" not in result.metrics


def test_totals_sum_their_subtasks_and_images_are_grouped_by_question_id():
    rows = (
        _pair("OCR", "1.png", "Yes", "No")
        + _pair("count", "1.png", "No", "Yes")
        + _pair("code_reasoning", "1.png", "Yes", "No")
        + _pair("text_translation", "1.png", "Yes", "No")
    )
    predictions = ["yes", "no", "no", "no", "yes", "no", "no", "no"]
    order = [0, 2, 4, 6, 1, 3, 5, 7]  # split every image's questions apart
    result = score([rows[i] for i in order], [predictions[i] for i in order])
    assert result.metrics["OCR"] == pytest.approx(200.0)
    assert result.metrics["count"] == pytest.approx(50.0)
    assert result.metrics["code_reasoning"] == pytest.approx(200.0)
    assert result.metrics["text_translation"] == pytest.approx(50.0)
    assert result.metrics["perception"] == pytest.approx(250.0)
    assert result.metrics["cognition"] == pytest.approx(250.0)


def test_protocols_differ_on_single_letters_and_unknown_categories():
    rows = _pair("color", "1.png", "Yes", "No") + _pair("made_up", "1.png", "Yes", "No")
    predictions = ["y", "n", "Yes", "No"]
    official = score(rows, predictions)
    lmms = score(rows, predictions, "lmms-eval")
    assert official.parsed[:2] == ["other", "other"]
    assert official.metrics["color"] == 0.0
    assert lmms.metrics["color"] == pytest.approx(200.0)
    # calculation.py sums only its 14 subtasks; lmms-eval puts anything not perception into cognition
    assert "cognition" not in official.metrics
    assert lmms.metrics["cognition"] == pytest.approx(200.0)


def test_protocols_differ_on_an_image_with_one_question():
    rows = _pair("scene", "1.png", "Yes", "No") + [_pair("scene", "2.png", "Yes", "No")[0]]
    predictions = ["Yes", "No", "No"]
    # official: acc 2/3, acc+ 1/2 (an image needs 2 right); lmms-eval: mean of per-image (acc + acc+)
    assert score(rows, predictions).metrics["scene"] == pytest.approx(200 / 3 + 50)
    assert score(rows, predictions, "lmms-eval").metrics["scene"] == pytest.approx(100.0)


def test_same_numbers_when_pairs_are_complete_and_replies_clean():
    rows = _pair("artwork", "1.png", "Yes", "No") + _pair("artwork", "2.png", "No", "Yes")
    predictions = ["Yes", "Yes", "No", "Yes"]
    assert score(rows, predictions).metrics["artwork"] == pytest.approx(75 + 50)
    assert score(rows, predictions, "lmms-eval").metrics["artwork"] == pytest.approx(75 + 50)


def test_bad_label_is_rejected():
    with pytest.raises(ValueError, match="MME answers must be"):
        score(_pair("OCR", "1.png", "Maybe", "No"), ["Yes", "No"])
