"""Document functions of the smoke tasks that tests/test_lmms_plugin.py runs through lmms-eval's CLI."""

from __future__ import annotations

from typing import Any

POST_PROMPT = "\nAnswer the question using a single word or phrase."


def doc_to_visual(doc: dict[str, Any]) -> list[Any]:
    # documents without an image are text-only requests
    return [] if doc["image"] is None else [doc["image"].convert("RGB")]


def doc_to_text(doc: dict[str, Any], lmms_eval_specific_kwargs: dict[str, Any] | None = None) -> str:
    return doc["question"] + POST_PROMPT


def process_results(doc: dict[str, Any], results: list[str]) -> dict[str, float]:
    return {"smoke_match": float(results[0].strip().lower() == doc["answer"].lower())}
