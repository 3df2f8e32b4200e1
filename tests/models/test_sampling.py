"""Seeded sampling: transformers' distribution, one stream per row, batch-independent, greedy untouched."""

from __future__ import annotations

import pytest
import torch

from tinyllava_bench import load_model
from tinyllava_bench.models.sampling import Sampling, draw_tokens, sample_seed, warped_probabilities
from tinyllava_bench.testing.images import make_image

QUESTIONS = [
    "What?",
    "What is the color of the shape in the top left corner of the picture?",
    "How many?",
    "Is there a red circle? Please answer yes or no.",
]
SIZES = [(31, 20), (20, 31), (28, 28), (64, 17)]


@pytest.fixture(scope="module")
def model(tiny_checkpoints):
    return load_model(str(tiny_checkpoints("phi", "siglip")["native"]))


@pytest.fixture(scope="module")
def images():
    return [make_image(w, h, seed=i) for i, (w, h) in enumerate(SIZES)]


@pytest.mark.parametrize(("top_k", "top_p"), [(None, None), (50, 1.0), (7, 0.8), (0, 0.3)])
def test_probabilities_are_transformers_sampling_distribution(top_k, top_p):
    from transformers.generation.logits_process import (
        LogitsProcessorList,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    scores = torch.randn(3, 300, generator=torch.Generator().manual_seed(5)) * 4
    warpers = LogitsProcessorList([TemperatureLogitsWarper(0.2)])
    if top_k:
        warpers.append(TopKLogitsWarper(top_k))
    if top_p is not None and top_p < 1.0:
        warpers.append(TopPLogitsWarper(top_p))
    expected = warpers(None, scores.clone()).softmax(-1)
    ours = warped_probabilities(scores, Sampling(0.2, (0, 0, 0), top_k=top_k, top_p=top_p))
    assert torch.equal(ours, expected)


def test_inverse_cdf_draw_picks_exact_tokens_and_never_a_zero_probability_one():
    probs = torch.tensor([[0.1, 0.0, 0.6, 0.3]] * 5)
    uniforms = torch.tensor([0.0, 0.05, 0.1, 0.7, 0.9999], dtype=torch.float64)
    assert draw_tokens(probs, uniforms).tolist() == [0, 0, 2, 3, 3]
    leading_zero = torch.tensor([[0.0, 0.0, 1.0]])
    assert draw_tokens(leading_zero, torch.tensor([0.0], dtype=torch.float64)).tolist() == [2]


def test_first_sampled_token_is_the_seeded_draw_from_the_prompt_logits(model, images):
    seed = sample_seed(0, "task", "key-1")
    sampling = Sampling(0.7, (seed,), top_k=50, top_p=1.0)
    [ids] = model.generate_ids(images[:1], QUESTIONS[:1], max_new_tokens=1, sampling=sampling)
    probs = warped_probabilities(model.prompt_logits(images[0], QUESTIONS[0])[-1:], sampling)
    uniform = torch.rand((), generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    assert ids == draw_tokens(probs, uniform[None]).tolist()


def test_sampling_is_seeded_per_row_and_the_batch_does_not_change_it(model, images):
    seeds = tuple(sample_seed(0, "task", i) for i in range(4))
    sampling = Sampling(1.5, seeds, top_k=50)
    batched = model.generate_ids(images, QUESTIONS, max_new_tokens=10, sampling=sampling)
    assert batched == model.generate_ids(images, QUESTIONS, max_new_tokens=10, sampling=sampling)
    single = [
        model.generate_ids([im], [q], max_new_tokens=10, sampling=sampling.rows([i]))[0]
        for i, (im, q) in enumerate(zip(images, QUESTIONS))
    ]
    assert batched == single
    # a row's answer follows its own seed, wherever it sits in the batch
    reordered = model.generate_ids(
        images[::-1], QUESTIONS[::-1], max_new_tokens=10, sampling=sampling.rows([3, 2, 1, 0])
    )
    assert reordered == batched[::-1]
    greedy = model.generate_ids(images, QUESTIONS, max_new_tokens=10)
    reseeded = model.generate_ids(
        images, QUESTIONS, max_new_tokens=10, sampling=Sampling(1.5, tuple(s + 1 for s in seeds), top_k=50)
    )
    assert batched != greedy and reseeded != batched


def test_greedy_is_unchanged_by_sampling_support(model, images):
    batched = model.generate_ids(images, QUESTIONS, max_new_tokens=12)
    single = [model.generate_ids([im], [q], max_new_tokens=12)[0] for im, q in zip(images, QUESTIONS)]
    assert batched == single
    # greedy = the argmax of the prompt logits, token by token (first token shown)
    assert [ids[0] for ids in single] == [
        int(model.prompt_logits(im, q)[-1].argmax()) for im, q in zip(images, QUESTIONS)
    ]
    with pytest.raises(ValueError, match="2 sampling seeds"):
        model.generate_ids(images, QUESTIONS, max_new_tokens=2, sampling=Sampling(1.0, (1, 2)))
    with pytest.raises(ValueError, match="temperature > 0"):
        Sampling(0.0, (1,))
