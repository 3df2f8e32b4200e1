"""The samples file: one JSON line per finished sample, appended and flushed as samples finish, and read back on
resume (a last line cut mid-write is repaired); results files are replaced atomically."""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.schema import SCHEMA_VERSION, Results, SampleRecord, parse
from tinyllava_bench.errors import UserError

_UMASK = os.umask(0o022)  # the only way to read the umask is to set it: put it straight back
os.umask(_UMASK)


def read_samples(path: Path) -> list[dict[str, Any]]:
    """All complete records of `path`, each checked against `SampleRecord`; a torn last line (crash mid-write) is
    cut off the file."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):  # the last write was interrupted: drop its partial bytes
        with open(path, "r+b") as handle:
            handle.truncate(end)
        data = data[:end]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(
            f"{path}: not UTF-8 text; this samples file was edited or corrupted — move it away to redo its samples"
        ) from None
    records = []
    # split on "\n" only: str.splitlines would also cut at U+2028, U+0085 ... inside a prediction's text
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            raise UserError(
                f"{path}:{number}: not a JSON line; this samples file was edited or corrupted — move it away to "
                "redo its samples"
            ) from None
        records.append(parse(SampleRecord, record, f"{path}:{number}").dump())
    return records


def make_run_folder(path: Path) -> None:
    """Create the run folder `path` (and its parents), or say in one line why it cannot be."""
    if path.exists() and not path.is_dir():
        raise UserError(f"the run folder {path} is a file; pass a folder as --output")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(
            f"cannot create the run folder {path} ({exc.strerror or exc}); pass another --output"
        ) from None


# Characters JSON leaves raw that line-splitting readers (str.splitlines, many editors) treat as line breaks
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_safe(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no such numbers (Python would write the bare
    tokens NaN/Infinity, which other readers reject). A metric that is not a number must show as missing."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def json_text(data: Any, **kwargs: Any) -> str:
    """Strict JSON text of `data` (non-finite numbers as null; objects JSON lacks as their text)."""
    return json.dumps(json_safe(data), ensure_ascii=False, default=str, allow_nan=False, **kwargs)


def jsonl_line(record: dict[str, Any]) -> str:
    """`record` as one JSON line (UTF-8 text kept readable, but nothing inside it that reads as a line break)."""
    line = json_text(record)
    for raw, escaped in _LINE_BREAKS.items():
        line = line.replace(raw, escaped)
    return line + "\n"


class SampleWriter:
    """Appends records to a samples file; each `write` is flushed and fsynced before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        make_run_folder(path.parent)
        try:
            # unbuffered: after a failed write (disk full) no bytes wait in a buffer for close() to fail on again
            self._handle = open(path, "ab", buffering=0)  # noqa: SIM115 - kept open across writes
        except OSError as exc:
            raise UserError(f"{path}: cannot open for writing ({exc.strerror or exc})") from None

    def write(self, records: Iterable[dict[str, Any]]) -> None:
        data = memoryview("".join(jsonl_line(r) for r in records).encode("utf-8"))
        if not data:
            return
        try:
            while data:  # a raw write may be short
                data = data[self._handle.write(data) :]
            os.fsync(self._handle.fileno())
        except OSError as exc:
            raise UserError(
                f"{self.path}: cannot write samples ({exc.strerror}); free disk space and rerun"
            ) from None

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> SampleWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_atomic(path: Path, text: str, kept: str = "finished samples are kept") -> None:
    """Write `text` to `path` so readers see the old file or the new one, never half of one. `kept` ends the error
    message: what the user still has when the write fails."""
    if path.parent.exists() and not path.parent.is_dir():
        raise UserError(f"{path}: cannot write, {path.parent} is a file; {kept}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{path}: cannot create its folder ({exc.strerror or exc}); {kept}") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise UserError(f"{path}: cannot write ({exc.strerror or exc}); {kept}") from None
    try:
        # mkstemp makes the file 0600; the result should read like any other file the user writes
        os.fchmod(fd, 0o666 & ~_UMASK)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise UserError(
            f"{path}: cannot write ({exc.strerror}); free disk space and rerun — {kept}"
        ) from None


def write_json_atomic(path: Path, data: Any) -> None:
    write_atomic(path, json_text(data, indent=2) + "\n")


def write_jsonl_atomic(path: Path, records: Iterable[dict[str, Any]]) -> None:
    write_atomic(path, "".join(jsonl_line(r) for r in records))


def read_json(path: Path) -> dict[str, Any]:
    """A JSON file's content, or {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path}: not valid JSON; move it away and rerun (samples files are kept)") from None


def read_results(path: Path) -> dict[str, Any]:
    """results.json's content as JSON ({} when there is none), checked as `load_results` checks it."""
    results = load_results(path)
    return results.dump() if results is not None else {}


def load_results(path: Path) -> Results | None:
    """results.json as a `Results` (None when there is none), refused in one line when it is not one this tool can use:
    no schema_version (older than the schema), a newer one, or a field of the wrong type."""
    data = read_json(path)
    if not data and not path.is_file():
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tasks", {}), dict):
        raise UserError(
            f'{path}: not a results file of this tool (it needs an object with a "tasks" object); move it away '
            "and rerun (samples files are kept)"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(
            f"{path}: no schema_version; not a results file of this tool — move it away and rerun"
        )
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {version} is newer than this tool reads ({SCHEMA_VERSION}); upgrade "
            "tinyllava-bench, or pass a new --output"
        )
    return parse(Results, data, path)


def _lock(path: Path, what: str) -> Any:
    """A lock file held across a read-modify-write; says so when another process holds it and then waits."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        print(f"note: another process is {what}; waiting for it ({path})", file=sys.stderr)
        lock.acquire()
    return lock


@contextmanager
def results_lock(output: Path) -> Iterator[None]:
    """Held around every read-modify-write of OUT/results.json, so concurrent runs never drop each other's tasks."""
    lock = _lock(output / ".results.lock", "writing results.json")
    try:
        yield
    finally:
        lock.release()


@contextmanager
def task_lock(output: Path, task: str, dist: Any) -> Iterator[None]:
    """Held by the main rank while it works on one task of the run folder: two evals into one --output take turns
    on a task, so the second finds the first's answers instead of paying for them again."""
    lock = _lock(output / f".samples_{task}.lock", f"evaluating {task} in {output}") if dist.is_main else None
    try:
        yield
    finally:
        if lock is not None:
            lock.release()
