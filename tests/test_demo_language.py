"""The demo LLM's language pretraining: pictures spelled as the words of their patches, and the loop that learns them.

`cell_words` is checked against the pixels the real preprocessor gives the vision tower, not against its own
geometry; the spliced inputs against embeddings summed by hand; the loop by the loss it lowers.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinyllava_bench.demo.language_pretraining import _batch, pretrain_language_model, spell_samples
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from tinyllava_bench.testing.scenes import (
    COLORS,
    IMAGE_SIZES,
    MAX_SHAPES,
    cell_words,
    render_scene,
    sample_scene,
    seeded_rng,
)
from tinyllava_bench.testing.training_data import spelled_conversations

IMAGE_SIZE, PATCH = 48, 16
GRID = IMAGE_SIZE // PATCH


def _patch_colour_counts(scene) -> list[dict[str, int]]:
    """Per patch of the tower's input, how many pixels are (close to) each palette colour."""
    pixels = preprocessor_for("siglip", IMAGE_SIZE, "pad")(render_scene(scene))
    rgb = ((pixels.permute(1, 2, 0).numpy() * 0.5 + 0.5) * 255).astype(np.float64)
    counts = []
    for row in range(GRID):
        for col in range(GRID):
            patch = rgb[row * PATCH : (row + 1) * PATCH, col * PATCH : (col + 1) * PATCH].reshape(-1, 3)
            counts.append(
                {
                    name: int((np.abs(patch - np.array(value)).max(axis=1) < 40).sum())
                    for name, value in COLORS.items()
                }
            )
    return counts


@pytest.mark.parametrize("kind", ["shapes", "text"])
def test_cell_words_name_the_patch_that_holds_most_of_each_object(kind: str) -> None:
    rng = seeded_rng("test", "cells", kind)
    seen_sizes = set()
    for _ in range(40):
        scene = sample_scene(rng, kind, "train")
        seen_sizes.add((scene.width, scene.height))
        cells = cell_words(scene, GRID)
        counts = _patch_colour_counts(scene)
        objects = [(s.color, s.kind) for s in scene.shapes] + [(w.color, w.text.lower()) for w in scene.words]
        for color, name in objects:
            named = [i for i, words in enumerate(cells) if words == [color, name]]
            assert len(named) == 1, (scene, cells)
            best = max(range(len(counts)), key=lambda i: counts[i][color])
            assert counts[named[0]][color] >= 0.9 * counts[best][color], (scene, named, counts)
        # every other cell shows the background
        assert sum(words == [scene.background] for words in cells) == GRID * GRID - len(objects)
    assert seen_sizes == set(IMAGE_SIZES)


def test_shape_scenes_hold_one_to_max_shapes() -> None:
    rng = seeded_rng("test", "counts")
    counts = {len(sample_scene(rng, "shapes", "eval").shapes) for _ in range(200)}
    assert counts == set(range(1, MAX_SHAPES + 1))


@pytest.fixture(scope="module")
def tiny_lm():
    from tinyllava_bench.testing.models import build_tiny_model

    model = build_tiny_model("phi", "siglip")
    return model.language_model, model.tokenizer


def test_spelled_samples_splice_each_cell_as_the_sum_of_its_word_embeddings(tiny_lm) -> None:
    language_model, tokenizer = tiny_lm
    raw = spelled_conversations(24, seed=3)
    stages = {stage for stage, _, _ in raw}
    assert stages == {"pretrain", "finetune"} and any(scene is None for _, _, scene in raw)
    samples = spell_samples(raw, tokenizer, "phi", GRID)
    embedding = language_model.get_input_embeddings()
    with torch.no_grad():
        vectors, mask, labels = _batch(samples, embedding)
    for row, (sample, (_, _, scene)) in enumerate(zip(samples, raw)):
        length = int(mask[row].sum())
        if scene is None:
            assert sample.cells == [] and IMAGE_TOKEN_INDEX not in sample.ids
            assert length == len(sample.ids)
            continue
        at = sample.ids.index(IMAGE_TOKEN_INDEX)
        assert length == len(sample.ids) - 1 + GRID * GRID
        for cell, words in enumerate(cell_words(scene, GRID)):
            ids = [t for w in words for t in tokenizer(" " + w, add_special_tokens=False)["input_ids"]]
            expected = embedding.weight[ids].sum(0)
            assert torch.allclose(vectors[row, at + cell], expected, atol=1e-6)
        assert (labels[row, at : at + GRID * GRID] == IGNORE_INDEX).all()
        # the text around the picture keeps its own embeddings and labels
        after = torch.tensor(sample.ids[at + 1 :])
        assert torch.allclose(vectors[row, at + GRID * GRID : length], embedding(after), atol=1e-6)
        assert labels[row, at + GRID * GRID : length].tolist() == sample.labels[at + 1 :]
        assert (labels[row] != IGNORE_INDEX).any()  # every sample teaches something
    for row in range(len(samples)):  # right padding: real positions first, padding ignored by the loss
        length = int(mask[row].sum())
        assert mask[row, :length].all() and (labels[row, length:] == IGNORE_INDEX).all()


def test_language_pretraining_lowers_the_loss_on_its_samples(tiny_lm) -> None:
    language_model, tokenizer = tiny_lm
    samples = spell_samples(spelled_conversations(32, seed=0), tokenizer, "phi", GRID)
    before = [p.detach().clone() for p in language_model.parameters()]
    result = pretrain_language_model(language_model, samples, steps=30, batch=8, learning_rate=3e-3, seed=0)
    assert result.steps == 30 and result.last_loss < 0.8 * result.first_loss
    assert any(not torch.equal(a, b) for a, b in zip(before, language_model.parameters()))
