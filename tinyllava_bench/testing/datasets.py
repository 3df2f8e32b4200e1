"""Small benchmark copies in the hub datasets' own columns, written where the task loader reads them.

`write_task_data` writes one task as `root/<task>.parquet` (images embedded, as the hub's parquet files) or
`root/<task>.jsonl` plus image files under `root/images/`; `load_task_data(task, data_root=root)` reads either.
The rows come from task_rows.py and judged_rows.py; the same seed gives the same bytes.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyllava_bench.testing.judged_rows import llava_wild_rows, mmvet_rows
from tinyllava_bench.testing.scenes import png_bytes, render_scene, seeded_rng
from tinyllava_bench.testing.task_rows import (
    Picture,
    Rows,
    gqa_rows,
    mme_rows,
    pope_rows,
    scienceqa_rows,
    textvqa_rows,
    vqav2_rows,
)

IMAGE_MODES = ("embedded", "files")
IMAGES_DIR = "images"

_ROW_BUILDERS: dict[str, Callable[[int, random.Random], Rows]] = {
    "vqav2": lambda n, rng: vqav2_rows(n, rng, testdev=False),
    "vqav2_testdev": lambda n, rng: vqav2_rows(n, rng, testdev=True),
    "gqa": gqa_rows,
    "scienceqa_img": scienceqa_rows,
    "textvqa": textvqa_rows,
    "pope": pope_rows,
    "mme": mme_rows,
    "mmvet": mmvet_rows,
    "llava_wild": llava_wild_rows,
}
# the tasks the kit writes, in the order above (tests check it is every task in tasks/)
DEMO_TASKS = tuple(_ROW_BUILDERS)


def _features(task: str) -> Any:
    """The hub dataset's column types, so all-null columns (test-split answers) keep their real type."""
    from datasets import Features, Image, List, Value

    string, image = Value("string"), Image()
    if task in ("vqav2", "vqav2_testdev"):
        answer = {"answer": string, "answer_confidence": string, "answer_id": Value("int64")}
        columns = {
            "question_type": string,
            "multiple_choice_answer": string,
            "answers": List(answer),
            "image_id": Value("int64"),
            "answer_type": string,
            "question_id": Value("int64"),
            "question": string,
            "image": image,
        }
    elif task == "gqa":
        columns = {
            "id": string,
            "imageId": string,
            "question": string,
            "answer": string,
            "fullAnswer": string,
            "isBalanced": Value("bool"),
            "groups": {"global": string, "local": string},
            "types": {"structural": string, "semantic": string, "detailed": string},
            "semanticStr": string,
        }
    elif task == "scienceqa_img":
        columns = {"image": image, "question": string, "choices": List(string), "answer": Value("int8")}
        columns.update(
            dict.fromkeys(("hint", "task", "grade", "subject", "topic", "category", "skill"), string)
        )
        columns.update({"lecture": string, "solution": string})
    elif task == "textvqa":
        columns = {
            "image_id": string,
            "question_id": Value("int32"),
            "question": string,
            "question_tokens": List(string),
            "image": image,
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "answers": List(string),
            "image_classes": List(string),
            "set_name": string,
            "ocr_tokens": List(string),
        }
    elif task == "pope":
        columns = {
            "id": string,
            "question_id": string,
            "question": string,
            "answer": string,
            "image_source": string,
            "image": image,
            "category": string,
        }
    elif task == "mme":
        columns = {
            "question_id": string,
            "image": image,
            "question": string,
            "answer": string,
            "category": string,
        }
    elif task == "mmvet":
        columns = {
            "question_id": string,
            "image": image,
            "question": string,
            "answer": string,
            "image_source": string,
            "capability": string,
        }
    elif task == "llava_wild":
        columns = {
            "question_id": Value("int32"),
            "question": string,
            "image": image,
            "caption": string,
            "gpt_answer": string,
            "category": string,
            "image_id": string,
        }
    else:
        raise ValueError(f"no demo data for task {task!r}")
    return Features(columns)


def task_rows(task: str, n: int = 20, seed: int = 0) -> Rows:
    """The demo rows of `task` with each image as a Picture (its scene says what it shows); deterministic by seed."""
    if task not in _ROW_BUILDERS:
        from tinyllava_bench.errors import UserError

        raise UserError(f"the demo world has no data for task {task!r}; it has: {', '.join(DEMO_TASKS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return _ROW_BUILDERS[task](n, seeded_rng("eval", task, seed))


class _ImageStore:
    """Renders each picture once and writes it embedded ({bytes, path}) or as a file under root/images/."""

    def __init__(self, root: Path, folder: str | None, image_mode: str) -> None:
        self.root, self.folder, self.image_mode = root, folder, image_mode
        self._bytes: dict[str, bytes] = {}

    def png(self, picture: Picture) -> bytes:
        if picture.name not in self._bytes:
            self._bytes[picture.name] = png_bytes(render_scene(picture.scene))
        return self._bytes[picture.name]

    def value(self, picture: Picture) -> Any:
        if self.image_mode == "embedded":
            return {"bytes": self.png(picture), "path": f"{picture.name}.png"}
        relative = Path(IMAGES_DIR, *([self.folder] if self.folder else []), f"{picture.name}.png")
        target = self.root / relative
        if picture.name not in self._bytes:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.png(picture))
        return relative.as_posix()


def _write_table(rows: Rows, features: Any, path: Path) -> None:
    if path.suffix == ".parquet":
        import datasets
        import pyarrow.parquet as pq

        # the table carries the features in its schema metadata, as a hub parquet file does; pyarrow writes it
        # without datasets' progress bar
        pq.write_table(datasets.Dataset.from_list(rows, features=features).data.table, path)
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task_data(task: str, root: Path, n: int = 20, seed: int = 0, image_mode: str = "embedded") -> Path:
    """Write `n` demo rows of `task` (MME: pairs, so n rounded up to even) under `root`; returns the data file.

    embedded: root/<task>.parquet with the images inside (GQA: the images in root/gqa_images.parquet, joined on
    imageId = id, as the hub's two configs). files: root/<task>.jsonl whose image column holds paths relative to
    root (GQA: no image column, the files root/images/<imageId>.png, GQA's own layout).
    """
    if image_mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {image_mode!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = task_rows(task, n, seed)
    suffix = ".parquet" if image_mode == "embedded" else ".jsonl"
    path = root / f"{task}{suffix}"
    features = _features(task)
    if task == "gqa":
        store = _ImageStore(root, None, image_mode)
        pictures = {row["image"].name: row.pop("image") for row in rows}
        if image_mode == "embedded":
            from datasets import Features, Image, Value

            images = [{"id": name, "image": store.value(picture)} for name, picture in pictures.items()]
            _write_table(
                images, Features({"id": Value("string"), "image": Image()}), root / f"{task}_images.parquet"
            )
        else:
            for picture in pictures.values():
                store.value(picture)
    else:
        store = _ImageStore(root, task, image_mode)
        for row in rows:
            row["image"] = store.value(row["image"])
    _write_table(rows, features, path)
    return path


def write_all_tasks(
    root: Path, n: int = 20, seed: int = 0, image_mode: str = "embedded", tasks: tuple[str, ...] = DEMO_TASKS
) -> dict[str, Path]:
    """write_task_data for each of `tasks` into one folder (a `--data-root`); task name -> data file."""
    return {task: write_task_data(task, root, n, seed, image_mode) for task in tasks}
