"""TinyLLaVA Bench: evaluate, train and report on TinyLLaVA-family vision-language models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from tinyllava_bench.models.tinyllava import TinyLlava


def load_model(name_or_path: str, device: str = "cpu", dtype: Any = None, **overrides: Any) -> TinyLlava:
    """Load any TinyLLaVA checkpoint (legacy, Factory, HF llava, or this project's own layout).

    `name_or_path` is a model-zoo name, a hub id or a local folder. `overrides` replace what the checkpoint's own
    code would have used (`template`, `image_aspect`, `vision_select`, `vision_layer`, `trust_remote_code`, ...).
    """
    from tinyllava_bench.models.loading import load_model as _load

    return _load(name_or_path, device=device, dtype=dtype, **overrides)


__all__ = ["__version__", "load_model"]
