"""GPT judge for MM-Vet and LLaVA-Bench-in-the-Wild: an OpenAI-compatible client with retries and a disk cache."""

from tinyllava_bench.judge.cache import JudgeCache, request_cache_key
from tinyllava_bench.judge.client import API_KEY_ENV, JudgeClient, JudgeReply, judge_settings_from_env
from tinyllava_bench.judge.redaction import Redactor, redact_url
from tinyllava_bench.judge.settings import (
    JudgeSettings,
    add_judge_arguments,
    check_judge_ready,
    judge_overrides,
    open_judge_client,
    resolve_judge_settings,
)
from tinyllava_bench.judge.tasks import (
    PROTOCOLS,
    JudgeOutcome,
    default_judge_model,
    judge_llava_wild,
    judge_mmvet,
)

__all__ = [
    "API_KEY_ENV",
    "PROTOCOLS",
    "JudgeCache",
    "JudgeClient",
    "JudgeOutcome",
    "JudgeReply",
    "JudgeSettings",
    "Redactor",
    "add_judge_arguments",
    "check_judge_ready",
    "default_judge_model",
    "judge_llava_wild",
    "judge_mmvet",
    "judge_overrides",
    "judge_settings_from_env",
    "open_judge_client",
    "redact_url",
    "request_cache_key",
    "resolve_judge_settings",
]
