"""Shared fixtures: tiny random checkpoints in every layout and small images, built offline."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the network
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TINYLLAVA_BENCH_CACHE_DIR", tempfile.mkdtemp(prefix="tlb-test-cache-"))  # not ~/.cache

LLM_FAMILIES = ("llama", "stablelm", "phi", "gemma", "qwen2")
VISION_FAMILIES = ("siglip", "clip")


def make_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.RandomState(seed)
    image = Image.fromarray((rng.rand(height, width, 3) * 255).astype("uint8"))
    return image.convert(mode) if mode != "RGB" else image


@pytest.fixture(scope="session")
def tiny_checkpoints(tmp_path_factory):
    """(llm, vision) -> {layout: folder}: the same random weights written in every layout, built on demand."""
    from tinyllava_bench.models.tiny import build_tiny_model, write_tiny_checkpoints

    cache: dict[tuple[str, str], dict[str, Path]] = {}

    def get(llm: str = "phi", vision: str = "siglip") -> dict[str, Path]:
        if (llm, vision) not in cache:
            root = tmp_path_factory.mktemp(f"ckpt-{llm}-{vision}")
            model = build_tiny_model(llm, vision)
            layouts = ["native", "factory", "factory_split", "hf_llava"] + (
                [] if llm == "gemma" else ["legacy"]
            )
            cache[(llm, vision)] = write_tiny_checkpoints(model, root, layouts)
        return cache[(llm, vision)]

    return get
