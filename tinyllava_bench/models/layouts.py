"""Checkpoint layouts: detect which one a folder holds and read it into CheckpointParts.

- legacy: TinyLLaVABench (LLaVA-style flat config, `model.mm_projector.*`, tower from `mm_vision_tower`)
- factory: TinyLLaVA_Factory (`model_type: tinyllava`), whole or split into language_model/ vision_tower/ connector/
- hf_llava: transformers' LlavaForConditionalGeneration
- native: this project's own (what `train` writes and the fixtures start from)
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
    VISION_PREFIX,
    CheckpointParts,
)
from tinyllava_bench.models.checkpoint_files import has_weights, read_state_dict
from tinyllava_bench.models.llm import LEGACY_MODEL_TYPES, text_config_from_dict
from tinyllava_bench.models.preprocess import ImagePreprocessor, preprocessor_for
from tinyllava_bench.models.tinyllava import ModelSettings
from tinyllava_bench.models.vision import vision_family

LAYOUTS = ("legacy", "factory", "hf_llava", "native")
NATIVE_MODEL_TYPE = "tinyllava_bench"
SPLIT_SUBFOLDERS = ("language_model", "vision_tower", "connector")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")

# Template and tokenizer fix-ups by LLM family, as the original code chose them.
FACTORY_TEMPLATES = {
    "phi": "phi",
    "llama": "llama",
    "gemma": "gemma",
    "qwen2": "qwen2_base",
    "stablelm": "phi",
}
LEGACY_TEMPLATES = {"phi": "phi", "stablelm": "phi", "llama": "v1", "qwen2": "qwen2_base"}
FACTORY_PAD_IS_UNK = ("phi", "llama", "gemma", "openelm")


# ----- detection -----------------------------------------------------------------------------------------------------
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
        "native": _read_native,
        "factory": _read_factory,
        "legacy": _read_legacy,
        "hf_llava": _read_hf_llava,
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


# ----- tokenizer -------------------------------------------------------------------------------------------------
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


def _settings(defaults: dict[str, Any], overrides: dict[str, Any]) -> ModelSettings:
    known = set(ModelSettings.__dataclass_fields__)
    merged = {**defaults, **{k: v for k, v in overrides.items() if k in known and v is not None}}
    return ModelSettings(**merged)


def _vision_config(data: dict[str, Any]) -> Any:
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


def _strip_vision(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Tower tensors under `prefix`, renamed to transformers 5's naming (no `vision_model.` level)."""
    out = {}
    for key, value in state.items():
        if key.startswith(prefix):
            rest = key[len(prefix) :]
            rest = rest[len("vision_model.") :] if rest.startswith("vision_model.") else rest
            out[VISION_PREFIX + rest] = value
    return out


def _processor_config(*folders: Path | None) -> dict[str, Any] | None:
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


# ----- native ------------------------------------------------------------------------------------------------------
def _read_native(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    config = read_config(folder)
    trust = bool(overrides.get("trust_remote_code"))
    text_config = text_config_from_dict(config["text_config"], trust_remote_code=trust, source=source)
    settings = _settings(config["settings"], overrides)
    _note_training(settings, config.get("training"))
    preprocessor = ImagePreprocessor.from_dict({**config["preprocessor"], "aspect": settings.image_aspect})
    return CheckpointParts(
        layout="native",
        source=source,
        name=config.get("name") or folder.name,
        text_config=text_config,
        vision_config=_vision_config(config["vision_config"]),
        settings=settings,
        state=read_state_dict(folder),
        tokenizer=load_tokenizer(folder, None, resolve, source, trust_remote_code=trust),
        preprocessor=preprocessor,
        connector_kwargs=config.get("connector_kwargs", {}),
    )


def _note_training(settings: ModelSettings, training: Any) -> None:
    """A checkpoint our trainer wrote knows its recipe and the card it reproduces: reports group by them."""
    if not isinstance(training, dict):
        return
    for key, source in (("recipe", "recipe"), ("paper_variant", "variant"), ("data", "paper_data")):
        if training.get(source) is not None:
            settings.extra[key] = training[source]


# ----- factory -----------------------------------------------------------------------------------------------------
def _read_factory(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
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
    vision_config = _vision_config(config.get("vision_config") or {})
    kind = vision_family(vision_config)
    strategy = config.get("vision_feature_select_strategy", "patch")
    settings = _settings(
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
    processor_cfg = _processor_config(folder, vision_folder)
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
    out = _strip_vision(state, "vision_tower._vision_tower.")
    for key, value in state.items():
        if key.startswith("language_model."):
            out[key] = value
        elif key.startswith("connector._connector."):
            out[CONNECTOR_PREFIX + key[len("connector._connector.") :]] = value
        elif not key.startswith("vision_tower."):
            out[key] = value  # reported as unexpected by the strict loader
    return out


def _read_factory_split(folder: Path) -> dict[str, torch.Tensor]:
    """Pretrain saves: language_model/, vision_tower/ and connector/, each a `pytorch_model.bin`."""
    state = {LLM_PREFIX + k: v for k, v in read_state_dict(folder / "language_model").items()}
    vision = read_state_dict(folder / "vision_tower")
    state.update(_strip_vision({"_vt." + k: v for k, v in vision.items()}, "_vt."))
    for key, value in read_state_dict(folder / "connector").items():
        key = key[len("_connector.") :] if key.startswith("_connector.") else key
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


# ----- legacy ------------------------------------------------------------------------------------------------------
def _read_legacy(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
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
    vision_config = _vision_config(read_config(tower_folder))
    kind = vision_family(vision_config)

    in_checkpoint = _strip_vision(state, "model.vision_tower.vision_tower.")
    if in_checkpoint:
        vision_state = in_checkpoint
    else:
        if not has_weights(tower_folder):
            raise UserError(f"{tower_name}: the vision tower named by mm_vision_tower has no weights")
        vision_state = _strip_vision(
            {"_vt." + k: v for k, v in read_state_dict(tower_folder).items()}, "_vt."
        )

    renamed: dict[str, torch.Tensor] = dict(vision_state)
    for key, value in state.items():
        if key.startswith("model.vision_tower."):
            continue
        if key.startswith("model.mm_projector."):
            renamed[CONNECTOR_PREFIX + key[len("model.mm_projector.") :]] = value
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
        processor_cfg = _processor_config(tower_folder)
    settings = _settings(
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


# ----- HF llava ----------------------------------------------------------------------------------------------------
def _read_hf_llava(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    from transformers import LlavaForConditionalGeneration

    config = read_config(folder)
    try:
        hf = LlavaForConditionalGeneration.from_pretrained(str(folder), dtype=torch.float32)
    except Exception as exc:
        raise UserError(
            f"{source}: cannot load the HF llava checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    state = {}
    for key, value in hf.state_dict().items():
        if key.startswith("model.vision_tower."):
            state[VISION_PREFIX + key[len("model.vision_tower.") :]] = value
        elif key.startswith("model.multi_modal_projector.linear_"):
            index = (int(key.split("linear_")[1].split(".")[0]) - 1) * 2
            state[f"{CONNECTOR_PREFIX}{index}.{key.rsplit('.', 1)[1]}"] = value
        elif key.startswith("model.language_model."):
            state[LLM_PREFIX + "model." + key[len("model.language_model.") :]] = value
        elif key.startswith("lm_head."):
            state[LLM_PREFIX + key] = value
    raw = read_state_dict(folder) if has_weights(folder) else {}
    if "lm_head.bias" in raw:  # written by our export for LLMs whose head has a bias (Phi)
        state[LLM_PREFIX + "lm_head.bias"] = raw["lm_head.bias"]
    del raw
    text_config = hf.config.text_config
    vision_config = hf.config.vision_config
    kind = vision_family(vision_config)
    layer = hf.config.vision_feature_layer
    if isinstance(layer, list):
        raise UserError(f"{source}: multi-layer vision features are not supported")
    processor_cfg = _processor_config(folder)
    pad = bool(processor_cfg and processor_cfg.get("do_pad"))
    # an export of ours carries its prompt settings (export.py); a plain HF llava uses the llava-hf format
    ours = config.get("tinyllava_bench") or {}
    settings = _settings(
        {
            "template": ours.get("template", "hf_llava"),
            "image_aspect": ours.get("image_aspect", "pad" if pad else "square"),
            "vision_layer": layer,
            "vision_select": "full" if hf.config.vision_feature_select_strategy == "full" else "patch",
            "connector": "mlp2x_gelu",
            "max_length": ours.get("max_length"),
            "strip_question": ours.get("strip_question", False),
            "layout": "hf_llava",
            "extra": {"image_token_id": hf.config.image_token_id},
        },
        overrides,
    )
    tokenizer = load_tokenizer(folder, None, resolve, source)
    del hf
    return CheckpointParts(
        layout="hf_llava",
        source=source,
        name=config.get("_name_or_path") or folder.name,
        text_config=text_config,
        vision_config=vision_config,
        settings=settings,
        state=state,
        tokenizer=tokenizer,
        preprocessor=preprocessor_for(kind, vision_config.image_size, settings.image_aspect, processor_cfg),
        optional_keys=(LM_HEAD_BIAS,),  # Llava's lm_head has no bias; ours writes one only when non-zero
    )
