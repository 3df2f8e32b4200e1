"""Image values -> RGB: every accepted shape, every mode, and every way a file can be bad."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tinyllava_bench.tasks import images
from tinyllava_bench.tasks.images import ImageLoadError, load_image, to_rgb


def _png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


RED = Image.new("RGB", (3, 2), (200, 10, 20))


def test_embedded_bytes_dict_and_pil_all_decode_to_the_same_pixels(tmp_path: Path) -> None:
    data = _png_bytes(RED)
    for value in (data, {"bytes": data, "path": "ignored.png"}, RED):
        image = load_image(value, tmp_path)
        assert image.mode == "RGB" and image.size == (3, 2) and image.getpixel((2, 1)) == (200, 10, 20)


def test_relative_path_resolves_under_the_dataset_folder(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(_png_bytes(RED))
    assert load_image("imgs/a.png", tmp_path).getpixel((0, 0)) == (200, 10, 20)
    assert load_image({"bytes": None, "path": "imgs/a.png"}, tmp_path).getpixel((0, 0)) == (200, 10, 20)
    assert load_image(str(tmp_path / "imgs" / "a.png"), tmp_path).size == (3, 2)  # absolute but inside


def test_paths_that_leave_the_dataset_folder_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png_bytes(RED))
    for value in (
        "../secret.png",
        "imgs/../../secret.png",
        str(outside),
        {"bytes": None, "path": "../secret.png"},
    ):
        with pytest.raises(ImageLoadError, match="outside the dataset folder"):
            load_image(value, root)


def test_relative_path_without_a_dataset_folder_is_an_error() -> None:
    with pytest.raises(ImageLoadError, match="needs a dataset folder"):
        load_image("a.png", None)


def test_missing_empty_truncated_and_garbage_files_are_image_errors(tmp_path: Path) -> None:
    (tmp_path / "empty.png").write_bytes(b"")
    jpeg = _png_bytes(
        Image.fromarray(np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)), "JPEG"
    )
    (tmp_path / "cut.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (tmp_path / "text.png").write_bytes(b"this is not an image")
    cases = {
        "nope.png": "does not exist",
        "empty.png": "empty",
        "cut.jpg": "damaged",
        "text.png": "not an image",
    }
    for name, message in cases.items():
        with pytest.raises(ImageLoadError, match=message):
            load_image(name, tmp_path)
    with pytest.raises(ImageLoadError):
        load_image(b"", tmp_path)
    with pytest.raises(ImageLoadError, match="no image"):
        load_image(None, tmp_path)
    with pytest.raises(ImageLoadError, match="neither bytes nor a path"):
        load_image({"bytes": None, "path": None}, tmp_path)


def test_oversized_images_are_refused_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 100)
    with pytest.raises(ImageLoadError, match="decompression bomb"):
        load_image(_png_bytes(Image.new("RGB", (20, 20))), None)
    assert load_image(_png_bytes(Image.new("RGB", (10, 10))), None).size == (10, 10)


def test_cmyk_converts_as_pil_does() -> None:
    cmyk = Image.new("CMYK", (1, 1), (0, 255, 255, 0))  # full magenta + yellow = red
    assert to_rgb(cmyk).getpixel((0, 0)) == (255, 0, 0)
    assert load_image(_png_bytes(cmyk, "JPEG"), None).mode == "RGB"


def test_rgba_drops_alpha_like_the_original_convert() -> None:
    rgba = Image.new("RGBA", (1, 1), (10, 20, 30, 0))
    assert load_image(_png_bytes(rgba), None).getpixel((0, 0)) == (10, 20, 30)


def test_palette_greyscale_and_bilevel_modes() -> None:
    palette = Image.new("P", (1, 1))
    palette.putpalette([0, 0, 0, 12, 34, 56] + [0] * 762)
    palette.putpixel((0, 0), 1)
    assert load_image(_png_bytes(palette), None).getpixel((0, 0)) == (12, 34, 56)
    assert load_image(_png_bytes(Image.new("L", (1, 1), 77)), None).getpixel((0, 0)) == (77, 77, 77)
    assert load_image(_png_bytes(Image.new("1", (1, 1), 1)), None).getpixel((0, 0)) == (255, 255, 255)
    assert load_image(_png_bytes(Image.new("LA", (1, 1), (90, 0))), None).getpixel((0, 0)) == (90, 90, 90)


def test_sixteen_bit_greyscale_is_rescaled_not_clipped() -> None:
    array = np.array([[0, 32896, 65535]], dtype=np.uint16)
    wide = Image.fromarray(array)  # mode I;16
    assert wide.mode.startswith("I")
    decoded = load_image(_png_bytes(wide), None)  # through a real 16-bit PNG
    assert [decoded.getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (128, 128, 128), (255, 255, 255)]
    # PIL's own convert clips everything above 255 to white, which is what this avoids
    assert wide.convert("RGB").getpixel((1, 0)) == (255, 255, 255)


def test_eight_bit_values_in_a_wide_mode_are_kept() -> None:
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), mode="I")
    assert [to_rgb(small).getpixel((x, 0)) for x in range(3)] == [(0, 0, 0), (100, 100, 100), (255, 255, 255)]


def test_float_images_in_unit_range_are_scaled() -> None:
    floats = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    assert floats.mode == "F"
    assert [to_rgb(floats).getpixel((x, 0))[0] for x in range(3)] == [0, 128, 255]
