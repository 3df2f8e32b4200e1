"""The blind answerer the demo reads its scores against: one answer per question opening, the best there is."""

from __future__ import annotations

from pathlib import Path

import pytest

from tinyllava_bench.demo.blind import CANDIDATES, _opening, blind_predictions
from tinyllava_bench.tasks.data import load_task_data
from tinyllava_bench.tasks.registry import load_task
from tinyllava_bench.tasks.scoring import score_predictions
from tinyllava_bench.testing.datasets import write_task_data


@pytest.mark.parametrize("task_name", ["vqav2", "gqa", "pope", "mme"])
def test_blind_answers_beat_every_constant_answer_and_depend_only_on_the_opening(
    tmp_path: Path, task_name: str
) -> None:
    write_task_data(task_name, tmp_path, n=60, seed=1)
    predictions, headline = blind_predictions(task_name, tmp_path)
    task = load_task(task_name)
    rows = load_task_data(task, None, tmp_path, need_images=False).rows.to_list()
    assert len(predictions) == len(rows) and set(predictions) <= set(CANDIDATES)
    by_opening: dict[str, set[str]] = {}
    for row, prediction in zip(rows, predictions):
        by_opening.setdefault(_opening(row[task.columns.question]), set()).add(prediction)
    assert all(len(answers) == 1 for answers in by_opening.values())  # it never looks past the opening
    assert len(by_opening) > 1

    def accuracy(answers: list[str]) -> float:
        samples = score_predictions(task, rows, answers)["samples"]
        return sum(sample["score"] or 0.0 for sample in samples)

    blind = accuracy(predictions)
    for constant in ("yes", "no", "Yes", "red", "2"):
        assert blind >= accuracy([constant] * len(rows))
    assert headline is not None
