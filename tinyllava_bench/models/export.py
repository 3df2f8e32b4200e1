"""The documented entry point for exporting to transformers' Llava layout (README "Export"): vLLM, SGLang and TGI
serve the result. The writer lives with its reader in models/layouts/hf_llava.py."""

from __future__ import annotations

from tinyllava_bench.models.layouts.hf_llava import chat_template, export_hf_llava

__all__ = ["chat_template", "export_hf_llava"]
