"""Read run folders (results.json + samples_<task>.jsonl, see docs/run_folder.md) into plain objects and a tidy
frame; also how a run's task fills a paper benchmark column (report.paper reads the paper's own scores)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.report import CARD_AXES
from tinyllava_bench.schema import SCHEMA_VERSION, Results, SampleRecord, TaskEntry, parse
from tinyllava_bench.tasks.registry import Benchmark, metric_max, scored_max
from tinyllava_bench.tasks.registry import headline as registry_headline

if TYPE_CHECKING:
    import pandas as pd

# The run-folder schema versions this reader understands (docs/run_folder.md).
SUPPORTED_SCHEMA_VERSIONS = tuple(range(1, SCHEMA_VERSION + 1))


@dataclass(frozen=True)
class TaskResult:
    """One task's entry in results.json; metrics nested in dicts are flattened to `outer.inner` names."""

    name: str
    metrics: dict[str, float]  # finite numbers only
    headline: str | None
    n_samples: int | None = None
    n_errors: int | None = None
    protocol: str | None = None
    judge_model: str | None = None
    dataset: dict[str, Any] = field(default_factory=dict)
    limit: int | None = None
    # Metrics present in results.json whose value is not a finite number, with how the value reads (NaN, null,
    # '75.0'): a reader that needs a metric must not mistake such a value for a missing one.
    invalid_metrics: dict[str, str] = field(default_factory=dict)
    n_judge_failures: int | None = None
    scorer: str | None = None
    judge: dict[str, Any] | None = None  # how the judge was asked (schema.JudgeRecord), for judged tasks

    @property
    def headline_value(self) -> float | None:
        return self.metrics.get(self.headline) if self.headline else None


@dataclass(frozen=True)
class Run:
    """A finished run folder: who was evaluated, the per-task results, and where they came from."""

    path: Path
    model_name: str
    model_source: str | None
    layout: str | None
    card: dict[str, Any]
    tasks: dict[str, TaskResult]
    provenance: dict[str, Any]
    config: dict[str, Any]
    raw: dict[str, Any]

    def protocols(self) -> list[str | None]:
        """The protocols of this run's tasks, in order of first appearance."""
        seen: list[str | None] = []
        for task in self.tasks.values():
            if task.protocol not in seen:
                seen.append(task.protocol)
        return seen


def _describe_value(value: Any) -> str:
    """How a metric value that is not a finite number reads in results.json."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:40] + "…")
    return f"a {type(value).__name__}"


def _flatten_metrics(metrics: Mapping[str, Any], prefix: str = "") -> tuple[dict[str, float], dict[str, str]]:
    """Finite numbers by `outer.inner` name, and the other values (NaN, strings, nulls, lists) described."""
    flat: dict[str, float] = {}
    invalid: dict[str, str] = {}
    for name, value in metrics.items():
        full_name = f"{prefix}{name}"
        if isinstance(value, Mapping):
            inner, inner_invalid = _flatten_metrics(value, f"{full_name}.")
            flat.update(inner)
            invalid.update(inner_invalid)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            flat[full_name] = float(value)
        else:
            # Not a number a table can show, nor one a verdict can rest on; kept aside so readers can say so.
            invalid[full_name] = _describe_value(value)
    return flat, invalid


def _check_task(results_file: Path, name: str, entry: Any) -> None:
    if not isinstance(entry, Mapping) or not isinstance(entry.get("metrics", {}), Mapping):
        raise UserError(
            f"{results_file}: task {name!r} must be an object with a `metrics` object (docs/run_folder.md); "
            "regenerate the run with `tinyllava-bench eval` or fix the file"
        )


def _parse_task(name: str, entry: TaskEntry) -> TaskResult:
    metrics, invalid_metrics = _flatten_metrics(entry.metrics or {})
    # the task YAML's headline stands in only when results.json has none
    headline = entry.headline or registry_headline(name)
    if headline is None and len(metrics) == 1:
        headline = next(iter(metrics))
    return TaskResult(
        name=name,
        metrics=metrics,
        headline=headline,
        n_samples=entry.n_samples,
        n_errors=entry.n_errors,
        protocol=entry.protocol,
        judge_model=entry.judge_model,
        dataset=entry.dataset.dump() if entry.dataset is not None else {},
        limit=entry.limit,
        invalid_metrics=invalid_metrics,
        n_judge_failures=entry.n_judge_failures,
        scorer=entry.scorer,
        judge=entry.judge.dump() if entry.judge is not None else None,
    )


def load_run(path: str | Path) -> Run:
    """Read one run folder's results.json; unknown keys are kept in `raw` and otherwise ignored."""
    folder = Path(path)
    if not folder.is_dir():
        raise UserError(
            f"{folder}: no such run folder; give a folder written by `tinyllava-bench eval --output`"
        )
    results_file = folder / "results.json"
    if not results_file.is_file():
        raise UserError(
            f"{folder}: no results.json, so this is not a finished run folder; "
            f"finish it with `tinyllava-bench eval ... --output {folder}` (it resumes) or give another folder"
        )
    try:
        raw = json.loads(results_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{results_file}: not valid JSON ({exc}); regenerate the run or fix the file"
        ) from None
    if not isinstance(raw, dict):
        raise UserError(f"{results_file}: must hold a JSON object (docs/run_folder.md)")
    version = raw.get("schema_version")
    if version not in SUPPORTED_SCHEMA_VERSIONS or isinstance(version, bool):
        supported = ", ".join(str(v) for v in SUPPORTED_SCHEMA_VERSIONS)
        raise UserError(
            f"{results_file}: schema_version {version!r} is not one this tinyllava-bench reads ({supported}); "
            "use the tinyllava-bench version that wrote the run, or re-run the evaluation"
        )
    tasks = raw.get("tasks", {})
    if not isinstance(raw.get("model"), Mapping) or not isinstance(tasks, Mapping):
        raise UserError(f"{results_file}: needs a `model` object and a `tasks` object (docs/run_folder.md)")
    for name, entry in tasks.items():
        _check_task(results_file, str(name), entry)
    results = parse(Results, raw, results_file)
    model = results.model
    return Run(
        path=folder,
        model_name=model.name or folder.name,
        model_source=model.source,
        layout=model.layout,
        card=model.card.dump() if model.card is not None else {},
        tasks={name: _parse_task(name, entry) for name, entry in results.tasks.items()},
        provenance=results.provenance.dump(),
        config=dict(results.config),
        raw=raw,
    )


def expand_run_folders(paths: Iterable[str | Path]) -> list[Path]:
    """The run folders named, in the order given; a folder that is not a run itself but holds run folders (any
    depth, e.g. `results/`) stands for all of them, sorted by path."""
    folders: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir() and not (path / "results.json").is_file():
            found = sorted(p.parent for p in path.rglob("results.json") if p.is_file())
            if found:
                folders.extend(found)
                continue
        folders.append(path)
    return folders


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Read several run folders (or folders of run folders, see `expand_run_folders`), in the order given."""
    return [load_run(path) for path in expand_run_folders(paths)]


def samples_file(run: Run, task: str) -> Path:
    """Where a run keeps the per-sample lines of one task."""
    return run.path / f"samples_{task}.jsonl"


def load_samples(path: str | Path) -> list[dict[str, Any]]:
    """Read a samples_<task>.jsonl file; a truncated last line (a run stopped mid-write) is skipped."""
    file = Path(path)
    if not file.is_file():
        raise UserError(f"{file}: no such samples file; the run folder lacks this task's per-sample results")
    lines = file.read_text(encoding="utf-8").split(
        "\n"
    )  # not splitlines(): U+2028 may sit inside a JSON string
    samples: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            sample = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise UserError(f"{file}: line {number} is not valid JSON; regenerate or fix the file") from None
        if not isinstance(sample, dict):
            raise UserError(f"{file}: line {number} is not a JSON object")
        samples.append(parse(SampleRecord, sample, f"{file}:{number}").dump())
    return samples


def sample_identity(sample: Mapping[str, Any]) -> tuple[str, ...] | None:
    """What pairs one sample across two runs: the dataset's question_id plus row index.

    The sample `key` also hashes the model fingerprint, so it pairs lines only between runs of the same checkpoint;
    it is the fallback when a line has neither question_id nor index.
    """
    question_id, index = sample.get("question_id"), sample.get("index")
    if question_id is not None or index is not None:
        return ("row", "" if question_id is None else str(question_id), "" if index is None else str(index))
    if sample.get("key") is not None:
        return ("key", str(sample["key"]))
    return None


def benchmark_value(
    run_tasks: Mapping[str, TaskResult], benchmark: Benchmark
) -> tuple[TaskResult | None, float | None]:
    """The task that fills a benchmark column and its headline value (None, None when no task has one)."""
    for name in benchmark.tasks:
        task = run_tasks.get(name)
        if task is not None and task.headline_value is not None:
            return task, task.headline_value
    return None, None


def full_scale(task: str, metric: str | None) -> float:
    """The highest value a headline metric can take: 100 for percentages, more for MME's summed scores."""
    return metric_max(task, metric)


def task_full_scale(task: TaskResult) -> float:
    """The highest value this run's headline could take: for MME's sums, 200 for each category the run scored
    (its metrics name them: a run of 5 perception categories tops out at 1,000, not 2,000), else `full_scale`."""
    return scored_max(task.name, task.headline, task.metrics)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """A tidy long table, one row per (run, task, metric), for notebooks and custom reports."""
    import pandas as pd

    records = []
    for run in runs:
        for task in run.tasks.values():
            for metric, value in task.metrics.items():
                records.append(
                    {
                        "run": str(run.path),
                        "model": run.model_name,
                        "protocol": task.protocol,
                        "task": task.name,
                        "metric": metric,
                        "value": value,
                        "headline": metric == task.headline,
                        "n_samples": task.n_samples,
                        "n_errors": task.n_errors,
                        "judge_model": task.judge_model,
                        "limit": task.limit,
                        **{f"card.{axis}": run.card.get(axis) for axis in CARD_AXES},
                    }
                )
    columns = ["run", "model", "protocol", "task", "metric", "value", "headline", "n_samples", "n_errors"]
    columns += ["judge_model", "limit", *(f"card.{axis}" for axis in CARD_AXES)]
    return pd.DataFrame.from_records(records, columns=columns)
