"""Stage-1 models built from an LLM folder and a vision-tower folder, as hub downloads would hold them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tinyllava_bench.errors import UserError
from tinyllava_bench.train.init import build_initial_model
from tinyllava_bench.train.recipes import get_recipe
from tinyllava_bench.train.run_settings import enable_activation_checkpointing


def _saved(folder) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def test_llm_and_tower_weights_are_the_pretrained_ones(model_parts):
    parts = model_parts("phi", "siglip", vision_layers=4)
    model = build_initial_model(parts["llm"], parts["vision"], template="phi", image_tokens=4, max_length=512)
    llm = _saved(Path(parts["llm"]))
    state = model.language_model.state_dict()
    assert all(torch.equal(state[k], v) for k, v in llm.items())
    tower = _saved(Path(parts["vision"]))
    kept = model.vision_tower.model.state_dict()
    # feature layer -2 of a 4-layer tower: the model keeps layers 0-2, exactly as saved
    assert len(model.vision_tower.model.encoder.layers) == 3
    for key, value in kept.items():
        saved_key = next(k for k in tower if k.endswith(key))
        assert torch.equal(value, tower[saved_key]), key
    # 2x2 patches and 4 image tokens on the card: every token kept (legacy SigLIP behaviour)
    assert model.settings.vision_select == "full" and model.num_image_tokens == 4
    assert model.settings.max_length == 512 and model.settings.template == "phi"
    # Phi: pad = unk = eos, as TinyLLaVA_Factory sets it
    assert model.tokenizer.pad_token_id == model.tokenizer.eos_token_id
    assert model.settings.extra["eos_token_id"] == [model.tokenizer.convert_tokens_to_ids("<|endoftext|>")]


def test_connector_init_follows_the_seed(model_parts):
    parts = model_parts("phi", "siglip", vision_layers=4)
    a = build_initial_model(parts["llm"], parts["vision"], template="phi", seed=1)
    b = build_initial_model(parts["llm"], parts["vision"], template="phi", seed=1)
    c = build_initial_model(parts["llm"], parts["vision"], template="phi", seed=2)
    assert torch.equal(a.connector[0].weight, b.connector[0].weight)
    assert not torch.equal(a.connector[0].weight, c.connector[0].weight)
    assert a.settings.vision_select == "patch" and a.num_image_tokens == 3  # no image_tokens given: Factory's


@pytest.mark.parametrize(
    ("llm", "vision", "template"), [("qwen2", "clip", "qwen2_instruct"), ("llama", "siglip", "v1")]
)
def test_other_families(model_parts, llm, vision, template):
    parts = model_parts(llm, vision, vision_layers=4)
    model = build_initial_model(parts["llm"], parts["vision"], template=template, connector="mlp3x_gelu")
    assert len(model.connector) == 5
    assert model.tokenizer.pad_token is not None
    if template == "qwen2_instruct":
        # the template's EOS first: a trained answer ends with <|im_end|>, the LLM's own EOS still stops
        assert model.settings.extra["eos_token_id"][0] == model.tokenizer.convert_tokens_to_ids("<|im_end|>")
        assert model.tokenizer.eos_token_id in model.settings.extra["eos_token_id"]
    if llm == "llama":
        assert model.tokenizer.pad_token == model.tokenizer.unk_token  # Factory: pad = unk for llama


def test_tower_from_a_full_siglip_checkpoint(tmp_path, model_parts):
    from transformers import SiglipConfig, SiglipModel

    vision = dict(
        hidden_size=24,
        intermediate_size=48,
        num_hidden_layers=3,
        num_attention_heads=4,
        image_size=28,
        patch_size=14,
    )
    text = dict(
        hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2, vocab_size=50
    )
    full = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    full.save_pretrained(tmp_path / "siglip")
    model = build_initial_model(model_parts()["llm"], str(tmp_path / "siglip"), template="phi")
    assert torch.equal(
        model.vision_tower.model.embeddings.patch_embedding.weight,
        full.vision_model.embeddings.patch_embedding.weight,
    )


def test_missing_pieces_are_user_errors(tmp_path, model_parts):
    with pytest.raises(UserError):
        build_initial_model(str(tmp_path / "none"), model_parts()["vision"], template="phi")
    with pytest.raises(UserError):
        build_initial_model(model_parts()["llm"], str(tmp_path / "none"), template="phi")


def test_activation_checkpointing_switches_on(model_parts):
    parts = model_parts("phi", "siglip", vision_layers=4)
    model = build_initial_model(parts["llm"], parts["vision"], template="phi")
    enable_activation_checkpointing(model, get_recipe("share").stage("share-pretrain"))
    assert model.language_model.model.gradient_checkpointing
    assert model.vision_tower.model.encoder.gradient_checkpointing  # the tower trains in share-pretrain
