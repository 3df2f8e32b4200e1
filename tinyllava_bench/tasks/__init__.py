"""Tasks: the registry of task YAMLs, dataset loading (hub or local), prompts, predictions, scoring, submissions.

The public names below load on first use, so `import tinyllava_bench.tasks` stays light (no datasets, no PIL).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from tinyllava_bench.tasks.config import TaskConfig
    from tinyllava_bench.tasks.data import TaskData, dataset_fingerprint, load_task_data, load_task_rows
    from tinyllava_bench.tasks.images import ImageLoadError, load_image
    from tinyllava_bench.tasks.predictions import MatchedPredictions, load_predictions, read_predictions
    from tinyllava_bench.tasks.prompts import build_question
    from tinyllava_bench.tasks.registry import list_tasks, load_task
    from tinyllava_bench.tasks.scoring import score_predictions, write_score_output
    from tinyllava_bench.tasks.submission import build_submission, write_submission
    from tinyllava_bench.tasks.task_options import apply_overrides

_EXPORTS = {
    "TaskConfig": "config",
    "apply_overrides": "task_options",
    "TaskData": "data",
    "dataset_fingerprint": "data",
    "load_task_data": "data",
    "load_task_rows": "data",
    "ImageLoadError": "images",
    "load_image": "images",
    "MatchedPredictions": "predictions",
    "load_predictions": "predictions",
    "read_predictions": "predictions",
    "build_question": "prompts",
    "list_tasks": "registry",
    "load_task": "registry",
    "score_predictions": "scoring",
    "write_score_output": "scoring",
    "build_submission": "submission",
    "write_submission": "submission",
}

__all__ = [
    "ImageLoadError",
    "MatchedPredictions",
    "TaskConfig",
    "TaskData",
    "apply_overrides",
    "build_question",
    "build_submission",
    "dataset_fingerprint",
    "list_tasks",
    "load_image",
    "load_predictions",
    "load_task",
    "load_task_data",
    "load_task_rows",
    "read_predictions",
    "score_predictions",
    "write_score_output",
    "write_submission",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
