"""TinyLLaVABench's layout: a LLaVA-style flat LLM config with mm_* keys, `model.mm_projector.*`, the vision tower
in its own folder named by `mm_vision_tower` (or inside the checkpoint).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import (
    CONNECTOR_PREFIX,
    LLM_PREFIX,
    LM_HEAD_BIAS,
    CheckpointParts,
    export_state,
)
from tinyllava_bench.models.checkpoint_files import has_weights, read_state_dict, write_state_dict
from tinyllava_bench.models.layouts.parts import (
    HF_VISION_MODEL,
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
from tinyllava_bench.models.llm import LEGACY_MODEL_TYPES, text_config_from_dict
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.models.vision import vision_family

LEGACY_CONNECTOR = "model.mm_projector."
LEGACY_VISION = "model.vision_tower.vision_tower."
# the legacy model type of each LLM family (the inverse of models/llm.py's LEGACY_MODEL_TYPES)
LEGACY_MODEL_TYPE_OF = {family: model_type for model_type, family in LEGACY_MODEL_TYPES.items()}


LEGACY_TEMPLATES = {"phi": "phi", "stablelm": "phi", "llama": "v1", "qwen2": "qwen2_base"}


LEGACY_ARCHITECTURES = {
    "phi": "TinyLlavaPhiForCausalLM",
    "stablelm": "TinyLlavaStablelmForCausalLM",
    "llama": "TinyLlavaLlamaForCausalLM",
    "qwen2": "TinyLlavaQwen2ForCausalLM",
}


def read_legacy(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    config = read_config(folder)
    trust = bool(overrides.get("trust_remote_code"))
    text_dict = {k: v for k, v in config.items() if not k.startswith("mm_")}
    text_config = text_config_from_dict(text_dict, trust_remote_code=trust, source=source)
    family = text_config.model_type
    state = read_state_dict(folder)

    tower_name = config.get("mm_vision_tower") or config.get("vision_tower")
    if not tower_name:
        raise UserError(f"{source}: legacy config names no mm_vision_tower; it is not a TinyLLaVA checkpoint")
    tower_folder = resolve(tower_name)
    vision_config = vision_config_from_dict(read_config(tower_folder))
    kind = vision_family(vision_config)

    in_checkpoint = strip_vision(state, LEGACY_VISION)
    if in_checkpoint:
        vision_state = in_checkpoint
    else:
        if not has_weights(tower_folder):
            raise UserError(f"{tower_name}: the vision tower named by mm_vision_tower has no weights")
        vision_state = strip_vision({"_vt." + k: v for k, v in read_state_dict(tower_folder).items()}, "_vt.")

    renamed: dict[str, torch.Tensor] = dict(vision_state)
    for key, value in state.items():
        if key.startswith("model.vision_tower."):
            continue
        if key.startswith(LEGACY_CONNECTOR):
            renamed[CONNECTOR_PREFIX + key[len(LEGACY_CONNECTOR) :]] = value
        else:
            renamed[LLM_PREFIX + key] = value

    if kind == "siglip":
        # Legacy SigLIP deletes the last layer and keeps every token, whatever mm_vision_select_layer says.
        # Its processor is hard-coded to 384x384 and asserts 729 tokens, so it only ran towers of image_size 384:
        # resizing to the tower's image_size is the same there.
        defaults = {"vision_layer": -2, "vision_select": "full"}
        processor_cfg: dict[str, Any] | None = None
    else:
        select = config.get("mm_vision_select_feature", "patch")
        defaults = {
            "vision_layer": config.get("mm_vision_select_layer", -2),
            "vision_select": "full" if select == "cls_patch" else "patch",
        }
        processor_cfg = read_processor_config(tower_folder)
    settings = merge_settings(
        {
            **defaults,
            "template": LEGACY_TEMPLATES.get(family, "v1"),
            "image_aspect": config.get("image_aspect_ratio", "pad"),
            "connector": config.get("mm_projector_type", "linear"),
            "max_length": config.get("tokenizer_model_max_length"),
            "strip_question": False,
            "layout": "legacy",
            "extra": _legacy_generation(folder),
        },
        overrides,
    )
    tokenizer = load_tokenizer(
        folder, config.get("_name_or_path"), resolve, source, padding_side="right", trust_remote_code=trust
    )
    if config.get("mm_use_im_patch_token", True):
        tokenizer.add_tokens(["<im_patch>"], special_tokens=True)
    if config.get("mm_use_im_start_end", False):
        tokenizer.add_tokens(["<im_start>", "<im_end>"], special_tokens=True)
    preprocessor = preprocessor_for(kind, vision_config.image_size, settings.image_aspect, processor_cfg)
    return CheckpointParts(
        layout="legacy",
        source=source,
        name=folder.name,
        text_config=text_config,
        vision_config=vision_config,
        settings=settings,
        state=renamed,
        tokenizer=tokenizer,
        preprocessor=preprocessor,
        vocab_limit=len(tokenizer),  # builder.py: model.resize_token_embeddings(len(tokenizer))
        optional_keys=(LM_HEAD_BIAS,),
    )


def _legacy_generation(folder: Path) -> dict[str, Any]:
    """The legacy model is the causal LM itself, so its generation_config.json (when saved) sets the EOS."""
    path = folder / "generation_config.json"
    if not path.is_file():
        return {}
    eos = json.loads(path.read_text()).get("eos_token_id")
    return {"eos_token_id": eos} if eos is not None else {}


def save_legacy(model: TinyLlava, folder: Path, tower_folder: Path, include_vision: bool = False) -> Path:
    """TinyLLaVABench's layout: flat LLM config + mm_* keys, the vision tower in its own folder."""
    folder, tower_folder = Path(folder), Path(tower_folder)
    family = model.language_model.config.model_type
    if family not in LEGACY_MODEL_TYPE_OF:
        raise UserError(f"TinyLLaVABench had no {family!r} model class; save this model in another layout")
    siglip = model.vision_tower.family == "siglip"
    llm, vision, connector = split_state(export_state(model))
    # The legacy SigLIP class deletes the tower's last layer: describe one layer more than we keep.
    tower_config = vision_dict(model, extra_layers=1 if siglip else 0)
    tower_config["architectures"] = ["SiglipVisionModel" if siglip else "CLIPVisionModel"]
    write_json(tower_folder / "config.json", tower_config)
    write_state_dict({HF_VISION_MODEL + k: v for k, v in vision.items()}, tower_folder)
    write_json(tower_folder / "preprocessor_config.json", hf_processor_config(model))

    config = model.language_model.config.to_dict()
    config.update(
        {
            "model_type": LEGACY_MODEL_TYPE_OF[family],
            "architectures": [LEGACY_ARCHITECTURES[family]],
            "mm_vision_tower": str(tower_folder),
            "mm_projector_type": model.settings.connector,
            "mm_hidden_size": model.vision_tower.hidden_size,
            "mm_vision_select_layer": -1 if not siglip else -2,
            "mm_vision_select_feature": "cls_patch" if model.settings.vision_select == "full" else "patch",
            "image_aspect_ratio": model.settings.image_aspect,
            "tokenizer_model_max_length": model.settings.max_length,
            "tokenizer_padding_side": "right",
            "mm_use_im_start_end": False,
            "mm_use_im_patch_token": False,
            "tune_mm_mlp_adapter": False,
            "use_cache": True,
        }
    )
    write_json(folder / "config.json", config)
    state = {("model." + k[len("model.") :] if k.startswith("model.") else k): v for k, v in llm.items()}
    if family == "phi":
        state.pop("lm_head.bias", None)  # the legacy Phi class has no lm_head bias
    state.update({LEGACY_CONNECTOR + k: v for k, v in connector.items()})
    if include_vision:
        state.update({LEGACY_VISION + HF_VISION_MODEL + k: v for k, v in vision.items()})
    write_state_dict(state, folder)
    model.tokenizer.save_pretrained(str(folder))
    return folder
