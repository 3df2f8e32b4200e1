"""How far the demo's questions can be answered without the picture: the scale to read the demo's scores against.

The blind answerer gives every question the one answer that scores best for questions opening with the same three
words ("what color is", "is there a"), choosing among everything the demo world can answer, and fitted on the very
questions it answers: more than any model that ignores the picture could do. Scored with the official scorers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from tinyllava_bench.testing.scenes import COLORS, POSITIONS, SHAPES, WORDS
from tinyllava_bench.testing.training_data import OPTION_LETTERS

OPENING_WORDS = 3
# every answer the demo world gives (arithmetic: 2..18; counts: 0..3)
CANDIDATES = (
    *COLORS,
    *SHAPES,
    *POSITIONS,
    *(word.lower() for word in WORDS),
    *(str(n) for n in range(19)),
    "yes",
    "no",
    "Yes",
    "No",
    *OPTION_LETTERS[:5],
)


def _opening(question: str) -> str:
    return " ".join(question.lower().split()[:OPENING_WORDS])


def blind_predictions(task_name: str, data_root: Path) -> tuple[list[str], float | None]:
    """The blind answerer's predictions for a task's rows under `data_root`, and its headline score."""
    from tinyllava_bench.tasks.data import load_task_data
    from tinyllava_bench.tasks.registry import load_task
    from tinyllava_bench.tasks.scoring import score_predictions

    task = load_task(task_name)
    rows = load_task_data(task, None, data_root, need_images=False).rows.to_list()
    groups: dict[str, list[int]] = defaultdict(list)
    for index, row in enumerate(rows):
        groups[_opening(str(row[task.columns.question]))].append(index)
    per_candidate = {}
    for candidate in CANDIDATES:
        samples = score_predictions(task, rows, [candidate] * len(rows))["samples"]
        per_candidate[candidate] = [sample["score"] or 0.0 for sample in samples]
    predictions = [""] * len(rows)
    for members in groups.values():
        best = max(CANDIDATES, key=lambda c: sum(per_candidate[c][i] for i in members))
        for i in members:
            predictions[i] = best
    return predictions, score_predictions(task, rows, predictions)["metrics"].get(task.headline)


def blind_scores(data_root: Path, tasks: Sequence[str]) -> dict[str, float | None]:
    """Task -> the blind answerer's headline score."""
    return {task: blind_predictions(task, data_root)[1] for task in tasks}


__all__ = ["CANDIDATES", "blind_predictions", "blind_scores"]
