"""The demo's stand-in for a pretrained LLM: before the recipes run, the random LLM learns the demo world's language
from text alone, with each picture spelled out in words where its image tokens will be.

TinyLLaVA starts from an LLM that already knows language (Phi-2, TinyLlama, StableLM), so the recipes' first
stage only has to teach the connector to put pictures into that LLM's terms. A random LLM gives that stage nothing
to align to: with one, the demo's caption loss went from 6.7 to 6.5 in the whole stage and the models stayed near
chance. Here the LLM reads captions and conversations in the training data's styles in which the picture is one
input vector per vision patch, the sum of the word embeddings of what the patch shows (`scenes.cell_words`: "red
circle", or the background colour). The recipes' first stage then teaches the connector to say in vectors what
those words said, as it does for a real LLM.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX, encode_conversation
from tinyllava_bench.testing.scenes import Scene, cell_words


@dataclass(frozen=True)
class SpelledSample:
    """One text-only training sample: token ids with one IMAGE_TOKEN_INDEX where the picture goes, the labels,
    and the word ids of each of the picture's cells (empty for a conversation without a picture)."""

    ids: list[int]
    labels: list[int]
    cells: list[list[int]]


@dataclass(frozen=True)
class LanguagePretraining:
    steps: int
    first_loss: float
    last_loss: float  # mean of the last tenth of the steps
    seconds: float


def spell_samples(
    samples: Sequence[tuple[str, list[tuple[str, str]], Scene | None]],
    tokenizer: Any,
    chat_template: str,
    grid: int,
) -> list[SpelledSample]:
    """Token ids and labels of (stage, turns, scene) samples as the trainer renders them (the caption template for
    stage "pretrain", `chat_template` otherwise), with the scene's cells as word ids."""
    templates = {"pretrain": get_template("pretrain"), "finetune": get_template(chat_template)}
    word_ids: dict[str, list[int]] = {}

    def ids_of(word: str) -> list[int]:
        if word not in word_ids:  # with the leading space, as the word appears inside a sentence
            word_ids[word] = tokenizer(" " + word, add_special_tokens=False)["input_ids"]
        return word_ids[word]

    spelled = []
    for stage, turns, scene in samples:
        ids, labels = encode_conversation(templates[stage], tokenizer, turns)
        cells = (
            []
            if scene is None
            else [[t for w in words for t in ids_of(w)] for words in cell_words(scene, grid)]
        )
        if ids.count(IMAGE_TOKEN_INDEX) != (1 if cells else 0):
            raise ValueError(
                f"a spelled sample needs one picture placeholder per scene, got {ids.count(IMAGE_TOKEN_INDEX)}"
            )
        spelled.append(SpelledSample(ids, labels, cells))
    return spelled


def _batch(samples: Sequence[SpelledSample], embedding: torch.nn.Embedding) -> tuple[torch.Tensor, ...]:
    """Input vectors (cells spliced in as sums of word embeddings), attention mask and labels, right-padded."""
    lengths = [len(s.ids) - 1 + len(s.cells) if s.cells else len(s.ids) for s in samples]
    width = max(lengths)
    ids = torch.zeros(len(samples), width, dtype=torch.long)
    labels = torch.full((len(samples), width), IGNORE_INDEX, dtype=torch.long)
    is_cell = torch.zeros(len(samples), width, dtype=torch.bool)
    mask = torch.zeros(len(samples), width, dtype=torch.long)
    cell_words_flat: list[int] = []
    offsets: list[int] = []
    for row, (sample, length) in enumerate(zip(samples, lengths)):
        if sample.cells:
            at = sample.ids.index(IMAGE_TOKEN_INDEX)
            n = len(sample.cells)
            text_ids = sample.ids[:at] + [0] * n + sample.ids[at + 1 :]
            text_labels = sample.labels[:at] + [IGNORE_INDEX] * n + sample.labels[at + 1 :]
            is_cell[row, at : at + n] = True
            for words in sample.cells:
                offsets.append(len(cell_words_flat))
                cell_words_flat.extend(words)
        else:
            text_ids, text_labels = sample.ids, sample.labels
        ids[row, :length] = torch.tensor(text_ids)
        labels[row, :length] = torch.tensor(text_labels)
        mask[row, :length] = 1
    vectors = embedding(ids)
    if offsets:
        cells = torch.nn.functional.embedding_bag(
            torch.tensor(cell_words_flat), embedding.weight, torch.tensor(offsets), mode="sum"
        )
        vectors = vectors.masked_scatter(is_cell.unsqueeze(-1), cells)
    return vectors, mask, labels


def pretrain_language_model(
    model: Any,
    samples: Sequence[SpelledSample],
    *,
    steps: int,
    batch: int,
    learning_rate: float,
    seed: int,
    on_step: Callable[[], None] | None = None,
) -> LanguagePretraining:
    """Train `model` (a causal LM, in place) on random batches of `samples`: AdamW, 3% warmup then cosine decay,
    gradients clipped to norm 1 (the recipes' schedule). `on_step` is called after each step (a progress bar)."""
    from transformers import get_cosine_schedule_with_warmup

    started = time.time()
    torch.manual_seed(seed)
    rng = random.Random(seed)
    embedding = model.get_input_embeddings()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.0)
    schedule = get_cosine_schedule_with_warmup(optimizer, max(1, round(0.03 * steps)), steps)
    model.train()
    losses = []
    for _ in range(steps):
        vectors, mask, labels = _batch(rng.sample(samples, min(batch, len(samples))), embedding)
        loss = model(inputs_embeds=vectors, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if on_step is not None:
            on_step()
    model.eval()
    tail = losses[-max(1, steps // 10) :]
    return LanguagePretraining(steps, losses[0], sum(tail) / len(tail), round(time.time() - started, 1))


__all__ = ["LanguagePretraining", "SpelledSample", "pretrain_language_model", "spell_samples"]
