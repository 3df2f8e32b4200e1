"""Images kept apart from the question rows (GQA): joined from an images dataset, the hub's second config, or
image files named by the row's key."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.data_readers import load_hub, read_local
from tinyllava_bench.tasks.data_source import DATA_SUFFIXES, DataSource, local_source
from tinyllava_bench.tasks.images import ImageLoadError

if TYPE_CHECKING:  # pragma: no cover
    import datasets

IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png")


def undecoded_images(rows: datasets.Dataset, column: str) -> datasets.Dataset:
    """Keep images as {bytes, path} so a damaged one fails on its own sample, not when the row is read."""
    import datasets

    if isinstance(rows.features.get(column), datasets.Image):
        return rows.cast_column(column, datasets.Image(decode=False))
    return rows


def image_join(task: TaskConfig, rows: datasets.Dataset, source: DataSource) -> Callable[[int], Any]:
    """Row index -> image value, for tasks whose images live apart from the questions (GQA)."""
    join = task.dataset.images
    assert join is not None
    if join.row_key not in rows.column_names:
        raise UserError(
            f"{source.location} has neither an image column nor the {join.row_key!r} column to join images on"
        )
    keys = list(rows[join.row_key])
    images = _join_images_dataset(task, source)
    if images is not None:
        if join.image_key not in images.column_names or join.image_column not in images.column_names:
            raise UserError(
                f"the images dataset for task {task.name} needs columns {join.image_key!r} and {join.image_column!r}"
                f" (it has: {', '.join(images.column_names)})"
            )
        images = undecoded_images(images, join.image_column)
        position = {str(key): i for i, key in enumerate(images[join.image_key])}

        def from_dataset(index: int) -> Any:
            found = position.get(str(keys[index]))
            if found is None:
                raise ImageLoadError(f"no image with {join.image_key} {keys[index]!r} in the images dataset")
            return images[found][join.image_column]

        return from_dataset
    folders = [source.base_dir, source.base_dir / "images"] if source.base_dir else []

    def from_files(index: int) -> Any:
        for folder in folders:
            for suffix in IMAGE_FILE_SUFFIXES:
                candidate = folder / f"{keys[index]}{suffix}"
                if candidate.is_file():
                    return str(candidate)
        raise ImageLoadError(
            f"no image file {keys[index]}.jpg/.jpeg/.png in {' or '.join(map(str, folders))}"
        )

    if len(rows) and folders:
        try:
            from_files(0)
        except ImageLoadError as exc:
            raise UserError(
                f"task {task.name}: the rows at {source.location} carry no images and {exc}; add an image column, "
                "a sibling <name>_images dataset, or the image files (see tinyllava_bench/tasks/data.py)"
            ) from None
    return from_files


def _join_images_dataset(task: TaskConfig, source: DataSource) -> datasets.Dataset | None:
    join = task.dataset.images
    assert join is not None
    if source.kind == "hub":
        return load_hub(join.path or task.dataset.path, join.name, join.split, task.dataset.revision)
    path = source.path
    stem = path.stem if path.is_file() else path.name
    for candidate in [path.parent / f"{stem}_images{suffix}" for suffix in DATA_SUFFIXES] + [
        path.parent / f"{stem}_images"
    ]:
        if candidate.exists():
            sibling = local_source(candidate)
            return read_local(task, sibling)
    return None
