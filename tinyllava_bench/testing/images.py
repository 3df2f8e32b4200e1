"""Small random pictures of any size and PIL mode, the same for the same seed."""

from __future__ import annotations

import numpy as np
from PIL import Image


def make_image(width: int, height: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    """Uniform noise of `width` x `height` in `mode` (drawn as RGB, then converted)."""
    rng = np.random.RandomState(seed)
    image = Image.fromarray((rng.rand(height, width, 3) * 255).astype("uint8"))
    return image.convert(mode) if mode != "RGB" else image
