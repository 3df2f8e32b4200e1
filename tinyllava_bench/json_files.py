"""JSON and text files as this tool writes them: strict JSON (no NaN or Infinity: a number that is not one reads as
missing), JSON lines that no line-splitting reader breaks, and files replaced atomically, so a reader sees the old
file or the new one and a failed write says what the user still has."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError

_UMASK = os.umask(0o022)  # the only way to read the umask is to set it: put it straight back
os.umask(_UMASK)


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
