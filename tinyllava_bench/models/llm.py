"""The language model: any transformers causal LM, built from its config; family names and legacy config mapping."""

from __future__ import annotations

from typing import Any

from tinyllava_bench.errors import UserError

# Families tested here; any other causal LM that transformers knows works through AutoModelForCausalLM.
LLM_FAMILIES = ("llama", "stablelm", "phi", "gemma", "qwen2")
# Models whose code is not in transformers: only with trust_remote_code=True.
REMOTE_CODE_FAMILIES = ("openelm",)

# legacy TinyLLaVABench model types -> the transformers model type of their LLM
LEGACY_MODEL_TYPES = {
    "tiny_llava": "llama",
    "tiny_llava_phi": "phi",
    "tiny_llava_stablelm": "stablelm",
    "tiny_llava_qwen": "qwen2",
}
# legacy StableLM used the remote "stablelm_epoch" config; its keys under their transformers names
STABLELM_EPOCH_KEYS = {"rope_pct": "partial_rotary_factor", "norm_eps": "layer_norm_eps"}


def text_config_from_dict(
    data: dict[str, Any], *, trust_remote_code: bool = False, source: str = "", remote_code_from: Any = None
) -> Any:
    """A transformers config for the LLM described by `data` (which must name its `model_type`).

    A type transformers does not know is built from the code of `remote_code_from()` (a folder holding the LLM's
    config and code, e.g. OpenELM's hub repository) — only with trust_remote_code=True.
    """
    from transformers import CONFIG_MAPPING

    data = dict(data)
    model_type = data.pop("model_type", None)
    if model_type in LEGACY_MODEL_TYPES:
        model_type = LEGACY_MODEL_TYPES[model_type]
    if model_type == "stablelm_epoch":
        model_type = "stablelm"
    if model_type == "stablelm":
        for old, new in STABLELM_EPOCH_KEYS.items():
            if old in data:
                data.setdefault(new, data.pop(old))
    if model_type is None:
        raise UserError(f"{source}: the LLM config names no model_type; this is not a TinyLLaVA checkpoint")
    if model_type not in CONFIG_MAPPING:
        if trust_remote_code and remote_code_from is not None:
            return _remote_config(model_type, data, remote_code_from(), source)
        if model_type in REMOTE_CODE_FAMILIES and not trust_remote_code:
            raise UserError(
                f"{source}: the LLM type {model_type!r} needs code from its hub repository; load it with "
                "trust_remote_code=True (only if you trust that repository)"
            )
        raise UserError(
            f"{source}: unsupported LLM type {model_type!r}; supported: {', '.join(LLM_FAMILIES)} "
            "and other causal LMs that transformers knows"
        )
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        data.pop(key, None)
    return CONFIG_MAPPING[model_type](**data)


def _remote_config(model_type: str, data: dict[str, Any], folder: Any, source: str) -> Any:
    from transformers import AutoConfig

    try:
        base = AutoConfig.from_pretrained(str(folder), trust_remote_code=True)
    except Exception as exc:
        raise UserError(f"{source}: cannot load the remote code of LLM type {model_type!r} ({exc})") from None
    # as Factory: the class's defaults plus the values the checkpoint lists
    config = type(base).from_dict({**data, "model_type": model_type})
    config.auto_map = getattr(base, "auto_map", None)
    config._name_or_path = str(folder)
    config.remote_code_folder = str(folder)
    return config


def build_language_model(text_config: Any) -> Any:
    """An untrained causal LM of `text_config` (weights are loaded afterwards, strictly)."""
    from transformers import AutoModelForCausalLM

    remote = getattr(text_config, "remote_code_folder", None) is not None
    try:
        if remote:  # only reachable through trust_remote_code=True (text_config_from_dict)
            return AutoModelForCausalLM.from_config(text_config, trust_remote_code=True)
        return AutoModelForCausalLM.from_config(text_config, attn_implementation="sdpa")
    except ValueError as exc:
        raise UserError(
            f"unsupported LLM type {text_config.model_type!r}: transformers has no causal LM for it ({exc})"
        ) from None
