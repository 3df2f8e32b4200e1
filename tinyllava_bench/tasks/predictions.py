"""Predictions files: jsonl lines {"question_id": ..., "prediction": "..."} (optionally "index"), matched to rows.

A line matches its row by "index" (0-based row number) when it has one, else by question_id; ids compare by
value across int and text ("5" matches 5). LLaVA answer files, whose text is under "text", are read too.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.encoding import json_lines

_EXAMPLES = 5


@dataclass(frozen=True)
class PredictionLine:
    """One line of a predictions file."""

    line: int  # 1-based line number in the file
    prediction: str
    question_id: Any = None
    has_question_id: bool = False
    index: int | None = None


@dataclass
class MatchedPredictions:
    """Predictions in data-row order; None where a row has no prediction."""

    predictions: list[str | None]
    missing: list[int]  # row indices without a prediction

    @property
    def n_matched(self) -> int:
        return len(self.predictions) - len(self.missing)


def id_key(value: Any) -> str:
    """The comparison key of a question id: ints, integral floats and their text forms are equal."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def read_predictions(path: str | Path) -> list[PredictionLine]:
    """Parse a predictions jsonl file; a malformed line raises UserError naming the file and line number."""
    path = Path(path)
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read predictions file {path}: {exc.strerror or exc}") from None
    with handle:
        lines = [_parse_line(record, path, number) for number, record in json_lines(handle, path)]
    if not lines:
        raise UserError(f"predictions file {path} is empty; expected jsonl lines like {_EXAMPLE_LINE}")
    return lines


_EXAMPLE_LINE = '{"question_id": 1, "prediction": "yes"}'


def _parse_line(record: Any, path: Path, number: int) -> PredictionLine:
    where = f"{path}, line {number}"
    if not isinstance(record, dict):
        raise UserError(f"{where}: each line must be a JSON object like {_EXAMPLE_LINE}")
    if "prediction" in record:
        prediction = record["prediction"]
    elif "text" in record:  # LLaVA's answer files
        prediction = record["text"]
    else:
        raise UserError(f'{where}: no "prediction" field; each line must look like {_EXAMPLE_LINE}')
    if not isinstance(prediction, str):
        raise UserError(f'{where}: "prediction" must be text, got {type(prediction).__name__}')
    index = record.get("index")
    if index is not None and (isinstance(index, bool) or not isinstance(index, int) or index < 0):
        raise UserError(
            f'{where}: "index" must be a non-negative integer (the 0-based data row), got {index!r}'
        )
    has_question_id = "question_id" in record and record["question_id"] is not None
    if index is None and not has_question_id:
        raise UserError(f'{where}: needs "question_id" or "index" to say which data row it answers')
    return PredictionLine(number, prediction, record.get("question_id"), has_question_id, index)


def match_predictions(
    lines: Sequence[PredictionLine], question_ids: Sequence[Any], source: str | Path, task_name: str
) -> MatchedPredictions:
    """Place each prediction on its data row; duplicates, unknown or ambiguous ids raise UserError."""
    by_id: dict[str, list[int]] = {}
    for row, question_id in enumerate(question_ids):
        by_id.setdefault(id_key(question_id), []).append(row)
    predictions: list[str | None] = [None] * len(question_ids)
    taken_by: dict[int, int] = {}  # row -> line number that answered it
    unknown: list[PredictionLine] = []
    for line in lines:
        where = f"{source}, line {line.line}"
        if line.index is not None:
            row = line.index
            if row >= len(question_ids):
                raise UserError(
                    f"{where}: index {row} is past the end of the data of task {task_name} ({len(question_ids)} rows)"
                )
            if line.has_question_id and id_key(line.question_id) != id_key(question_ids[row]):
                raise UserError(
                    f"{where}: index {row} is the row with question_id {question_ids[row]!r}, but the line says "
                    f"{line.question_id!r}; the predictions were made on other data, or one of the two is wrong"
                )
        else:
            rows = by_id.get(id_key(line.question_id))
            if rows is None:
                unknown.append(line)
                continue
            if len(rows) > 1:
                raise UserError(
                    f"{where}: question_id {line.question_id!r} matches {len(rows)} rows of task {task_name} "
                    '(its ids repeat, e.g. MME asks two questions per image); add "index" (the 0-based data row) '
                    "to every line of the predictions file"
                )
            row = rows[0]
        if row in taken_by:
            raise UserError(
                f"{source}: lines {taken_by[row]} and {line.line} both answer data row {row} "
                f"(question_id {question_ids[row]!r}); keep one"
            )
        taken_by[row] = line.line
        predictions[row] = line.prediction
    if unknown:
        examples = ", ".join(f"{line.question_id!r} (line {line.line})" for line in unknown[:_EXAMPLES])
        more = f" and {len(unknown) - _EXAMPLES} more" if len(unknown) > _EXAMPLES else ""
        raise UserError(
            f"{source}: {len(unknown)} prediction(s) have a question_id that is not in the data of task "
            f"{task_name}: {examples}{more}; check that --data is the split the predictions were made on"
        )
    missing = [row for row, prediction in enumerate(predictions) if prediction is None]
    return MatchedPredictions(predictions, missing)


def load_predictions(path: str | Path, question_ids: Sequence[Any], task_name: str) -> MatchedPredictions:
    """Read a predictions file and match it to the data rows whose ids are `question_ids`."""
    return match_predictions(read_predictions(path), question_ids, path, task_name)
