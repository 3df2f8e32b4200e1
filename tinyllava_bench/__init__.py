"""TinyLLaVA Bench: evaluate, train and report on TinyLLaVA-family vision-language models.

The public API (docs/api.md) is what `__all__` lists: `load_model`, `evaluate`, `score`, `train`, `report`,
`regress` and their result types. Every other module is internal, with no compatibility promise. Importing the
package is light (no torch): each function imports what it needs when called.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from tinyllava_bench.api import (
    EvalResult,
    PathLike,
    RegressResult,
    ReportResult,
    Results,
    RunError,
    ScoreFile,
    ScoreResult,
    TrainResult,
    UserError,
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
    "RunError",
    "ScoreFile",
    "ScoreResult",
    "TrainResult",
    "UserError",
    "__version__",
    "evaluate",
    "load_model",
    "regress",
    "report",
    "score",
    "train",
]


class _Package(types.ModuleType):
    """Keeps `train` and `report` the API's functions when their namesake subpackages (`tinyllava_bench.train`,
    `tinyllava_bench.report`) load: the import system sets a loaded subpackage as an attribute of its parent, which
    would replace the function. The subpackages stay importable by name (`from tinyllava_bench.train.plan import
    ...`, `importlib.import_module`), as every import in the project does."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and callable(self.__dict__.get(name)):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
