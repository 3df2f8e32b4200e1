"""User text files (data, predictions, task YAMLs) must be UTF-8; one that is not gets an error naming its line."""

from __future__ import annotations

from pathlib import Path

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
