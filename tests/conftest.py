"""Shared fixtures: tiny random checkpoints in every layout (from tinyllava_bench.testing), built offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TINYLLAVA_BENCH_CACHE_DIR", tempfile.mkdtemp(prefix="tlb-test-cache-"))  # not ~/.cache


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """(llm, vision) -> {layout: folder}: the same random weights written in every layout, built on demand."""
    from tinyllava_bench.testing.models import build_tiny_model, layouts_for, write_tiny_checkpoints

    cache: dict[tuple[str, str], dict[str, Path]] = {}

    def get(llm: str = "phi", vision: str = "siglip") -> dict[str, Path]:
        if (llm, vision) not in cache:
            root = tmp_path_factory.mktemp(f"ckpt-{llm}-{vision}")
            model = build_tiny_model(llm, vision)
            cache[(llm, vision)] = write_tiny_checkpoints(model, root, layouts_for(llm))
        return cache[(llm, vision)]

    return get
