"""The samples file: one JSON line per finished sample, appended and flushed as samples finish, and read back on
resume (a last line cut mid-write is repaired); results files are replaced atomically."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import jsonl_line
from tinyllava_bench.schema import SampleRecord, parse


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
