"""The task registry: the YAML files in tasks/ (or TINYLLAVA_BENCH_TASKS_DIR), looked up by name."""

from __future__ import annotations

from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.paths import tasks_dir
from tinyllava_bench.tasks.config import TaskConfig, read_task_file


def task_files(directory: Path | None = None) -> dict[str, Path]:
    """Task name -> YAML file, for every *.yaml in the tasks folder."""
    folder = Path(directory) if directory is not None else tasks_dir()
    if not folder.is_dir():
        raise UserError(
            f"tasks folder {folder} does not exist; set TINYLLAVA_BENCH_TASKS_DIR to the folder of task YAMLs"
        )
    return {path.stem: path for path in sorted(folder.glob("*.yaml"))}


def list_tasks(directory: Path | None = None) -> list[TaskConfig]:
    """Every task, validated, sorted by name."""
    return [read_task_file(path) for path in task_files(directory).values()]


def load_task(name: str | TaskConfig, directory: Path | None = None) -> TaskConfig:
    """A task by name, or from a path to its YAML file; an unknown name lists the known ones."""
    if isinstance(name, TaskConfig):
        return name
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return read_task_file(candidate)
    files = task_files(directory)
    if name not in files:
        known = ", ".join(files) or "(none)"
        raise UserError(f"unknown task {name!r}; known tasks: {known}")
    return read_task_file(files[name])
