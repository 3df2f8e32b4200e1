"""Modality/length-grouped sampling: pure batches, every sample once, deterministic per (seed, epoch)."""

from __future__ import annotations

import random

from tinyllava_bench.train.sampler import ModalityGroupedSampler, ShuffleSampler, modality_grouped_indices


def _lengths(images: int, texts: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    lengths = [rng.randint(10, 500) for _ in range(images)] + [-rng.randint(10, 500) for _ in range(texts)]
    rng.shuffle(lengths)
    return lengths


def test_every_sample_once_and_batches_pure():
    lengths = _lengths(53, 29)
    batch, world = 4, 2
    order = modality_grouped_indices(lengths, batch, world, seed=1)
    assert sorted(order) == list(range(len(lengths)))
    megabatch = batch * world
    groups = [order[i : i + megabatch] for i in range(0, len(order), megabatch)]
    mixed = [g for g in groups if len({lengths[i] > 0 for i in g}) > 1]
    # the two leftover partial megabatches (one per modality) go together: as a whole megabatch first when they
    # fill one (as LLaVA), and the rest last; every other megabatch holds one modality
    assert len(mixed) <= 2
    assert all(len({lengths[i] > 0 for i in g}) == 1 for g in groups[1:-1])
    assert len(groups[-1]) == len(lengths) % megabatch  # 53 % 8 + 29 % 8 = 10 = 8 + 2 -> 2 left at the end


def test_megabatch_sorted_longest_first_and_balanced_across_processes():
    lengths = [n + 1 for n in range(64)]  # all image samples, distinct lengths
    batch, world = 4, 2
    order = modality_grouped_indices(lengths, batch, world, seed=3)
    for start in range(0, 64, batch * world):
        group = order[start : start + batch * world]
        per_process = [group[:batch], group[batch:]]
        totals = [sum(lengths[i] for i in chunk) for chunk in per_process]
        longest = max(lengths[i] for i in group)
        assert longest in [lengths[i] for i in per_process[0]]  # the longest sample leads the megabatch
        assert abs(totals[0] - totals[1]) <= longest  # the greedy split keeps processes near even


def test_deterministic_per_seed_and_epoch():
    lengths = _lengths(40, 40)
    sampler = ModalityGroupedSampler(lengths, batch_size=4, world_size=1, seed=5)
    first = list(sampler)
    assert first == list(ModalityGroupedSampler(lengths, batch_size=4, world_size=1, seed=5))
    sampler.set_epoch(1)
    assert list(sampler) != first and sorted(sampler) == sorted(first)
    assert list(ModalityGroupedSampler(lengths, 4, 1, seed=6)) != first
    assert len(sampler) == 80


def test_single_modality_works():
    order = modality_grouped_indices([5, 7, 9], batch_size=2, world_size=1, seed=0)
    assert sorted(order) == [0, 1, 2]
    order = modality_grouped_indices([-5, -7], batch_size=4, world_size=1, seed=0)
    assert sorted(order) == [0, 1]


def test_shuffle_sampler():
    sampler = ShuffleSampler(10, seed=2)
    first = list(sampler)
    assert sorted(first) == list(range(10)) and first == list(ShuffleSampler(10, seed=2))
    sampler.set_epoch(3)
    assert list(sampler) != first


def test_last_megabatch_of_each_modality_goes_to_the_leftover_even_when_full():
    # 16 image + 8 text samples, megabatch 8: the original pops the last (full) megabatch of each modality; their
    # 16 samples make a leftover whose first megabatch (images) leads and whose rest (the text one) ends the order
    lengths = [n + 1 for n in range(16)] + [-(n + 1) for n in range(8)]
    for seed in range(6):
        order = modality_grouped_indices(lengths, batch_size=4, world_size=2, seed=seed)
        assert sorted(order) == list(range(24))
        assert all(lengths[i] > 0 for i in order[:16])
        assert all(lengths[i] < 0 for i in order[16:])
