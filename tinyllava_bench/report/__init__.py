"""Reports on run folders: paper-shaped tables, a leaderboard CSV, plots and a regression verdict for CI.

Names are re-exported lazily so that `report.commands` (imported at CLI start-up) does not pull in numpy."""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "LEADERBOARD_COLUMNS": "leaderboard",
    "LEADERBOARD_KEY": "leaderboard",
    "write_leaderboard": "leaderboard",
    "compare_runs": "regress",
    "mcnemar_exact_p": "paired_stats",
    "paired_bootstrap_ci": "paired_stats",
    "parse_tolerances": "regress",
    "render_summary": "regress_render",
    "PAPER_BENCHMARKS": "runs",
    "Run": "runs",
    "TaskResult": "runs",
    "load_run": "runs",
    "load_runs": "runs",
    "load_samples": "runs",
    "runs_to_frame": "runs",
    "paper_table": "tables",
    "render_table": "table_render",
    "results_table": "tables",
    "write_plots": "plots",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
    return getattr(module, name)
