"""The demo's "pretrained" parts, as hub downloads hold them: a Phi-style LLM that first learns the demo world's
text (language_pretraining.py) with a tokenizer trained on the training strings, and a random SigLIP-style tower."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.settings import LLM_FAMILY, TEMPLATE, DemoSettings


def _training_texts(pretrain: Path, finetune: Path) -> list[str]:
    """The training strings exactly as the trainer will see them (caption and chat templates applied)."""
    from tinyllava_bench.models.templates import get_template

    texts: list[str] = []
    for path, template in ((pretrain, get_template("pretrain")), (finetune, get_template(TEMPLATE))):
        for record in json.loads(Path(path).read_text()):
            values = [turn["value"] for turn in record["conversations"]]
            turns = list(zip(values[0::2], values[1::2]))
            text, _ = template.render_conversation(turns)
            texts.extend(chunk for chunk in text.split("<image>") if chunk)
    return texts


def boilerplate_phrases() -> list[str]:
    """Text every training string repeats (system prompt, roles, answer-format suffixes): one token each."""
    from tinyllava_bench.models.templates import SYSTEM_PROMPT
    from tinyllava_bench.testing.training_data import (
        MME_SUFFIX,
        MULTIPLE_CHOICE_SUFFIX,
        OCR_PREFIX,
        SHORT_ANSWER_SUFFIX,
    )

    return [
        SYSTEM_PROMPT,
        "USER:",
        "ASSISTANT:",
        SHORT_ANSWER_SUFFIX,
        MULTIPLE_CHOICE_SUFFIX,
        MME_SUFFIX,
        OCR_PREFIX,
    ]


def write_base_models(
    root: Path, pretrain: Path, finetune: Path, settings: DemoSettings, shown: Any = None
) -> dict[str, str]:
    """root/llm (a Phi-style LLM pretrained on the demo world's text, + its tokenizer) and root/vision (a random
    SigLIP-style tower), as a hub download would hold them."""
    import torch

    from tinyllava_bench.demo.language_pretraining import pretrain_language_model, spell_samples
    from tinyllava_bench.demo.progress import DemoProgress
    from tinyllava_bench.models.llm import build_language_model
    from tinyllava_bench.testing.models import (
        build_tokenizer,
        build_vision_tower,
        save_quietly,
        tiny_text_config,
    )
    from tinyllava_bench.testing.training_data import spelled_conversations

    torch.manual_seed(settings.seed)
    # boilerplate as whole tokens: a sequence is mostly image, question and answer, and short sequences are what
    # lets a model trained from scratch on 2 CPU cores learn in minutes
    tokenizer = build_tokenizer(
        LLM_FAMILY,
        settings.vocab_size,
        corpus=_training_texts(pretrain, finetune),
        phrases=boilerplate_phrases(),
    )
    text_config = tiny_text_config(
        LLM_FAMILY, tokenizer, hidden=settings.llm_hidden, layers=settings.llm_layers
    )
    text_config.max_position_embeddings = settings.model_max_length
    language_model = build_language_model(text_config)
    samples = spelled_conversations(settings.llm_text_samples, settings.seed)
    grid = settings.image_size // settings.patch_size
    bar = (shown or DemoProgress(enabled=False)).bars({"demo LLM": settings.llm_text_steps}, unit="step")
    try:
        text = pretrain_language_model(
            language_model,
            spell_samples(samples, tokenizer, TEMPLATE, grid),
            steps=settings.llm_text_steps,
            batch=settings.batch,
            learning_rate=settings.llm_text_lr,
            seed=settings.seed,
            on_step=lambda: bar["demo LLM"].update(),
        )
    finally:
        bar["demo LLM"].close()
    if shown is not None:
        shown.log(f"      LLM loss {text.first_loss:.2f} -> {text.last_loss:.2f} in {text.seconds:.0f} s")
    save_quietly(language_model, root / "llm")
    tokenizer.save_pretrained(root / "llm")
    tower = build_vision_tower(
        "siglip",
        image_size=settings.image_size,
        patch_size=settings.patch_size,
        hidden=settings.vision_hidden,
        layers=settings.vision_layers + 1,  # features come from the penultimate layer, as SigLIP's
        init_std=settings.vision_init_std,
    )
    save_quietly(tower, root / "vision")
    return {"llm": str(root / "llm"), "vision": str(root / "vision")}
