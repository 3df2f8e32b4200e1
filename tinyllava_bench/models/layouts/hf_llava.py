"""transformers' LlavaForConditionalGeneration layout: read, and exported from an `mlp2x_gelu` TinyLlava with its
processor.

Engines that serve Llava (vLLM, SGLang, TGI) then run the export. The prompt format goes along as a chat template
and this project's settings under `tinyllava_bench` in config.json, so loading the export back changes nothing.
"""

from __future__ import annotations

import copy
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
    export_state,
)
from tinyllava_bench.models.checkpoint_files import has_weights, read_state_dict
from tinyllava_bench.models.layouts.parts import (
    load_tokenizer,
    merge_settings,
    read_config,
    read_processor_config,
    split_state,
)
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.models.vision import vision_family

HF_VISION = "model.vision_tower."
HF_LLM = "model.language_model."
HF_PROJECTOR = "model.multi_modal_projector."


SETTINGS_KEY = "tinyllava_bench"


def read_hf_llava(folder: Path, source: str, overrides: dict[str, Any], resolve: Any) -> CheckpointParts:
    from transformers import LlavaForConditionalGeneration, PreTrainedConfig

    config = read_config(folder)
    try:
        hf = LlavaForConditionalGeneration.from_pretrained(str(folder), dtype=torch.float32)
    except Exception as exc:
        raise UserError(
            f"{source}: cannot load the HF llava checkpoint ({type(exc).__name__}: {exc})"
        ) from None
    state = {}
    for key, value in hf.state_dict().items():
        if key.startswith(HF_VISION):
            state[VISION_PREFIX + key[len(HF_VISION) :]] = value
        elif key.startswith(HF_PROJECTOR + "linear_"):
            index = (int(key.split("linear_")[1].split(".")[0]) - 1) * 2
            state[f"{CONNECTOR_PREFIX}{index}.{key.rsplit('.', 1)[1]}"] = value
        elif key.startswith(HF_LLM):
            state[LLM_PREFIX + "model." + key[len(HF_LLM) :]] = value
        elif key.startswith("lm_head."):
            state[LLM_PREFIX + key] = value
    raw = read_state_dict(folder) if has_weights(folder) else {}
    if "lm_head.bias" in raw:  # written by our export for LLMs whose head has a bias (Phi)
        state[LLM_PREFIX + "lm_head.bias"] = raw["lm_head.bias"]
    del raw
    text_config = hf.config.text_config
    vision_config = hf.config.vision_config
    if not isinstance(vision_config, PreTrainedConfig):  # LlavaConfig turns config.json's dict into a config
        raise UserError(f"{source}: the checkpoint's config has no vision_config")
    kind = vision_family(vision_config)
    layer = hf.config.vision_feature_layer
    if isinstance(layer, list):
        raise UserError(f"{source}: multi-layer vision features are not supported")
    processor_cfg = read_processor_config(folder)
    pad = bool(processor_cfg and processor_cfg.get("do_pad"))
    # an export of ours carries its prompt settings (export.py); a plain HF llava uses the llava-hf format
    ours = config.get(SETTINGS_KEY) or {}
    settings = merge_settings(
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


def chat_template(model: TinyLlava) -> str:
    """A Jinja chat template reproducing the model's single- and multi-turn prompt format."""
    t = model.template
    system = (t.system + " ") if t.has_system else ""
    sep = t.turn_separator
    return (
        "{% for message in messages %}"
        "{% if loop.first %}" + system + "{% endif %}"
        "{% if message['role'] == 'user' %}USER: "
        "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
        "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n"
        "{% else %}{{ part['text'] }}{% endif %}{% endfor %}{% endif %}" + sep + "ASSISTANT:"
        "{% elif message['role'] == 'assistant' %} {{ message['content'] if message['content'] is string "
        "else message['content'][0]['text'] }}" + t.eos + "{% endif %}"
        "{% endfor %}"
    )


def export_hf_llava(model: TinyLlava, folder: Path) -> Path:
    """Write `model` as a transformers Llava checkpoint (weights, config, tokenizer, processor) into `folder`."""
    from transformers import LlavaConfig, LlavaForConditionalGeneration, LlavaProcessor
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    if model.settings.connector != "mlp2x_gelu":
        raise UserError(
            f"only mlp2x_gelu connectors map onto Llava; this model has {model.settings.connector!r}"
        )
    folder = Path(folder)
    tokenizer = copy.deepcopy(model.tokenizer)
    if IMAGE_PLACEHOLDER not in tokenizer.get_vocab():
        tokenizer.add_tokens([IMAGE_PLACEHOLDER], special_tokens=True)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PLACEHOLDER)

    llm_state, vision_state, connector_state = split_state(export_state(model))
    text_config = copy.deepcopy(model.language_model.config)
    vocab = text_config.vocab_size
    if image_token_id >= vocab:  # no spare row: grow the vocabulary by the image token's row
        text_config.vocab_size = image_token_id + 1
        for key in ("model.embed_tokens.weight", "lm_head.weight", "lm_head.bias"):
            if key in llm_state:
                tensor = llm_state[key]
                extra = torch.zeros((text_config.vocab_size - vocab, *tensor.shape[1:]), dtype=tensor.dtype)
                llm_state[key] = torch.cat([tensor, extra])

    tower = model.vision_tower
    patch_select = model.settings.vision_select == "patch"
    config = LlavaConfig(
        text_config=text_config.to_dict(),
        vision_config=tower.config.to_dict(),
        image_token_index=image_token_id,
        projector_hidden_act="gelu",
        vision_feature_layer=-1,
        vision_feature_select_strategy="default" if patch_select else "full",
        image_seq_length=model.num_image_tokens,
        tie_word_embeddings=bool(getattr(text_config, "tie_word_embeddings", False)),
    )
    # built in the weights' own dtype: a bf16 model exports as bf16, not twice its size in float32
    dtypes = {parameter.dtype for parameter in model.parameters()}
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtypes.pop() if len(dtypes) == 1 else torch.float32)
    try:
        hf = LlavaForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(previous)
    state = {HF_VISION + k: v for k, v in vision_state.items()}
    state.update({HF_LLM + k[len("model.") :]: v for k, v in llm_state.items() if k.startswith("model.")})
    state["lm_head.weight"] = llm_state.get("lm_head.weight", llm_state["model.embed_tokens.weight"])
    lm_head_bias = llm_state.get("lm_head.bias")
    # mlp2x_gelu is Sequential(Linear, GELU, Linear): layers 0 and 2 are Llava's linear_1 and linear_2
    for index, name in ((0, "linear_1"), (2, "linear_2")):
        for kind in ("weight", "bias"):
            state[f"{HF_PROJECTOR}{name}.{kind}"] = connector_state[f"{index}.{kind}"]
    result = hf.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (config.tie_word_embeddings and k == "lm_head.weight")]
    missing = [k for k in missing if "post_layernorm" not in k and not k.startswith(HF_VISION + "head.")]
    if missing or result.unexpected_keys:
        raise RuntimeError(
            f"export mapping incomplete: missing {missing[:3]}, unexpected {result.unexpected_keys[:3]}"
        )
    hf.config.__dict__[SETTINGS_KEY] = {
        "template": model.settings.template,
        "strip_question": model.settings.strip_question,
        "max_length": model.settings.max_length,
        "image_aspect": model.settings.image_aspect,
    }
    hf.save_pretrained(str(folder))
    if lm_head_bias is not None and bool(lm_head_bias.any()):
        # Llava's lm_head has no bias (Phi's has): keep it in the file, where engines that build the text model
        # from text_config (vLLM) and our loader read it; transformers' Llava class ignores it.
        _add_tensor(folder, "lm_head.bias", lm_head_bias)

    p = model.preprocessor
    side = p.side
    clip = p.kind == "clip"  # CLIP: shortest edge + centre crop; SigLIP: plain resize to a square
    image_processor = LlavaImageProcessorPil(
        do_pad=model.settings.image_aspect == "pad",
        size=dict(p.size) if clip else {"height": side, "width": side},
        crop_size={"height": side, "width": side},
        do_center_crop=clip,
        resample=p.resample,
        image_mean=list(p.image_mean),
        image_std=list(p.image_std),
        rescale_factor=p.rescale_factor,
        do_convert_rgb=True,
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=tower.config.patch_size,
        vision_feature_select_strategy=config.vision_feature_select_strategy,
        num_additional_image_tokens=1 if tower.family == "clip" else 0,
        chat_template=chat_template(model),
        image_token=IMAGE_PLACEHOLDER,
    )
    processor.save_pretrained(str(folder))
    return folder


def _add_tensor(folder: Path, key: str, tensor: torch.Tensor) -> None:
    from safetensors.torch import load_file, save_file

    path = folder / "model.safetensors"
    state = load_file(str(path))
    state[key] = tensor.detach().cpu().contiguous()
    save_file(state, str(path), metadata={"format": "pt"})
