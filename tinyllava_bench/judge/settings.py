"""Which judge, asked how: one resolution, from the task file's `judge:` block per protocol plus the user's flags.

`eval` and `score` both build their client through `resolve_judge_settings` and `open_judge_client`, and both
take the flags `add_judge_arguments` defines, so the two verbs cannot judge the same predictions differently.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.judge.redaction import redact_url

# flag -> (settings field, type, metavar, help)
JUDGE_FLAGS: dict[str, tuple[str, type, str, str]] = {
    "--judge-model": ("model", str, "M", "judge model (default: the task file's, per --protocol)"),
    "--judge-temperature": ("temperature", float, "T", "judge temperature (default: the task file's)"),
    "--judge-max-tokens": ("max_tokens", int, "N", "judge max_tokens (default: the task file's)"),
    "--judge-retries": (
        "retries",
        int,
        "N",
        "re-asks of a judge answer that is not a valid score before it counts as a judge failure "
        "(default: the task file's; HTTP retries are TINYLLAVA_BENCH_JUDGE_RETRIES)",
    ),
}


@dataclass(frozen=True)
class JudgeSettings:
    """Everything that decides a judge's verdicts, as run (task file per protocol, then the user's overrides)."""

    model: str
    temperature: float
    max_tokens: int
    retries: int  # re-asks of an answer that is not a valid score (HTTP failures have their own retries)
    base_url: str | None = None

    def public(self) -> dict[str, Any]:
        """The settings as results.json and score files record them; credentials in the URL are masked."""
        return {
            "model": self.model,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "retries": self.retries,
            "base_url": redact_url(self.base_url),
        }


def resolve_judge_settings(
    task: Any,
    protocol: str,
    *,
    model: str | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    retries: int | None = None,
    base_url: str | None = None,
) -> JudgeSettings:
    """The judge settings of `task` (a TaskConfig or task name) under `protocol`, with the given overrides."""
    from tinyllava_bench.tasks.registry import load_task

    task = load_task(task)
    if not task.judged:
        raise UserError(f"task {task.name} is not judged; judge settings apply to mmvet and llava_wild")
    base = task.judge_for(protocol)
    if model is not None and not model.strip():
        raise UserError("--judge-model is empty: name a model, or leave the flag out for the task file's")
    if temperature is not None and not 0.0 <= temperature <= 2.0:  # `not <=` also refuses nan
        raise UserError(f"--judge-temperature {temperature!r} is not valid: it must be between 0 and 2")
    if max_tokens is not None and max_tokens < 1:
        raise UserError(f"--judge-max-tokens {max_tokens!r} is not valid: it must be a whole number >= 1")
    if retries is not None and retries < 0:
        raise UserError(f"--judge-retries {retries!r} is not valid: it must be a whole number >= 0")
    return JudgeSettings(
        model=model if model is not None else base.model,
        temperature=float(temperature if temperature is not None else base.temperature),
        max_tokens=int(max_tokens if max_tokens is not None else base.max_tokens),
        retries=int(retries if retries is not None else base.retries),
        base_url=base_url or None,
    )


def add_judge_arguments(parser: argparse.ArgumentParser, cache_default: str) -> None:
    """The judge flags `eval` and `score` share (`cache_default` says where the cache goes without --judge-cache)."""
    for flag, (_field, kind, metavar, help_text) in JUDGE_FLAGS.items():
        parser.add_argument(flag, type=kind, default=None, metavar=metavar, help=help_text)
    parser.add_argument(
        "--judge-base-url",
        default=None,
        metavar="URL",
        help="OpenAI-compatible endpoint of the judge; its key in OPENAI_API_KEY",
    )
    parser.add_argument(
        "--judge-cache", default=None, metavar="DIR", help=f"judge answer cache (default: {cache_default})"
    )


def judge_overrides(source: Any) -> dict[str, Any]:
    """The judge overrides an argparse namespace or an EvalConfig carries, as resolve_judge_settings' keywords."""
    overrides = {"base_url": getattr(source, "judge_base_url", None)}
    for field, *_ in JUDGE_FLAGS.values():
        overrides[field] = getattr(source, f"judge_{field}", None)
    return overrides


def check_judge_ready(cache_dir: Path | str) -> None:
    """What a judged run needs, checked before any paid work (generation, judge calls): the API key, valid
    TINYLLAVA_BENCH_JUDGE_* variables and a judge cache that can be written."""
    from tinyllava_bench.judge.cache import JudgeCache
    from tinyllava_bench.judge.client import judge_settings_from_env, require_api_key

    require_api_key()
    judge_settings_from_env()
    JudgeCache(cache_dir).check_writable()


def open_judge_client(settings: JudgeSettings, cache_dir: Path | str) -> Any:
    """A JudgeClient asking as `settings` say, its answers cached in `cache_dir` (checked first)."""
    from tinyllava_bench.judge.client import JudgeClient, judge_settings_from_env

    check_judge_ready(cache_dir)
    return JudgeClient(
        settings.model,
        base_url=settings.base_url,
        cache_dir=cache_dir,
        settings=settings,
        **judge_settings_from_env(),
    )
