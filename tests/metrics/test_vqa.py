"""VQAv2 scorer and the shared answer normalisers: every rule and quirk of vqaEval.py, EvalAI and lmms-eval."""

from __future__ import annotations

import pytest

from tinyllava_bench.metrics import score_task
from tinyllava_bench.metrics.answer_normalization import (
    evalai_normalize,
    evalai_process,
    evalai_punctuation,
    process_digit_article,
    vqa_eval_normalize,
    vqa_eval_punctuation,
)
from tinyllava_bench.metrics.vqa import leave_one_out_accuracy, score


def vqa_row(answers: list[str], answer_type: str = "other", with_ids: bool = True) -> dict:
    records = []
    for index, answer in enumerate(answers):
        record = {"answer": answer, "answer_confidence": "yes"}
        if with_ids:
            record["answer_id"] = index + 1
        records.append(record)
    return {"question_id": 1, "question": "q?", "answer_type": answer_type, "answers": records}


# --- leave-one-out arithmetic -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matching", "expected"),
    [
        (0, 0.0),
        (1, 0.3),  # 9 subsets see 1 match (1/3), the subset without it sees 0
        (2, 0.6),  # 2 subsets see 1/3, 8 subsets see 2/3
        (3, 0.9),  # 3 subsets see 2/3, 7 subsets see 1
        (4, 1.0),
        (10, 1.0),
    ],
)
def test_leave_one_out_accuracy_for_k_matching_answers(matching: int, expected: float) -> None:
    answers = ["yes"] * matching + ["no"] * (10 - matching)
    assert leave_one_out_accuracy(answers, "yes") == pytest.approx(expected, abs=1e-12)


def test_leave_one_out_with_duplicate_records_removes_every_equal_record() -> None:
    # 4 equal records of "yes": leaving one out removes all four, so those subsets see no match.
    answers = ["yes"] * 4 + ["no"] * 6
    duplicates = [4] * 4 + [6] * 6
    assert leave_one_out_accuracy(answers, "yes", duplicates) == pytest.approx(0.6)
    assert leave_one_out_accuracy(answers, "yes") == 1.0


def test_official_answer_records_without_ids_compare_as_whole_dicts() -> None:
    rows = [vqa_row(["yes"] * 4 + ["no"] * 6, with_ids=False), vqa_row(["yes"] * 4 + ["no"] * 6)]
    result = score(rows, ["yes", "yes"])
    assert result.scores == pytest.approx([0.6, 1.0])


# --- official normalisation rules ---------------------------------------------------------------------------


def test_period_stripping_keeps_decimal_points_only() -> None:
    assert vqa_eval_punctuation("3.5") == "3.5"
    assert vqa_eval_punctuation("e.g.") == "eg"
    assert vqa_eval_punctuation("5.") == "5"
    assert vqa_eval_punctuation("..5") == ".5"  # the second period is followed by a digit


def test_at_most_32_periods_are_removed() -> None:
    assert vqa_eval_punctuation("x" + "." * 40) == "x" + "." * 8
    assert evalai_process("x" + "." * 33) == "x."


def test_punctuation_becomes_space_unless_it_touches_a_space() -> None:
    assert vqa_eval_punctuation("t-shirt") == "t shirt"
    # one "-" next to a space: every "-" in the text is deleted, not spaced
    assert vqa_eval_punctuation("t-shirt -") == "tshirt "
    assert vqa_eval_punctuation("(red)") == " red "
    assert vqa_eval_punctuation("red!") == "red "
    # characters outside the list survive
    assert vqa_eval_punctuation("50% o'clock: #1") == "50% o'clock: #1"


def test_digit_comma_digit_deletes_all_punctuation() -> None:
    assert vqa_eval_punctuation("red,blue") == "red blue"
    assert vqa_eval_punctuation("1,2 red,blue") == "12 redblue"


def test_vqa_eval_and_evalai_differ_on_repeated_commas_between_digits() -> None:
    # vqaEval.py looks for digit,digit; EvalAI for digit,+digit
    assert vqa_eval_punctuation("1,,2 a/b") == "1  2 a b"
    assert evalai_punctuation("1,,2 a/b") == "12 ab"


def test_number_words_articles_and_contractions() -> None:
    assert process_digit_article("Two dogs") == "2 dogs"
    assert process_digit_article("none") == "0"  # the official map sends "none" to "0"
    assert process_digit_article("eleven") == "eleven"
    assert process_digit_article("The red a ball an apple") == "red ball apple"
    assert process_digit_article("dont   isnt") == "don't isn't"
    assert process_digit_article("Im") == "im"  # capitalised keys never match lower-cased words
    assert process_digit_article("somebody'd") == "somebodyd"
    assert vqa_eval_normalize("  The  Dog\n") == "dog"


def test_evalai_processor() -> None:
    assert evalai_process("Yes.") == "yes"
    assert evalai_process("What's that?") == "what 's that"
    assert evalai_process("1,000") == "1000"
    assert evalai_process("Two\tcats!") == "2 cats"
    assert evalai_process("a t-shirt") == "t shirt"
    assert evalai_process("") == ""
    # lmms-eval's VQAv2 step has no lower-casing tokeniser: no "'s" split, "?" handled as punctuation
    assert evalai_normalize("What's that?") == "what's that"


# --- official scorer ----------------------------------------------------------------------------------------


def test_official_normalises_only_when_answers_differ() -> None:
    # all ten answers identical: nothing but strip is applied, so "2" (EvalAI-processed "Two") misses "Two"
    identical = vqa_row(["Two"] * 10)
    assert score([identical], ["Two"]).scores == [0.0]
    mixed = vqa_row(["Two"] * 5 + ["2"] * 5)
    assert score([mixed], ["two"]).scores == [1.0]


def test_official_applies_evalai_to_the_prediction_first() -> None:
    row = vqa_row(["yes"] * 10)
    result = score([row], ["Yes."])
    assert result.scores == [1.0]
    assert result.parsed == ["yes"]


def test_official_cleans_tabs_and_newlines_in_human_answers() -> None:
    row = vqa_row(["red\n"] * 3 + ["\tred "] * 3 + ["blue"] * 4)
    assert score([row], ["red"]).scores == [1.0]


def test_protocols_differ_on_possessive_split_and_identical_gate() -> None:
    rows = [vqa_row(["man's"] * 10), vqa_row(["Two"] * 10), vqa_row(["yes"] * 3 + ["no"] * 7)]
    predictions = ["man's", "Two", "yes"]
    official = score(rows, predictions, protocol="official")
    lmms = score(rows, predictions, protocol="lmms-eval")
    # official: EvalAI turns "man's" into "man 's" and "Two" into "2"; the gt side stays raw (identical answers)
    assert official.scores == pytest.approx([0.0, 0.0, 0.9])
    assert official.metrics["accuracy"] == pytest.approx(30.0)
    assert lmms.scores == pytest.approx([1.0, 1.0, 0.9])
    assert lmms.metrics["accuracy"] == pytest.approx(290 / 3)
    assert official.parsed == ["man 's", "2", "yes"]
    assert lmms.parsed == ["man's", "2", "yes"]


def test_official_reports_accuracy_per_answer_type() -> None:
    rows = [vqa_row(["yes"] * 10, "yes/no"), vqa_row(["no"] * 10, "yes/no"), vqa_row(["2"] * 10, "number")]
    result = score(rows, ["yes", "yes", "two"])
    assert result.metrics == pytest.approx(
        {"accuracy": 200 / 3, "accuracy_yes_no": 50.0, "accuracy_number": 100.0}
    )


def test_rows_without_answers_are_not_scored_and_keep_the_submission_answer() -> None:
    rows = [{"question_id": 7, "question": "q?", "answers": None}]
    result = score(rows, ["A Dog."])
    assert result.scores == [None]
    assert result.parsed == ["dog"]
    assert result.metrics == {}
    assert score(rows, [" A Dog. "], protocol="lmms-eval").parsed == ["A Dog."]


def test_answers_stored_as_dict_of_lists() -> None:
    row = {"answers": {"answer": ["yes"] * 2 + ["no"] * 8, "answer_id": list(range(10))}}
    assert score([row], ["yes"]).scores == pytest.approx([0.6])


def test_score_task_routes_to_this_module_and_rejects_unknown_protocol() -> None:
    row = vqa_row(["yes"] * 10)
    assert score_task("vqav2", [row], ["yes"]).scores == [1.0]
    with pytest.raises(ValueError, match="protocol"):
        score([row], ["yes"], protocol="other")
