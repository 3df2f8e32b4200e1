"""TinyLLaVA_Factory's layout (`model_type: tinyllava`), whole or split into language_model/ vision_tower/
connector/ (its pretrain saves): read and written with the same tensor names and config keys.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import (
    CONNECTOR_PREFIX,
    LLM_PREFIX,
    CheckpointParts,
    export_state,
)
from tinyllava_bench.models.checkpoint_files import read_state_dict, write_state_dict
from tinyllava_bench.models.layouts.parts import (
    HF_VISION_MODEL,
    connector_kwargs,
    hf_processor_config,
    load_tokenizer,
    merge_settings,
    read_config,
    read_processor_config,
    split_state,
    strip_vision,
    vision_config_from_dict,
    vision_dict,
    write_json,
)
from tinyllava_bench.models.llm import text_config_from_dict
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.models.vision import vision_family

# where Factory keeps the tower and connector tensors (whole checkpoints)
FACTORY_VISION = "vision_tower._vision_tower."
FACTORY_CONNECTOR = "connector._connector."
# the connector tensors of a split save, in connector/
SPLIT_CONNECTOR = "_connector."


SPLIT_SUBFOLDERS = ("language_model", "vision_tower", "connector")


# Template and tokenizer fix-ups by LLM family, as the original code chose them.
FACTORY_TEMPLATES = {
    "phi": "phi",
    "llama": "llama",
    "gemma": "gemma",
    "qwen2": "qwen2_base",
    "stablelm": "phi",
}


FACTORY_PAD_IS_UNK = ("phi", "llama", "gemma", "openelm")


def read_factory(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    config = read_config(folder)
    trust = bool(overrides.get("trust_remote_code"))
    text_dict = dict(config.get("text_config") or {})
    llm_name = config.get("llm_model_name_or_path") or ""
    if "model_type" not in text_dict:
        text_dict["model_type"] = _family_from_name(llm_name)
    text_config = text_config_from_dict(
        text_dict, trust_remote_code=trust, source=source, remote_code_from=lambda: resolve(llm_name)
    )
    family = text_config.model_type
    vision_name = (config.get("vision_model_name_or_path") or "").split(":")[-1]
    vision_config = vision_config_from_dict(config.get("vision_config") or {})
    kind = vision_family(vision_config)
    strategy = config.get("vision_feature_select_strategy", "patch")
    settings = merge_settings(
        {
            "template": FACTORY_TEMPLATES.get(family, "llama"),
            "image_aspect": config.get("image_aspect_ratio", "square"),
            "vision_layer": config.get("vision_feature_layer", -2),
            "vision_select": "full" if strategy == "cls_patch" else "patch",
            "connector": config.get("connector_type") or "mlp2x_gelu",
            "max_length": config.get("tokenizer_model_max_length", 2048),
            "strip_question": True,
            "layout": "factory",
        },
        overrides,
    )

    if all((folder / sub).is_dir() for sub in SPLIT_SUBFOLDERS):
        state = _read_factory_split(folder)
    else:
        state = _rename_factory(read_state_dict(folder))

    tokenizer = load_tokenizer(
        folder,
        config.get("tokenizer_name_or_path") or llm_name,
        resolve,
        source,
        padding_side=config.get("tokenizer_padding_side", "right"),
        trust_remote_code=trust,
    )
    # Factory's per-LLM tokenizer fix-ups (tinyllava/model/llm/*.py)
    if family in FACTORY_PAD_IS_UNK and tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    elif family == "qwen2" and tokenizer.pad_token is not None:
        tokenizer.unk_token = tokenizer.pad_token

    vision_folder = None
    if vision_name and not (folder / "preprocessor_config.json").is_file():
        try:
            vision_folder = resolve(vision_name, allow_patterns=["*.json"])
        except UserError:
            vision_folder = None
    processor_cfg = read_processor_config(folder, vision_folder)
    preprocessor = preprocessor_for(kind, vision_config.image_size, settings.image_aspect, processor_cfg)
    return CheckpointParts(
        layout="factory",
        source=source,
        name=folder.name,
        text_config=text_config,
        vision_config=vision_config,
        settings=settings,
        state=state,
        tokenizer=tokenizer,
        preprocessor=preprocessor,
        connector_kwargs=_resampler_kwargs(config),
    )


def _rename_factory(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    out = strip_vision(state, FACTORY_VISION)
    for key, value in state.items():
        if key.startswith("language_model."):
            out[key] = value
        elif key.startswith(FACTORY_CONNECTOR):
            out[CONNECTOR_PREFIX + key[len(FACTORY_CONNECTOR) :]] = value
        elif not key.startswith("vision_tower."):
            out[key] = value  # reported as unexpected by the strict loader
    return out


def _read_factory_split(folder: Path) -> dict[str, torch.Tensor]:
    """Pretrain saves: language_model/, vision_tower/ and connector/, each a `pytorch_model.bin`."""
    state = {LLM_PREFIX + k: v for k, v in read_state_dict(folder / "language_model").items()}
    vision = read_state_dict(folder / "vision_tower")
    state.update(strip_vision({"_vt." + k: v for k, v in vision.items()}, "_vt."))
    for key, value in read_state_dict(folder / "connector").items():
        key = key[len(SPLIT_CONNECTOR) :] if key.startswith(SPLIT_CONNECTOR) else key
        state[CONNECTOR_PREFIX + key] = value
    return state


def _resampler_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    if config.get("connector_type") != "resampler":
        return {}
    return {"num_queries": config.get("num_queries"), "num_layers": config.get("num_resampler_layers")}


def _family_from_name(name: str) -> str:
    """Factory picks the LLM class by substring of its name (tinyllava/model/llm/__init__.py)."""
    lowered = name.lower()
    for key, family in (
        ("tinyllama", "llama"),
        ("phi", "phi"),
        ("gemma", "gemma"),
        ("qwen2", "qwen2"),
        ("stablelm", "stablelm"),
        ("openelm", "openelm"),
        ("llama", "llama"),
    ):
        if key in lowered:
            return family
    raise UserError(
        f"cannot tell the LLM family of {name!r}; the Factory config needs text_config.model_type"
    )


def save_factory(
    model: TinyLlava, folder: Path, split: bool = False, llm_name: str = "", vision_name: str = ""
) -> Path:
    """TinyLLaVA_Factory's layout (`model_type: tinyllava`); `split` writes a pretrain-stage save."""
    folder = Path(folder)
    family = model.language_model.config.model_type
    text = model.language_model.config.to_dict()
    config = {
        "model_type": "tinyllava",
        "architectures": ["TinyLlavaForConditionalGeneration"],
        "llm_model_name_or_path": llm_name or f"local/{'tinyllama' if family == 'llama' else family}-tiny",
        "tokenizer_name_or_path": None,
        "vision_model_name_or_path": vision_name or f"local/{model.vision_tower.family}-tiny",
        "connector_type": model.settings.connector,
        "text_config": text,
        "vision_config": vision_dict(model),
        "hidden_size": model.language_model.config.hidden_size,
        "vision_hidden_size": model.vision_tower.hidden_size,
        "vision_feature_layer": -1,
        "vision_feature_select_strategy": "cls_patch" if model.settings.vision_select == "full" else "patch",
        "image_aspect_ratio": model.settings.image_aspect,
        "tokenizer_model_max_length": model.settings.max_length,
        "tokenizer_padding_side": "right",
        "pad_token": model.tokenizer.pad_token,
        "pad_token_id": model.tokenizer.pad_token_id,
        "use_cache": True,
        **(
            {
                k: v
                for k, v in (
                    ("num_queries", connector_kwargs(model).get("num_queries")),
                    ("num_resampler_layers", connector_kwargs(model).get("num_layers")),
                )
                if v
            }
        ),
    }
    write_json(folder / "config.json", config)
    model.tokenizer.save_pretrained(str(folder))
    write_json(folder / "preprocessor_config.json", hf_processor_config(model))
    llm, vision, connector = split_state(export_state(model))
    if split:
        write_state_dict(llm, folder / "language_model", fmt="bin")
        write_state_dict(
            {HF_VISION_MODEL + k: v for k, v in vision.items()}, folder / "vision_tower", fmt="bin"
        )
        write_state_dict(
            {SPLIT_CONNECTOR + k: v for k, v in connector.items()}, folder / "connector", fmt="bin"
        )
    else:
        state = {"language_model." + k: v for k, v in llm.items()}
        state.update({FACTORY_VISION + HF_VISION_MODEL + k: v for k, v in vision.items()})
        state.update({FACTORY_CONNECTOR + k: v for k, v in connector.items()})
        write_state_dict(state, folder)
    return folder
