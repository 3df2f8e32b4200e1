"""Prompt and conversation tokenisation with the image placeholder, as the original TinyLLaVA code does it."""

from __future__ import annotations

from typing import Any

from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER, Template

IMAGE_TOKEN_INDEX = -200  # the placeholder id legacy and Factory code splice image features into
IGNORE_INDEX = -100


def tokenize_with_images(text: str, tokenizer: Any) -> list[int]:
    """Token ids of `text` with each `<image>` as IMAGE_TOKEN_INDEX.

    Same rule as `tokenizer_image_token` in LLaVA / TinyLLaVA: each chunk between placeholders is tokenised on its
    own; when the tokenizer adds a BOS, it is kept once at the start and the first token of every chunk is dropped.
    """
    return tokenize_many_with_images([text], tokenizer)[0]


def tokenize_many_with_images(texts: list[str], tokenizer: Any) -> list[list[int]]:
    """`tokenize_with_images` of every text, with one batched tokenizer call over the distinct chunks (a fast
    tokenizer runs a batch in Rust, and the template's text before `<image>` is the same in every prompt)."""
    chunked = [text.split(IMAGE_PLACEHOLDER) for text in texts]
    distinct = list(dict.fromkeys(chunk for chunks in chunked for chunk in chunks))
    ids_of = dict(zip(distinct, tokenizer(distinct)["input_ids"] if distinct else [], strict=True))
    out = []
    for chunks in chunked:
        parts = [ids_of[chunk] for chunk in chunks]
        drop = _bos_to_drop(parts[0], tokenizer)
        ids = parts[0][:drop]
        for i, part in enumerate(parts):
            if i > 0:
                ids.append(IMAGE_TOKEN_INDEX)
            ids.extend(part[drop:])
        out.append(ids)
    return out


def _bos_to_drop(first: list[int], tokenizer: Any) -> int:
    """1 when the tokenizer put a BOS in front of a chunk: kept once at the start, dropped from every chunk."""
    return 1 if first and tokenizer.bos_token_id is not None and first[0] == tokenizer.bos_token_id else 0


def encode_conversation(
    template: Template, tokenizer: Any, turns: list[tuple[str, str]]
) -> tuple[list[int], list[int]]:
    """Input ids and labels of a training conversation: labels are the answers and their EOS, all else IGNORE.

    Labels come from character spans, not from token counting, so a pad id equal to EOS (Phi-2) never masks the
    real EOS and there is no "tokenization mismatch" to silently drop a sample.
    """
    text, spans = template.render_conversation(turns)
    ids, offsets = _tokenize_chunks(text, tokenizer, with_offsets=True)
    # The whitespace between "ASSISTANT:" and an answer belongs to the answer: a tokenizer that makes it a token of
    # its own (SentencePiece's "▁" before a digit) must learn to produce it, since eval prompts end at "ASSISTANT:".
    gaps = [start - (len(text[:start]) - len(text[:start].rstrip())) for start, _ in spans]
    labels = [IGNORE_INDEX] * len(ids)
    span = 0
    for i, (token_id, (start, end)) in enumerate(zip(ids, offsets)):
        if token_id == IMAGE_TOKEN_INDEX or end <= start:
            continue
        while span < len(spans) and spans[span][1] <= start:  # tokens and spans both run left to right
            span += 1
        if span == len(spans):
            break
        answer_start, answer_end = spans[span]
        overlaps_answer = end > answer_start and start < answer_end
        in_gap = start >= gaps[span] and end <= answer_start
        if overlaps_answer or in_gap:
            labels[i] = token_id
    return ids, labels


def _tokenize_chunks(
    text: str, tokenizer: Any, *, with_offsets: bool
) -> tuple[list[int], list[tuple[int, int]]]:
    chunks = text.split(IMAGE_PLACEHOLDER)
    encoded = [tokenizer(chunk, return_offsets_mapping=with_offsets) for chunk in chunks]
    starts, position = [], 0
    for chunk in chunks:
        starts.append(position)
        position += len(chunk) + len(IMAGE_PLACEHOLDER)

    first = encoded[0]["input_ids"]
    drop = _bos_to_drop(first, tokenizer)
    ids: list[int] = first[:drop]
    offsets: list[tuple[int, int]] = [(0, 0)] * drop
    for i, (enc, start) in enumerate(zip(encoded, starts)):
        if i > 0:
            ids.append(IMAGE_TOKEN_INDEX)
            offsets.append((start - len(IMAGE_PLACEHOLDER), start))
        ids.extend(enc["input_ids"][drop:])
        if with_offsets:
            offsets.extend((start + s, start + e) for s, e in enc["offset_mapping"][drop:])
    return ids, offsets
