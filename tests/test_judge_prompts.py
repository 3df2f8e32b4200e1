"""The judge's prompts (judge/prompts.py): MM-Vet and LLaVA-W judge messages byte-exact from the protocol files."""

import json

import pytest

from tinyllava_bench.judge.prompts import (
    MMVET_RETRY_SUFFIX,
    build_llava_wild_judge_messages,
    build_mmvet_judge_message,
    load_llava_wild_judge_spec,
    mmvet_fewshot_prompt,
)
from tinyllava_bench.paths import PROTOCOL_DIR

ROW = {
    "question_id": 0,
    "question": "What is {odd} here?",
    "caption": "A dog on a sofa.",
    "gpt_answer": "A dog.",
    "category": "conv",
}


def test_mmvet_official_message_bytes():
    prompt = (PROTOCOL_DIR / "mmvet_judge_fewshot_prompt.txt").read_text(encoding="utf-8")
    message = build_mmvet_judge_message("What is x?", "-1<AND>-5<OR>3", "x = 3")
    assert message == prompt + "\nWhat is x? | -1 <AND> -5 <OR> 3 | x = 3 | "
    assert prompt.endswith("| 1.0\n")  # so the row follows one blank line after the table
    retry = build_mmvet_judge_message("What is x?", "-1", "x = 3", retry=True)
    assert retry.endswith(" | x = 3 | \nPredict the correctness of the answer (digit): ")
    assert MMVET_RETRY_SUFFIX == "\nPredict the correctness of the answer (digit): "


def test_mmvet_lmms_eval_message_differs():
    official = mmvet_fewshot_prompt("official")
    lmms = mmvet_fewshot_prompt("lmms-eval")
    assert "correctness score.\n\nQuestion | Ground truth | Prediction | Correctness\n" in official
    assert "correctness score.\ngpt_query_prompt | Ground truth | Prediction | Correctness\n" in lmms
    assert len(lmms) == len(official) + 7
    message = build_mmvet_judge_message("What is x?", "-1<AND>-5", "x = 3", "lmms-eval")
    assert message == lmms + "\nWhat is x? | -1 <AND> -5 | x = 3 |"
    assert build_mmvet_judge_message("q", "a", "p", "lmms-eval", retry=True) == message.replace(
        "What is x? | -1 <AND> -5 | x = 3 |", "q | a | p |"
    )


def test_llava_wild_official_messages_bytes():
    spec = json.loads((PROTOCOL_DIR / "llava_wild_judge.json").read_text(encoding="utf-8"))
    rule = spec["rules"]["llava_bench_conv"]["prompt"]
    messages = build_llava_wild_judge_messages(ROW, "It is a dog {x}.")
    assert messages[0] == {
        "role": "system",
        "content": "You are a helpful and precise assistant for checking the quality of the answer.",
    }
    assert messages[1]["role"] == "user"
    assert messages[1]["content"] == (
        "[Context]\nA dog on a sofa.\n\n[Question]\nWhat is {odd} here?\n\n"
        "[Assistant 1]\nA dog.\n\n[End of Assistant 1]\n\n"
        "[Assistant 2]\nIt is a dog {x}.\n\n[End of Assistant 2]\n\n"
        f"[System]\n{rule}\n\n"
    )
    assert build_llava_wild_judge_messages(ROW, "p", spec) == build_llava_wild_judge_messages(ROW, "p")


def test_caption_list_and_bare_rule_table():
    row = dict(ROW, caption=["line one", "line two"], category="detail")
    rules = {"llava_bench_detail": {"role": "Judge", "prompt": "Rate them."}}
    content = build_llava_wild_judge_messages(row, "p", rules)[1]["content"]
    assert content.startswith("[Context]\nline one\nline two\n\n")
    assert "[Judge 2]\np\n\n[End of Judge 2]\n\n[System]\nRate them.\n\n" in content


def test_lmms_eval_messages_have_no_system_turn_and_tolerate_unknown_categories():
    official = build_llava_wild_judge_messages(ROW, "p")
    lmms = build_llava_wild_judge_messages(ROW, "p", protocol="lmms-eval")
    assert lmms == [official[1]]
    odd = dict(ROW, category="poetry")
    with pytest.raises(ValueError, match="no judge rule"):
        build_llava_wild_judge_messages(odd, "p")
    content = build_llava_wild_judge_messages(odd, "p", protocol="lmms-eval")[0]["content"]
    assert content.endswith("[user 2]\np\n\n[End of user 2]\n\n[System]\n\n\n")


def test_bundled_llava_wild_spec_is_a_private_copy():
    spec = load_llava_wild_judge_spec()
    spec["rules"].clear()
    assert "llava_bench_conv" in load_llava_wild_judge_spec()["rules"]
