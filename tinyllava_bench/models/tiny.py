"""Tiny random TinyLLaVA checkpoints in every layout, built offline in about a second (tests, demo, benchmarks)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import torch

from tinyllava_bench.models.connectors import build_connector
from tinyllava_bench.models.llm import build_language_model, text_config_from_dict
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava
from tinyllava_bench.models.vision import VisionTower, layers_needed

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


def build_tokenizer(family: str, vocab_size: int = 320) -> Any:
    """A byte-level BPE tokenizer trained on a few template sentences, with the family's special tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
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
        vocab_size=vocab_size, special_tokens=specials, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    if spec["add_bos"]:
        bos = spec["bos"]
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tok.token_to_id(bos))]
        )
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=spec["bos"],
        eos_token=spec["eos"],
        unk_token=spec["unk"],
        pad_token=spec["pad"],
        model_max_length=2048,
    )


def tiny_text_config(
    family: str, tokenizer: Any, hidden: int = 32, layers: int = 2, spare_vocab: int = 0
) -> Any:
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer) + spare_vocab,
        "hidden_size": hidden,
        "intermediate_size": hidden * 2,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "max_position_embeddings": 1024,
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
    return text_config_from_dict({"model_type": family, **common, **by_family[family]})


def tiny_vision_config(
    family: str, image_size: int = 28, patch_size: int = 14, hidden: int = 24, layers: int = 3
) -> Any:
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    cls = SiglipVisionConfig if family == "siglip" else CLIPVisionConfig
    return cls(
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
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
    init_std: float = 0.2,
) -> TinyLlava:
    """A random TinyLlava; weights drawn wider than transformers' 0.02 so greedy choices are far from ties."""
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(llm)
    text_config = tiny_text_config(llm, tokenizer, hidden=hidden, spare_vocab=spare_vocab)
    vision_config = tiny_vision_config(vision, image_size=image_size, patch_size=patch_size)
    vision_config.num_hidden_layers = layers_needed(vision_config.num_hidden_layers, -2)
    select = vision_select or ("full" if vision == "siglip" else "patch")
    tower = VisionTower(vision_config, select=select)
    language_model = build_language_model(text_config)
    connector_module = build_connector(
        connector, vision_config.hidden_size, hidden, num_queries=4, num_layers=1
    )
    settings = ModelSettings(
        template=template or FAMILY_TEMPLATES[llm],
        image_aspect=image_aspect,
        vision_layer=-1,
        vision_select=select,
        connector=connector,
        max_length=max_length,
        strip_question=True,
        layout="native",
    )
    preprocessor = preprocessor_for(vision, image_size, image_aspect)
    model = TinyLlava(
        tower,
        connector_module,
        language_model,
        tokenizer,
        preprocessor,
        settings,
        name=f"tiny-{llm}-{vision}",
    )
    _widen(model, init_std)
    return model.eval()


def _widen(model: TinyLlava, std: float) -> None:
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lm_head.bias"):
                param.zero_()  # legacy Phi has no lm_head bias: keep every layout equal
            elif param.dim() >= 2 or name.endswith("latents"):
                param.normal_(0.0, std)


def write_tiny_checkpoints(
    model: TinyLlava,
    root: Path,
    layouts: Iterable[str] = ("native", "factory", "factory_split", "legacy", "hf_llava"),
) -> dict[str, Path]:
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
