"""Vision tower: a transformers SigLIP or CLIP vision model, cut after the layer whose features we use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from tinyllava_bench.errors import UserError

VISION_FAMILIES = ("siglip", "clip")
SELECT_STRATEGIES = ("patch", "full")  # patch: drop the first token (CLS for CLIP); full: keep every token


def vision_family(config: Any) -> str:
    model_type = getattr(config, "model_type", "") or ""
    for family in VISION_FAMILIES:
        if model_type.startswith(family):
            return family
    raise UserError(f"unsupported vision tower type {model_type!r}; supported: SigLIP and CLIP vision models")


def layers_needed(num_hidden_layers: int, feature_layer: int) -> int:
    """How many encoder layers produce `hidden_states[feature_layer]` (index 0 is the embeddings)."""
    index = feature_layer if feature_layer >= 0 else num_hidden_layers + 1 + feature_layer
    if not 0 < index <= num_hidden_layers:
        raise UserError(
            f"vision feature layer {feature_layer} does not exist in a {num_hidden_layers}-layer tower"
        )
    return index


def square_side(value: int | Sequence[int] | None, what: str) -> int:
    """A vision config's `image_size` or `patch_size`: its configs allow a pair or None, but transformers' SigLIP
    and CLIP models (and this tower) take one side of a square."""
    if not isinstance(value, int):
        raise UserError(f"the vision tower's {what} is {value!r}; SigLIP and CLIP towers need one number")
    return value


class VisionTower(nn.Module):
    """Runs the first `num_layers` encoder layers and returns their output, optionally without the first token.

    Stopping at the feature layer equals taking `hidden_states[layer]` of the full tower (the legacy SigLIP
    deleted its last layer the same way) and skips the layers whose output is never used.
    """

    def __init__(self, config: Any, select: str = "patch") -> None:
        super().__init__()
        from transformers import CLIPVisionModel, SiglipVisionModel

        if select not in SELECT_STRATEGIES:
            raise UserError(
                f"unknown vision feature selection {select!r}; use one of {', '.join(SELECT_STRATEGIES)}"
            )
        self.family = vision_family(config)
        self.select = select
        self.model: SiglipVisionModel | CLIPVisionModel
        if self.family == "siglip":
            config.vision_use_head = False
            self.model = SiglipVisionModel(config)
        else:
            self.model = CLIPVisionModel(config)
        self.config = self.model.config

    @property
    def hidden_size(self) -> int:
        return self.config.hidden_size

    @property
    def image_size(self) -> int:
        """The side of the square images the tower takes."""
        return square_side(self.config.image_size, "image_size")

    @property
    def num_tokens(self) -> int:
        patches = (self.image_size // square_side(self.config.patch_size, "patch_size")) ** 2
        tokens = patches + (1 if self.family == "clip" else 0)
        return tokens - 1 if self.select == "patch" else tokens

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=pixel_values, output_hidden_states=True)
        features = out.hidden_states[-1]
        return features[:, 1:] if self.select == "patch" else features
