"""The dimensions of a random model of realistic size (the benchmarks'); standard library only, so a benchmark's
orchestrating process can name sizes without importing torch."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class ModelSpec:
    """The dimensions of a random Phi + SigLIP TinyLLaVA (the shape of TinyLLaVA-3.1B when full size)."""

    name: str
    hidden: int
    layers: int
    heads: int
    intermediate: int
    vision_hidden: int
    vision_layers: int  # layers kept: the tower ends at the feature layer (SigLIP-so400m: 26 of 27)
    vision_heads: int
    vision_intermediate: int
    image_size: int
    patch_size: int = 14
    vocab: int | None = None  # None: the size of the small random tokenizer
    partial_rotary_factor: float = 0.4  # Phi-2's

    @property
    def image_tokens(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "image_tokens": self.image_tokens}
