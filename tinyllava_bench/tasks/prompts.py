"""The question text of one dataset row, byte-exact to each protocol (the model layer adds `<image>\\n` and the template)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from tinyllava_bench.tasks.config import PromptConfig, TaskConfig
from tinyllava_bench.tasks.llava_eval import PROMPT_COLUMN
from tinyllava_bench.tasks.registry import load_task

OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def build_question(task: TaskConfig | str, row: Mapping[str, Any], protocol: str = "official") -> str:
    """The user question for `row` under `protocol`; raises ValueError when the row lacks what the prompt needs."""
    task = load_task(task)
    prebuilt = row.get(PROMPT_COLUMN)
    if prebuilt is not None:
        # rows read from LLaVA's eval folder carry the prompt its question file gives (see llava_eval.py)
        return str(prebuilt)
    prompt = task.prompt_for(protocol)
    question = _text(row, task.columns.question, task.name)
    if not question.strip():
        raise ValueError(f"task {task.name}: the question (column {task.columns.question!r}) is empty")
    if prompt.format == "multiple_choice":
        body = _multiple_choice_body(prompt, row, question, task.name)
        return f"{prompt.pre_prompt}{body}{prompt.suffix}"
    if prompt.format == "cqm":
        return f"{prompt.pre_prompt}{_cqm_body(prompt, row, question, task.name)}{prompt.suffix}"
    question = _clean_question(prompt, question)
    return f"{prompt.pre_prompt}{question}{_ocr_line(prompt, row, task.name)}{prompt.suffix}"


def _clean_question(prompt: PromptConfig, question: str) -> str:
    if prompt.strip_before:
        question = question.strip()
    for fragment in prompt.remove:
        question = question.replace(fragment, "")
    if prompt.strip_after:
        question = question.strip()
    if prompt.capitalize:
        question = question.capitalize()
    return question


def _ocr_line(prompt: PromptConfig, row: Mapping[str, Any], task_name: str) -> str:
    if not prompt.ocr_tokens:
        return ""
    tokens = [str(token) for token in _sequence(row, prompt.ocr_column, task_name)]
    if not tokens and prompt.ocr_skip_empty:
        return ""
    return prompt.ocr_prefix + prompt.ocr_separator.join(tokens)


def _multiple_choice_body(prompt: PromptConfig, row: Mapping[str, Any], question: str, task_name: str) -> str:
    # lmms-eval's sqa_doc_to_text: the context line only for a non-empty hint
    hint = row.get(prompt.hint_column)
    context = f"{prompt.context_prefix}{hint}\n" if hint else ""
    body = f"{context}{question}\n{_options(prompt, row, task_name)}"
    return body.strip() if prompt.strip_body else body


def _cqm_body(prompt: PromptConfig, row: Mapping[str, Any], question: str, task_name: str) -> str:
    # LLaVA's convert_sqa_to_llava_base_prompt.py: context = " ".join([hint, caption]).strip() with no caption,
    # "N/A" when that is empty; create_one_example_chatbot then does input.replace("  ", " ").strip(), which is
    # one pass (three spaces become two). model_vqa_science.py reads value.replace('<image>', '').strip() of the
    # converter's f"{input}\n<image>", so an "<image>" inside the text goes too.
    hint = row.get(prompt.hint_column) or ""
    if not isinstance(hint, str):
        raise ValueError(
            f"task {task_name}: column {prompt.hint_column!r} must be text, got {type(hint).__name__}"
        )
    context = " ".join([hint, ""]).strip() or prompt.empty_context
    text = prompt.cqm_template.format(
        context=context, question=question, options=_options(prompt, row, task_name)
    )
    text = text.replace("  ", " ").strip()
    return text.replace("<image>", "").strip()


def _options(prompt: PromptConfig, row: Mapping[str, Any], task_name: str) -> str:
    choices = [str(choice) for choice in _sequence(row, prompt.choices_column, task_name)]
    if not choices:
        raise ValueError(f"task {task_name}: the row has no choices in column {prompt.choices_column!r}")
    if len(choices) > len(OPTION_LETTERS):
        raise ValueError(f"task {task_name}: {len(choices)} choices is more than the letters A-Z")
    return prompt.option_separator.join(
        prompt.option_format.format(letter=OPTION_LETTERS[i], choice=choice)
        for i, choice in enumerate(choices)
    )


def _text(row: Mapping[str, Any], column: str, task_name: str) -> str:
    if column not in row:
        raise ValueError(f"task {task_name}: the row has no column {column!r}")
    value = row[column]
    if not isinstance(value, str):
        raise ValueError(f"task {task_name}: column {column!r} must be text, got {type(value).__name__}")
    return value


def _sequence(row: Mapping[str, Any], column: str, task_name: str) -> Sequence[Any]:
    if column not in row:
        raise ValueError(f"task {task_name}: the row has no column {column!r}")
    value = row[column]
    if value is None:
        return []
    if hasattr(value, "tolist") and not isinstance(value, str):  # numpy arrays from pandas-read copies
        value = value.tolist()
    if isinstance(value, str):
        # local copies written through CSV-like tools may hold the list as JSON text
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(
                f"task {task_name}: column {column!r} must be a list, got text {value[:40]!r}"
            ) from None
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise ValueError(f"task {task_name}: column {column!r} must be a list, got {type(value).__name__}")
    return value
