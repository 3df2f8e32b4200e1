"""Pure scoring functions, one module per benchmark family; no I/O, no model, nothing else of ours imported.

Every family module exposes `score(rows, predictions, protocol="official", judgements=None) -> TaskScore`:
`rows` are the dataset rows as dicts in the hub dataset's own column names (images not needed), `predictions` the
model outputs in the same order, `judgements` the per-sample judge results for judged tasks.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PROTOCOLS = ("official", "lmms-eval")

# scorer name -> module in this package that implements it
SCORER_MODULES = {
    "vqav2": "vqa",
    "textvqa": "textvqa",
    "gqa": "gqa",
    "scienceqa": "scienceqa",
    "pope": "pope",
    "mme": "mme",
    "mmvet": "mmvet",
    "llava_wild": "llava_wild",
}


@dataclass
class TaskScore:
    """Aggregate metrics (percent) and per-sample results of one task."""

    metrics: dict[str, float]
    parsed: list[Any] = field(default_factory=list)  # per sample: the answer the scorer extracted
    scores: list[float | None] = field(default_factory=list)  # per sample; None = not scored


def score_task(
    scorer: str,
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Any] | None = None,
) -> TaskScore:
    """Score `predictions` against `rows` with the named scorer under `protocol`."""
    if scorer not in SCORER_MODULES:
        raise ValueError(f"unknown scorer {scorer!r}; known: {', '.join(sorted(SCORER_MODULES))}")
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    module = importlib.import_module(f"{__name__}.{SCORER_MODULES[scorer]}")
    return module.score(rows, predictions, protocol=protocol, judgements=judgements)
