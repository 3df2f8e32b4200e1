"""One record -> token ids + labels (template-driven), fitted to model_max_length; or why it is set aside.

Tokens, labels and cuts are the original code's (docs/training.md lists where they still differ).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER, Template
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX, encode_conversation
from tinyllava_bench.train.image_checks import check_image, safe_image_path
from tinyllava_bench.train.records import conversation_turns, record_images, word_length

# Why a record can be set aside; each reason is counted and reported, never silently.
SKIP_MALFORMED = "malformed_conversation"


SKIP_PLACEHOLDERS = "image_placeholder_mismatch"


SKIP_MISSING_IMAGE = "missing_image_file"


SKIP_NO_IMAGE_IN_CAPTION_STAGE = "text_only_in_caption_stage"


SKIP_BAD_IMAGE_FIELD = "image_field_not_a_path"


SKIP_BAD_TEXT = "text_not_unicode"


SKIP_UNREADABLE_IMAGE = "unreadable_image"


# counted while training: an image readable when the data was prepared that no longer is
SKIP_IMAGE_FAILED_IN_TRAINING = "image_unreadable_during_training"


def fit_to_length(
    ids: list[int], labels: list[int], image_tokens: int, max_length: int
) -> tuple[list[int], list[int], int]:
    """Cut `ids`/`labels` where the original code cuts: the spliced sequence (each placeholder = `image_tokens`)
    at `max_length`. Returns (ids, labels, spliced length after the cut).

    As the original, the sample is kept whatever is left: an image that straddles the limit keeps its placeholder
    (the model then cuts its features, `TinyLlava.splice`), an image wholly past it is dropped, and a sample left
    without answer tokens stays (it adds nothing to the loss). The original also cuts the token ids at
    `max_length` before splicing; with at least one token per image that cut is contained in this one.
    """
    spliced, cut = 0, len(ids)
    for position, token in enumerate(ids):
        if spliced >= max_length:
            cut = position
            break
        spliced += image_tokens if token == IMAGE_TOKEN_INDEX else 1
    return ids[:cut], labels[:cut], min(spliced, max_length)


def has_target(labels: Sequence[int]) -> bool:
    """Whether any label is learned (the first never is, once the LM shifts labels by one)."""
    return any(label != IGNORE_INDEX for label in labels[1:])


def end_text_turn(template: Template, turns: list[tuple[str, str]]) -> int | None:
    """The first turn whose question or answer holds the template's end-of-answer text itself (`</s>`, ...)."""
    if not template.eos:
        return None
    for index, (question, answer) in enumerate(turns):
        if template.eos in question or template.eos in answer:
            return index
    return None


@dataclass(frozen=True)
class EncodeSettings:
    """Everything that decides how a record becomes tokens; part of the tokenisation cache's key."""

    template: Template
    tokenizer: Any
    image_folder: Path
    image_tokens: int
    max_length: int
    caption_stage: bool
    # train on turns that hold the end-of-answer text itself; the original masks such samples whole
    keep_eos_text: bool = False


@dataclass
class EncodedRecord:
    record_id: str
    ids: np.ndarray
    labels: np.ndarray
    images: tuple[str, ...]
    spliced: int
    truncated: bool
    words: int  # signed word count (`word_length`)
    eos_text_masked: bool = False


def _is_unicode(turns: list[tuple[str, str]]) -> bool:
    """False when a value holds a lone surrogate (JSON's "\\ud800"), which no tokenizer can encode."""
    try:
        for question, answer in turns:
            question.encode("utf-8")
            answer.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A record set aside: (record id, reason), or (record id, reason, image, what is wrong with it)
SetAside = tuple[str, ...]


def encode_record(record: dict[str, Any], index: int, settings: EncodeSettings) -> EncodedRecord | SetAside:
    """The record's tokens and labels, fitted to max_length; or (record id, why it is set aside[, image, detail])."""
    record_id = str(record.get("id", index))
    turns = conversation_turns(record)
    if turns is None:
        return record_id, SKIP_MALFORMED
    names = record_images(record)
    if names is None:
        return record_id, SKIP_BAD_IMAGE_FIELD
    if not _is_unicode(turns):
        return record_id, SKIP_BAD_TEXT
    if settings.caption_stage and not names:
        return record_id, SKIP_NO_IMAGE_IN_CAPTION_STAGE
    placeholders = 1 if settings.caption_stage else sum(q.count(IMAGE_PLACEHOLDER) for q, _ in turns)
    if placeholders != len(names):
        return record_id, SKIP_PLACEHOLDERS
    if not all(safe_image_path(settings.image_folder, name).is_file() for name in names):
        return record_id, SKIP_MISSING_IMAGE
    for name in names:
        problem = check_image(safe_image_path(settings.image_folder, name))
        if problem:
            return record_id, SKIP_UNREADABLE_IMAGE, name, problem
    ids, labels = encode_conversation(settings.template, settings.tokenizer, turns)
    if ids.count(IMAGE_TOKEN_INDEX) != len(names):
        return record_id, SKIP_PLACEHOLDERS
    masked = False
    literal = None if settings.keep_eos_text else end_text_turn(settings.template, turns)
    if literal is not None:
        # The original splits the conversation into rounds at the end-of-answer text, so a literal one makes a
        # round it cannot parse; it stops counting there and, finding fewer tokens than the sample has, ignores
        # every label ("tokenization mismatch"), unless the rounds it did count already reach model_max_length.
        counted = (
            len(encode_conversation(settings.template, settings.tokenizer, turns[:literal])[0])
            if literal
            else 0
        )
        if counted < settings.max_length:
            labels = [IGNORE_INDEX] * len(labels)
            masked = True
    full = len(ids)
    ids, labels, spliced = fit_to_length(ids, labels, settings.image_tokens, settings.max_length)
    return EncodedRecord(
        record_id,
        np.asarray(ids, dtype=np.int32),
        np.asarray(labels, dtype=np.int32),
        tuple(names[: ids.count(IMAGE_TOKEN_INDEX)]),
        spliced,
        len(ids) < full,
        word_length(record),
        masked,
    )
