"""LLaVA-format data files and their records: reading them, a record's turns, images and word length.

A record is `{id, image?, conversations: [{from: human|gpt, value}]}` with `<image>` in the human turn that shows
the image.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.encoding import json_lines, not_utf8_error

HUMAN_ROLES = ("human", "user")


ASSISTANT_ROLES = ("gpt", "assistant")


def file_fingerprint(path: Path) -> str:
    """sha256 of the data file's bytes: two runs on the same fingerprint saw the same records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a LLaVA-format `.json` (a list) or `.jsonl` file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such data file; see docs/training.md for the data-root layout")
    try:
        if path.suffix == ".jsonl":
            # json_lines names the file's own line (json.loads of one line would call every line "line 1")
            with open(path, encoding="utf-8") as handle:
                records = [record for _, record in json_lines(handle, path)]
        else:
            records = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: expected a JSON list of {{id, image, conversations}} records")
    return records


def conversation_turns(record: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(question, answer) pairs of a record; None when the conversation is not human/gpt alternating.

    As LLaVA's preprocessing, a conversation that opens with the assistant loses that first turn.
    """
    messages = record.get("conversations")
    if not isinstance(messages, list) or not messages:
        return None
    if isinstance(messages[0], dict) and messages[0].get("from") not in HUMAN_ROLES:
        messages = messages[1:]
    if not messages or len(messages) % 2:
        return None
    turns = []
    for question, answer in zip(messages[0::2], messages[1::2]):
        if not (isinstance(question, dict) and isinstance(answer, dict)):
            return None
        if question.get("from") not in HUMAN_ROLES or answer.get("from") not in ASSISTANT_ROLES:
            return None
        if not isinstance(question.get("value"), str) or not isinstance(answer.get("value"), str):
            return None
        turns.append((question["value"], answer["value"]))
    return turns


def record_images(record: dict[str, Any]) -> list[str] | None:
    """The record's image paths; None when `image` is neither a path nor a list of paths."""
    image = record.get("image")
    if image is None:
        return []
    if isinstance(image, str):
        return [image]
    if isinstance(image, list) and all(isinstance(name, str) for name in image):
        return list(image)
    return None


def word_length(record: dict[str, Any]) -> int:
    """The original's length for grouping: words (whitespace split) of every message, negative without an image."""
    words = sum(
        len(message["value"].split())
        for message in record.get("conversations") or []
        if isinstance(message, dict) and isinstance(message.get("value"), str)
    )
    return words if record_images(record) else -words
