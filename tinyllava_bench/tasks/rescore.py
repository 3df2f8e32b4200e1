"""Re-scoring a predictions file offline (`tinyllava_bench.score`): read the task's data and the predictions, score,
write the score file and the official grader's submission."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError


@dataclass
class Rescored:
    result: dict[str, Any]  # the score file's content
    submission: Path | None = None
    notes: list[str] = field(default_factory=list)


def refuse_inputs_as_outputs(
    outputs: Sequence[Path | None], inputs: Sequence[str | os.PathLike[str] | None]
) -> None:
    """An --output or --submission that names an input file (predictions, data, test questions) would overwrite
    it with the score: refuse before anything is read or written."""
    for output in [path for path in outputs if path]:
        for source in inputs:
            if not source:
                continue
            path = Path(source)
            same = output.exists() and path.exists() and os.path.samefile(output, path)
            if same or output.resolve() == path.resolve():
                raise UserError(
                    f"{output} is an input of this score ({source}); write the score to another file"
                )


def rescore(
    task: Any,
    predictions: Path,
    output: Path,
    judge: Any,
    *,
    data: str | Path | None,
    data_root: str | Path | None,
    protocol: str,
    missing_as_wrong: bool,
    submission: Path | None,
    test_questions: str | Path | None,
) -> Rescored:
    """Score `predictions` against `task`'s data and write `output` (and the submission, for a task with one)."""
    from tinyllava_bench.schema import ScoreOutput
    from tinyllava_bench.tasks.data import load_task_data
    from tinyllava_bench.tasks.data_readers import read_question_ids
    from tinyllava_bench.tasks.predictions import load_predictions
    from tinyllava_bench.tasks.scoring import score_predictions, write_score_output
    from tinyllava_bench.tasks.submission import write_submission

    loaded = load_task_data(task, data, data_root, need_images=False, protocol=protocol)
    # the data file --data-root led to is known only now
    refuse_inputs_as_outputs([output, submission], [loaded.provenance()["local_path"]])
    question_ids = loaded.question_ids()
    matched = load_predictions(predictions, question_ids, task.name)
    result = score_predictions(
        task, loaded.rows, matched.predictions, protocol, judge, missing_as_wrong=missing_as_wrong
    )
    # the score document with where its rows and predictions came from, through the schema
    result = ScoreOutput.model_validate(
        {**result, "dataset": loaded.provenance(), "predictions_file": str(predictions)}
    ).dump()
    write_score_output(result, output)
    rescored = Rescored(result)
    if len(loaded) != task.size:
        rescored.notes.append(
            f"note: the data has {len(loaded)} rows; the full {task.dataset.split} split has {task.size}"
        )
    if task.submission is not None:
        rescored.submission = submission or output.with_name(f"{output.stem}.submission.json")
        all_ids = read_question_ids(test_questions) if test_questions else None
        write_submission(task, question_ids, matched.predictions, rescored.submission, all_ids)
    return rescored
