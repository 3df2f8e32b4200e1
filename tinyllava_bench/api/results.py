"""The result types of the public API, and the aliases of the files' contents they carry."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from tinyllava_bench.errors import EXIT_OK

if TYPE_CHECKING:  # pragma: no cover
    from tinyllava_bench.report.regress import RegressionReport

# results.json's content as `evaluate` returns it (docs/run_folder.md describes the fields)
Results: TypeAlias = dict[str, Any]
# a score file's content as `score` returns it (the fields `tinyllava-bench score` writes to OUT.json)
ScoreFile: TypeAlias = dict[str, Any]
PathLike: TypeAlias = str | os.PathLike[str]


@dataclass(frozen=True)
class EvalResult:
    """What `evaluate` did: results.json's content, the run folder, and the CLI's exit status (0 or 3)."""

    results: Results  # empty on a rank other than 0 of a distributed run, which writes nothing
    output: Path
    exit_status: int
    message: str | None = None  # the line explaining errored or unjudged samples, when there were any


@dataclass(frozen=True)
class ScoreResult:
    """What `score` did: the score file's content, where it and the submission went, the exit status (0 or 3)."""

    result: ScoreFile
    output: Path
    submission: Path | None  # the official-grader file (tasks with a submission format)
    exit_status: int
    notes: tuple[str, ...] = ()  # e.g. that the data holds fewer rows than the full split
    message: str | None = None  # the line explaining rows left unscored, when beyond `max_error_rate`


@dataclass(frozen=True)
class TrainResult:
    """What `train` did: the stage models' folders (a dry run: none, and the example files it wrote)."""

    folders: list[Path] = field(default_factory=list)
    examples: list[Path] = field(default_factory=list)
    exit_status: int = EXIT_OK


@dataclass(frozen=True)
class ReportResult:
    """The rendered table (written to `out` when given) and the plot files written."""

    table: str
    out: Path | None = None
    plots: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class RegressResult:
    """The verdict of `regress`: the Markdown summary, whether it failed, and the exit status (0 pass, 1 fail)."""

    summary: str
    failed: bool
    exit_status: int
    report: RegressionReport
    out: Path | None = None
