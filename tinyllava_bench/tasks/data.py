"""A task's rows as a `datasets.Dataset`: from the hub (pinned revision) or a local copy, with images read lazily.

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

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.encoding import json_lines, not_utf8_error
from tinyllava_bench.tasks.images import ImageLoadError, load_image
from tinyllava_bench.tasks.llava_eval import llava_eval_folder, read_llava_eval
from tinyllava_bench.tasks.registry import load_task

if TYPE_CHECKING:  # pragma: no cover
    import datasets
    from PIL import Image

DATA_SUFFIXES = (".parquet", ".jsonl", ".json")
# the id column a local copy may carry for a task whose hub copy has none
FALLBACK_ID_COLUMN = "question_id"
IMAGE_FILE_SUFFIXES = (".jpg", ".jpeg", ".png")
# parquet files up to this size are read into memory; larger ones go through the datasets cache (memory-mapped)
IN_MEMORY_PARQUET_BYTES = 1 << 30
# files up to this size are hashed whole for the fingerprint; larger ones by size, head and tail
FULL_HASH_BYTES = 2 << 30
_SAMPLE_BYTES = 16 << 20
_SAVE_TO_DISK_MARKERS = ("state.json", "dataset_info.json")


@dataclass(frozen=True)
class DataSource:
    """Where a task's rows come from: `kind` is hub, file, folder (data files + images) or disk (save_to_disk)."""

    kind: str
    location: str
    base_dir: Path | None = None  # folder that relative image paths resolve under

    @property
    def path(self) -> Path:
        return Path(self.location)


def resolve_data_source(
    task: TaskConfig | str, data: str | Path | None = None, data_root: str | Path | None = None
) -> DataSource:
    """Apply the precedence --data, then --data-root, then the task's local_path, then the hub."""
    task = load_task(task)
    if data is not None:
        return _local_source(Path(data).expanduser())
    if data_root is not None:
        root = Path(data_root).expanduser()
        llava_folder = llava_eval_folder(task, root) if root.is_dir() else None
        # LLaVA's folder wins when its question file is there (its pope/ folder has the task's own name; its
        # MME/ folder is also mme/ on a case-insensitive disk, so compare folders, not names)
        if llava_folder is not None and not [
            path for path in _own_layout_candidates(task.name, root) if not path.samefile(llava_folder)
        ]:
            return DataSource("llava_eval", str(root), root)
        found = _find_in_data_root(task, root)
        _refuse_another_tasks_llava_folder(task, found)
        return _local_source(found)
    if task.dataset.local_path:
        return _local_source(Path(task.dataset.local_path).expanduser())
    return DataSource("hub", task.dataset.path)


def _refuse_another_tasks_llava_folder(task: TaskConfig, found: Path) -> None:
    # LLaVA's vqav2/ folder holds the test-dev questions: reading it as the validation task would be wrong
    from tinyllava_bench.tasks.registry import list_tasks

    for other in list_tasks():
        layout = other.dataset.llava_eval
        if other.name != task.name and layout and (found / layout.questions).is_file():
            raise UserError(
                f"{found} is LLaVA's folder of {other.name} ({layout.questions}), not data for task {task.name};"
                f" run task {other.name} on it"
            )


def _own_layout_candidates(name: str, root: Path) -> list[Path]:
    candidates = [root / f"{name}{suffix}" for suffix in DATA_SUFFIXES] + [root / name]
    return [path for path in candidates if path.exists()]


def _find_in_data_root(task: TaskConfig, root: Path) -> Path:
    name = task.name
    if not root.is_dir():
        raise UserError(f"--data-root {root} is not a folder")
    candidates = [root / f"{name}{suffix}" for suffix in DATA_SUFFIXES] + [root / name]
    found = _own_layout_candidates(name, root)
    if not found:
        tried = ", ".join(path.name for path in candidates)
        layout = task.dataset.llava_eval
        llava = f", nor LLaVA's eval layout {layout.folder}/{layout.questions}" if layout else ""
        raise UserError(f"no data for task {name} in {root}: looked for {tried}{llava}")
    if len(found) > 1:
        raise UserError(
            f"data for task {name} is ambiguous in {root}: {', '.join(p.name for p in found)}; keep one"
        )
    return found[0]


def _local_source(path: Path) -> DataSource:
    if path.is_file():
        if path.suffix not in DATA_SUFFIXES:
            raise UserError(f"data file {path} must be .parquet, .jsonl or .json (or a dataset folder)")
        return DataSource("file", str(path), path.parent)
    if path.is_dir():
        if (
            all((path / marker).is_file() for marker in _SAVE_TO_DISK_MARKERS)
            or (path / "dataset_dict.json").is_file()
        ):
            return DataSource("disk", str(path), path)
        return DataSource("folder", str(path), path)
    raise UserError(f"data path {path} does not exist")


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
    rows = _read_hub(task) if source.kind == "hub" else _read_local(task, source)
    where = "the hub dataset " + task.dataset.path if source.kind == "hub" else str(source.location)
    _check_columns(rows, task.required_columns(protocol, for_prompt=need_images), where, task)
    image_column = task.columns.image
    root = Path(image_root).expanduser() if image_root is not None else source.base_dir
    if not need_images:
        if image_column and image_column in rows.column_names:
            rows = rows.remove_columns(image_column)
        return TaskData(task, rows, source, root)
    if image_column and image_column in rows.column_names:
        rows = _undecoded_images(rows, image_column)
        return TaskData(task, rows, source, root, _image_of_row=lambda i: rows[i][image_column])
    if task.dataset.images is not None:
        lookup = _image_join(task, rows, source)
        return TaskData(task, rows, source, root, _image_of_row=lookup)
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
        _fingerprint=_files_fingerprint(source.path, read.files),
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


def fingerprint_source(task: TaskConfig, source: DataSource) -> str:
    if source.kind == "hub":
        dataset = task.dataset
        config = f"/{dataset.name}" if dataset.name else ""
        return f"hub:{dataset.path}{config}:{dataset.split}@{dataset.revision}"
    if source.kind == "llava_eval":
        return _files_fingerprint(source.path, read_llava_eval(task, source.path).files)
    path = source.path
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    sampled = False
    for file in files:
        relative = file.name if path.is_file() else file.relative_to(path).as_posix()
        digest.update(relative.encode() + b"\0")
        if file.suffix in (*DATA_SUFFIXES, ".arrow") or file.name in _SAVE_TO_DISK_MARKERS:
            sampled |= _hash_file(file, digest)
        else:  # image files: name and size are enough, and hashing gigabytes of images is slow
            digest.update(str(file.stat().st_size).encode() + b"\0")
    return ("sha256-sampled:" if sampled else "sha256:") + digest.hexdigest()


def _files_fingerprint(root: Path, files: Sequence[Path]) -> str:
    """sha256 of the question and label files (names relative to `root`, then contents); images not included."""
    digest = hashlib.sha256()
    sampled = False
    for file in files:
        digest.update(file.relative_to(root).as_posix().encode() + b"\0")
        sampled |= _hash_file(file, digest)
    return ("sha256-sampled:" if sampled else "sha256:") + digest.hexdigest()


def _hash_file(file: Path, digest: Any) -> bool:
    size = file.stat().st_size
    digest.update(str(size).encode() + b"\0")
    with file.open("rb") as handle:
        if size <= FULL_HASH_BYTES:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
            return False
        digest.update(handle.read(_SAMPLE_BYTES))
        handle.seek(size - _SAMPLE_BYTES)
        digest.update(handle.read(_SAMPLE_BYTES))
        return True


def _read_hub(task: TaskConfig) -> datasets.Dataset:
    dataset = task.dataset
    return _load_hub(dataset.path, dataset.name, dataset.split, dataset.revision)


def _load_hub(path: str, name: str | None, split: str, revision: str) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split, revision=revision)
    except Exception as exc:  # network, auth, unknown config/split: all end the same way for the user
        raise UserError(
            f"could not load {path}{'/' + name if name else ''} split {split} (revision {revision}) from the hub: "
            f"{type(exc).__name__}: {exc}. Check the id and your network, or give a local copy (`score --data FILE`, `eval --data-root DIR`)"
        ) from None


def _read_local(task: TaskConfig, source: DataSource) -> datasets.Dataset:
    import datasets

    path = source.path
    if source.kind == "disk":
        try:
            loaded = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise UserError(f"cannot read dataset folder {path}: {exc}") from None
        if isinstance(loaded, datasets.DatasetDict):
            split = task.dataset.split
            if split not in loaded:
                raise UserError(
                    f"dataset folder {path} has splits {', '.join(loaded)} but task {task.name} needs {split!r}"
                )
            loaded = loaded[split]
        return loaded
    if source.kind == "file":
        return _read_data_files([path])
    return _read_data_files(_data_files_in_folder(path, task.dataset.split))


def _data_files_in_folder(folder: Path, split: str) -> list[Path]:
    parquet = sorted(folder.glob("*.parquet"))
    text = sorted(p for p in folder.glob("*.json*") if p.suffix in (".jsonl", ".json"))
    if parquet and text:
        raise UserError(f"data folder {folder} holds both parquet and json files; keep one kind")
    if parquet:
        # hub-style shards are named <split>-00000-of-00003.parquet; prefer the task's split when present
        of_split = [p for p in parquet if p.name.startswith(f"{split}-") or p.stem == split]
        return of_split or parquet
    if len(text) == 1:
        return text
    if not text:
        raise UserError(
            f"data folder {folder} has no .parquet, .jsonl or .json file (nor a save_to_disk dataset)"
        )
    raise UserError(
        f"data folder {folder} has several json files ({', '.join(p.name for p in text)}); keep one"
    )


def _read_data_files(files: Sequence[Path]) -> datasets.Dataset:
    import datasets

    if files[0].suffix == ".parquet":
        return _read_parquet(files)
    records = _read_jsonl(files[0]) if files[0].suffix == ".jsonl" else _read_json(files[0])
    if not records:
        raise UserError(f"data file {files[0]} has no rows")
    columns: dict[str, None] = {}
    for record in records:
        columns.update(dict.fromkeys(record))
    try:
        return datasets.Dataset.from_dict(
            {name: [record.get(name) for record in records] for name in columns}
        )
    except (
        Exception
    ) as exc:  # pyarrow type clashes, e.g. a column that is a number on one line and text on another
        raise UserError(f"data file {files[0]} has a column with mixed types: {exc}") from None


def _read_parquet(files: Sequence[Path]) -> datasets.Dataset:
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets.table import InMemoryTable

    try:
        if sum(file.stat().st_size for file in files) <= IN_MEMORY_PARQUET_BYTES:
            table = pa.concat_tables([pq.read_table(file) for file in files])
            return datasets.Dataset(InMemoryTable(table))
        return datasets.Dataset.from_parquet([str(file) for file in files])
    except (OSError, pa.ArrowException, ValueError) as exc:
        raise UserError(f"cannot read parquet data {', '.join(map(str, files))}: {exc}") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    records = []
    with path.open(encoding="utf-8") as handle:
        for number, record in json_lines(handle, path):
            if not isinstance(record, dict):
                raise UserError(f"{path}, line {number}: each line must be a JSON object (one dataset row)")
            records.append(record)
    return records


def _read_json(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            data = json.load(handle)
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None
    if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
        raise UserError(f"{path} must hold a JSON list of row objects")
    return data


def _check_columns(rows: datasets.Dataset, required: Sequence[str], where: str, task: TaskConfig) -> None:
    missing = [column for column in required if column not in rows.column_names]
    if missing:
        raise UserError(
            f"{where} is missing column(s) {', '.join(repr(c) for c in missing)} that task {task.name} needs "
            f"(it has: {', '.join(rows.column_names)}); use the column names of {task.dataset.path}"
        )


def _undecoded_images(rows: datasets.Dataset, column: str) -> datasets.Dataset:
    """Keep images as {bytes, path} so a damaged one fails on its own sample, not when the row is read."""
    import datasets

    if isinstance(rows.features.get(column), datasets.Image):
        return rows.cast_column(column, datasets.Image(decode=False))
    return rows


def _image_join(task: TaskConfig, rows: datasets.Dataset, source: DataSource) -> Callable[[int], Any]:
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
        images = _undecoded_images(images, join.image_column)
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
        return _load_hub(join.path or task.dataset.path, join.name, join.split, task.dataset.revision)
    path = source.path
    stem = path.stem if path.is_file() else path.name
    for candidate in [path.parent / f"{stem}_images{suffix}" for suffix in DATA_SUFFIXES] + [
        path.parent / f"{stem}_images"
    ]:
        if candidate.exists():
            sibling = _local_source(candidate)
            return _read_local(task, sibling)
    return None


def read_question_ids(data: str | Path, column: str = "question_id") -> list[Any]:
    """The `column` values of a local data copy (any accepted shape), e.g. all VQAv2 test2015 question ids."""
    import datasets

    source = _local_source(Path(data).expanduser())
    if source.kind == "disk":
        loaded = datasets.load_from_disk(source.location)
        if isinstance(loaded, datasets.DatasetDict):
            loaded = datasets.concatenate_datasets(list(loaded.values()))
    elif source.kind == "file":
        loaded = _read_data_files([source.path])
    else:
        loaded = _read_data_files(_data_files_in_folder(source.path, ""))
    if column not in loaded.column_names:
        raise UserError(f"{data} has no {column!r} column (it has: {', '.join(loaded.column_names)})")
    return list(loaded[column])
