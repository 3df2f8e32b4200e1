"""LLaVA-Bench-in-the-Wild: the GPT judge's review parsing and the relative-score summary.

`official` is LLaVA's eval_gpt_review_bench.py + summarize_gpt_review.py (TinyLLaVA's copies are the same);
`lmms-eval` is lmms-eval 0.7.3 llava-in-the-wild utils. The judge's messages (judge/prompts.py) and
calls (judge/tasks.py) live in the judge layer.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from tinyllava_bench.metrics import PROTOCOLS, TaskScore

CATEGORIES = ("conv", "detail", "complex")
# What both graders average in for a review they cannot read; the judge layer also gives it to a review whose
# scores fall outside SCORE_RANGE, once its re-asks are spent, and counts each as a judge failure.
FAILED_REVIEW = [-1.0, -1.0]
# The review rule asks for "an overall score on a scale of 1 to 10" per assistant (protocol/llava_wild_judge.json).
SCORE_RANGE = (1.0, 10.0)
# Judge model, temperature, max_tokens and re-asks: tasks/llava_wild.yaml `judge:` (LLaVA's script names
# gpt-4-0314; TinyLLaVABench's copy of it names plain "gpt-4").
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
# lmms-eval marks "not this category" with this pair and drops any pair holding it from every mean
_LMMS_EVAL_SKIP = -999


def parse_llava_review(text: str | None, protocol: str = "official") -> list[float]:
    """[reference_score, model_score] from the review's first line, or [-1.0, -1.0] when unreadable.

    official: commas become spaces and a single-space split must give exactly 2 numbers ("8, 9" gives 3
    tokens and fails). lmms-eval: commas and semicolons become spaces, the first two numbers found win.
    """
    if text is None:
        return list(FAILED_REVIEW)
    if protocol == "lmms-eval":
        first_line = text.strip().split("\n")[0].replace(",", " ").replace(";", " ")
        numbers = _NUMBER.findall(first_line)
        return [float(numbers[0]), float(numbers[1])] if len(numbers) >= 2 else list(FAILED_REVIEW)
    tokens = text.split("\n")[0].replace(",", " ").split(" ")
    if len(tokens) != 2:
        return list(FAILED_REVIEW)
    try:
        return [float(tokens[0]), float(tokens[1])]
    except ValueError:
        return list(FAILED_REVIEW)


def review_is_valid(pair: Sequence[float]) -> bool:
    """Whether a parsed review holds two scores within SCORE_RANGE (False for [-1, -1], "100 -5", nan)."""
    low, high = SCORE_RANGE
    return len(pair) == 2 and all(low <= value <= high for value in pair)


def _summary(pairs: Sequence[Sequence[float]]) -> tuple[float, float, float] | None:
    """(relative, reference ×10, model ×10) as summarize_gpt_review.py prints them, or None if undefined.

    Undefined also when every review failed: the graders' arithmetic gives [-1, -1] / [-1, -1] = 100.0, which
    is no score.
    """
    if not pairs or all(list(pair) == FAILED_REVIEW for pair in pairs):
        return None
    reference_mean, model_mean = (round(x, 3) for x in np.asarray(pairs, dtype=np.float64).mean(0).tolist())
    if reference_mean == 0:
        return None
    return (
        round(model_mean / reference_mean * 100, 1),
        round(reference_mean * 10, 1),
        round(model_mean * 10, 1),
    )


def score(
    rows: Sequence[Mapping[str, Any]],
    predictions: Sequence[str],
    protocol: str = "official",
    judgements: Sequence[Sequence[float] | None] | None = None,
) -> TaskScore:
    """Relative scores (model mean / reference mean × 100, rounded as the graders do) overall and per category.

    judgements[i] = (reference_score, model_score) from parse_llava_review, or None for a judge call that
    failed; None rows are left out and counted in `unscored`, while [-1, -1] reviews are averaged in as
    both graders do (a mean over failed reviews only gets no metric at all). Per sample: parsed = [reference, model], score = the model's 1-10 judge score.
    Also `reference_score`/`model_score` (means ×10, as LLaVA's summary prints) and per-category variants.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if len(rows) != len(predictions):
        raise ValueError(f"{len(rows)} rows but {len(predictions)} predictions")
    if judgements is None or len(judgements) != len(rows):
        got = "none" if judgements is None else len(judgements)
        raise ValueError(f"llava_wild needs one judge result per row: {len(rows)} rows, {got} judgements")

    parsed: list[Any] = []
    scores: list[float | None] = []
    pooled: list[list[float]] = []
    by_category: dict[str, list[list[float]]] = {}
    for row, judgement in zip(rows, judgements, strict=True):
        if judgement is None:
            parsed.append(None)
            scores.append(None)
            continue
        if len(judgement) != 2:
            raise ValueError(f"LLaVA-W judgement must be (reference_score, model_score), got {judgement!r}")
        pair = [float(judgement[0]), float(judgement[1])]
        if not all(np.isfinite(pair)):  # the judge layer turns such a review into [-1, -1]; never a metric
            raise ValueError(f"LLaVA-W judgement must hold finite scores, got {judgement!r}")
        parsed.append(pair)
        scores.append(pair[1])
        if protocol == "lmms-eval" and _LMMS_EVAL_SKIP in pair:
            continue
        pooled.append(pair)
        by_category.setdefault(str(row.get("category", "")), []).append(pair)

    ordered = [c for c in CATEGORIES if c in by_category] + sorted(set(by_category) - set(CATEGORIES))
    metrics: dict[str, float] = {}
    for suffix, pairs in [("", pooled), *((f"_{c}", by_category[c]) for c in ordered)]:
        summary = _summary(pairs)
        if summary is not None:
            relative, reference, model = summary
            metrics[f"relative_score{suffix}"] = relative
            metrics[f"reference_score{suffix}"] = reference
            metrics[f"model_score{suffix}"] = model
    metrics["unscored"] = float(scores.count(None))
    return TaskScore(metrics=metrics, parsed=parsed, scores=scores)
