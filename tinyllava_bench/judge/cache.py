"""On-disk cache of judge answers: one small JSON file per request, so a rerun or a crash never pays twice.

Keys are the sha256 of the judge model and the full request (never the API key); files are written atomically.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Bump when the meaning of a cached answer changes, so old entries stop matching instead of being misread.
CACHE_SCHEMA = "tinyllava-bench/judge-cache/v1"


@dataclass(frozen=True)
class CachedAnswer:
    """A judge answer read back from the cache."""

    content: str
    served_model: str | None


def canonical_json(value: Any) -> str:
    """JSON text that is the same for equal values (sorted keys, no spaces), the input of the cache key."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def request_cache_key(request: Mapping[str, Any], repeat: int = 0) -> str:
    """sha256 hex of the request (which holds the judge model); `repeat` > 0 names a deliberate re-ask."""
    keyed: dict[str, Any] = {"schema": CACHE_SCHEMA, "request": dict(request)}
    if repeat:
        keyed["repeat"] = repeat
    return hashlib.sha256(canonical_json(keyed).encode("utf-8")).hexdigest()


class JudgeCache:
    """Judge answers under `root/<first 2 hex>/<key>.json`; only successful answers are ever stored."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def check_writable(self) -> None:
        """Raise UserError unless an entry can be written here: found before a run pays for generation."""
        from tinyllava_bench.errors import UserError

        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".probe-", dir=self.root)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            raise UserError(
                f"the judge cache {self.root} cannot be written ({exc.strerror or exc}); "
                "pass a writable folder with --judge-cache"
            ) from None

    def path_for(self, key: str) -> Path:
        """Where the entry for `key` lives (sharded so no folder holds more than a few thousand files)."""
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> CachedAnswer | None:
        """The stored answer, or None when absent or unreadable (an unreadable entry is simply asked again)."""
        path = self.path_for(key)
        try:
            entry = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if (
            not isinstance(entry, dict)
            or entry.get("key") != key
            or not isinstance(entry.get("content"), str)
        ):
            return None
        served_model = entry.get("served_model")
        return CachedAnswer(
            content=entry["content"], served_model=served_model if isinstance(served_model, str) else None
        )

    def put(self, key: str, request: Mapping[str, Any], content: str, served_model: str | None) -> Path:
        """Store one answer atomically (temp file in the same folder, fsync, os.replace); returns its path."""
        path = self.path_for(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        entry = {
            "schema": CACHE_SCHEMA,
            "key": key,
            "request": dict(request),
            "content": content,
            "served_model": served_model,
        }
        fd, tmp_name = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=path.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as tmp:
                json.dump(entry, tmp, ensure_ascii=False, indent=1)
                tmp.flush()
                os.fsync(tmp.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path
