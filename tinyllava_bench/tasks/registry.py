"""The task registry: the YAML files in tasks/ (or TINYLLAVA_BENCH_TASKS_DIR), looked up by name or alias.

Every fact about a benchmark (aliases, the paper column it fills, its headline metric and that metric's maximum)
lives in its YAML; the zoo, the reports, the leaderboard and the CLI read them through the functions here.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.paths import tasks_dir
from tinyllava_bench.tasks.config import TaskConfig, read_task_file, subtask_groups

# a metric no task gives a maximum for is a percentage
PERCENT_MAX = 100.0
# a per-sample score's range when the scorer sets none: 1 is right, 0 wrong
DEFAULT_SAMPLE_SCORE_RANGE = (0.0, 1.0)


@dataclass(frozen=True)
class Benchmark:
    """One column of the paper's tables: its label, its column in paper_scores.csv, and the tasks that fill it
    (first task with a headline value wins)."""

    label: str
    paper_column: str | None
    tasks: tuple[str, ...]


def _folder(directory: Path | None) -> Path:
    folder = Path(directory) if directory is not None else tasks_dir()
    if not folder.is_dir():
        raise UserError(
            f"tasks folder {folder} does not exist; set TINYLLAVA_BENCH_TASKS_DIR to the folder of task YAMLs"
        )
    return folder


def task_files(directory: Path | None = None) -> dict[str, Path]:
    """Task name -> YAML file, for every *.yaml in the tasks folder."""
    return {path.stem: path for path in sorted(_folder(directory).glob("*.yaml"))}


def _stamp(files: dict[str, Path]) -> tuple[tuple[str, int, int], ...]:
    stamps = []
    for path in files.values():
        stat = path.stat()
        stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


@lru_cache(maxsize=8)
def _read_all(stamp: tuple[tuple[str, int, int], ...]) -> tuple[TaskConfig, ...]:
    # keyed on every file's path, mtime and size: an edited YAML is read again
    tasks = tuple(read_task_file(Path(path)) for path, _, _ in stamp)
    _check_together(tasks)
    return tasks


def _check_together(tasks: tuple[TaskConfig, ...]) -> None:
    """What no single YAML can check: names and aliases are unique, tasks of one column agree on it."""
    owner: dict[str, str] = {task.name: task.name for task in tasks}
    for task in tasks:
        for alias in task.aliases:
            if alias in owner:
                raise UserError(
                    f"task {task.name}: alias {alias!r} is already the name or an alias of task {owner[alias]}; "
                    "remove one of them from its aliases"
                )
            owner[alias] = task.name
    columns: dict[str, TaskConfig] = {}
    orders: dict[int, str] = {}
    for task in tasks:
        column = task.benchmark
        if column is None:
            continue
        first = columns.setdefault(column.label, task)
        assert first.benchmark is not None
        if (first.benchmark.paper_column, first.benchmark.order) != (column.paper_column, column.order):
            raise UserError(
                f"tasks {first.name} and {task.name} fill column {column.label!r} but disagree on its "
                "benchmark.paper_column or benchmark.order; give both the same"
            )
        if first is not task and first.benchmark.priority == column.priority:
            raise UserError(
                f"tasks {first.name} and {task.name} fill column {column.label!r} with the same "
                "benchmark.priority; give the one that should fill it first the lower number"
            )
        if orders.setdefault(column.order, column.label) != column.label:
            raise UserError(
                f"columns {orders[column.order]!r} and {column.label!r} have the same benchmark.order "
                f"{column.order}; give each column its own place"
            )


def list_tasks(directory: Path | None = None) -> list[TaskConfig]:
    """Every task, validated, sorted by name."""
    return list(_read_all(_stamp(task_files(directory))))


def task_names(directory: Path | None = None) -> list[str]:
    """Every task's name, sorted."""
    return [task.name for task in list_tasks(directory)]


def _known(directory: Path | None) -> str:
    parts = []
    for task in list_tasks(directory):
        parts.append(task.name + (f" (or {', '.join(task.aliases)})" if task.aliases else ""))
    return ", ".join(parts) or "(none)"


def resolve_alias(name: str, directory: Path | None = None) -> str:
    """The task name `name` stands for (itself, or the task that lists it among its `aliases`); an unknown name
    lists the known ones."""
    if name in task_files(directory):  # a task's own name: no need to read (and validate) every YAML
        return name
    for task in list_tasks(directory):
        if name == task.name or name in task.aliases:
            return task.name
    raise UserError(f"unknown task {name!r}; known tasks: {_known(directory)}")


def load_task(name: str | TaskConfig, directory: Path | None = None) -> TaskConfig:
    """A task by name or alias, or from a path to its YAML file; an unknown name lists the known ones."""
    if isinstance(name, TaskConfig):
        return name
    candidate = Path(name)
    if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
        return read_task_file(candidate)
    return read_task_file(task_files(directory)[resolve_alias(name, directory)])


def _find(name: str, directory: Path | None) -> TaskConfig | None:
    """The task called `name` (not an alias: run folders record task names), or None."""
    return next((task for task in list_tasks(directory) if task.name == name), None)


def all_tasks(directory: Path | None = None) -> list[str]:
    """What `--tasks all` runs: every task with `in_all`, paper columns first in the paper's order."""
    chosen = [task for task in list_tasks(directory) if task.in_all]
    return [task.name for task in sorted(chosen, key=_paper_place)]


def _paper_place(task: TaskConfig) -> tuple[int, int, str]:
    if task.benchmark is None:
        return (1_000_000, 0, task.name)
    return (task.benchmark.order, task.benchmark.priority, task.name)


def benchmark_columns(directory: Path | None = None) -> list[Benchmark]:
    """The paper's table columns in its order, each with the tasks that fill it, first-choice task first."""
    filling = sorted((t for t in list_tasks(directory) if t.benchmark is not None), key=_paper_place)
    columns: dict[str, Benchmark] = {}
    for task in filling:
        assert task.benchmark is not None
        label = task.benchmark.label
        before = columns.get(label)
        tasks = (*before.tasks, task.name) if before else (task.name,)
        columns[label] = Benchmark(label, task.benchmark.paper_column, tasks)
    return list(columns.values())


def paper_columns(directory: Path | None = None) -> list[str]:
    """The benchmark columns of reference/paper_scores.csv (and the model cards' score keys), in paper order."""
    return [b.paper_column for b in benchmark_columns(directory) if b.paper_column]


def column_of_task(directory: Path | None = None) -> dict[str, str]:
    """Task -> the paper_scores.csv column it fills (vqav2_testdev fills vqav2)."""
    return {task: b.paper_column for b in benchmark_columns(directory) if b.paper_column for task in b.tasks}


def judged_columns(directory: Path | None = None) -> list[str]:
    """The paper columns an LLM judge scores (a task filling them has a judge), in paper order."""
    judged = {task.name for task in list_tasks(directory) if task.judged}
    return [b.paper_column for b in benchmark_columns(directory) if b.paper_column and judged & set(b.tasks)]


def headline(name: str, directory: Path | None = None) -> str | None:
    """The task's headline metric; None for a task the registry does not know."""
    task = _find(name, directory)
    return task.headline if task else None


def metric_max(name: str, metric: str | None, directory: Path | None = None) -> float:
    """The highest value a metric can take: the task's `metric_max`, else 100 (a percentage)."""
    task = _find(name, directory)
    if task is None or metric is None:
        return PERCENT_MAX
    return task.metric_max.get(metric, PERCENT_MAX)


def sum_part_max(name: str, directory: Path | None = None) -> float | None:
    """What each subtask adds to a summed headline (MME: 200); None when the task's metrics are not sums."""
    task = _find(name, directory)
    return task.metric_sums.part_max if task and task.metric_sums else None


def scored_max(
    name: str, metric: str | None, metrics: dict[str, float], directory: Path | None = None
) -> float:
    """The highest value `metric` could take in a run with these `metrics`: for a summed metric, `part_max` for
    each of its subtasks the run scored (5 of MME's perception subtasks top out at 1,000), else `metric_max`."""
    task = _find(name, directory)
    if task is not None and task.metric_sums is not None and metric in task.metric_sums.sums:
        groups = subtask_groups(task.scorer)
        scored = [s for group in task.metric_sums.sums[metric] for s in groups[group] if s in metrics]
        if scored:
            return task.metric_sums.part_max * len(scored)
    return metric_max(name, metric, directory)


def sample_score_range(name: str, directory: Path | None = None) -> tuple[float, float]:
    """The (wrong, right) ends of a task's per-sample score: its scorer's SCORE_RANGE (LLaVA-W: 1-10), else 0-1."""
    task = _find(name, directory)
    if task is None or task.scorer is None:
        return DEFAULT_SAMPLE_SCORE_RANGE
    from tinyllava_bench.metrics import SCORER_MODULES

    module = importlib.import_module(f"tinyllava_bench.metrics.{SCORER_MODULES[task.scorer]}")
    low, high = getattr(module, "SCORE_RANGE", DEFAULT_SAMPLE_SCORE_RANGE)
    return (float(low), float(high))


def benchmark_note(name: str, directory: Path | None = None) -> str:
    """The footnote tables add where this task's numbers are shown ("" for none)."""
    task = _find(name, directory)
    return task.benchmark.note if task and task.benchmark else ""


def submission_tasks(directory: Path | None = None) -> list[str]:
    """Tasks that write a submission file for an official server or grader."""
    return [task.name for task in list_tasks(directory) if task.submission is not None]


def expand_tasks(spec: str | list[str]) -> list[str]:
    """Task names from `--tasks`: `all` (the registry's `in_all` tasks, in paper order), aliases as their task's
    name, a path to a task YAML as given."""
    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in (n.strip() for n in names if n.strip()):
        is_file = Path(name).suffix in (".yaml", ".yml") and Path(name).is_file()
        for task in all_tasks() if name == "all" else (name if is_file else resolve_alias(name),):
            if task not in out:
                out.append(task)
    if not out:
        raise UserError("--tasks is empty; name tasks (see `tinyllava-bench tasks`) or use all")
    return out
