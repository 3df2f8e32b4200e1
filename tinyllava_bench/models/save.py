"""Write a TinyLlava in each checkpoint layout: this project's own, TinyLLaVA_Factory's, and legacy TinyLLaVABench's.

The model's vision tower already ends at its feature layer, so every layout is written with the feature taken from
the tower's last kept layer (legacy SigLIP: one layer more in the config, which the legacy code deletes).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import CONNECTOR_PREFIX, LLM_PREFIX, VISION_PREFIX, export_state
from tinyllava_bench.models.checkpoint_files import write_state_dict
from tinyllava_bench.models.layouts import NATIVE_MODEL_TYPE
from tinyllava_bench.models.tinyllava import TinyLlava

NATIVE_FORMAT_VERSION = 1
LEGACY_ARCHITECTURES = {
    "phi": "TinyLlavaPhiForCausalLM",
    "stablelm": "TinyLlavaStablelmForCausalLM",
    "llama": "TinyLlavaLlamaForCausalLM",
    "qwen2": "TinyLlavaQwen2ForCausalLM",
}
LEGACY_MODEL_TYPES = {
    "phi": "tiny_llava_phi",
    "stablelm": "tiny_llava_stablelm",
    "llama": "tiny_llava",
    "qwen2": "tiny_llava_qwen",
}


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def _split(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    llm = {k[len(LLM_PREFIX) :]: v for k, v in state.items() if k.startswith(LLM_PREFIX)}
    vision = {k[len(VISION_PREFIX) :]: v for k, v in state.items() if k.startswith(VISION_PREFIX)}
    connector = {k[len(CONNECTOR_PREFIX) :]: v for k, v in state.items() if k.startswith(CONNECTOR_PREFIX)}
    return llm, vision, connector


def _vision_dict(model: TinyLlava, extra_layers: int = 0) -> dict[str, Any]:
    data = model.vision_tower.config.to_dict()
    data["num_hidden_layers"] = model.vision_tower.config.num_hidden_layers + extra_layers
    return data


def save_native(model: TinyLlava, folder: Path, extra: dict[str, Any] | None = None) -> Path:
    """This project's own layout: full configs, settings and preprocessor in config.json; our tensor names."""
    folder = Path(folder)
    settings = model.settings.to_dict()
    settings["layout"] = "native"
    config = {
        "model_type": NATIVE_MODEL_TYPE,
        "format_version": NATIVE_FORMAT_VERSION,
        "name": model.name or folder.name,
        "text_config": model.language_model.config.to_dict(),
        "vision_config": _vision_dict(model),
        "settings": settings,
        "preprocessor": model.preprocessor.to_dict(),
        "connector_kwargs": _connector_kwargs(model),
        **(extra or {}),
    }
    _write_json(folder / "config.json", config)
    write_state_dict(export_state(model), folder)
    model.tokenizer.save_pretrained(str(folder))
    return folder


def _connector_kwargs(model: TinyLlava) -> dict[str, Any]:
    latents = getattr(model.connector, "latents", None)
    if latents is None:
        return {}
    return {"num_queries": latents.shape[0], "num_layers": len(model.connector.layers)}


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
        "vision_config": _vision_dict(model),
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
                    ("num_queries", _connector_kwargs(model).get("num_queries")),
                    ("num_resampler_layers", _connector_kwargs(model).get("num_layers")),
                )
                if v
            }
        ),
    }
    _write_json(folder / "config.json", config)
    model.tokenizer.save_pretrained(str(folder))
    _write_json(folder / "preprocessor_config.json", _hf_processor_config(model))
    llm, vision, connector = _split(export_state(model))
    if split:
        write_state_dict(llm, folder / "language_model", fmt="bin")
        write_state_dict(
            {"vision_model." + k: v for k, v in vision.items()}, folder / "vision_tower", fmt="bin"
        )
        write_state_dict(
            {"_connector." + k: v for k, v in connector.items()}, folder / "connector", fmt="bin"
        )
    else:
        state = {"language_model." + k: v for k, v in llm.items()}
        state.update({"vision_tower._vision_tower.vision_model." + k: v for k, v in vision.items()})
        state.update({"connector._connector." + k: v for k, v in connector.items()})
        write_state_dict(state, folder)
    return folder


def save_legacy(model: TinyLlava, folder: Path, tower_folder: Path, include_vision: bool = False) -> Path:
    """TinyLLaVABench's layout: flat LLM config + mm_* keys, the vision tower in its own folder."""
    folder, tower_folder = Path(folder), Path(tower_folder)
    family = model.language_model.config.model_type
    if family not in LEGACY_MODEL_TYPES:
        raise UserError(f"TinyLLaVABench had no {family!r} model class; save this model in another layout")
    siglip = model.vision_tower.family == "siglip"
    llm, vision, connector = _split(export_state(model))
    # The legacy SigLIP class deletes the tower's last layer: describe one layer more than we keep.
    tower_config = _vision_dict(model, extra_layers=1 if siglip else 0)
    tower_config["architectures"] = ["SiglipVisionModel" if siglip else "CLIPVisionModel"]
    _write_json(tower_folder / "config.json", tower_config)
    write_state_dict({"vision_model." + k: v for k, v in vision.items()}, tower_folder)
    _write_json(tower_folder / "preprocessor_config.json", _hf_processor_config(model))

    config = model.language_model.config.to_dict()
    config.update(
        {
            "model_type": LEGACY_MODEL_TYPES[family],
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
    _write_json(folder / "config.json", config)
    state = {("model." + k[len("model.") :] if k.startswith("model.") else k): v for k, v in llm.items()}
    if family == "phi":
        state.pop("lm_head.bias", None)  # the legacy Phi class has no lm_head bias
    state.update({"model.mm_projector." + k: v for k, v in connector.items()})
    if include_vision:
        state.update({"model.vision_tower.vision_tower.vision_model." + k: v for k, v in vision.items()})
    write_state_dict(state, folder)
    model.tokenizer.save_pretrained(str(folder))
    return folder


def _hf_processor_config(model: TinyLlava) -> dict[str, Any]:
    p = model.preprocessor
    config: dict[str, Any] = {
        "image_mean": list(p.image_mean),
        "image_std": list(p.image_std),
        "resample": p.resample,
        "rescale_factor": p.rescale_factor,
        "do_resize": True,
        "do_rescale": True,
        "do_normalize": True,
        "do_convert_rgb": True,
        "size": dict(p.size),
    }
    if p.kind == "clip":
        config.update(
            {
                "image_processor_type": "CLIPImageProcessor",
                "do_center_crop": True,
                "crop_size": dict(p.crop_size or p.size),
            }
        )
    else:
        config["image_processor_type"] = "SiglipImageProcessor"
    return config
