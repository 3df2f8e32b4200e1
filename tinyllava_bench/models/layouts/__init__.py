"""Checkpoint layouts: detect which one a folder holds and read it with that layout's module.

- legacy: TinyLLaVABench (LLaVA-style flat config, `model.mm_projector.*`, tower from `mm_vision_tower`)
- factory: TinyLLaVA_Factory (`model_type: tinyllava`), whole or split into language_model/ vision_tower/ connector/
- hf_llava: transformers' LlavaForConditionalGeneration
- native: this project's own (what `train` writes and the fixtures start from)

Each layout's module holds both directions (read_<layout>, and save_<layout> / export_hf_llava), so the tensor names
and config keys of a layout are written down once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import CheckpointParts
from tinyllava_bench.models.layouts.factory import read_factory
from tinyllava_bench.models.layouts.hf_llava import read_hf_llava
from tinyllava_bench.models.layouts.legacy import read_legacy
from tinyllava_bench.models.layouts.native import NATIVE_MODEL_TYPE, read_native
from tinyllava_bench.models.layouts.parts import read_config
from tinyllava_bench.models.llm import LEGACY_MODEL_TYPES

LAYOUTS = ("legacy", "factory", "hf_llava", "native")


def detect_layout(folder: Path) -> str:
    """The layout of the checkpoint in `folder`, from its files."""
    config = read_config(folder)
    model_type = config.get("model_type", "")
    if model_type == NATIVE_MODEL_TYPE:
        return "native"
    if model_type == "tinyllava":
        return "factory"
    if model_type in LEGACY_MODEL_TYPES or "mm_vision_tower" in config or "mm_projector_type" in config:
        return "legacy"
    if model_type == "llava":
        return "hf_llava"
    raise UserError(
        f"{folder}: unknown checkpoint layout (config.json model_type {model_type!r}); supported: TinyLLaVABench "
        "(legacy), TinyLLaVA_Factory, HF llava and this project's own checkpoints"
    )


def read_parts(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    """Read the checkpoint in `folder`; `resolve(name)` turns a hub id or path named by the config into a folder."""
    layout = detect_layout(folder)
    reader = {
        "native": read_native,
        "factory": read_factory,
        "legacy": read_legacy,
        "hf_llava": read_hf_llava,
    }
    try:
        return reader[layout](folder, source, overrides, resolve)
    except (KeyError, TypeError, AttributeError) as exc:
        # a config.json that names its layout but lacks a key, or holds a value of the wrong kind
        detail = f"no key {exc}" if isinstance(exc, KeyError) else " ".join(str(exc).split())
        raise UserError(
            f"{folder / 'config.json'}: not a complete {layout} config ({detail}); re-download or re-save the "
            "checkpoint"
        ) from None
