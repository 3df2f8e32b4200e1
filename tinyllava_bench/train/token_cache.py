"""The tokenisation cache of a stage: what the other processes of a run, or a resumed run, read back instead of
tokenising again, for as long as the images it names are unchanged."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinyllava_bench.train.dataset import ConversationDataset, DataReport
from tinyllava_bench.train.encoding import EncodeSettings

CACHE_VERSION = 3  # 2: the original's cuts, whole-sample masks and word lengths; 3: image checks and stats


def cache_key(settings: EncodeSettings, fingerprint: str) -> str:
    tokenizer = settings.tokenizer
    vocab = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()
    key = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "template": repr(settings.template),
        "vocab": vocab,
        "tokenizer": type(tokenizer).__name__,
        "image_folder": str(settings.image_folder),
        "image_tokens": settings.image_tokens,
        "max_length": settings.max_length,
        "caption_stage": settings.caption_stage,
        "keep_eos_text": settings.keep_eos_text,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


def image_stats(image_folder: Path, names: Iterator[str] | set[str]) -> dict[str, list[int] | None]:
    """(size, modification time) of each named image, None where there is no such file: what the cache depends on."""
    stats: dict[str, list[int] | None] = {}
    for name in sorted(names):
        try:
            stat = os.stat(os.path.join(image_folder, name))
            stats[name] = [stat.st_size, stat.st_mtime_ns]
        except (OSError, ValueError):
            stats[name] = None
    return stats


def write_cache(cache: Path, dataset: ConversationDataset, images: dict[str, list[int] | None]) -> None:
    """Arrays to `<cache>.npz`, the rest to `<cache>.json` (written last, atomically: its presence means done)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.parent / f".{cache.name}.{os.getpid()}"
    with open(partial.with_suffix(".npz"), "wb") as handle:
        np.savez(handle, ids=dataset.ids, labels=dataset.labels, offsets=dataset.offsets)
    os.replace(partial.with_suffix(".npz"), cache.with_suffix(".npz"))
    meta = {
        "sample_ids": dataset.sample_ids,
        "images": [list(names) for names in dataset.images],
        "lengths": dataset.spliced_lengths,
        "word_lengths": dataset.word_lengths,
        "report": dataset.report.to_dict(),
        "image_stats": images,
    }
    partial.with_suffix(".json").write_text(json.dumps(meta))
    os.replace(partial.with_suffix(".json"), cache.with_suffix(".json"))


def read_cache(cache: Path, image_folder: Path, preprocessor: Any) -> ConversationDataset | None:
    """The cached dataset; None when an image it depends on changed (or the cache cannot be read)."""
    try:
        meta = json.loads(cache.with_suffix(".json").read_text())
    except ValueError:
        return None
    stats = meta.get("image_stats", {})
    if image_stats(image_folder, set(stats)) != stats:
        return None
    with np.load(cache.with_suffix(".npz")) as arrays:
        ids, labels, offsets = arrays["ids"], arrays["labels"], arrays["offsets"]
    report = DataReport(**{k: v for k, v in meta["report"].items()})
    return ConversationDataset(
        ids,
        labels,
        offsets,
        [tuple(names) for names in meta["images"]],
        meta["sample_ids"],
        meta["lengths"],
        meta["word_lengths"],
        image_folder,
        preprocessor,
        report,
    )
