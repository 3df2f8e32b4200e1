"""Entry point `lmms_eval.models` → `manifest`: tells lmms-eval's CLI that `--model tinyllava_bench` is our adapter.

lmms-eval 0.7.3 loads every entry point of the group and accepts a `ModelManifest`, an iterable of them, or a
callable returning either; a callable keeps lmms-eval's import out of this module until lmms-eval asks.
"""

from __future__ import annotations

from typing import Any

MODEL_ID = "tinyllava_bench"
ADAPTER_CLASS_PATH = "tinyllava_bench.lmms.adapter.TinyLlavaBench"


def manifest() -> Any:
    """The `ModelManifest` for `--model tinyllava_bench` (a simple, non-chat model)."""
    from lmms_eval.models.registry_v2 import ModelManifest

    return ModelManifest(model_id=MODEL_ID, simple_class_path=ADAPTER_CLASS_PATH)
