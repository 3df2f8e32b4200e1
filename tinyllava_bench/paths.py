"""Where the project's data folders live (tasks/, model_zoo/, the bundled reference files)."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# an installed wheel carries tasks/ and model_zoo/ here (setup.py); a checkout reads them from the repository root
BUNDLED_DIR = PACKAGE_DIR / "_data"
REFERENCE_DIR = PACKAGE_DIR / "reference"
PAPER_SCORES_CSV = REFERENCE_DIR / "paper_scores.csv"
PROTOCOL_DIR = REFERENCE_DIR / "protocol"


def _data_folder(name: str) -> Path:
    bundled = BUNDLED_DIR / name
    return bundled if bundled.is_dir() else REPO_ROOT / name


def tasks_dir() -> Path:
    """The folder of task YAMLs; `TINYLLAVA_BENCH_TASKS_DIR` overrides it."""
    return Path(os.environ.get("TINYLLAVA_BENCH_TASKS_DIR", _data_folder("tasks")))


def model_zoo_dir() -> Path:
    """The folder of model cards; `TINYLLAVA_BENCH_ZOO_DIR` overrides it."""
    return Path(os.environ.get("TINYLLAVA_BENCH_ZOO_DIR", _data_folder("model_zoo")))


def cache_dir() -> Path:
    """Where the tool keeps small caches (checkpoint fingerprints); `TINYLLAVA_BENCH_CACHE_DIR` overrides it."""
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tinyllava_bench"
    return Path(os.environ.get("TINYLLAVA_BENCH_CACHE_DIR", default))
