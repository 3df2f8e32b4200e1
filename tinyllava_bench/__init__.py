"""TinyLLaVA Bench: evaluate, train and report on TinyLLaVA-family vision-language models.

The public API (docs/api.md) is what `__all__` lists: `load_model`, `evaluate`, `score`, `train`, `report`,
`regress` and their result types. Every other module is internal, with no compatibility promise. Importing the
package is light (no torch): each function imports what it needs when called.
"""

from __future__ import annotations

from tinyllava_bench.api import (
    EvalResult,
    PathLike,
    RegressResult,
    ReportResult,
    Results,
    ScoreFile,
    ScoreResult,
    TrainResult,
    evaluate,
    load_model,
    regress,
    report,
    score,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "EvalResult",
    "PathLike",
    "RegressResult",
    "ReportResult",
    "Results",
    "ScoreFile",
    "ScoreResult",
    "TrainResult",
    "__version__",
    "evaluate",
    "load_model",
    "regress",
    "report",
    "score",
    "train",
]
