"""The run folder's schema (documented in docs/run_folder.md): version, file names, headline metrics."""

from __future__ import annotations

SCHEMA_VERSION = 1
RESULTS_FILE = "results.json"


def samples_file_name(task: str, rank: int | None = None) -> str:
    """`samples_<task>.jsonl`; while a multi-process run is generating, each rank appends to its own part."""
    return f"samples_{task}.jsonl" if rank is None else f"samples_{task}.rank{rank}.jsonl"
