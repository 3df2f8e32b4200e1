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
    image_key: str | None = (
        None  # requests with the same key show the same image (prefix sharing); None: alone
    )


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


def image_groups(requests: Sequence[Request]) -> list[list[Request]]:
    """Requests grouped by image (a request without an image key or with an error stands alone): each group's
    longest prompt first, and the groups by their longest prompt, so out-of-memory still shows up at once."""
    groups: dict[Any, list[Request]] = {}
    for request in requests:
        alone = request.image_key is None or request.error is not None
        groups.setdefault(("alone", id(request)) if alone else request.image_key, []).append(request)
    ordered = [sorted(group, key=lambda r: -len(r.prompt_ids)) for group in groups.values()]
    return sorted(ordered, key=lambda group: -len(group[0].prompt_ids))


class _GroupImages(Dataset):
    """Loads and preprocesses a group's one image once (runs inside DataLoader workers)."""

    def __init__(
        self, groups: Sequence[list[Request]], load_image: Callable[[int], Any], preprocess: Callable
    ) -> None:
        self.single = _RequestImages([group[0] for group in groups], load_image, preprocess)
        self.groups = groups

    def __len__(self) -> int:
        return len(self.groups)

    def __getitem__(self, position: int) -> list[Prepared]:
        first = self.single[position]
        # the first request's error is the image's (a request with its own error is always alone)
        return [first] + [Prepared(r, first.pixels, first.error) for r in self.groups[position][1:]]


def shared_batches(
    requests: Sequence[Request],
    load_image: Callable[[int], Any],
    preprocess: Callable,
    batch_size: Callable[[], int],
    num_workers: int,
) -> Iterator[list[Prepared]]:
    """Batches for prefix sharing: whole image groups (see image_groups), each image decoded once `num_workers`
    processes ahead; small groups are packed together up to `batch_size()` requests, and a group larger than that
    stays one batch (the model runs it in chunks on one prefill of its image)."""
    groups = image_groups(requests)
    loader = DataLoader(
        _GroupImages(groups, load_image, preprocess),
        batch_size=None,  # one group per item
        shuffle=False,
        num_workers=num_workers,
        collate_fn=list,
        prefetch_factor=4 if num_workers else None,
        persistent_workers=False,
    )
    batch: list[Prepared] = []
    for group in loader:
        if batch and len(batch) + len(group) > batch_size():
            yield batch
            batch = []
        batch.extend(group)
    if batch:
        yield batch


def is_out_of_memory(exc: BaseException) -> bool:
    if isinstance(exc, torch.cuda.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


# CPU, auto, prefix sharing: the questions of one picture run 8 at a time on its cached prefix (faster than one at a
# time at 18 and 30 questions per picture: benchmarks/README.md, "Chunks of one image"), but two pictures are never
# prefilled in one chunk (a batched prefill of 729-token images measured slower on CPU than one after the other)
CPU_SHARED_CHUNK = 8


class BatchSizer:
    """A fixed batch size, or `auto`: start large and halve on out-of-memory, never growing back.

    `auto` on CPU: one sample at a time, or with prefix sharing `CPU_SHARED_CHUNK` questions of one image at a time
    (`run` then never puts two images in one chunk)."""

    def __init__(self, batch_size: int | str, device: str, prefix_sharing: bool = False) -> None:
        self.one_image_per_chunk = False
        if batch_size == "auto":
            self.auto = True
            if str(device).startswith("cuda"):
                self.size = 64
            else:  # one at a time is fastest with 729-token images (batched prefill measured 1.7x slower)
                self.size = CPU_SHARED_CHUNK if prefix_sharing else 1
                self.one_image_per_chunk = prefix_sharing
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

    def run(
        self,
        items: list[Any],
        fn: Callable[[list[Any]], list[Any]],
        image_of: Callable[[Any], Any] | None = None,
    ) -> list[Any]:
        """`fn` over `items` in chunks of the current size, halving the size on out-of-memory (auto only). With
        `image_of` and one image per chunk, a chunk also ends where the image changes."""
        results: list[Any] = []
        start = 0
        while start < len(items):
            chunk = items[start : start + self.size]
            if image_of is not None and self.one_image_per_chunk:
                first = image_of(chunk[0])
                chunk = chunk[
                    : next((i for i, item in enumerate(chunk) if image_of(item) != first), len(chunk))
                ]
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
