"""Judge client for any OpenAI-compatible endpoint: our own retry loop around the `openai` client, plus the cache.

A per-sample failure comes back as a `JudgeReply` with `error` set; it is never raised and never cached.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.judge.cache import JudgeCache, request_cache_key
from tinyllava_bench.judge.redaction import Redactor

if TYPE_CHECKING:
    from tinyllava_bench.judge.settings import JudgeSettings

log = logging.getLogger(__name__)

API_KEY_ENV = "OPENAI_API_KEY"

# Retry settings for runs that cannot pass them as arguments (the eval and score verbs): see judge_settings_from_env.
TIMEOUT_ENV = "TINYLLAVA_BENCH_JUDGE_TIMEOUT"  # seconds per HTTP request (default 120)
RETRIES_ENV = "TINYLLAVA_BENCH_JUDGE_RETRIES"  # retries after the first request (default 6)
BACKOFF_ENV = "TINYLLAVA_BENCH_JUDGE_BACKOFF"  # seconds before the first retry, doubling up to 60 (default 1)

# 408/409 are what OpenAI documents as transient besides 429 and 5xx; other 4xx (bad key, unknown model,
# request too long) will not get better by asking again.
RETRYABLE_STATUS = frozenset({408, 409, 429})


@dataclass(frozen=True)
class JudgeReply:
    """One judge answer: `content` on success, `error` when the retry budget ran out or the request was refused."""

    content: str | None
    error: str | None = None
    served_model: str | None = None  # the model id the endpoint reported, which may differ from the one asked
    n_requests: int = 0  # HTTP requests sent for this reply; 0 on a cache hit
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


def require_api_key() -> str:
    """The judge's API key from OPENAI_API_KEY; a UserError when it is not set."""
    api_key = os.environ.get(API_KEY_ENV, "")
    if not api_key.strip():
        raise UserError(
            f"{API_KEY_ENV} is not set: export {API_KEY_ENV}=<your key> before judging "
            "(any non-empty value works for a local OpenAI-compatible server)."
        )
    return api_key


def judge_settings_from_env() -> dict[str, Any]:
    """JudgeClient keyword arguments (timeout, max_retries, backoff) set by the TINYLLAVA_BENCH_JUDGE_* variables."""
    settings: dict[str, Any] = {}
    for variable, name, kind, lowest, rule in (
        (TIMEOUT_ENV, "timeout", float, 1e-3, "a number of seconds > 0"),
        (RETRIES_ENV, "max_retries", int, 0, "a whole number >= 0"),
        (BACKOFF_ENV, "backoff", float, 0.0, "a number of seconds >= 0"),
    ):
        text = os.environ.get(variable, "").strip()
        if not text:
            continue
        try:
            value = kind(text)
        except ValueError:
            value = None
        if value is None or not value >= lowest:  # `not >=` also refuses nan
            raise UserError(f"{variable}={text!r} is not valid: it must be {rule}")
        settings[name] = value
    return settings


class JudgeClient:
    """Chat-completions judge with retries, exponential backoff and an on-disk answer cache."""

    def __init__(
        self,
        model: str,
        base_url: str | None = None,
        *,
        cache_dir: Path | str,
        max_retries: int = 6,
        timeout: float = 120.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        settings: JudgeSettings | None = None,
    ) -> None:
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        api_key = require_api_key()
        self.model = model
        self.base_url = base_url
        # how the judging loops ask (temperature, max_tokens, re-asks); None: the task file's for the protocol
        self.settings = settings
        self.max_retries = max_retries
        self.timeout = timeout
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.cache = JudgeCache(cache_dir)
        # Scrubs the key and the URL's credentials out of error text a server may echo back; never stored.
        self.redact = Redactor(base_url, api_key)
        # Imported here: the openai package takes about a second to import and most commands never judge.
        import openai

        # The openai client's own retries are off: ours also cover malformed bodies and log what happened.
        self._openai = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0, timeout=timeout)

    def build_request(
        self,
        messages: Sequence[Mapping[str, str]],
        temperature: float,
        max_tokens: int,
        extra_params: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The exact request body sent (and hashed for the cache): model, messages, sampling settings."""
        request: dict[str, Any] = {
            "model": self.model,
            "messages": [dict(message) for message in messages],
            # float/int so that 0 and 0.0 hash the same
            "temperature": float(temperature),
            "max_tokens": int(max_tokens),
        }
        for name, value in (extra_params or {}).items():
            if name in request:
                raise ValueError(f"extra_params may not override {name!r}")
            request[name] = value
        return request

    def complete(
        self,
        messages: Sequence[Mapping[str, str]],
        temperature: float,
        max_tokens: int,
        *,
        extra_params: Mapping[str, Any] | None = None,
        repeat: int = 0,
    ) -> JudgeReply:
        """Ask the judge once (from the cache when possible). `repeat` > 0 asks an identical request anew."""
        request = self.build_request(messages, temperature, max_tokens, extra_params)
        key = request_cache_key(request, repeat)
        # identical requests from parallel workers wait for the first one and then read its cached answer
        with self._key_locks_guard:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            hit = self.cache.get(key)
            if hit is not None:
                return JudgeReply(content=hit.content, served_model=hit.served_model, cached=True)
            return self._ask(request, key)

    def _ask(self, request: dict[str, Any], key: str) -> JudgeReply:
        last_problem = "no request sent"
        n_requests = 0
        for attempt in range(self.max_retries + 1):
            if attempt:
                time.sleep(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))
            n_requests += 1
            problem, retryable, content, served_model = self._send(request)
            if problem is None:
                self._store(key, request, content, served_model)
                return JudgeReply(content=content, served_model=served_model, n_requests=n_requests)
            last_problem = self._scrub(problem)
            log.info("judge request %d/%d failed: %s", attempt + 1, self.max_retries + 1, last_problem)
            if not retryable:
                break
        return JudgeReply(
            content=None,
            error=f"judge gave up after {n_requests} request(s): {last_problem}",
            n_requests=n_requests,
        )

    def _send(self, request: dict[str, Any]) -> tuple[str | None, bool, str, str | None]:
        """One HTTP request: (problem or None, whether retrying may help, content, served model)."""
        import openai

        try:
            response = self._openai.chat.completions.create(**request)
        except openai.APIStatusError as exc:
            status = exc.status_code
            retryable = status in RETRYABLE_STATUS or status >= 500
            return f"HTTP {status}: {_short(str(exc))}", retryable, "", None
        except openai.APITimeoutError:
            return f"timed out after {self.timeout:g}s", True, "", None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            return f"connection error: {_short(f'{type(cause).__name__}: {cause}')}", True, "", None
        except (openai.APIResponseValidationError, ValueError) as exc:
            # ValueError covers a body that is not JSON (json.JSONDecodeError) and one pydantic cannot read.
            return f"malformed reply: {_short(f'{type(exc).__name__}: {exc}')}", True, "", None

        choices = getattr(response, "choices", None)
        if not isinstance(choices, list) or not choices:
            return f"malformed reply: no choices in {_short(repr(response))}", True, "", None
        message = getattr(choices[0], "message", None)
        if message is None:
            return "malformed reply: first choice has no message", True, "", None
        content = getattr(message, "content", None)
        if content is not None and not isinstance(content, str):
            return f"malformed reply: content is {type(content).__name__}", True, "", None
        served_model = getattr(response, "model", None)
        # A null content (refusal, tool call) is an answer with no text; graders treat it as unparseable.
        return None, False, content or "", served_model if isinstance(served_model, str) else None

    def _scrub(self, text: str) -> str:
        return self.redact(text)

    def _store(self, key: str, request: dict[str, Any], content: str, served_model: str | None) -> None:
        # The run checked the cache folder before it started (check_writable); a write that fails later (a full
        # disk) must not throw away an answer that was paid for: the sample keeps it, only a rerun pays again.
        try:
            self.cache.put(key, request, content, served_model)
        except OSError as exc:
            log.warning("judge answer not cached (%s): %s", self.cache.root, exc.strerror or exc)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
