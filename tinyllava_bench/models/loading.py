"""`load_model`: a zoo name, hub id or local folder → a ready TinyLlava, with per-field overrides."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import build_model
from tinyllava_bench.models.layouts import read_parts
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava

# What a user may override at load time (the rest of ModelSettings describes the checkpoint itself)
LOAD_OVERRIDES = (*sorted(set(ModelSettings.__dataclass_fields__) - {"layout", "extra"}), "trust_remote_code")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_dtype(dtype: Any, device: str) -> torch.dtype:
    """None → float32 on CPU, float16 on GPU (what the original eval scripts ran)."""
    if dtype is None:
        return torch.float32 if str(device).startswith("cpu") else torch.float16
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise UserError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_path(name: str, allow_patterns: list[str] | None = None) -> Path:
    """A local folder for `name`: the folder itself, or a hub snapshot (downloaded only because it was named)."""
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    if path.exists():
        raise UserError(f"{name}: is a file; pass the checkpoint folder")
    if name.startswith((".", "/", "~")) or name.count("/") != 1:
        raise UserError(f"{name}: no such folder, model-zoo name or hub id (hub ids look like owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, allow_patterns=allow_patterns))
    except Exception as exc:  # offline, unknown repo, gated repo ...
        raise UserError(
            f"{name}: cannot fetch it from the hub ({type(exc).__name__}); check the id and network, "
            "or pass a local folder"
        ) from None


def check_overrides(overrides: dict[str, Any]) -> None:
    """Refuse a setting load_model does not know (a typo would otherwise be ignored) and a trust_remote_code that
    is not a real boolean (the string "false" is truthy: it would run the checkpoint's code)."""
    unknown = sorted(set(overrides) - set(LOAD_OVERRIDES))
    if unknown:
        raise UserError(
            f"unknown model setting {', '.join(map(repr, unknown))}; the settings are: {', '.join(LOAD_OVERRIDES)}"
        )
    trust = overrides.get("trust_remote_code", False)
    if not isinstance(trust, bool):
        raise UserError(
            f"trust_remote_code must be the boolean true or false, not {trust!r}; it runs code from the "
            "checkpoint's repository, so it is on only when you say true"
        )


class _RecordingResolver:
    """`resolve_path` that remembers every folder a loader reads beside the checkpoint (vision tower, base LLM
    tokenizer, processor config): the run's fingerprint must cover them, or a changed tower reuses old answers."""

    def __init__(self) -> None:
        self.folders: dict[str, Path] = {}

    def __call__(self, name: str, allow_patterns: list[str] | None = None) -> Path:
        folder = resolve_path(name, allow_patterns)
        self.folders[name] = folder
        return folder


def load_model(name_or_path: str, device: str = "cpu", dtype: Any = None, **overrides: Any) -> TinyLlava:
    """Load any TinyLLaVA checkpoint; `overrides` replace the checkpoint's defaults (template, image_aspect, ...)."""
    from tinyllava_bench.models.zoo import find_card

    check_overrides(overrides)
    source = str(name_or_path)
    card = None if Path(source).expanduser().exists() else find_card(source)
    if card is not None:
        if not card.checkpoint:
            raise UserError(
                f"{source}: this paper variant was not released; train it (`tinyllava-bench train`)"
            )
        overrides = {**card.overrides_for_load(), **overrides}
        folder = resolve_path(card.checkpoint)
    else:
        folder = resolve_path(source)
    resolver = _RecordingResolver()
    with quiet_transformers():
        parts = read_parts(folder, source, overrides, resolver)
        if card is not None:
            parts.name = card.name
        model = build_model(parts, device=device, dtype=resolve_dtype(dtype, device))
    model.checkpoint_dir = folder
    model.read_from = {name: path for name, path in resolver.folders.items() if path != folder}
    model.card = card
    return model


@contextmanager
def quiet_transformers() -> Iterator[None]:
    """Silence transformers' info/warning chatter and progress bars while loading (errors still show)."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
