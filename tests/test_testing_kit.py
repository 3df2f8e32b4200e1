"""The testing kit builds what it promises: every model it builds loads through `load_model` with its own logits,
and it writes data for every task in tasks/ that the task loader reads.

Every LLM family x vision tower x checkpoint layout of `build_tiny_model` is loaded and compared in
tests/models/test_layouts.py::test_same_weights_same_logits_in_every_layout (through the `tiny_checkpoints`
fixture, which is the kit's `write_tiny_checkpoints`); here: the connectors, the benchmarks' realistic-shape
builder, the trainer's hub-shaped parts, and the task data.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tinyllava_bench import load_model
from tinyllava_bench.models.connectors import CONNECTOR_TYPES
from tinyllava_bench.models.layouts import detect_layout
from tinyllava_bench.tasks.data import load_task_data
from tinyllava_bench.tasks.registry import list_tasks
from tinyllava_bench.testing.datasets import DEMO_TASKS, IMAGE_MODES, write_task_data
from tinyllava_bench.testing.images import make_image
from tinyllava_bench.testing.models import (
    LAYOUTS,
    LLM_FAMILIES,
    build_random_model,
    build_tiny_model,
    layouts_for,
    write_model_parts,
    write_tiny_checkpoints,
)
from tinyllava_bench.testing.sizes import ModelSpec

QUESTION = "What is the color of the shape?"


def _same_logits(model, folder: Path) -> None:
    image = make_image(30, 22, seed=1)
    expected = model.prompt_logits(image, QUESTION)
    loaded = load_model(str(folder))
    logits = loaded.prompt_logits(image, QUESTION)
    assert logits.shape[0] == expected.shape[0]
    torch.testing.assert_close(logits[:, : expected.shape[1]], expected, atol=1e-5, rtol=0)


def test_the_kit_knows_every_layout_the_loader_detects(tmp_path: Path) -> None:
    paths = write_tiny_checkpoints(build_tiny_model("llama", "clip"), tmp_path, layouts_for("llama"))
    assert tuple(paths) == LAYOUTS
    assert {detect_layout(path) for path in paths.values()} == {"native", "factory", "legacy", "hf_llava"}
    assert all(layouts_for(llm) == LAYOUTS for llm in LLM_FAMILIES if llm != "gemma")
    assert "legacy" not in layouts_for("gemma")  # TinyLLaVABench had no Gemma class


@pytest.mark.parametrize("connector", CONNECTOR_TYPES)
def test_every_connector_loads_with_its_own_logits(tmp_path: Path, connector: str) -> None:
    model = build_tiny_model("qwen2", "siglip", connector)
    layouts = ["native", "factory"] + (["legacy", "hf_llava"] if connector == "mlp2x_gelu" else [])
    for layout, folder in write_tiny_checkpoints(model, tmp_path, layouts).items():
        assert load_model(str(folder)).settings.connector == connector, layout
        _same_logits(model, folder)


def test_a_realistic_shape_model_loads_with_its_own_logits(tmp_path: Path) -> None:
    spec = ModelSpec(
        name="small",
        hidden=64,
        layers=1,
        heads=4,
        intermediate=128,
        vision_hidden=32,
        vision_layers=1,
        vision_heads=4,
        vision_intermediate=64,
        image_size=56,
    )
    model = build_random_model(spec)
    assert model.num_image_tokens == spec.image_tokens == 16
    assert model.language_model.config.hidden_size == 64
    paths = write_tiny_checkpoints(model, tmp_path, ["native", "hf_llava"])
    for folder in paths.values():
        _same_logits(model, folder)


def test_model_parts_are_hub_shaped_folders(tmp_path: Path) -> None:
    from transformers import AutoConfig, AutoTokenizer

    parts = write_model_parts(tmp_path, "llama", "clip", vision_layers=3)
    assert AutoConfig.from_pretrained(parts["llm"]).model_type == "llama"
    assert AutoTokenizer.from_pretrained(parts["llm"]).bos_token == "<s>"
    vision = AutoConfig.from_pretrained(parts["vision"])
    assert (vision.model_type, vision.num_hidden_layers) == ("clip_vision_model", 3)


def test_the_kit_writes_data_for_every_task_in_tasks() -> None:
    """A new tasks/*.yaml needs its rows in the kit: tests and the demo draw benchmark copies from it."""
    assert sorted(DEMO_TASKS) == sorted(task.name for task in list_tasks())


@pytest.mark.parametrize("mode", IMAGE_MODES)
@pytest.mark.parametrize("task", [task.name for task in list_tasks()])
def test_kit_data_loads_through_the_task_loader(tmp_path: Path, task: str, mode: str) -> None:
    path = write_task_data(task, tmp_path, n=4, seed=2, image_mode=mode)
    data = load_task_data(task, data_root=tmp_path)
    assert data.source.path == path
    assert len(data) == 4
    assert data.image(0).mode == "RGB"
