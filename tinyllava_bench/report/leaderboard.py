"""The leaderboard CSV: one row per (model, protocol) of each run, in a fixed column order, that can be appended to
run after run without ever holding the same evaluation twice."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_atomic
from tinyllava_bench.report.runs import Run, benchmark_value
from tinyllava_bench.tasks import registry

MODEL_COLUMNS = ("layout", "llm", "vision", "connector", "recipe", "data", "template", "image_aspect")
# the paper's benchmark columns, in its order (tasks/*.yaml `benchmark`)
SCORE_COLUMNS = tuple(registry.paper_columns())
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

# Columns of free text (names from results.json, which anyone can write). A spreadsheet runs a cell that starts
# with one of _FORMULA_STARTS as a formula, so such text is written with a leading apostrophe (OWASP's advice).
TEXT_COLUMNS = tuple(c for c in LEADERBOARD_COLUMNS if c not in SCORE_COLUMNS and c not in COUNT_COLUMNS)
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

# The paper's benchmarks scored by an LLM judge (their task YAMLs have a `judge:` block); a row's judge_model
# written as one name belongs to these columns.
_JUDGED_COLUMNS = tuple(registry.judged_columns())
# The benchmark column each task fills (vqav2_testdev fills vqav2).
_COLUMN_OF_TASK = registry.column_of_task()

# How long a write waits for another process's read-modify-write of the same file.
LOCK_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LeaderboardUpdate:
    """What a write did: rows added, rows replaced, and the total now in the file."""

    path: Path
    added: int
    replaced: int
    total: int
    # Lines for the user: runs that were one evaluation, merged into one row, and whose values were kept.
    notices: list[str] = field(default_factory=list)


def _text(value: object) -> str:
    return "" if value is None else str(value)


def escape_formula(text: str) -> str:
    """`text` as a spreadsheet shows it rather than runs it: a leading apostrophe before a formula start."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def _escape_row(row: dict[str, str]) -> dict[str, str]:
    # Idempotent ("'=x" does not start a formula), so rows read back from the file pass through unchanged.
    return {
        column: escape_formula(value) if column in TEXT_COLUMNS else value for column, value in row.items()
    }


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
        for benchmark in registry.benchmark_columns():
            paper_column = benchmark.paper_column
            task, value = benchmark_value(tasks, benchmark)
            # a benchmark the paper has no number for (docs/adding_a_task.md's POPE-adv) has no leaderboard column
            if task is None or paper_column is None:
                continue
            row[paper_column] = _score_text(value)
            row[f"n_{paper_column}"] = _text(task.n_samples)
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
        rows.append(_escape_row(row))
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
    return list(frame.columns), [_escape_row(row) for row in frame.to_dict(orient="records")]


def _entries(text: str) -> dict[str, str]:
    """`task=value;task=value` (the datasets and multi-judge columns) by benchmark column, values whole."""
    found = {}
    for entry in filter(None, text.split(";")):
        task, _, _value = entry.partition("=")
        found[_COLUMN_OF_TASK.get(task, task)] = entry
    return found


def _judges(row: dict[str, str]) -> dict[str, str]:
    """A row's judge_model as {benchmark column: `task=judge`}; one bare name belongs to its judged columns."""
    text = row.get("judge_model") or ""
    if not text or "=" in text:
        return _entries(text)
    return {column: f"{column}={text}" for column in _JUDGED_COLUMNS if row.get(column)} or {"": f"={text}"}


def _column_order(column: str) -> int:
    return SCORE_COLUMNS.index(column) if column in SCORE_COLUMNS else len(SCORE_COLUMNS)


def _join(entries: dict[str, str]) -> str:
    return ";".join(entries[column] for column in sorted(entries, key=_column_order))


def merge_row(old: dict[str, str], new: dict[str, str]) -> dict[str, str]:
    """`new` (one run's row) over `old` (the same evaluation's row so far) without blanking what `new` does not
    carry: a benchmark `new` has replaces that benchmark's score, count, dataset and judge; the others stay."""
    merged = dict(old)
    carried = {column for column in SCORE_COLUMNS if new.get(column)}
    for column in carried:
        merged[column] = new[column]
        merged[f"n_{column}"] = new.get(f"n_{column}", "")
    for column, value in new.items():
        if column not in (*SCORE_COLUMNS, *COUNT_COLUMNS, "datasets", "judge_model") and value:
            merged[column] = value
    kept = {c: entry for c, entry in _entries(old.get("datasets") or "").items() if c not in carried}
    merged["datasets"] = _join({**kept, **_entries(new.get("datasets") or "")})
    judges = {c: entry for c, entry in _judges(old).items() if c not in carried}
    judges.update(_judges(new))
    names = {entry.partition("=")[2] for entry in judges.values()}
    merged["judge_model"] = next(iter(names)) if len(names) == 1 else _join(judges)
    return merged


@contextmanager
def _locked(file: Path) -> Iterator[None]:
    """Hold `file`'s lock (FILE.lock beside it) across a read-modify-write, so that concurrent writers queue."""
    from filelock import FileLock, Timeout

    try:
        file.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"{file}: cannot create its folder ({exc.strerror or exc}); give another --out"
        ) from None
    lock = FileLock(str(file.with_name(file.name + ".lock")), timeout=LOCK_TIMEOUT_S)
    try:
        with lock:
            yield
    except Timeout:
        raise UserError(
            f"{file}: another leaderboard write has held {lock.lock_file} for {LOCK_TIMEOUT_S:g} s; "
            "wait for it to finish and rerun"
        ) from None


def _csv_text(columns: Sequence[str], rows: Sequence[dict[str, str]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def _same_evaluation_notice(key: tuple[str, ...], earlier: Path, later: Path, conflicts: list[str]) -> str:
    model, protocol, fingerprint, tool_version = key
    text = (
        f"leaderboard: {earlier} and {later} are one evaluation (model {model}, protocol {protocol or '-'}, "
        f"checkpoint {fingerprint or '-'}, tool {tool_version or '-'}), merged into one row"
    )
    if conflicts:
        text += f"; {', '.join(conflicts)}: kept {later}, dropped {earlier}"
    return text


def write_leaderboard(runs: Sequence[Run], out: str | Path, *, append: bool = False) -> LeaderboardUpdate:
    """Write the runs' rows to `out`; with `append`, merge into the existing file: a row with the same
    LEADERBOARD_KEY is merged in place (see `merge_row`), the others are added at the end.

    The read-modify-write holds a lock on the file and replaces it atomically, so concurrent writers lose nothing
    and a failed write leaves the old file whole. Runs of one evaluation given together are merged in the order
    given (the later wins a benchmark both carry); `notices` says so."""
    file = Path(out)
    with _locked(file):
        existing_columns, existing = read_leaderboard(file) if append and file.exists() else ([], [])
        extra_columns = [c for c in existing_columns if c not in LEADERBOARD_COLUMNS]
        merged = list(existing)
        position = {_key(row): number for number, row in enumerate(merged)}
        added = replaced = 0
        replaced_keys: set[tuple[str, ...]] = set()
        # per key: the run of this call that gave each benchmark column, and the last run that gave the key
        sources: dict[tuple[str, ...], dict[str, Path]] = {}
        last_run: dict[tuple[str, ...], Path] = {}
        seen_paths: set[Path] = set()
        notices: list[str] = []
        for run in runs:
            path = run.path.resolve()
            if path in seen_paths:  # the same folder named twice: its rows are already in
                continue
            seen_paths.add(path)
            for row in leaderboard_rows(run):
                key = _key(row)
                carried = [column for column in SCORE_COLUMNS if row.get(column)]
                if key in last_run:
                    dropped: dict[Path, list[str]] = {}
                    for column in carried:
                        if column in sources[key]:
                            dropped.setdefault(sources[key][column], []).append(column)
                    for earlier, conflicts in dropped.items() or [(last_run[key], [])]:
                        notices.append(_same_evaluation_notice(key, earlier, run.path, conflicts))
                last_run[key] = run.path
                sources.setdefault(key, {}).update({column: run.path for column in carried})
                if key in position:
                    merged[position[key]] = merge_row(merged[position[key]], row)
                    if key not in replaced_keys and position[key] < len(existing):
                        replaced += 1
                    replaced_keys.add(key)
                else:
                    position[key] = len(merged)
                    merged.append(row)
                    added += 1
        columns = [*LEADERBOARD_COLUMNS, *extra_columns]
        write_atomic(file, _csv_text(columns, merged))
    return LeaderboardUpdate(path=file, added=added, replaced=replaced, total=len(merged), notices=notices)
