"""Reading a task's rows into a `datasets.Dataset`: the hub (pinned revision), a save_to_disk folder, parquet
shards, a .jsonl or .json file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.data_source import DataSource, local_source
from tinyllava_bench.tasks.encoding import json_lines, not_utf8_error

if TYPE_CHECKING:  # pragma: no cover
    import datasets

# parquet files up to this size are read into memory; larger ones go through the datasets cache (memory-mapped)
IN_MEMORY_PARQUET_BYTES = 1 << 30


def read_hub(task: TaskConfig) -> datasets.Dataset:
    dataset = task.dataset
    return load_hub(dataset.path, dataset.name, dataset.split, dataset.revision)


def load_hub(path: str, name: str | None, split: str, revision: str) -> datasets.Dataset:
    import datasets

    try:
        return datasets.load_dataset(path, name, split=split, revision=revision)
    except Exception as exc:  # network, auth, unknown config/split: all end the same way for the user
        raise UserError(
            f"could not load {path}{'/' + name if name else ''} split {split} (revision {revision}) from the hub: "
            f"{type(exc).__name__}: {exc}. Check the id and your network, or give a local copy (`score --data FILE`, `eval --data-root DIR`)"
        ) from None


def read_local(task: TaskConfig, source: DataSource) -> datasets.Dataset:
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
        return read_data_files([path])
    return read_data_files(data_files_in_folder(path, task.dataset.split))


def data_files_in_folder(folder: Path, split: str) -> list[Path]:
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


def read_data_files(files: Sequence[Path]) -> datasets.Dataset:
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


def read_question_ids(data: str | Path, column: str = "question_id") -> list[Any]:
    """The `column` values of a local data copy (any accepted shape), e.g. all VQAv2 test2015 question ids."""
    import datasets

    source = local_source(Path(data).expanduser())
    if source.kind == "disk":
        loaded = datasets.load_from_disk(source.location)
        if isinstance(loaded, datasets.DatasetDict):
            loaded = datasets.concatenate_datasets(list(loaded.values()))
    elif source.kind == "file":
        loaded = read_data_files([source.path])
    else:
        loaded = read_data_files(data_files_in_folder(source.path, ""))
    if column not in loaded.column_names:
        raise UserError(f"{data} has no {column!r} column (it has: {', '.join(loaded.column_names)})")
    return list(loaded[column])
