"""Tiny random TinyLLaVA models in every LLM family and checkpoint layout, and the hub-download-shaped LLM and
vision-tower folders the trainer starts from, built offline in about a second (tests, demo, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.models.connectors import build_connector
from tinyllava_bench.models.llm import build_language_model, text_config_from_dict
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava
from tinyllava_bench.models.vision import VisionTower, layers_needed
from tinyllava_bench.testing.sizes import ModelSpec

LLM_FAMILIES = ("llama", "stablelm", "phi", "gemma", "qwen2")
VISION_FAMILIES = ("siglip", "clip")
LAYOUTS = ("native", "factory", "factory_split", "legacy", "hf_llava")

# Special tokens per LLM family, shaped like the real tokenizers (Phi-2: bos = eos = unk = <|endoftext|>).
FAMILY_TOKENS: dict[str, dict[str, Any]] = {
    "llama": {"bos": "<s>", "eos": "</s>", "unk": "<unk>", "pad": None, "add_bos": True},
    "gemma": {"bos": "<bos>", "eos": "<eos>", "unk": "<unk>", "pad": "<pad>", "add_bos": True},
    "phi": {
        "bos": "<|endoftext|>",
        "eos": "<|endoftext|>",
        "unk": "<|endoftext|>",
        "pad": None,
        "add_bos": False,
    },
    "stablelm": {
        "bos": "<|endoftext|>",
        "eos": "<|endoftext|>",
        "unk": "<|endoftext|>",
        "pad": None,
        "add_bos": False,
    },
    "qwen2": {
        "bos": None,
        "eos": "<|endoftext|>",
        "unk": None,
        "pad": "<|endoftext|>",
        "add_bos": False,
        "extra": ["<|im_start|>", "<|im_end|>"],
    },
}
FAMILY_TEMPLATES = {
    "llama": "llama",
    "gemma": "gemma",
    "phi": "phi",
    "stablelm": "phi",
    "qwen2": "qwen2_base",
}

CORPUS = [
    "A chat between a curious user and an artificial intelligence assistant.",
    "The assistant gives helpful, detailed, and polite answers to the user's questions.",
    "USER: ASSISTANT: What is the color of the shape? Answer the question using a single word or phrase.",
    "red green blue yellow circle square triangle yes no one two three four left right top bottom",
    "Is there a red circle in the image? Please answer yes or no. Reference OCR token: cat, dog",
    "Context: Answer with the option's letter from the given choices directly. A. B. C. D.",
    "How many shapes are there? What word is written? The answer is A.",
]


def build_tokenizer(
    family: str,
    vocab_size: int = 320,
    corpus: Sequence[str] | None = None,
    phrases: Sequence[str] = (),
) -> Any:
    """A byte-level BPE tokenizer with the family's special tokens, trained on `corpus` (default: a few template
    sentences); each of `phrases` is added as one whole token (the demo's boilerplate, so sequences stay short)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    spec = FAMILY_TOKENS[family]
    specials = [
        t
        for t in dict.fromkeys([spec["bos"], spec["eos"], spec["unk"], spec["pad"], *spec.get("extra", [])])
        if t
    ]
    tok = Tokenizer(models.BPE(unk_token=spec["unk"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4 if corpus is None else corpus, trainer=trainer)
    if spec["add_bos"]:
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    if phrases:
        tok.add_tokens([AddedToken(p, normalized=False, special=False) for p in phrases])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        unk_token=spec["unk"],
        model_max_length=2048,
        # named only where the family has one: a saved tokenizer_config then reads as the real ones do
        **({"pad_token": spec["pad"]} if spec["pad"] else {}),
    )


def tiny_text_config(
    family: str,
    tokenizer: Any,
    hidden: int = 32,
    layers: int = 2,
    spare_vocab: int = 0,
    *,
    heads: int = 4,
    intermediate: int | None = None,
    max_positions: int = 1024,
    vocab_size: int | None = None,
    **changes: Any,
) -> Any:
    """The LLM config of `family` at these sizes (intermediate: twice `hidden`; vocabulary: the tokenizer's, plus
    `spare_vocab` unused rows); `changes` replace the family's own settings (e.g. partial_rotary_factor)."""
    common: dict[str, Any] = {
        "vocab_size": (vocab_size or len(tokenizer)) + spare_vocab,
        "hidden_size": hidden,
        "intermediate_size": intermediate or hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "max_position_embeddings": max_positions,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    by_family: dict[str, dict[str, Any]] = {
        "llama": {"num_key_value_heads": 2},
        "gemma": {"num_key_value_heads": 1, "head_dim": hidden // 4},
        "phi": {"partial_rotary_factor": 0.5, "resid_pdrop": 0.0, "embd_pdrop": 0.0},
        "stablelm": {"num_key_value_heads": 4, "partial_rotary_factor": 0.25, "use_qkv_bias": True},
        "qwen2": {"num_key_value_heads": 2, "tie_word_embeddings": True},
    }
    return text_config_from_dict({"model_type": family, **common, **by_family[family], **changes})


def tiny_vision_config(
    family: str,
    image_size: int = 28,
    patch_size: int = 14,
    hidden: int = 24,
    layers: int = 3,
    *,
    heads: int = 4,
    intermediate: int | None = None,
) -> Any:
    """A SigLIP or CLIP vision config at these sizes (intermediate: twice `hidden`)."""
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    cls = SiglipVisionConfig if family == "siglip" else CLIPVisionConfig
    return cls(
        hidden_size=hidden,
        intermediate_size=intermediate or hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image_size,
        patch_size=patch_size,
    )


def build_tiny_model(
    llm: str = "phi",
    vision: str = "siglip",
    connector: str = "mlp2x_gelu",
    *,
    template: str | None = None,
    image_aspect: str = "pad",
    vision_select: str | None = None,
    image_size: int = 28,
    patch_size: int = 14,
    hidden: int = 32,
    spare_vocab: int = 0,
    max_length: int | None = 2048,
    seed: int = 0,
    init_std: float | None = 0.2,
    size: ModelSpec | None = None,
    device: str = "cpu",
    dtype: Any = None,
    with_preprocessor: bool = True,
) -> TinyLlava:
    """A random TinyLlava of any LLM family, vision tower and connector: the one builder of the tests, the demo's
    checks and the benchmarks.

    Tiny by default (hidden 32, 2 LLM layers, a 2-layer tower): `size` gives a Phi + SigLIP model real dimensions
    instead (`image_size`, `patch_size` and `hidden` then come from it), built on `device` in `dtype`.
    `init_std` as `widen_weights` (None keeps transformers' own 0.02 init, for speed-only runs);
    `with_preprocessor=False` leaves the image preprocessor out (a model timed on generation alone).
    """
    if size is not None and (llm, vision) != ("phi", "siglip"):
        raise ValueError(f"a ModelSpec describes a Phi + SigLIP model, not {llm} + {vision}")
    torch.manual_seed(seed)
    dtype = dtype or torch.float32
    tokenizer = build_tokenizer(llm)
    if size is None:
        text_config = tiny_text_config(llm, tokenizer, hidden=hidden, spare_vocab=spare_vocab)
        # the identity connector hands the tower's features to the LLM as they are: the widths must agree
        vision_config = tiny_vision_config(
            vision, image_size, patch_size, hidden=hidden if connector == "identity" else 24
        )
        vision_config.num_hidden_layers = layers_needed(vision_config.num_hidden_layers, -2)
        name = f"tiny-{llm}-{vision}"
    else:
        hidden, image_size = size.hidden, size.image_size
        text_config = tiny_text_config(
            llm,
            tokenizer,
            hidden=size.hidden,
            layers=size.layers,
            spare_vocab=spare_vocab,
            heads=size.heads,
            intermediate=size.intermediate,
            max_positions=2048,
            vocab_size=max(len(tokenizer), size.vocab or 0),
            partial_rotary_factor=size.partial_rotary_factor,
        )
        vision_config = tiny_vision_config(
            vision,
            size.image_size,
            size.patch_size,
            size.vision_hidden,
            size.vision_layers,  # already the layers kept
            heads=size.vision_heads,
            intermediate=size.vision_intermediate,
        )
        name = size.name
    select = vision_select or ("full" if vision == "siglip" else "patch")
    settings = _settings(template or FAMILY_TEMPLATES[llm], image_aspect, select, connector, max_length)
    preprocessor: Any = preprocessor_for(vision, image_size, image_aspect) if with_preprocessor else None
    previous_dtype = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            tower = VisionTower(vision_config, select=select)
            language_model = build_language_model(text_config)
            connector_module = build_connector(
                connector, vision_config.hidden_size, hidden, num_queries=4, num_layers=1
            )
            model = TinyLlava(
                tower, connector_module, language_model, tokenizer, preprocessor, settings, name=name
            )
    finally:
        torch.set_default_dtype(previous_dtype)
    model.to(device=device, dtype=dtype)
    if init_std is not None:
        widen_weights(model, init_std)
    return model.eval()


def build_random_model(
    spec: ModelSpec,
    *,
    device: str = "cpu",
    dtype: Any = None,
    seed: int = 0,
    init_std: float | None = 0.2,
    with_preprocessor: bool = True,
) -> TinyLlava:
    """`build_tiny_model` at `spec`'s size: Phi LLM, SigLIP tower (every patch), mlp2x_gelu, template phi."""
    return build_tiny_model(
        "phi",
        "siglip",
        size=spec,
        vision_select="full",
        device=device,
        dtype=dtype,
        seed=seed,
        init_std=init_std,
        with_preprocessor=with_preprocessor,
    )


def _settings(
    template: str, aspect: str, select: str, connector: str, max_length: int | None
) -> ModelSettings:
    return ModelSettings(
        template=template,
        image_aspect=aspect,
        vision_layer=-1,
        vision_select=select,
        connector=connector,
        max_length=max_length,
        strip_question=True,
        layout="native",
    )


def widen_weights(model: torch.nn.Module, std: float) -> None:
    """Redraw every matrix from N(0, std): wider than transformers' 0.02, so greedy choices are far from ties and
    batched and one-at-a-time answers agree exactly."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lm_head.bias"):
                param.zero_()  # legacy Phi has no lm_head bias: keep every layout equal
            elif param.dim() >= 2 or name.endswith("latents"):
                param.normal_(0.0, std)


def layouts_for(llm: str) -> tuple[str, ...]:
    """The layouts a model of the `llm` family can be written in (TinyLLaVABench had no Gemma class: no legacy)."""
    return tuple(layout for layout in LAYOUTS if not (layout == "legacy" and llm == "gemma"))


def write_tiny_checkpoints(model: TinyLlava, root: Path, layouts: Iterable[str] = LAYOUTS) -> dict[str, Path]:
    """Write `model` under `root/<layout>` for each layout (legacy also writes its vision tower folder)."""
    from tinyllava_bench.models.layouts.factory import save_factory
    from tinyllava_bench.models.layouts.hf_llava import export_hf_llava
    from tinyllava_bench.models.layouts.legacy import save_legacy
    from tinyllava_bench.models.layouts.native import save_native

    root = Path(root)
    paths = {}
    for layout in layouts:
        target = root / layout
        if layout == "native":
            save_native(model, target)
        elif layout == "factory":
            save_factory(model, target)
        elif layout == "factory_split":
            save_factory(model, target, split=True)
        elif layout == "legacy":
            save_legacy(model, target, root / "legacy_vision_tower")
        elif layout == "hf_llava":
            export_hf_llava(model, target)
        else:
            raise ValueError(f"unknown layout {layout!r}")
        paths[layout] = target
    return paths


def build_vision_tower(
    family: str = "siglip",
    *,
    image_size: int = 28,
    patch_size: int = 14,
    hidden: int = 24,
    layers: int = 3,
    init_std: float = 0.2,
) -> Any:
    """A random transformers SigLIP or CLIP vision model, as a hub download of a tower holds; matrices drawn from
    N(0, init_std) (0.2: colours stay apart after the tower's layer norms)."""
    from transformers import CLIPVisionModel, SiglipVisionModel

    config = tiny_vision_config(
        family, image_size=image_size, patch_size=patch_size, hidden=hidden, layers=layers
    )
    tower = (SiglipVisionModel if family == "siglip" else CLIPVisionModel)(config)
    with torch.no_grad():
        for parameter in tower.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, init_std)
    return tower


def save_quietly(model: Any, folder: Path) -> None:
    """save_pretrained without transformers' "Writing model shards" progress bar."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        transformers_logging.enable_progress_bar()


def write_model_parts(
    root: Path, llm: str = "phi", vision: str = "siglip", vision_layers: int = 4
) -> dict[str, str]:
    """root/llm (a tiny random LLM + its tokenizer) and root/vision (a tiny random tower), as hub downloads hold
    them: what `train --config` starts from. Returns {"llm": folder, "vision": folder}."""
    torch.manual_seed(0)
    tokenizer = build_tokenizer(llm)
    language_model = build_language_model(tiny_text_config(llm, tokenizer, hidden=32))
    save_quietly(language_model, root / "llm")
    tokenizer.save_pretrained(root / "llm")
    save_quietly(build_vision_tower(vision, layers=vision_layers), root / "vision")
    return {"llm": str(root / "llm"), "vision": str(root / "vision")}
