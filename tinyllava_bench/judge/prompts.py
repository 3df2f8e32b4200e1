"""The judge's prompts: the bundled protocol files read byte-exact, and the messages built from them.

MM-Vet: yuweihao/MM-Vet `mm-vet_evaluator.py` (official) and lmms-eval 0.7.x mmvet utils. LLaVA-Bench-in-the-Wild:
LLaVA's `eval_gpt_review_bench.py` (official) and lmms-eval 0.7.3 llava-in-the-wild utils. The metrics modules
parse the judge's replies and aggregate them; they read no file.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

from tinyllava_bench.metrics import PROTOCOLS
from tinyllava_bench.paths import PROTOCOL_DIR

MMVET_FEWSHOT_PROMPT_FILE = "mmvet_judge_fewshot_prompt.txt"
LLAVA_WILD_JUDGE_FILE = "llava_wild_judge.json"
# appended to the MM-Vet user message when the official grader asks again after an unreadable reply
MMVET_RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "


# --------------------------------------------------------------------------------------------- MM-Vet


@functools.cache
def mmvet_fewshot_prompt(protocol: str = "official") -> str:
    """The few-shot grading prompt, byte-exact for the protocol."""
    text = (PROTOCOL_DIR / MMVET_FEWSHOT_PROMPT_FILE).read_text(encoding="utf-8")
    if protocol == "official":
        return text
    if protocol != "lmms-eval":
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    # lmms-eval's copy drops the blank line before the table and names the first column "gpt_query_prompt"
    official_header = "correctness score.\n\nQuestion | Ground truth"
    if official_header not in text:
        raise RuntimeError(f"{MMVET_FEWSHOT_PROMPT_FILE} no longer holds the official table header")
    return text.replace(official_header, "correctness score.\ngpt_query_prompt | Ground truth", 1)


def _spaced_answer(gt_answer: str) -> str:
    return gt_answer.replace("<AND>", " <AND> ").replace("<OR>", " <OR> ")


def build_mmvet_judge_message(
    question: str, gt_answer: str, prediction: str, protocol: str = "official", retry: bool = False
) -> str:
    """The judge's user message; `retry=True` gives the official grader's message for a re-ask."""
    if protocol == "lmms-eval":
        # lmms-eval ends the row with " |" (no trailing space) and re-asks with the same message
        return f"{mmvet_fewshot_prompt(protocol)}\n{question} | {_spaced_answer(gt_answer)} | {prediction} |"
    message = (
        mmvet_fewshot_prompt(protocol)
        + "\n"
        + " | ".join([question, _spaced_answer(gt_answer), prediction, ""])
    )
    return message + MMVET_RETRY_SUFFIX if retry else message


# --------------------------------------------------------------------------------------------- LLaVA-W


@functools.cache
def _bundled_llava_wild_spec() -> dict[str, Any]:
    return json.loads((PROTOCOL_DIR / LLAVA_WILD_JUDGE_FILE).read_text(encoding="utf-8"))


def load_llava_wild_judge_spec() -> dict[str, Any]:
    """The bundled judge prompts: system_message, user_content_layout, rules per `llava_bench_<category>`."""
    return json.loads(json.dumps(_bundled_llava_wild_spec()))


def _caption_text(caption: Any) -> str:
    return "\n".join(caption) if isinstance(caption, list) else caption


def build_llava_wild_judge_messages(
    row: Mapping[str, Any],
    prediction: str,
    rules: Mapping[str, Any] | None = None,
    protocol: str = "official",
) -> list[dict[str, str]]:
    """The chat messages the judge gets for one row (reference = the row's gpt_answer, Assistant 2 = ours).

    `rules` is the llava_wild_judge.json content (default: the bundled file) or a bare LLaVA rule.json
    table keyed `llava_bench_<category>`. official: system + user message; lmms-eval: the user message only.
    """
    spec = dict(_bundled_llava_wild_spec())
    if rules is not None:
        spec = {**spec, **rules} if "rules" in rules else {**spec, "rules": rules}
    category = "llava_bench_" + str(row.get("category", ""))
    if protocol == "lmms-eval":
        rule = spec["rules"].get(category, {})
        role, rule_prompt = rule.get("role", "user"), rule.get("prompt", "")
    else:
        if category not in spec["rules"]:
            raise ValueError(f"LLaVA-W category {row.get('category')!r} has no judge rule {category!r}")
        role, rule_prompt = spec["rules"][category]["role"], spec["rules"][category]["prompt"]
    content = spec["user_content_layout"].format(
        caption=_caption_text(row.get("caption", [])),
        question=row.get("question", ""),
        role=role,
        reference_answer=row.get("gpt_answer", ""),
        model_answer=prediction,
        rule_prompt=rule_prompt,
    )
    if protocol == "lmms-eval":
        return [{"role": "user", "content": content}]
    return [{"role": "system", "content": spec["system_message"]}, {"role": "user", "content": content}]
