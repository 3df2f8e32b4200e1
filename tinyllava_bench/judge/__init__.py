"""GPT judge for MM-Vet and LLaVA-Bench-in-the-Wild: an OpenAI-compatible client with retries and a disk cache."""

from tinyllava_bench.judge.cache import JudgeCache, request_cache_key
from tinyllava_bench.judge.client import API_KEY_ENV, JudgeClient, JudgeReply, judge_settings_from_env
from tinyllava_bench.judge.tasks import (
    LMMS_EVAL_JUDGE_MODEL,
    OFFICIAL_LLAVA_WILD_JUDGE_MODEL,
    OFFICIAL_MMVET_JUDGE_MODEL,
    PROTOCOLS,
    JudgeOutcome,
    default_judge_model,
    judge_llava_wild,
    judge_mmvet,
)

__all__ = [
    "API_KEY_ENV",
    "LMMS_EVAL_JUDGE_MODEL",
    "OFFICIAL_LLAVA_WILD_JUDGE_MODEL",
    "OFFICIAL_MMVET_JUDGE_MODEL",
    "PROTOCOLS",
    "JudgeCache",
    "JudgeClient",
    "JudgeOutcome",
    "JudgeReply",
    "default_judge_model",
    "judge_llava_wild",
    "judge_mmvet",
    "judge_settings_from_env",
    "request_cache_key",
]
