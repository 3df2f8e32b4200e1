"""The public API: load a model, evaluate, score, train, report, regress (docs/api.md).

Every CLI verb of the same name is a thin layer over one function here: it parses its flags, calls the function
with keyword arguments named like those flags, prints the result and exits with its `exit_status`. The functions
leave the printing to their caller (progress bars, the engine's notes on stderr and a training dry run's plan
aside) and raise `tinyllava_bench.errors.UserError` for what the caller got wrong (`RunError`, a subclass, when the
run started but could not proceed); `exit_code` on the error is the CLI's exit status. Everything outside this
module and the package's `__all__` is internal, with no compatibility promise.

Imports of torch and the rest of the stack happen inside the functions: `import tinyllava_bench` stays light.
"""

from __future__ import annotations

from tinyllava_bench.api.evaluation import evaluate, load_model
from tinyllava_bench.api.reporting import regress, report
from tinyllava_bench.api.results import (
    EvalResult,
    PathLike,
    RegressResult,
    ReportResult,
    Results,
    ScoreFile,
    ScoreResult,
    TrainResult,
)
from tinyllava_bench.api.scoring import score
from tinyllava_bench.api.training import train
from tinyllava_bench.errors import RunError, UserError

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
    "evaluate",
    "load_model",
    "regress",
    "report",
    "score",
    "train",
]
