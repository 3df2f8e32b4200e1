"""Provenance for results.json: tool version and commit, package versions, device, checkpoint fingerprint."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

from tinyllava_bench import __version__
from tinyllava_bench.paths import REPO_ROOT, cache_dir

PACKAGES = (
    "torch",
    "transformers",
    "tokenizers",
    "datasets",
    "accelerate",
    "openai",
    "numpy",
    "pandas",
    "pillow",
    "safetensors",
    "lmms-eval",
)
_CHUNK = 1 << 22


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The commit this tool runs from, with "-dirty" when its package files differ from that commit."""
    return commit_of(REPO_ROOT, "tinyllava_bench")


def commit_of(root: Path, package: str) -> str | None:
    """HEAD of the git checkout at `root` ("<sha>-dirty" when files under `package` are changed or new); None
    outside a checkout or without git."""
    if not (root / ".git").exists():
        return None

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "HEAD")
        changed = git("status", "--porcelain", "--", package)
    except (OSError, subprocess.SubprocessError):
        return None
    return f"{head}-dirty" if head and changed else head or None


def package_versions() -> dict[str, str]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def device_description(device: str) -> str:
    if str(device).startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            return f"{device} ({torch.cuda.get_device_name(torch.device(device))})"
    return f"cpu ({platform.processor() or platform.machine()})"


# Every kind of file a loader reads: configs, weights, tokenizer files (merges.txt, tiktoken, sentencepiece), and the
# Python files of a remote-code model.
FINGERPRINTED_SUFFIXES = (".json", ".safetensors", ".bin", ".model", ".txt", ".tiktoken", ".py")


def checkpoint_fingerprint(folder: str) -> str:
    """sha256 over every config, weight and tokenizer file of the checkpoint (names and bytes), in a stable order.

    Hashing a 3B checkpoint takes seconds, so the result is cached (`paths.cache_dir()`) under the files' names,
    sizes and modification times: a file written again, or replaced, is hashed again.
    """
    root = Path(folder)
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in FINGERPRINTED_SUFFIXES)
    stats = [(str(p.relative_to(root)), st.st_size, st.st_mtime_ns) for p in files for st in [p.stat()]]
    cache_key = hashlib.sha256(json.dumps([str(root.resolve()), stats]).encode()).hexdigest()
    cache_file = cache_dir() / "fingerprints" / f"{cache_key}.txt"
    try:
        cached = cache_file.read_text().strip()
        if cached.startswith("sha256:"):
            return cached
    except OSError:
        pass
    digest = hashlib.sha256()
    for path in files:
        digest.update(str(path.relative_to(root)).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
    value = "sha256:" + digest.hexdigest()
    try:  # a cache that cannot be written only costs the next run the hashing again
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(value + "\n")
        os.replace(temporary, cache_file)
    except OSError:
        pass
    return value


def fingerprint(data: Any) -> str:
    """A short stable hash of JSON-able data (task configs, generation settings)."""
    text = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def tool_provenance() -> dict[str, Any]:
    return {
        "tool_version": __version__,
        "git_commit": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
