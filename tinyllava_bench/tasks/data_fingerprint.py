"""The fingerprint of a task's data: the pinned hub revision, or a sha256 of the local files (large ones sampled)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.data_source import DATA_SUFFIXES, SAVE_TO_DISK_MARKERS, DataSource
from tinyllava_bench.tasks.llava_eval import read_llava_eval

# files up to this size are hashed whole for the fingerprint; larger ones by size, head and tail
FULL_HASH_BYTES = 2 << 30


_SAMPLE_BYTES = 16 << 20


def fingerprint_source(task: TaskConfig, source: DataSource) -> str:
    if source.kind == "hub":
        dataset = task.dataset
        config = f"/{dataset.name}" if dataset.name else ""
        return f"hub:{dataset.path}{config}:{dataset.split}@{dataset.revision}"
    if source.kind == "llava_eval":
        return files_fingerprint(source.path, read_llava_eval(task, source.path).files)
    path = source.path
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    sampled = False
    for file in files:
        relative = file.name if path.is_file() else file.relative_to(path).as_posix()
        digest.update(relative.encode() + b"\0")
        if file.suffix in (*DATA_SUFFIXES, ".arrow") or file.name in SAVE_TO_DISK_MARKERS:
            sampled |= _hash_file(file, digest)
        else:  # image files: name and size are enough, and hashing gigabytes of images is slow
            digest.update(str(file.stat().st_size).encode() + b"\0")
    return ("sha256-sampled:" if sampled else "sha256:") + digest.hexdigest()


def files_fingerprint(root: Path, files: Sequence[Path]) -> str:
    """sha256 of the question and label files (names relative to `root`, then contents); images not included."""
    digest = hashlib.sha256()
    sampled = False
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        sampled |= _hash_file(file, digest)
    return ("sha256-sampled:" if sampled else "sha256:") + digest.hexdigest()


def _hash_file(file: Path, digest: Any) -> bool:
    size = file.stat().st_size
    digest.update(str(size).encode() + b"\0")
    with file.open("rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return False
        digest.update(handle.read(_SAMPLE_BYTES))
        handle.seek(size - _SAMPLE_BYTES)
        digest.update(handle.read(_SAMPLE_BYTES))
        return True
