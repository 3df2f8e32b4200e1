"""The leaderboard CSV: one row per (model, protocol) of each run, in a fixed column order, that can be appended to
run after run without ever holding the same evaluation twice."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.runs import PAPER_BENCHMARKS, Run, benchmark_value

MODEL_COLUMNS = ("layout", "llm", "vision", "connector", "recipe", "data", "template", "image_aspect")
SCORE_COLUMNS = tuple(b.paper_column for b in PAPER_BENCHMARKS if b.paper_column)
COUNT_COLUMNS = tuple(f"n_{column}" for column in SCORE_COLUMNS)

# The documented, stable column order (docs: `leaderboard` in the CLI help and this module).
LEADERBOARD_COLUMNS = (
    "model",
    "protocol",
    *MODEL_COLUMNS,
    *SCORE_COLUMNS,
    *COUNT_COLUMNS,
    "judge_model",
    "datasets",
    "tool_version",
    "git_commit",
    "checkpoint_fingerprint",
    "date",
)

# Two rows are the same evaluation when these agree: the same weights (fingerprint) scored by the same tool
# version under the same protocol. Appending a re-run of it replaces the row instead of adding a duplicate; the
# date is left out of the key on purpose, so a re-run on another day also replaces.
LEADERBOARD_KEY = ("model", "protocol", "checkpoint_fingerprint", "tool_version")

_FULL_SHA = re.compile(r"^[0-9a-f]{40}$")


@dataclass(frozen=True)
class LeaderboardUpdate:
    """What a write did: rows added, rows replaced, and the total now in the file."""

    path: Path
    added: int
    replaced: int
    total: int


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _score_text(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


def _compact_revision(revision: str) -> str:
    return revision[:12] if _FULL_SHA.match(revision) else revision


def leaderboard_rows(run: Run) -> list[dict[str, str]]:
    """The leaderboard rows of one run: one per protocol its tasks were scored under."""
    rows = []
    protocols = run.protocols() or [None]
    for protocol in protocols:
        tasks = {name: task for name, task in run.tasks.items() if task.protocol == protocol}
        row = {column: "" for column in LEADERBOARD_COLUMNS}
        row["model"] = run.model_name
        row["protocol"] = _text(protocol)
        for column in MODEL_COLUMNS:
            # The layout is a property of the checkpoint (model.layout); the rest comes from the model card.
            row[column] = _text(run.layout if column == "layout" else run.card.get(column))
        judges: dict[str, str] = {}
        datasets: list[str] = []
        for benchmark in PAPER_BENCHMARKS:
            task, value = benchmark_value(tasks, benchmark)
            if task is None:
                continue
            row[benchmark.paper_column] = _score_text(value)
            row[f"n_{benchmark.paper_column}"] = _text(task.n_samples)
            if task.judge_model:
                judges[task.name] = task.judge_model
            if task.dataset.get("id"):
                revision = task.dataset.get("revision")
                suffix = f"@{_compact_revision(str(revision))}" if revision else ""
                datasets.append(f"{task.name}={task.dataset['id']}{suffix}")
        distinct_judges = set(judges.values())
        if len(distinct_judges) == 1:
            row["judge_model"] = next(iter(distinct_judges))
        elif distinct_judges:
            row["judge_model"] = ";".join(f"{task}={judge}" for task, judge in judges.items())
        row["datasets"] = ";".join(datasets)
        provenance = run.provenance
        row["tool_version"] = _text(provenance.get("tool_version"))
        row["git_commit"] = _text(provenance.get("git_commit"))
        row["checkpoint_fingerprint"] = _text(provenance.get("checkpoint_fingerprint"))
        row["date"] = _text(provenance.get("started_at"))[:10]
        rows.append(row)
    return rows


def _key(row: dict[str, str]) -> tuple[str, ...]:
    return tuple(row.get(column, "") for column in LEADERBOARD_KEY)


def read_leaderboard(path: str | Path) -> tuple[list[str], list[dict[str, str]]]:
    """An existing leaderboard CSV: its columns and its rows as strings (kept verbatim, so rows not replaced are
    written back unchanged)."""
    import pandas as pd

    file = Path(path)
    try:
        frame = pd.read_csv(file, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise UserError(
            f"{file}: not a readable leaderboard CSV ({exc}); fix it or write a new one without --append"
        ) from None
    missing = [column for column in LEADERBOARD_KEY if column not in frame.columns]
    if missing:
        raise UserError(
            f"{file}: lacks the key column(s) {', '.join(missing)}, so it is not a tinyllava-bench leaderboard; "
            "give another --out or drop --append to overwrite it"
        )
    return list(frame.columns), frame.to_dict(orient="records")


def write_leaderboard(runs: Sequence[Run], out: str | Path, *, append: bool = False) -> LeaderboardUpdate:
    """Write the runs' rows to `out`; with `append`, merge into the existing file, replacing rows with the same
    LEADERBOARD_KEY in place and adding the others at the end."""
    file = Path(out)
    existing_columns, existing = read_leaderboard(file) if append and file.exists() else ([], [])
    extra_columns = [c for c in existing_columns if c not in LEADERBOARD_COLUMNS]
    merged = list(existing)
    position = {_key(row): number for number, row in enumerate(merged)}
    added = replaced = 0
    replaced_keys: set[tuple[str, ...]] = set()
    for run in runs:
        for row in leaderboard_rows(run):
            key = _key(row)
            if key in position:
                merged[position[key]] = {**merged[position[key]], **row}
                # The same run named twice in one call counts once.
                if key not in replaced_keys and position[key] < len(existing):
                    replaced += 1
                replaced_keys.add(key)
            else:
                position[key] = len(merged)
                merged.append(row)
                added += 1
    columns = [*LEADERBOARD_COLUMNS, *extra_columns]
    file.parent.mkdir(parents=True, exist_ok=True)
    with file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="", lineterminator="\n")
        writer.writeheader()
        writer.writerows(merged)
    return LeaderboardUpdate(path=file, added=added, replaced=replaced, total=len(merged))
