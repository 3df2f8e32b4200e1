"""A task's rows as a `datasets.Dataset`: from the hub (pinned revision) or a local copy, with images read lazily.

Which source: tasks/data_source.py; reading it: tasks/data_readers.py (LLaVA's eval folders: tasks/llava_eval.py);
GQA's separate images: tasks/image_join.py; the fingerprint: tasks/data_fingerprint.py.

Local copies use the hub dataset's own column names and may be: a .parquet, .jsonl or .json file; a
`Dataset.save_to_disk` folder; or a folder holding one .jsonl/.json file or .parquet shards, with image files
beside it (image columns then hold paths relative to that folder). `--data-root DIR` reads task T from
DIR/T.parquet, DIR/T.jsonl, DIR/T.json or the folder DIR/T/.

GQA keeps its images in a second hub config. A local GQA copy may carry them in one of three shapes:
1. an `image` column on the question rows (embedded bytes, a datasets Image, or a relative file path);
2. a sibling images dataset `<stem>_images.parquet` or `<stem>_images/` (save_to_disk) with columns `id` and an
   embedded `image` (the hub's testdev_balanced_images config saved locally), joined on imageId = id;
3. image files `<imageId>.jpg` (or .jpeg/.png) in the data folder or its `images/` subfolder (GQA's own layout).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.data_fingerprint import files_fingerprint, fingerprint_source
from tinyllava_bench.tasks.data_readers import read_hub, read_local
from tinyllava_bench.tasks.data_source import DataSource, resolve_data_source
from tinyllava_bench.tasks.image_join import image_join, undecoded_images
from tinyllava_bench.tasks.images import ImageLoadError, image_identity, load_image
from tinyllava_bench.tasks.llava_eval import read_llava_eval
from tinyllava_bench.tasks.registry import load_task

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    from PIL import Image

# the id column a local copy may carry for a task whose hub copy has none
FALLBACK_ID_COLUMN = "question_id"


@dataclass
class TaskData:
    """A task's rows plus what is needed to read their images and name their origin.

    `image(i)` and `question_ids()[i]` refer to row i of `rows` as loaded; keep that index when selecting a subset.
    """

    task: TaskConfig
    rows: datasets.Dataset
    source: DataSource
    image_root: Path | None = None
    _image_of_row: Callable[[int], Any] | None = field(default=None, repr=False)
    _image_key_of_row: Callable[[int], str] | None = field(default=None, repr=False)
    _fingerprint: str | None = field(default=None, repr=False)
    question_set_name: str | None = (
        None  # e.g. llava_eval:pope/llava_pope_test.jsonl; None: named by the source
    )
    counts: dict[str, int] = field(default_factory=dict)  # rows the reader dropped or found mismatched

    def __len__(self) -> int:
        return len(self.rows)

    def question_ids(self) -> list[Any]:
        """The dataset's own id of each row; the 0-based row index when the dataset has no id column.

        A task whose hub copy has no id column (ScienceQA) still keeps the ids of a local copy that has a
        `question_id` column, so its predictions join back to the copy's own ids.
        """
        column = self.task.columns.question_id
        if column is None:
            if FALLBACK_ID_COLUMN not in self.rows.column_names:
                return list(range(len(self.rows)))
            column = FALLBACK_ID_COLUMN
        return list(self.rows[column])

    def image(self, index: int) -> Image.Image:
        """The RGB image of row `index`; raises ImageLoadError for a bad or missing image."""
        if self._image_of_row is None:
            raise ImageLoadError("images were not loaded for this task (need_images=False)")
        return load_image(self._image_of_row(index), self.image_root)

    def image_key(self, index: int) -> str | None:
        """A name of row `index`'s image that rows showing the same image share and others don't (the join key,
        the file's path or a hash of the embedded bytes), without decoding it; None when there is none to read
        (that row's image load then says why)."""
        if self._image_key_of_row is not None:
            return self._image_key_of_row(index)
        if self._image_of_row is None:
            return None
        try:
            value = self._image_of_row(index)
        except Exception:
            return None
        return image_identity(value, self.image_root)

    def fingerprint(self) -> str:
        if self._fingerprint is None:
            self._fingerprint = fingerprint_source(self.task, self.source)
        return self._fingerprint

    def provenance(self) -> dict[str, Any]:
        """Dataset id, config, split, revision and fingerprint, as results.json records them."""
        dataset = self.task.dataset
        local = self.source.kind != "hub"
        return {
            "id": dataset.path,
            "config": dataset.name,
            "split": dataset.split,
            "revision": None if local else dataset.revision,
            "local_path": self.source.location if local else None,
            "fingerprint": self.fingerprint(),
            "rows": len(self.rows),
            "question_set": self.question_set(),
        }

    def question_set(self) -> dict[str, Any]:
        """Which question set the rows are: source, row count, fingerprint (and the reader's counts).

        Two runs compare only when these agree: the hub's POPE has 9,000 rows, LLaVA's llava_pope_test.jsonl 8,910.
        """
        dataset = self.task.dataset
        if self.question_set_name is not None:
            source = self.question_set_name
        elif self.source.kind == "hub":
            source = f"hub:{dataset.path}{'/' + dataset.name if dataset.name else ''}:{dataset.split}"
        else:
            source = f"local:{self.source.location}"
        found = {"source": source, "rows": len(self.rows), "fingerprint": self.fingerprint()}
        if self.counts:
            found["counts"] = dict(self.counts)
        return found


def load_task_data(
    task: TaskConfig | str,
    data: str | Path | None = None,
    data_root: str | Path | None = None,
    need_images: bool = True,
    protocol: str = "official",
    image_root: str | Path | None = None,
) -> TaskData:
    """Load a task's rows (hub or local) and check their columns; images stay undecoded until `image(i)`.

    `image_root` widens where relative and absolute image paths may point (default: the local data folder).
    """
    task = load_task(task)
    source = resolve_data_source(task, data, data_root)
    if source.kind == "llava_eval":
        return _load_llava_eval(task, source, need_images, image_root)
    rows = read_hub(task) if source.kind == "hub" else read_local(task, source)
    where = "the hub dataset " + task.dataset.path if source.kind == "hub" else str(source.location)
    _check_columns(rows, task.required_columns(protocol, for_prompt=need_images), where, task)
    image_column = task.columns.image
    root = Path(image_root).expanduser() if image_root is not None else source.base_dir
    if not need_images:
        if image_column and image_column in rows.column_names:
            rows = rows.remove_columns(image_column)
        return TaskData(task, rows, source, root)
    if image_column and image_column in rows.column_names:
        rows = undecoded_images(rows, image_column)
        return TaskData(task, rows, source, root, _image_of_row=lambda i: rows[i][image_column])
    if task.dataset.images is not None:
        lookup = image_join(task, rows, source)
        joined_on = list(rows[task.dataset.images.row_key])  # the same key is the same image
        return TaskData(
            task,
            rows,
            source,
            root,
            _image_of_row=lookup,
            _image_key_of_row=lambda i: f"join:{joined_on[i]}",
        )
    raise UserError(
        f"{where} has no image column {image_column!r}, which task {task.name} needs to run a model"
        " (scoring alone does not need it)"
    )


def _load_llava_eval(
    task: TaskConfig, source: DataSource, need_images: bool, image_root: str | Path | None
) -> TaskData:
    import datasets

    read = read_llava_eval(task, source.path)
    try:
        rows = datasets.Dataset.from_list(read.records)
    except Exception as exc:  # pyarrow type clashes between lines
        raise UserError(f"{read.question_set}: a key has mixed types across lines: {exc}") from None
    # scoring columns only: the prompt is the question file's own text
    _check_columns(rows, task.required_columns(), read.question_set, task)
    image_column = task.columns.image or "image"
    root = Path(image_root).expanduser() if image_root is not None else read.image_dir
    data = TaskData(
        task,
        rows if need_images else rows.remove_columns(image_column),
        DataSource("llava_eval", source.location, read.image_dir),
        root,
        _image_of_row=(lambda i: rows[i][image_column]) if need_images else None,
        _fingerprint=files_fingerprint(source.path, read.files),
        question_set_name=read.question_set,
        counts=read.counts,
    )
    return data


def load_task_rows(
    task: TaskConfig | str,
    data: str | Path | None = None,
    data_root: str | Path | None = None,
    need_images: bool = True,
    protocol: str = "official",
) -> datasets.Dataset:
    """The task's rows as a datasets.Dataset (see load_task_data, which also reads images and provenance)."""
    return load_task_data(task, data, data_root, need_images, protocol).rows


def dataset_fingerprint(
    task: TaskConfig | str, data: str | Path | None = None, data_root: str | Path | None = None
) -> str:
    """hub:<id>[/<config>]:<split>@<revision> for hub data, else a sha256 of the local file(s)."""
    task = load_task(task)
    return fingerprint_source(task, resolve_data_source(task, data, data_root))


def _check_columns(rows: datasets.Dataset, required: Sequence[str], where: str, task: TaskConfig) -> None:
    missing = [column for column in required if column not in rows.column_names]
    if missing:
        raise UserError(
            f"{where} is missing column(s) {', '.join(repr(c) for c in missing)} that task {task.name} needs "
            f"(it has: {', '.join(rows.column_names)}); use the column names of {task.dataset.path}"
        )
