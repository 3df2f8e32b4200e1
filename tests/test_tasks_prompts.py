"""Question text per task and protocol, byte for byte."""

from __future__ import annotations

import pytest

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks import apply_overrides, build_question, load_task

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."


@pytest.mark.parametrize("task", ["vqav2", "vqav2_testdev", "gqa"])
def test_short_answer_tasks_append_the_suffix(task: str) -> None:
    row = {"question": "What is the man holding?", "question_id": 1, "id": "1"}
    for protocol in ("official", "lmms-eval"):
        assert build_question(task, row, protocol) == "What is the man holding?" + SHORT


def test_pope_official_keeps_the_question_and_lmms_eval_strips_it() -> None:
    row = {"question": " Is there a dog in the image? ", "question_id": "1"}
    assert build_question("pope", row) == " Is there a dog in the image? " + SHORT
    assert build_question("pope", row, "lmms-eval") == "Is there a dog in the image?" + SHORT


def test_mme_drops_the_yes_no_request_for_the_short_answer_suffix() -> None:
    row = {"question": "Is there a cat in this image? Please answer yes or no.", "question_id": "x/1.jpg"}
    expected = "Is there a cat in this image?" + SHORT
    assert build_question("mme", row) == expected
    assert build_question("mme", row, "lmms-eval") == expected


def test_mme_two_space_variant_differs_between_protocols() -> None:
    # some MME questions have two spaces before "Please"; lmms-eval removes " Please ..." and keeps one space
    row = {"question": "Is the cat black?  Please answer yes or no.", "question_id": "x/2.jpg"}
    assert build_question("mme", row) == "Is the cat black?" + SHORT
    assert build_question("mme", row, "lmms-eval") == "Is the cat black? " + SHORT


# the shape of a real entry of LLaVA's llava_test_CQM-A.json (issue 17)
ILIAD = {
    "question": "Which figure of speech is used in this text?\nSing, O goddess, the anger of Achilles son of Peleus, "
    "that brought countless ills upon the Achaeans.\n—Homer, The Iliad",
    "hint": "",
    "choices": ["chiasmus", "apostrophe"],
}
ILIAD_TEXT = (
    "Which figure of speech is used in this text?\nSing, O goddess, the anger of Achilles son of Peleus, that "
    "brought countless ills upon the Achaeans.\n—Homer, The Iliad"
)


def test_scienceqa_paper_prompt_is_llava_cqm_a() -> None:
    assert build_question("scienceqa_img", ILIAD) == (
        f"Context: N/A\nQuestion: {ILIAD_TEXT}\nOptions: (A) chiasmus (B) apostrophe" + LETTER
    )


def test_scienceqa_lmms_eval_prompt_has_letter_lines_and_no_context_without_a_hint() -> None:
    assert (
        build_question("scienceqa_img", ILIAD, "lmms-eval")
        == f"{ILIAD_TEXT}\nA. chiasmus\nB. apostrophe" + LETTER
    )


def test_scienceqa_with_a_hint_under_both_protocols() -> None:
    row = {
        "question": "Which animal is a mammal?",
        "hint": "Look at the picture.",
        "choices": ["dog", "trout", "frog"],
    }
    assert build_question("scienceqa_img", row) == (
        "Context: Look at the picture.\nQuestion: Which animal is a mammal?\nOptions: (A) dog (B) trout (C) frog"
        + LETTER
    )
    assert build_question("scienceqa_img", row, "lmms-eval") == (
        "Context: Look at the picture.\nWhich animal is a mammal?\nA. dog\nB. trout\nC. frog" + LETTER
    )


@pytest.mark.parametrize("hint", ["", None, "   "])
def test_scienceqa_empty_hint_is_n_a_for_the_paper_and_no_line_for_lmms_eval(hint: str | None) -> None:
    row = {"question": "Which is a solid?", "hint": hint, "choices": ["milk", "rock"]}
    assert (
        build_question("scienceqa_img", row)
        == "Context: N/A\nQuestion: Which is a solid?\nOptions: (A) milk (B) rock" + LETTER
    )
    lmms = build_question("scienceqa_img", row, "lmms-eval")
    # lmms-eval tests the hint's truth, so a blank-but-not-empty hint still gets its line
    assert lmms == ("Context:    \n" if hint else "") + "Which is a solid?\nA. milk\nB. rock" + LETTER


def test_scienceqa_paper_prompt_keeps_llavas_whitespace_quirks() -> None:
    # the hint is stripped; "  " -> " " in a single pass (three spaces stay two); "<image>" is removed and the
    # text stripped again, as model_vqa_science.py reads the converter's "{input}\n<image>"
    row = {
        "question": "Pick  one:   <image> which?",
        "hint": "  A hint with  two spaces. ",
        "choices": ["x ", " y"],
    }
    assert build_question("scienceqa_img", row) == (
        "Context: A hint with two spaces.\nQuestion: Pick one:   which?\nOptions: (A) x (B) y" + LETTER
    )


def test_a_misspelt_template_placeholder_is_a_user_error_naming_it() -> None:
    with pytest.raises(UserError, match="cqm_template"):
        apply_overrides(load_task("scienceqa_img"), {"prompt.cqm_template": "Context: {hint}"})


def test_textvqa_official_puts_the_ocr_line_between_question_and_suffix() -> None:
    row = {"question": "what is the brand of this camera?", "ocr_tokens": ["DAKOTA", "DIGITAL", "Single-Use"]}
    assert (
        build_question("textvqa", row)
        == "What is the brand of this camera?\nReference OCR token: DAKOTA, DIGITAL, Single-Use" + SHORT
    )


def test_textvqa_without_tokens_has_no_ocr_line() -> None:
    row = {"question": "what brand phone is this?", "ocr_tokens": []}
    assert build_question("textvqa", row) == "What brand phone is this?" + SHORT


def test_textvqa_lmms_eval_and_the_task_option_turn_ocr_off() -> None:
    row = {"question": "what year is it?", "ocr_tokens": ["1984"]}
    assert build_question("textvqa", row, "lmms-eval") == "What year is it?" + SHORT
    off = apply_overrides(load_task("textvqa"), {"prompt.ocr_tokens": "false"})
    assert build_question(off, row) == "What year is it?" + SHORT


def test_textvqa_lmms_eval_with_ocr_on_writes_the_line_even_without_tokens() -> None:
    on = apply_overrides(load_task("textvqa"), {"prompt.ocr_tokens": True})
    row = {"question": "what year is it?", "ocr_tokens": []}
    assert build_question(on, row, "lmms-eval") == "What year is it?\nReference OCR token: " + SHORT


def test_textvqa_capitalises_like_str_capitalize() -> None:
    row = {"question": "what does CNN stand for?", "ocr_tokens": []}
    assert build_question("textvqa", row) == "What does cnn stand for?" + SHORT


def test_mmvet_is_the_question_alone_and_lmms_eval_adds_its_reasoning_request() -> None:
    row = {"question": "What is x in the equation?", "question_id": "v1_0"}
    assert build_question("mmvet", row) == "What is x in the equation?"
    assert build_question("mmvet", row, "lmms-eval") == (
        "First please perform reasoning, and think step by step to provide best answer to the following "
        "question: \n\nWhat is x in the equation?"
    )


def test_llava_wild_is_the_question_alone() -> None:
    row = {"question": "Describe this photo in detail.", "question_id": 0}
    assert build_question("llava_wild", row) == "Describe this photo in detail."
    assert build_question("llava_wild", row, "lmms-eval") == "Describe this photo in detail."


def test_a_row_without_the_question_or_choices_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="no column 'question'"):
        build_question("vqav2", {"question_id": 1})
    with pytest.raises(ValueError, match="choices"):
        build_question("scienceqa_img", {"question": "q", "hint": "", "choices": []})


# one row per task and the exact bytes each protocol makes of it; a new task must add its row here
_ROWS = {
    "vqav2": {"question": "What is the man holding?"},
    "vqav2_testdev": {"question": "What is the man holding?"},
    "gqa": {"question": "Is the sky blue?"},
    "pope": {"question": " Is there a imange in the image? "},
    "mme": {"question": "Is the cat black?  Please answer yes or no."},
    "textvqa": {"question": "what does CNN say?", "ocr_tokens": ["CNN", "news"]},
    "mmvet": {"question": "What is x?"},
    "llava_wild": {"question": "Describe this photo in detail."},
    "scienceqa_img": ILIAD,
}
_REASON = "First please perform reasoning, and think step by step to provide best answer to the following question: \n\n"
_EXPECTED = {
    ("vqav2", "official"): "What is the man holding?" + SHORT,
    ("vqav2", "lmms-eval"): "What is the man holding?" + SHORT,
    ("vqav2_testdev", "official"): "What is the man holding?" + SHORT,
    ("vqav2_testdev", "lmms-eval"): "What is the man holding?" + SHORT,
    ("gqa", "official"): "Is the sky blue?" + SHORT,
    ("gqa", "lmms-eval"): "Is the sky blue?" + SHORT,
    ("pope", "official"): " Is there a imange in the image? " + SHORT,
    ("pope", "lmms-eval"): "Is there a imange in the image?" + SHORT,
    ("mme", "official"): "Is the cat black?" + SHORT,
    ("mme", "lmms-eval"): "Is the cat black? " + SHORT,
    ("textvqa", "official"): "What does cnn say?\nReference OCR token: CNN, news" + SHORT,
    ("textvqa", "lmms-eval"): "What does cnn say?" + SHORT,
    ("mmvet", "official"): "What is x?",
    ("mmvet", "lmms-eval"): _REASON + "What is x?",
    ("llava_wild", "official"): "Describe this photo in detail.",
    ("llava_wild", "lmms-eval"): "Describe this photo in detail.",
    (
        "scienceqa_img",
        "official",
    ): f"Context: N/A\nQuestion: {ILIAD_TEXT}\nOptions: (A) chiasmus (B) apostrophe" + LETTER,
    ("scienceqa_img", "lmms-eval"): f"{ILIAD_TEXT}\nA. chiasmus\nB. apostrophe" + LETTER,
}


def test_every_task_is_pinned_under_every_protocol() -> None:
    from tinyllava_bench.metrics import PROTOCOLS
    from tinyllava_bench.tasks import list_tasks

    assert {(task.name, protocol) for task in list_tasks() for protocol in PROTOCOLS} == set(_EXPECTED)


@pytest.mark.parametrize(("task", "protocol"), sorted(_EXPECTED))
def test_prompt_bytes(task: str, protocol: str) -> None:
    assert build_question(task, _ROWS[task], protocol).encode() == _EXPECTED[(task, protocol)].encode()
