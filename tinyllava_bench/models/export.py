"""Export an `mlp2x_gelu` TinyLlava to transformers' LlavaForConditionalGeneration layout, with its processor.

Engines that serve Llava (vLLM, SGLang, TGI) then run it. The prompt format goes along as a chat template and
this project's settings under `tinyllava_bench` in config.json, so loading the export back changes nothing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.assemble import export_state
from tinyllava_bench.models.save import _split
from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER
from tinyllava_bench.models.tinyllava import TinyLlava

SETTINGS_KEY = "tinyllava_bench"


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

    llm_state, vision_state, connector_state = _split(export_state(model))
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
    state = {"model.vision_tower." + k: v for k, v in vision_state.items()}
    state.update(
        {
            "model.language_model." + k[len("model.") :]: v
            for k, v in llm_state.items()
            if k.startswith("model.")
        }
    )
    state["lm_head.weight"] = llm_state.get("lm_head.weight", llm_state["model.embed_tokens.weight"])
    lm_head_bias = llm_state.get("lm_head.bias")
    state["model.multi_modal_projector.linear_1.weight"] = connector_state["0.weight"]
    state["model.multi_modal_projector.linear_1.bias"] = connector_state["0.bias"]
    state["model.multi_modal_projector.linear_2.weight"] = connector_state["2.weight"]
    state["model.multi_modal_projector.linear_2.bias"] = connector_state["2.bias"]
    result = hf.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not (config.tie_word_embeddings and k == "lm_head.weight")]
    missing = [
        k for k in missing if "post_layernorm" not in k and not k.startswith("model.vision_tower.head.")
    ]
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
    side = (p.crop_size or p.size).get("height") or p.size.get("shortest_edge")
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
