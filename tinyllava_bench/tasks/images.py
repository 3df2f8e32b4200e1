"""A dataset's image value (embedded bytes, datasets Image dict, PIL image or file path) -> an RGB PIL image.

Failures (missing, 0-byte, truncated, oversized, unreadable, outside the dataset folder) raise ImageLoadError,
which the caller records on that one sample.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

# Refuse images above this many pixels (about 9459 x 9459): PIL's own warning threshold. No benchmark image comes
# close, and a decompression bomb would otherwise allocate gigabytes. Checked before decoding.
MAX_IMAGE_PIXELS = 89_478_485


class ImageLoadError(Exception):
    """One sample's image could not be read; the message says which and why."""


def load_image(value: Any, base_dir: Path | str | None = None) -> Image.Image:
    """Decode `value` into an RGB image; relative paths resolve under `base_dir` and may not leave it."""
    if value is None:
        raise ImageLoadError("the row has no image")
    if isinstance(value, Image.Image):
        return to_rgb(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return _decode(io.BytesIO(bytes(value)), "embedded image bytes")
    if isinstance(value, Mapping):
        data = value.get("bytes")
        if data:
            return _decode(io.BytesIO(bytes(data)), f"embedded image {value.get('path') or ''}".rstrip())
        path = value.get("path")
        if not path:
            raise ImageLoadError("the image entry has neither bytes nor a path")
        return _decode_file(resolve_image_path(path, base_dir))
    if isinstance(value, (str, os.PathLike)):
        return _decode_file(resolve_image_path(value, base_dir))
    raise ImageLoadError(f"cannot read an image from a value of type {type(value).__name__}")


def image_identity(value: Any, base_dir: Path | str | None = None) -> str | None:
    """What makes two image values the same image, without decoding either: the resolved file path, or a hash of
    the embedded bytes (names alone are not enough: MME's folders each hold a 0001.png); None for anything else."""
    import hashlib

    if isinstance(value, Mapping):
        data = value.get("bytes")
        value = data if data else value.get("path")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes:" + hashlib.blake2b(bytes(value), digest_size=16).hexdigest()
    if isinstance(value, (str, os.PathLike)) and os.fspath(value):
        try:
            return f"file:{resolve_image_path(value, base_dir)}"
        except ImageLoadError:
            return None
    return None


def resolve_image_path(path: str | os.PathLike[str], base_dir: Path | str | None) -> Path:
    """`path` under `base_dir`; refuses one that leaves it (`..`, or absolute elsewhere).

    The check is on the written path, not on symlink targets, so a dataset folder may link to an image store.
    """
    text = os.fspath(path)
    if not text:
        raise ImageLoadError("the image path is empty")
    if base_dir is None:
        raise ImageLoadError(
            f"image path {text!r} needs a dataset folder to resolve against, and there is none"
        )
    root = Path(os.path.normpath(os.path.abspath(base_dir)))
    candidate = Path(text)
    full = Path(os.path.normpath(candidate if candidate.is_absolute() else root / candidate))
    if full != root and root not in full.parents:
        raise ImageLoadError(
            f"image path {text!r} points outside the dataset folder {root}; refusing to read it"
        )
    return full


def _decode_file(path: Path) -> Image.Image:
    try:
        size = path.stat().st_size
    except OSError:
        raise ImageLoadError(f"image file {path} does not exist") from None
    if size == 0:
        raise ImageLoadError(f"image file {path} is empty (0 bytes)")
    try:
        with path.open("rb") as handle:
            return _decode(handle, f"image file {path}")
    except OSError as exc:
        raise ImageLoadError(f"cannot read image file {path}: {exc.strerror or exc}") from None


def _decode(stream: Any, what: str) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise ImageLoadError(
                    f"{what} is {width}x{height} pixels, more than the limit of {MAX_IMAGE_PIXELS}"
                    " (a possible decompression bomb)"
                )
            image.load()
    except ImageLoadError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageLoadError(f"{what} is too large to decode safely: {exc}") from None
    except UnidentifiedImageError:
        raise ImageLoadError(f"{what} is not an image PIL can read (empty or corrupt)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        # truncated files raise OSError("image file is truncated ...")
        raise ImageLoadError(f"{what} is damaged: {exc}") from None
    try:
        return to_rgb(image)
    except (OSError, ValueError) as exc:
        raise ImageLoadError(f"{what} cannot be converted to RGB: {exc}") from None


def to_rgb(image: Image.Image) -> Image.Image:
    """An RGB copy of `image`, as the original eval code's `.convert('RGB')` made it, except for wide modes.

    Alpha is dropped, not composited, as in the original code. 16/32-bit integer and float greyscale are rescaled
    to 0-255 first: PIL's own conversion clips them to 255, which turns a 16-bit photo white.
    """
    if image.mode == "RGB":
        return image.copy()
    if image.mode.startswith("I") or image.mode == "F":
        return _wide_greyscale_to_rgb(image)
    return image.convert("RGB")


def _wide_greyscale_to_rgb(image: Image.Image) -> Image.Image:
    array = np.asarray(image)
    if array.ndim == 3:  # multi-band wide modes are not produced by PIL readers, but be safe
        array = array[..., 0]
    array = array.astype(np.float64)
    finite = array[np.isfinite(array)]
    peak = float(finite.max()) if finite.size else 0.0
    if image.mode == "F" and peak <= 1.0:
        array = array * 255.0  # float images in [0, 1]
    elif peak > 255.0:
        array = array / 257.0  # 16-bit range 0-65535 -> 0-255
    array = np.nan_to_num(array, nan=0.0, posinf=255.0, neginf=0.0)
    grey = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    return Image.fromarray(grey).convert("RGB")
