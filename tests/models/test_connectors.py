"""Connectors: the resampler keeps TinyLLaVA_Factory's weight names and its size survives a factory round trip."""

from __future__ import annotations

import json

import pytest
import torch

from tinyllava_bench import load_model
from tinyllava_bench.errors import UserError
from tinyllava_bench.models.connectors import build_connector
from tinyllava_bench.models.vision import VisionTower, square_side
from tinyllava_bench.testing.images import make_image
from tinyllava_bench.testing.models import build_tiny_model, tiny_vision_config, write_tiny_checkpoints


def test_resampler_weights_keep_factorys_names():
    # Factory: layers = ModuleList of ModuleList([PerceiverAttention, FeedForward = Sequential(LN, Linear, GELU,
    # Linear)]); a checkpoint loads only if every name matches
    resampler = build_connector("resampler", 8, 16, num_queries=4, num_layers=2)
    attention = ("norm_media.weight", "norm_media.bias", "norm_latents.weight", "norm_latents.bias")
    attention += ("to_q.weight", "to_kv.weight", "to_out.weight")
    feed_forward = ("0.weight", "0.bias", "1.weight", "3.weight")
    expected = {"latents", "linear.weight", "linear.bias", "norm.weight", "norm.bias"}
    for layer in range(2):
        expected |= {f"layers.{layer}.0.{name}" for name in attention}
        expected |= {f"layers.{layer}.1.{name}" for name in feed_forward}
    assert set(resampler.state_dict()) == expected
    assert resampler(torch.randn(2, 5, 8)).shape == (2, 4, 16)


def test_resampler_model_round_trips_through_the_factory_layout(tmp_path):
    model = build_tiny_model("phi", "siglip", connector="resampler")
    paths = write_tiny_checkpoints(model, tmp_path, ("native", "factory"))
    config = json.loads((paths["factory"] / "config.json").read_text())
    assert (config["num_queries"], config["num_resampler_layers"]) == (4, 1)
    image = make_image(31, 20)
    expected = load_model(str(paths["native"])).prompt_logits(image, "What is it?")
    loaded = load_model(str(paths["factory"]))
    assert loaded.num_image_tokens == 4
    torch.testing.assert_close(loaded.prompt_logits(image, "What is it?"), expected, atol=1e-5, rtol=0)


def test_vision_tower_sizes_are_one_number():
    tower = VisionTower(tiny_vision_config("clip", image_size=28, patch_size=14))
    assert (tower.image_size, tower.num_tokens) == (28, 4)  # 2x2 patches (+ CLS, dropped by `patch`)
    with pytest.raises(UserError, match=r"image_size is \[28, 14\]; SigLIP and CLIP towers need one number"):
        square_side([28, 14], "image_size")
    with pytest.raises(UserError, match="patch_size is None"):
        square_side(None, "patch_size")
