"""MM-Vet: the GPT judge's reply parsing and the aggregation of its per-sample scores.

`official` is yuweihao/MM-Vet's mm-vet_evaluator.py (also behind its online grader); `lmms-eval` is
lmms-eval 0.7.x mmvet utils. The judge's prompt (judge/prompts.py) and calls (judge/tasks.py) live in the
judge layer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinyllava_bench.metrics import PROTOCOLS, TaskScore

CAPABILITIES = ("rec", "ocr", "know", "gen", "spat", "math")
# the official grader reports means rounded (numpy's rounding) to this many decimals
OFFICIAL_DECIMAL_PLACES = 1

# How each grader re-asks (the judge layer runs it; model, temperature, max_tokens and the number of re-asks are
# in tasks/mmvet.yaml `judge:`). Official: each re-ask adds judge/prompts.py's MMVET_RETRY_SUFFIX; the first
# still uses the start temperature, then +0.5 per re-ask; the answer to the last re-ask is never read and the score is 0.0.
# lmms-eval: same message on a re-ask; an unreadable answer raises the temperature by 0.5 (0.0 once it reaches
# 2.0), a number outside [0, 1] is asked again at the same temperature, an empty answer (after 3 tries) is 0.0.
# Every such 0.0 is a judge failure: scored as the grader scores it, and counted.


def parse_mmvet_score(content: str | None, protocol: str = "official") -> float | None:
    """The score in a judge reply, a number in [0, 1], or None meaning "not a score: ask again".

    "nan" is not a score under either protocol (the official range check `score > 1.0 or score < 0.0` happens to
    let NaN through, which would make every mean NaN); "inf" fails the range check in both. lmms-eval strips the
    reply first; for it an empty reply also gives None, though lmms-eval then scores 0.0 at once.
    """
    if content is None:
        return None
    if protocol == "lmms-eval":
        content = content.strip()
    try:
        value = float(content.split(" ")[0].strip())
    except ValueError:
        return None
    return value if 0.0 <= value <= 1.0 else None  # False for nan


def capabilities_of(row: Mapping[str, Any]) -> list[str]:
    """The row's capabilities: the hub dataset stores "rec,ocr", the official metadata a list."""
    capability = row["capability"]
    if isinstance(capability, str):
        return [name.strip() for name in capability.split(",") if name.strip()]
    return [str(name) for name in capability]


def _has_capability(row: Mapping[str, Any], capability: str, protocol: str) -> bool:
    if protocol == "lmms-eval" and isinstance(row["capability"], str):
        # lmms-eval tests `cap in "rec,ocr"` as a substring; none of the six names contains another
        return capability in row["capability"]
    return capability in capabilities_of(row)


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[float | None] | None = None,
) -> TaskScore:
    """Aggregate judge scores (floats in [0, 1]; None = judge unreachable) into `total` and per-capability means.

    A judgement outside [0, 1] (nan included) is a caller's bug and raises ValueError: it must never become a
    metric.

    Metrics are percent; `official` rounds them to 1 decimal with numpy as the grader does, `lmms-eval`
    does not round. None judgements are left out of every mean and counted in `unscored`. A capability
    no scored row has gets no metric.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    if judgements is None or len(judgements) != len(rows):
        got = "none" if judgements is None else len(judgements)
        raise ValueError(f"mmvet needs one judge score per row: {len(rows)} rows, {got} judgements")

    scores: list[float | None] = [None if j is None else float(j) for j in judgements]
    bad = [value for value in scores if value is not None and not 0.0 <= value <= 1.0]
    if bad:
        raise ValueError(f"mmvet judge scores must lie in [0, 1]; got {bad[0]!r}")
    total = 0.0
    count = 0
    capability_sums = dict.fromkeys(CAPABILITIES, 0.0)
    capability_counts = dict.fromkeys(CAPABILITIES, 0)
    for row, value in zip(rows, scores, strict=True):
        if value is None:
            continue
        total += value
        count += 1
        for capability in CAPABILITIES:
            if _has_capability(row, capability, protocol):
                capability_sums[capability] += value
                capability_counts[capability] += 1

    means: dict[str, float] = {}
    if count:
        means["total"] = total / count * 100
    for capability in CAPABILITIES:
        if capability_counts[capability]:
            means[capability] = capability_sums[capability] / capability_counts[capability] * 100
    if protocol == "official":
        # round(np.float64, 1) rounds the scaled value half-to-even, unlike Python's round (0.15 -> 0.2)
        means = {k: float(np.round(np.float64(v), OFFICIAL_DECIMAL_PLACES)) for k, v in means.items()}
    metrics = dict(means)
    metrics["unscored"] = float(len(scores) - count)
    parsed = list(scores)
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
