"""A fresh TinyLlava for stage 1: a pretrained LLM and vision tower (hub ids or local folders) + a new connector.

Weights go through the same strict loader as every checkpoint (`assemble.build_model`), so a tower or LLM whose
files do not match its config fails loudly instead of training on random weights.
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
    CheckpointParts,
    build_model,
)
from tinyllava_bench.models.connectors import build_connector
from tinyllava_bench.models.layouts.factory import FACTORY_PAD_IS_UNK
from tinyllava_bench.models.loading import quiet_transformers
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava
from tinyllava_bench.models.vision import vision_family

# The released share checkpoints name their *tuned* tower; training starts from the tower they were tuned from.
UNTUNED_TOWERS = {
    "bczhou/TinyLLaVA-3.1B-SigLIP": "google/siglip-so400m-patch14-384",
    "bczhou/TinyLLaVA-2.0B-SigLIP": "google/siglip-so400m-patch14-384",
    "bczhou/TinyLLaVA-1.5B-SigLIP": "google/siglip-so400m-patch14-384",
}


def vision_select_for(vision_config: Any, image_tokens: int | None) -> str:
    """`full` when the card's image-token count is every token of the tower (legacy SigLIP: 729), else `patch`."""
    family = vision_family(vision_config)
    patches = (vision_config.image_size // vision_config.patch_size) ** 2
    every_token = patches + (1 if family == "clip" else 0)
    return "full" if image_tokens == every_token else "patch"


def load_tokenizer_for_training(llm: str, max_length: int, trust_remote_code: bool = False) -> Any:
    """The LLM's tokenizer, right-padded, with TinyLLaVA_Factory's pad-token fix-ups."""
    from transformers import AutoConfig, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(
            llm, padding_side="right", model_max_length=max_length, trust_remote_code=trust_remote_code
        )
        family = AutoConfig.from_pretrained(llm, trust_remote_code=trust_remote_code).model_type
    except (OSError, ValueError) as exc:
        raise UserError(f"{llm}: cannot load the LLM's tokenizer ({exc})") from None
    if family in FACTORY_PAD_IS_UNK and tokenizer.unk_token is not None:
        tokenizer.pad_token = tokenizer.unk_token
    elif family == "qwen2" and tokenizer.pad_token is not None:
        tokenizer.unk_token = tokenizer.pad_token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def _vision_parts(vision: str) -> tuple[Any, dict[str, torch.Tensor], Any]:
    """(full tower config, tower tensors in our naming, preprocessor config dict or None)."""
    from transformers import AutoConfig, CLIPVisionModel, SiglipVisionModel

    try:
        config = AutoConfig.from_pretrained(vision)
    except (OSError, ValueError) as exc:
        raise UserError(f"{vision}: cannot read the vision tower's config ({exc})") from None
    family = vision_family(getattr(config, "vision_config", config))
    model_class = SiglipVisionModel if family == "siglip" else CLIPVisionModel
    tower = model_class.from_pretrained(vision, dtype=torch.float32)
    state = {VISION_PREFIX + k: v for k, v in tower.state_dict().items()}
    return tower.config, state, _processor_config(vision)


def _processor_config(name: str) -> dict[str, Any] | None:
    local = Path(name).expanduser()
    if local.is_dir():
        path = local / "preprocessor_config.json"
        return json.loads(path.read_text()) if path.is_file() else None
    try:
        from huggingface_hub import hf_hub_download

        return json.loads(Path(hf_hub_download(name, "preprocessor_config.json")).read_text())
    except Exception:  # no processor file in the repo: the family's defaults apply
        return None


def build_initial_model(
    llm: str,
    vision: str,
    *,
    connector: str = "mlp2x_gelu",
    template: str,
    image_aspect: str = "pad",
    vision_select: str | None = None,
    image_tokens: int | None = None,
    vision_layer: int = -2,
    max_length: int = 3072,
    strip_question: bool = True,
    connector_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
    name: str = "",
    trust_remote_code: bool = False,
) -> TinyLlava:
    """LLM + vision tower from hub ids or folders, a connector initialised from `seed`, in float32."""
    from transformers import AutoModelForCausalLM

    vision = UNTUNED_TOWERS.get(vision, vision)
    with quiet_transformers():
        tokenizer = load_tokenizer_for_training(llm, max_length, trust_remote_code)
        try:
            language_model = AutoModelForCausalLM.from_pretrained(
                llm, dtype=torch.float32, trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError) as exc:
            raise UserError(f"{llm}: cannot load the LLM ({exc})") from None
        vision_config, state, processor_config = _vision_parts(vision)
    state.update({LLM_PREFIX + k: v for k, v in language_model.state_dict().items()})
    select = vision_select or vision_select_for(vision_config, image_tokens)
    torch.manual_seed(seed)
    new_connector = build_connector(
        connector, vision_config.hidden_size, language_model.config.hidden_size, **(connector_kwargs or {})
    )
    state.update({CONNECTOR_PREFIX + k: v for k, v in new_connector.state_dict().items()})
    settings = ModelSettings(
        template=template,
        image_aspect=image_aspect,
        vision_layer=vision_layer,
        vision_select=select,
        connector=connector,
        max_length=max_length,
        strip_question=strip_question,
        layout="native",
    )
    kind = vision_family(vision_config)
    parts = CheckpointParts(
        layout="native",
        source=f"{llm} + {vision}",
        name=name or f"{Path(llm).name}-{Path(vision).name}",
        text_config=language_model.config,
        vision_config=vision_config,
        settings=settings,
        state=state,
        tokenizer=tokenizer,
        preprocessor=preprocessor_for(kind, vision_config.image_size, image_aspect, processor_config),
        connector_kwargs=dict(connector_kwargs or {}),
    )
    model = build_model(parts, dtype=torch.float32)
    model.settings.extra["initialised_from"] = {"llm": llm, "vision": vision, "connector_seed": seed}
    stops = stop_token_ids(model)
    if stops:
        model.settings.extra["eos_token_id"] = stops
    return model


def stop_token_ids(model: TinyLlava) -> list[int]:
    """Generation stops: the template's EOS (what training teaches to end an answer) and the LLM's own EOS."""
    stops = []
    template_eos = model.template.eos
    if template_eos and template_eos in model.tokenizer.get_vocab():
        stops.append(model.tokenizer.convert_tokens_to_ids(template_eos))
    llm = model.language_model
    for source in (llm.generation_config, llm.config):
        eos = getattr(source, "eos_token_id", None)
        if eos is not None:
            stops.extend(eos if isinstance(eos, (list, tuple)) else [eos])
            break
    return [int(t) for t in dict.fromkeys(stops)]
