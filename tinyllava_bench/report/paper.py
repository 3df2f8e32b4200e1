"""The paper's own numbers: reference/paper_scores.csv read as rows (a variant, its model card, its scores by
column), the paper's Table A1, and which row a measured run compares with."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.paths import PAPER_SCORES_CSV
from tinyllava_bench.report import CARD_AXES
from tinyllava_bench.report.runs import Run


@dataclass(frozen=True)
class PaperRow:
    """One row of paper_scores.csv: the variant's description and its published numbers by task column."""

    variant: str
    source: str
    checkpoint: str | None
    card: dict[str, Any]
    scores: dict[str, float]


def load_paper_scores(path: str | Path | None = None) -> list[PaperRow]:
    """Read paper_scores.csv (the bundled copy unless `path` is given), empty cells left out of `scores`."""
    file = Path(path) if path is not None else PAPER_SCORES_CSV
    if not file.is_file():
        raise UserError(f"{file}: paper scores file not found; reinstall tinyllava-bench")
    info_columns = {"variant", "source", "checkpoint", "recipe", "vision", "llm", "params_b", "resolution"}
    rows = []
    with file.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            scores = {}
            for column, text in record.items():
                if column in info_columns or column is None or not (text or "").strip():
                    continue
                scores[column] = float(text)
            card = {axis: (record.get(axis) or None) for axis in CARD_AXES}
            rows.append(
                PaperRow(
                    variant=record["variant"],
                    source=record.get("source") or "",
                    checkpoint=record.get("checkpoint") or None,
                    card=card,
                    scores=scores,
                )
            )
    return rows


def paper_table_a1(rows: Sequence[PaperRow] | None = None) -> list[PaperRow]:
    """The paper's Table A1: its 12 TinyLLaVA variants, in the paper's order."""
    rows = load_paper_scores() if rows is None else rows
    return [row for row in rows if re.search(r"\bTable A1\b", row.source)]


def match_paper_row(run: Run, rows: Sequence[PaperRow]) -> PaperRow | None:
    """The paper row a run compares with: card.paper_variant, else the model name (or its source) against the
    `variant` or `checkpoint` column."""
    wanted = run.card.get("paper_variant")
    if wanted:
        # A name the CSV lacks gives no match (the table says so) rather than a guess by model name.
        return next((row for row in rows if row.variant == wanted), None)
    for name in (run.model_name, run.model_source):
        if not name:
            continue
        for row in rows:
            if name in (row.variant, row.checkpoint):
                return row
    return None
