"""User text files (data, predictions, task YAMLs) must be UTF-8; one that is not gets an error naming its line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from tinyllava_bench.errors import UserError


def not_utf8_error(path: Path, exc: UnicodeDecodeError) -> UserError:
    """The UserError for `path`, which failed to decode with `exc`: the line, column and byte that are not UTF-8."""
    data = path.read_bytes()  # exc.start counts from the chunk the reader was decoding, not from the file
    try:
        data.decode("utf-8")
        position = min(exc.start, max(len(data) - 1, 0))
    except UnicodeDecodeError as whole:
        position = whole.start
    line = data.count(b"\n", 0, position) + 1
    column = position - (data.rfind(b"\n", 0, position) + 1) + 1
    byte = f" (byte 0x{data[position]:02x} at column {column})" if data else ""
    return UserError(f"{path}, line {line}: not UTF-8 text{byte}; save the file as UTF-8")


def json_lines(handle: IO[str], path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, decoded value) of each non-blank line of an open jsonl file; a line that is not JSON, or a
    file that is not UTF-8, is a UserError naming `path` and the line."""
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path}, line {number}: not valid JSON ({exc.msg})") from None
            yield number, value
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
