"""What every checkpoint layout reads and writes alike: config.json, the tokenizer, the vision tower's config and
processor settings, and the model's tensors split by part.
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
    VISION_PREFIX,
)
from tinyllava_bench.models.connectors import PerceiverResampler
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava

# transformers nests a tower's tensors under this name; the model holds them without it
HF_VISION_MODEL = "vision_model."


TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def read_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise UserError(
            f"{folder}: not a checkpoint (no config.json); pass a checkpoint folder, hub id or zoo name"
        )
    try:
        config = json.loads(path.read_text())
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc}); re-download the checkpoint") from None
    if not isinstance(config, dict):
        raise UserError(
            f"{path}: a checkpoint config is a JSON object, this one is a {type(config).__name__}; re-download "
            "the checkpoint"
        )
    return config


def has_tokenizer(folder: Path) -> bool:
    return any((folder / name).is_file() for name in TOKENIZER_FILES)


def load_tokenizer(folder: Path, fallback: str | None, resolve: Any, source: str, **kwargs: Any) -> Any:
    """The checkpoint's own tokenizer when it has one, else the one the config names."""
    from transformers import AutoTokenizer

    where = folder if has_tokenizer(folder) else None
    if where is None and fallback:
        candidate = resolve(fallback, allow_patterns=["*.json", "*.model", "*.txt", "*.tiktoken"])
        where = candidate if has_tokenizer(candidate) else None
    if where is None:
        raise UserError(
            f"{source}: no tokenizer (no tokenizer files in the checkpoint"
            + (f" nor in {fallback!r})" if fallback else ")")
            + "; copy the LLM's tokenizer files into the checkpoint folder"
        )
    # explicit False: left unset, transformers asks on a terminal whether to run a checkpoint's tokenizer code
    kwargs.setdefault("trust_remote_code", False)
    try:
        return AutoTokenizer.from_pretrained(str(where), **kwargs)
    except Exception as exc:  # a broken or unsupported tokenizer file
        detail = " ".join(str(exc).split())  # transformers' messages span lines; the CLI prints one
        raise UserError(f"{where}: cannot load the tokenizer ({type(exc).__name__}: {detail})") from None


def merge_settings(defaults: dict[str, Any], overrides: dict[str, Any]) -> ModelSettings:
    known = set(ModelSettings.__dataclass_fields__)
    merged = {**defaults, **{k: v for k, v in overrides.items() if k in known and v is not None}}
    return ModelSettings(**merged)


def vision_config_from_dict(data: dict[str, Any]) -> Any:
    from transformers import CONFIG_MAPPING

    data = (
        dict(data.get("vision_config", data)) if data.get("model_type") in ("siglip", "clip") else dict(data)
    )
    model_type = data.pop("model_type", None)
    if model_type not in ("siglip_vision_model", "clip_vision_model"):
        raise UserError(
            f"unsupported vision tower type {model_type!r}; supported: SigLIP and CLIP vision models"
        )
    for key in ("architectures", "transformers_version", "_name_or_path", "torch_dtype", "dtype"):
        data.pop(key, None)
    return CONFIG_MAPPING[model_type](**data)


def strip_vision(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Tower tensors under `prefix`, renamed to transformers 5's naming (no `vision_model.` level)."""
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            rest = rest[len(HF_VISION_MODEL) :] if rest.startswith(HF_VISION_MODEL) else rest
            out[VISION_PREFIX + rest] = value
    return out


def read_processor_config(*folders: Path | None) -> dict[str, Any] | None:
    """The image processor settings saved with a checkpoint or tower (either file transformers writes)."""
    for folder in folders:
        if folder is None:
            continue
        if (folder / "preprocessor_config.json").is_file():
            return json.loads((folder / "preprocessor_config.json").read_text())
        if (folder / "processor_config.json").is_file():
            data = json.loads((folder / "processor_config.json").read_text())
            if isinstance(data.get("image_processor"), dict):
                return data["image_processor"]
    return None


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def split_state(state: dict[str, torch.Tensor]) -> tuple[dict, dict, dict]:
    llm = {k[len(LLM_PREFIX) :]: v for k, v in state.items() if k.startswith(LLM_PREFIX)}
    vision = {k[len(VISION_PREFIX) :]: v for k, v in state.items() if k.startswith(VISION_PREFIX)}
    connector = {k[len(CONNECTOR_PREFIX) :]: v for k, v in state.items() if k.startswith(CONNECTOR_PREFIX)}
    return llm, vision, connector


def vision_dict(model: TinyLlava, extra_layers: int = 0) -> dict[str, Any]:
    data = model.vision_tower.config.to_dict()
    data["num_hidden_layers"] = model.vision_tower.config.num_hidden_layers + extra_layers
    return data


def connector_kwargs(model: TinyLlava) -> dict[str, Any]:
    connector = model.connector
    if not isinstance(connector, PerceiverResampler):
        return {}
    return {"num_queries": connector.latents.shape[0], "num_layers": len(connector.layers)}


def hf_processor_config(model: TinyLlava) -> dict[str, Any]:
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
