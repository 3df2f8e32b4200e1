"""Requests and batches: prompts tokenised up front and sorted by length; images decoded and preprocessed in
DataLoader workers; greedy generation with an `auto` batch size that halves on out-of-memory."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from tinyllava_bench.errors import UserError


@dataclass
class Request:
    index: int  # row of the task's dataset
    key: str
    question_id: Any
    question: str
    prompt: str
    prompt_ids: list[int]
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None  # set when no prompt could be made: the sample fails without generating


@dataclass
class Prepared:
    request: Request
    pixels: torch.Tensor | None
    error: str | None


class _RequestImages(Dataset):
    """Loads and preprocesses one request's image (runs inside DataLoader workers)."""

    def __init__(
        self, requests: Sequence[Request], load_image: Callable[[int], Any], preprocess: Callable
    ) -> None:
        self.requests = requests
        self.load_image = load_image
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.requests)

    def __getitem__(self, position: int) -> Prepared:
        request = self.requests[position]
        if request.error is not None:
            return Prepared(request, None, request.error)
        try:
            return Prepared(request, self.preprocess(self.load_image(request.index)), None)
        except Exception as exc:  # a bad image fails its own sample, never the run
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Prepared(request, None, f"image: {message}")


def prepared_batches(
    requests: Sequence[Request],
    load_image: Callable[[int], Any],
    preprocess: Callable,
    batch_size: int,
    num_workers: int,
) -> Iterator[list[Prepared]]:
    """Batches of prepared requests in the given order; images are decoded `num_workers` processes ahead."""
    loader = DataLoader(
        _RequestImages(requests, load_image, preprocess),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=list,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
    yield from loader


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


class BatchSizer:
    """A fixed batch size, or `auto`: start large and halve on out-of-memory, never growing back."""

    def __init__(self, batch_size: int | str, device: str) -> None:
        if batch_size == "auto":
            self.auto = True
            # CPU: one at a time is fastest with 729-token images (batched prefill measured 1.7x slower)
            self.size = 64 if str(device).startswith("cuda") else 1
        else:
            try:
                self.size = int(batch_size)
            except ValueError:
                raise UserError(
                    f"--batch-size must be a positive number or 'auto', not {batch_size!r}"
                ) from None
            if self.size < 1:
                raise UserError(f"--batch-size must be a positive number or 'auto', not {batch_size!r}")
            self.auto = False

    def run(self, items: list[Any], fn: Callable[[list[Any]], list[Any]]) -> list[Any]:
        """`fn` over `items` in chunks of the current size, halving the size on out-of-memory (auto only)."""
        results: list[Any] = []
        start = 0
        while start < len(items):
            chunk = items[start : start + self.size]
            try:
                results.extend(fn(chunk))
            except Exception as exc:
                if not (self.auto and is_out_of_memory(exc)) or self.size == 1:
                    raise
                self.size = max(1, self.size // 2)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            start += len(chunk)
        return results
