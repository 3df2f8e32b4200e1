"""Batched greedy generation (left padding, mixed prompt lengths and image sizes) equals one-at-a-time."""

from __future__ import annotations

import pytest

from tinyllava_bench import load_model
from tinyllava_bench.testing.images import make_image
from tinyllava_bench.testing.models import LLM_FAMILIES

QUESTIONS = [
    "What?",
    "What is the color of the shape in the top left corner of the picture?",
    "How many?",
    "Is there a red circle? Please answer yes or no.",
]
SIZES = [(31, 20), (20, 31), (28, 28), (64, 17)]


@pytest.mark.parametrize("llm", LLM_FAMILIES)
def test_batch_equals_one_at_a_time(tiny_checkpoints, llm):
    model = load_model(str(tiny_checkpoints(llm, "siglip")["native"]))
    images = [make_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]
    batched = model.generate_ids(images, QUESTIONS, max_new_tokens=12)
    single = [model.generate_ids([im], [q], max_new_tokens=12)[0] for im, q in zip(images, QUESTIONS)]
    assert batched == single
    assert all(0 < len(ids) <= 12 for ids in batched)
    assert len({tuple(ids) for ids in batched}) > 1  # the four prompts did not all collapse to one answer
    texts = model.generate(images, QUESTIONS, max_new_tokens=12)
    assert texts == [t.strip() for t in model.tokenizer.batch_decode(single, skip_special_tokens=True)]


def test_generation_stops_at_eos_and_includes_it(tiny_checkpoints):
    model = load_model(str(tiny_checkpoints("llama", "clip")["native"]))
    eos = model.language_model.config.eos_token_id
    with_eos = model.language_model.get_output_embeddings()
    # make EOS the only sensible next token: every answer is exactly [EOS]
    with_eos.weight.data[eos] = 0
    if getattr(with_eos, "bias", None) is not None:
        with_eos.bias.data[eos] = 1e4
    else:
        with_eos.weight.data[eos] = 1e3 * model.language_model.model.norm.weight.data.sign()
    ids = model.generate_ids([make_image(20, 20)], ["What?"], max_new_tokens=5)
    assert ids[0][-1] == eos and len(ids[0]) <= 5


def test_prompt_logits_match_first_generated_token(tiny_checkpoints):
    model = load_model(str(tiny_checkpoints("qwen2", "clip")["factory"]))
    image = make_image(33, 21)
    first = model.generate_ids([image], ["What?"], max_new_tokens=1)[0][0]
    assert int(model.prompt_logits(image, "What?")[-1].argmax()) == first
