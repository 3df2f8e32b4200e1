"""Image preprocessing: `pad` (to a square of the mean colour, legacy) or `square` (plain resize, Factory).

Resizing goes through transformers' PIL-backend image processors, the path the original code used; the
torchvision backend differs by 1-2 levels per pixel.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, TypedDict

import torch
from PIL import Image

from tinyllava_bench.errors import UserError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
SIGLIP_MEAN = (0.5, 0.5, 0.5)
SIGLIP_STD = (0.5, 0.5, 0.5)
ASPECTS = ("pad", "square")


class _ProcessorArgs(TypedDict):
    """The arguments both transformers processors (CLIP and SigLIP) take alike."""

    image_mean: list[float]
    image_std: list[float]
    resample: int
    rescale_factor: float
    do_rescale: bool
    do_normalize: bool
    do_convert_rgb: bool


def expand_to_square(image: Image.Image, background: tuple[int, ...]) -> Image.Image:
    """Pad the short side so the image is square, the original centred where the offset rounds down."""
    width, height = image.size
    if width == height:
        return image
    side = max(width, height)
    result = Image.new(image.mode, (side, side), background)
    result.paste(image, ((side - width) // 2, (side - height) // 2))
    return result


@dataclass
class ImagePreprocessor:
    """Turns a PIL image into the `[3, H, W]` tensor the vision tower takes.

    `kind` is `siglip` (resize to height x width) or `clip` (shortest edge, then centre crop).
    """

    kind: str
    aspect: str = "square"
    size: dict[str, int] = field(default_factory=dict)
    crop_size: dict[str, int] | None = None
    image_mean: tuple[float, ...] = SIGLIP_MEAN
    image_std: tuple[float, ...] = SIGLIP_STD
    resample: int = 3  # PIL bicubic
    rescale_factor: float = 1 / 255

    def __post_init__(self) -> None:
        if self.aspect not in ASPECTS:
            raise UserError(f"unknown image aspect {self.aspect!r}; use one of {', '.join(ASPECTS)}")
        self._processor = self._build_processor()

    def _build_processor(self) -> Any:
        common = _ProcessorArgs(
            image_mean=list(self.image_mean),
            image_std=list(self.image_std),
            resample=self.resample,
            rescale_factor=self.rescale_factor,
            do_rescale=True,
            do_normalize=True,
            do_convert_rgb=True,
        )
        if self.kind == "clip":
            from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

            return CLIPImageProcessorPil(
                size=self.size,
                crop_size=self.crop_size or self.size,
                do_center_crop=True,
                do_resize=True,
                **common,
            )
        from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

        return SiglipImageProcessorPil(size=self.size, do_resize=True, **common)

    @property
    def side(self) -> int:
        """The side of the square images this preprocessor puts out (CLIP: its crop; SigLIP: its resize)."""
        side = (self.crop_size or self.size).get("height") or self.size.get("shortest_edge")
        if side is None:
            raise UserError(f"image preprocessor size {self.size} names neither a height nor a shortest edge")
        return side

    @property
    def background(self) -> tuple[int, ...]:
        """The pad colour: the processor's mean in 0-255, truncated as the original `int(x * 255)`."""
        return tuple(int(x * 255) for x in self.image_mean)

    def __call__(self, image: Image.Image) -> torch.Tensor:
        if image.mode != "RGB":
            image = image.convert("RGB")
        if self.aspect == "pad":
            image = expand_to_square(image, self.background)
        pixels = self._processor(image, return_tensors="pt")["pixel_values"][0]
        return pixels.to(torch.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "aspect": self.aspect,
            "size": dict(self.size),
            "crop_size": dict(self.crop_size) if self.crop_size else None,
            "image_mean": list(self.image_mean),
            "image_std": list(self.image_std),
            "resample": self.resample,
            "rescale_factor": self.rescale_factor,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImagePreprocessor:
        data = dict(data)
        data["image_mean"] = tuple(data["image_mean"])
        data["image_std"] = tuple(data["image_std"])
        return cls(**data)


def preprocessor_for(
    kind: str, image_size: int, aspect: str, processor_config: dict[str, Any] | None = None
) -> ImagePreprocessor:
    """A preprocessor from a `preprocessor_config.json` when there is one, else the family's defaults."""
    cfg = processor_config or {}
    if kind == "clip":
        size = cfg.get("size") or {"shortest_edge": image_size}
        if isinstance(size, int):
            size = {"shortest_edge": size}
        crop = cfg.get("crop_size") or {"height": image_size, "width": image_size}
        if isinstance(crop, int):
            crop = {"height": crop, "width": crop}
        mean, std = cfg.get("image_mean", CLIP_MEAN), cfg.get("image_std", CLIP_STD)
    else:
        size = cfg.get("size") or {"height": image_size, "width": image_size}
        if isinstance(size, int):
            size = {"height": size, "width": size}
        crop = None
        mean, std = cfg.get("image_mean", SIGLIP_MEAN), cfg.get("image_std", SIGLIP_STD)
    return ImagePreprocessor(
        kind=kind,
        aspect=aspect,
        size=dict(size),
        crop_size=dict(crop) if crop else None,
        image_mean=tuple(mean),
        image_std=tuple(std),
        resample=int(cfg.get("resample", 3)),
        rescale_factor=float(cfg.get("rescale_factor", 1 / 255)),
    )
