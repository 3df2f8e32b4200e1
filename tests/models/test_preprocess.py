"""`pad` and `square` preprocessing follow SPEC §1 on odd-sized images, computed independently here with PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.preprocess import CLIP_MEAN, CLIP_STD, expand_to_square, preprocessor_for
from tinyllava_bench.testing.images import make_image


def _normalise(image: Image.Image, mean, std) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float64) / 255.0
    array = (array - np.array(mean)) / np.array(std)
    return torch.from_numpy(array.transpose(2, 0, 1)).float()


def test_expand_to_square_centres_and_rounds_down():
    image = make_image(7, 4)
    square = expand_to_square(image, (127, 127, 127))
    assert square.size == (7, 7)
    pixels = np.asarray(square)
    assert (pixels[0] == 127).all() and (pixels[5:] == 127).all()  # offset (7 - 4) // 2 = 1 row on top
    assert (pixels[1:5] == np.asarray(image)).all()


@pytest.mark.parametrize("size", [(37, 21), (21, 37), (16, 16)])
def test_siglip_pad(size):
    image = make_image(*size, seed=1)
    pre = preprocessor_for("siglip", 28, "pad")
    assert pre.background == (127, 127, 127)  # int(0.5 * 255)
    side = max(size)
    padded = Image.new("RGB", (side, side), (127, 127, 127))
    padded.paste(image, ((side - size[0]) // 2, (side - size[1]) // 2))
    expected = _normalise(padded.resize((28, 28), Image.BICUBIC), (0.5,) * 3, (0.5,) * 3)
    torch.testing.assert_close(pre(image), expected, atol=1e-5, rtol=0)


def test_siglip_square_is_a_plain_resize():
    image = make_image(41, 19, seed=2)
    expected = _normalise(image.resize((28, 28), Image.BICUBIC), (0.5,) * 3, (0.5,) * 3)
    torch.testing.assert_close(preprocessor_for("siglip", 28, "square")(image), expected, atol=1e-5, rtol=0)


def test_clip_pad_uses_clip_mean_colour_then_shortest_edge_and_crop():
    image = make_image(41, 19, seed=3)
    pre = preprocessor_for("clip", 28, "pad")
    assert pre.background == (122, 116, 104)
    side = 41
    padded = Image.new("RGB", (side, side), (122, 116, 104))
    padded.paste(image, (0, (41 - 19) // 2))
    expected = _normalise(padded.resize((28, 28), Image.BICUBIC), CLIP_MEAN, CLIP_STD)
    torch.testing.assert_close(pre(image), expected, atol=1e-5, rtol=0)


def test_clip_square_crops_the_centre():
    image = make_image(56, 28, seed=4)
    out = preprocessor_for("clip", 28, "square")(image)
    expected = _normalise(image.resize((56, 28), Image.BICUBIC).crop((14, 0, 42, 28)), CLIP_MEAN, CLIP_STD)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_mode_becomes_rgb(mode):
    out = preprocessor_for("siglip", 28, "pad")(make_image(30, 20, mode=mode))
    assert tuple(out.shape) == (3, 28, 28)


def test_unknown_aspect():
    with pytest.raises(UserError, match="unknown image aspect 'anyres'"):
        preprocessor_for("siglip", 28, "anyres")
