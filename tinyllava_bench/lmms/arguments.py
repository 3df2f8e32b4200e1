"""lmms-eval hands over text (model_args, generation_kwargs): each value read as what it must be, or one line saying
what to give instead."""

from __future__ import annotations

from typing import Any

from tinyllava_bench.errors import UserError


def positive_int(value: Any, name: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        count = 0
    if count < 1 or str(count) != str(value).strip():
        raise UserError(f"tinyllava_bench: {name}={value!r}; give a positive whole number")
    return count


def whole_number(value: Any, name: str) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise UserError(f"tinyllava_bench: {name}={value!r}; give a whole number") from None


def number(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"tinyllava_bench: generation_kwargs {name}={value!r}; give a number") from None


def boolean(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("true", "1", "yes"):
        return True
    if text in ("false", "0", "no"):
        return False
    raise UserError(f"tinyllava_bench: {name}={value!r}; give true or false")


def stop_strings(until: Any) -> list[str]:
    if until is None:
        return []
    if isinstance(until, str):
        until = [until]
    if not isinstance(until, (list, tuple)) or not all(isinstance(s, str) for s in until):
        raise UserError(
            f"tinyllava_bench: generation_kwargs until={until!r}; give a string or a list of strings"
        )
    return [s for s in until if s]
