"""A training image's path and health: kept inside the image folder, and checked before the run counts on it."""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.images import MAX_IMAGE_PIXELS


def safe_image_path(image_folder: Path, relative: str) -> Path:
    """`image_folder / relative`, refusing paths that leave the folder (absolute, `..`, or an image file that is a
    symbolic link to somewhere outside it). Linked subfolders (`images/coco -> /data/coco`) are the layout's own
    business and stay allowed; a link planted as the image itself is not."""
    normal = os.path.normpath(relative)
    if os.path.isabs(relative) or normal == ".." or normal.startswith(".." + os.sep):
        raise UserError(
            f"image path {relative!r} leaves the image folder {image_folder}; image paths must be relative to it"
        )
    path = image_folder / normal
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        folder = Path(os.path.realpath(path.parent))
        if folder != target.parent and folder not in target.parents:
            raise UserError(
                f"image {relative!r} in {image_folder} is a symbolic link to {target}, outside the image folder; "
                "copy the image in or link the folder that holds it"
            )
    return path


class ImageUnreadable(Exception):
    """An image that passed the check when the data was prepared could not be read while training."""


def check_image(path: Path) -> str | None:
    """Why the image at `path` cannot be trained on (header, size, decompression-bomb limit), or None."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _image_problem(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _image_problem(path: str, size: int, mtime_ns: int) -> str | None:
    # keyed by size and time too: a file replaced on disk is checked again
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return f"{width}x{height} pixels, above the limit of {MAX_IMAGE_PIXELS} (a decompression bomb?)"
                image.verify()  # PNG: every chunk's checksum; other formats: what their plugin checks
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"too large to decode safely ({exc})"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return f"damaged ({exc})"
    return None
