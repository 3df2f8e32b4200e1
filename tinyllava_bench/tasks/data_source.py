"""Where a task's rows come from: --data, then --data-root (the task's own file or folder, or LLaVA's eval folder),
then the task's local_path, then the hub."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig
from tinyllava_bench.tasks.llava_eval import llava_eval_folder
from tinyllava_bench.tasks.registry import load_task

DATA_SUFFIXES = (".parquet", ".jsonl", ".json")


SAVE_TO_DISK_MARKERS = ("state.json", "dataset_info.json")


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
        return local_source(Path(data).expanduser())
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
        return local_source(found)
    if task.dataset.local_path:
        return local_source(Path(task.dataset.local_path).expanduser())
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


def local_source(path: Path) -> DataSource:
    if path.is_file():
        if path.suffix not in DATA_SUFFIXES:
            raise UserError(f"data file {path} must be .parquet, .jsonl or .json (or a dataset folder)")
        return DataSource("file", str(path), path.parent)
    if path.is_dir():
        if (
            all((path / marker).is_file() for marker in SAVE_TO_DISK_MARKERS)
            or (path / "dataset_dict.json").is_file()
        ):
            return DataSource("disk", str(path), path)
        return DataSource("folder", str(path), path)
    raise UserError(f"data path {path} does not exist")
