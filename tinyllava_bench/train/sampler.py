"""Modality- and length-grouped sampling (LLaVA's `group_by_modality_length`): a batch holds image samples only or
text-only samples only, and samples of similar length (the record's word count, as the original), so little compute
goes to padding.

Order is a pure function of (seed, epoch), so a resumed run replays the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch


def _balanced_chunks(indices: list[int], lengths: Sequence[int], parts: int) -> list[list[int]]:
    """Split `indices` (sorted longest first) into `parts` equal-count chunks of similar total length."""
    if len(indices) % parts:
        return [indices[i::parts] for i in range(parts)]
    size = len(indices) // parts
    chunks: list[list[int]] = [[] for _ in range(parts)]
    totals = [0] * parts
    for index in indices:
        open_chunks = [c for c in range(parts) if len(chunks[c]) < size]
        target = min(open_chunks, key=lambda c: totals[c])
        chunks[target].append(index)
        totals[target] += lengths[index]
    return chunks


def _megabatches(
    indices: list[int], lengths: Sequence[int], megabatch: int, world_size: int, generator: torch.Generator
) -> list[list[int]]:
    """Shuffle, cut into megabatches (one batch per process), sort each longest first, deal it out to processes."""
    order = [indices[i] for i in torch.randperm(len(indices), generator=generator).tolist()]
    result = []
    for start in range(0, len(order), megabatch):
        group = sorted(order[start : start + megabatch], key=lambda i: lengths[i], reverse=True)
        result.append([i for chunk in _balanced_chunks(group, lengths, world_size) for i in chunk])
    return result


def modality_grouped_indices(
    modality_lengths: Sequence[int], batch_size: int, world_size: int, seed: int, epoch: int = 0
) -> list[int]:
    """Sample order where each run of `batch_size * world_size` is one modality (sign of the length).

    As the original (`get_modality_length_grouped_indices`): the last megabatch of each modality, full or not, goes
    to a mixed leftover; the other megabatches are shuffled; a leftover of a megabatch or more gives its first
    megabatch to the front, the rest goes last. Data of one modality only (the original asserts there) is ordered
    as LLaVA-1.5 does it: shuffled megabatches, each sorted longest first.
    """
    lengths = [abs(n) for n in modality_lengths]
    image = [i for i, n in enumerate(modality_lengths) if n > 0]
    text = [i for i, n in enumerate(modality_lengths) if n <= 0]
    generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    megabatch = batch_size * world_size
    if not image or not text:
        batches = _megabatches(image or text, lengths, megabatch, world_size, generator)
        return [i for batch in batches for i in batch]
    full, leftover = [], []
    for group in (image, text):
        batches = _megabatches(group, lengths, megabatch, world_size, generator)
        leftover.extend(batches.pop())
        full.extend(batches)
    full = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
    if len(leftover) >= megabatch:
        full.insert(0, leftover[:megabatch])
        leftover = leftover[megabatch:]
    if leftover:
        full.append(leftover)
    return [i for batch in full for i in batch]


class ShuffleSampler(torch.utils.data.Sampler[int]):
    """A plain random order that is a pure function of (seed, epoch), for stages without modality grouping."""

    def __init__(self, size: int, seed: int) -> None:
        self.size, self.seed, self.epoch = size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        return iter(torch.randperm(self.size, generator=generator).tolist())


class ModalityGroupedSampler(torch.utils.data.Sampler[int]):
    """Yields every index once per epoch in `modality_grouped_indices` order; accelerate shards the batches."""

    def __init__(self, modality_lengths: Sequence[int], batch_size: int, world_size: int, seed: int) -> None:
        self.modality_lengths = list(modality_lengths)
        self.batch_size = batch_size
        self.world_size = world_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.modality_lengths)

    def __iter__(self) -> Iterator[int]:
        return iter(
            modality_grouped_indices(
                self.modality_lengths, self.batch_size, self.world_size, self.seed, self.epoch
            )
        )
