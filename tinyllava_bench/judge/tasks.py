"""Judging loops for MM-Vet and LLaVA-Bench-in-the-Wild, as the official graders and lmms-eval run them.

Official: yuweihao/MM-Vet `mm-vet_evaluator.py`; haotian-liu/LLaVA `llava/eval/eval_gpt_review_bench.py`.
lmms-eval (0.7.3): `lmms_eval/tasks/mmvet/utils.py`, `lmms_eval/tasks/llava-in-the-wild/utils.py`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from tinyllava_bench.errors import UserError
from tinyllava_bench.judge.client import JudgeClient, JudgeReply
from tinyllava_bench.judge.prompts import (
    build_llava_wild_judge_messages,
    build_mmvet_judge_message,
    load_llava_wild_judge_spec,
)
from tinyllava_bench.judge.settings import JudgeSettings, resolve_judge_settings
from tinyllava_bench.metrics import PROTOCOLS
from tinyllava_bench.metrics.llava_wild import (
    CATEGORIES as LLAVA_WILD_CATEGORIES,
)
from tinyllava_bench.metrics.llava_wild import (
    FAILED_REVIEW,
    parse_llava_review,
    review_is_valid,
)
from tinyllava_bench.metrics.mmvet import parse_mmvet_score

MMVET_LMMS_EVAL_EMPTY_PATIENCE = 3  # get_chat_response asks this many times while the answer is empty
MMVET_TEMPERATURE_STEP = 0.5  # both MM-Vet graders raise the temperature by this much per re-ask
# The API refuses more; only a --judge-retries above the graders' count reaches it (their last ask is at 2.0).
MMVET_MAX_TEMPERATURE = 2.0

Score = float | tuple[float, float]


@dataclass(frozen=True)
class JudgeOutcome:
    """The judge's verdict on one sample.

    `error`: no score at all (the judge could not be reached, no prediction); `score` is None exactly then.
    `judge_error`: the judge failed on this sample (set whenever `error` comes from the judge, and also when
    the grader's fallback score stands in for a verdict: MM-Vet's 0.0, LLaVA-W's [-1, -1]); such samples are
    what `n_judge_failures` counts.
    """

    question_id: Any
    score: Score | None  # MM-Vet: correctness in [0, 1]; LLaVA-W: (reference score, model score)
    content: str | None  # the last raw judge answer this verdict rests on
    n_requests: int  # HTTP requests sent for this sample (0 when everything came from the cache)
    cached: bool  # every judge answer used came from the cache
    error: str | None
    judge_model: str  # the model id asked for
    served_model: str | None  # the model id the endpoint reported (last answer)
    protocol: str
    judge_error: str | None = None


def default_judge_model(task: str, protocol: str = "official") -> str:
    """The judge model tasks/<task>.yaml names for `protocol` (a judged task: its YAML has a `judge:` block)."""
    from tinyllava_bench.tasks.registry import list_tasks, load_task

    _check_protocol(protocol)
    if not load_task(task).judged:
        judged = ", ".join(t.name for t in list_tasks() if t.judged)
        raise UserError(f"no judge for task {task!r}: use one of {judged}.")
    return resolve_judge_settings(task, protocol).model


# --------------------------------------------------------------------------------------------- loops


class _SampleTally:
    """What one sample's judge calls added up to."""

    def __init__(self, client: JudgeClient, question_id: Any, protocol: str) -> None:
        self.client = client
        self.question_id = question_id
        self.protocol = protocol
        self.n_requests = 0
        self.all_cached = True
        self.served_model: str | None = None
        self.content: str | None = None

    def ask(
        self, messages: list[dict[str, str]], temperature: float, max_tokens: int, repeat: int = 0
    ) -> JudgeReply:
        reply = self.client.complete(messages, temperature, max_tokens, repeat=repeat)
        self.n_requests += reply.n_requests
        self.all_cached = self.all_cached and reply.cached
        if reply.ok:
            self.content = reply.content
            self.served_model = reply.served_model or self.served_model
        return reply

    def outcome(self, score: Score | None, judge_error: str | None = None) -> JudgeOutcome:
        """A verdict; with `judge_error`, `score` is the grader's stand-in for the verdict the judge did not give."""
        return self._make(score, None, judge_error)

    def failed(self, error: str, *, by_judge: bool = True) -> JudgeOutcome:
        """No score at all: the judge could not be asked (`by_judge`) or there was nothing to ask about."""
        return self._make(None, error, error if by_judge else None)

    def _make(self, score: Score | None, error: str | None, judge_error: str | None) -> JudgeOutcome:
        return JudgeOutcome(
            question_id=self.question_id,
            score=None if error else score,
            content=self.content,
            n_requests=self.n_requests,
            cached=self.all_cached and self.n_requests == 0 and error is None,
            error=error,
            judge_model=self.client.model,
            served_model=self.served_model,
            protocol=self.protocol,
            judge_error=judge_error,
        )


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _not_a_score(content: str | None, n_asked: int, fallback: str) -> str:
    shown = _short_answer(content)
    return f"the judge gave no valid score in {n_asked} answer(s) (last: {shown}); scored {fallback} as the grader does"


def _short_answer(content: str | None, limit: int = 80) -> str:
    if content is None:
        return "none"
    return repr(content if len(content) <= limit else content[: limit - 3] + "...")


def _judge_mmvet_official(
    tally: _SampleTally, settings: JudgeSettings, question: str, gt_answer: str, prediction: str
) -> JudgeOutcome:
    max_tokens = settings.max_tokens
    temperature = float(settings.temperature)
    reply = tally.ask(
        _user(build_mmvet_judge_message(question, gt_answer, prediction)), temperature, max_tokens
    )
    if not reply.ok:
        return tally.failed(reply.error or "the judge failed")
    score = parse_mmvet_score(reply.content, "official")
    retry_messages = _user(build_mmvet_judge_message(question, gt_answer, prediction, "official", retry=True))
    n_retries = 0
    while score is None:
        # As in the grader: the first re-ask still runs at the start temperature, +0.5 after each; the answer to
        # the re-ask that spends the budget is never read (its try counter passes 5 first).
        if n_retries >= settings.retries:
            return tally.outcome(0.0, _not_a_score(tally.content, n_retries + 1, "0.0"))
        reply = tally.ask(retry_messages, temperature, max_tokens)
        if not reply.ok:
            return tally.failed(reply.error or "the judge failed")
        n_retries += 1
        temperature = min(MMVET_MAX_TEMPERATURE, temperature + MMVET_TEMPERATURE_STEP)
        if n_retries >= settings.retries:
            return tally.outcome(0.0, _not_a_score(tally.content, n_retries + 1, "0.0"))
        score = parse_mmvet_score(reply.content, "official")
    return tally.outcome(score)


def _judge_mmvet_lmms_eval(
    tally: _SampleTally, settings: JudgeSettings, question: str, gt_answer: str, prediction: str
) -> JudgeOutcome:
    max_tokens = settings.max_tokens
    temperature = float(settings.temperature)
    messages = _user(build_mmvet_judge_message(question, gt_answer, prediction, "lmms-eval"))
    asks_at: dict[float, int] = {}  # identical requests re-asked on purpose must not be served from the cache
    n_answers = 0
    while True:
        content = ""
        for _ in range(MMVET_LMMS_EVAL_EMPTY_PATIENCE):
            repeat = asks_at.get(temperature, 0)
            asks_at[temperature] = repeat + 1
            reply = tally.ask(messages, temperature, max_tokens, repeat=repeat)
            if not reply.ok:
                return tally.failed(reply.error or "the judge failed")
            content = (reply.content or "").strip()
            if content:
                break
        n_answers += 1
        if not content:
            return tally.outcome(0.0, _not_a_score(content, n_answers, "0.0"))
        score = parse_mmvet_score(content, "lmms-eval")
        if score is not None:
            return tally.outcome(score)
        # lmms-eval raises the temperature after an answer that is not a number (and sends one more request whose
        # answer it throws away: it cannot change the score, so we do not pay for it) and scores 0.0 once the
        # temperature reaches 2.0, i.e. after 3 re-asks; a number outside [0, 1] it asks again at the same
        # temperature without end. Both spend the same budget of re-asks here.
        if n_answers > settings.retries:
            return tally.outcome(0.0, _not_a_score(content, n_answers, "0.0"))
        if not _reads_as_number(content):
            temperature = min(MMVET_MAX_TEMPERATURE, temperature + MMVET_TEMPERATURE_STEP)


def _reads_as_number(content: str) -> bool:
    """Whether lmms-eval's float() of the first word succeeds (then it re-asks at the same temperature)."""
    try:
        float(content.strip().split(" ")[0].strip())
    except ValueError:
        return False
    return True


def judge_mmvet(
    client: JudgeClient,
    rows: Sequence[Mapping[str, Any]],
    predictions: Mapping[Any, str | None] | Sequence[str | None],
    protocol: str = "official",
    workers: int = 4,
    settings: JudgeSettings | None = None,
) -> list[JudgeOutcome]:
    """Grade MM-Vet predictions (rows: question_id, question, answer); outcomes in the order of `rows`.

    `settings` (temperature, max_tokens, re-asks): default the client's, else tasks/mmvet.yaml's for `protocol`;
    the model asked is always the client's.
    """
    _check_protocol(protocol)
    _require_columns(rows, ("question", "answer"), "MM-Vet")
    settings = settings or client.settings or resolve_judge_settings("mmvet", protocol, model=client.model)
    judge_one = _judge_mmvet_official if protocol == "official" else _judge_mmvet_lmms_eval

    def judge(item: tuple[Mapping[str, Any], str | None]) -> JudgeOutcome:
        row, prediction = item
        tally = _SampleTally(client, row.get("question_id"), protocol)
        if prediction is None:
            return tally.failed("no prediction for this question", by_judge=False)
        return judge_one(tally, settings, row["question"], row["answer"], prediction)

    return _map_in_order(judge, list(zip(rows, _align_predictions(rows, predictions), strict=True)), workers)


def judge_llava_wild(
    client: JudgeClient,
    rows: Sequence[Mapping[str, Any]],
    predictions: Mapping[Any, str | None] | Sequence[str | None],
    protocol: str = "official",
    rules: Mapping[str, Any] | None = None,
    workers: int = 4,
    settings: JudgeSettings | None = None,
) -> list[JudgeOutcome]:
    """Review LLaVA-W answers against the rows' `gpt_answer`; each score is (reference, model), in row order.

    `rules`: a llava_wild_judge.json-like spec or a bare LLaVA rule.json table (default: the bundled one).
    `settings`: default the client's, else tasks/llava_wild.yaml's for `protocol`; the model asked is the client's.
    A review that does not hold two scores in 1-10 is asked again with a fresh request (never the cache's copy)
    up to `settings.retries` times; then it counts as [-1, -1], as both graders count an unreadable review,
    with a judge error.
    """
    _check_protocol(protocol)
    _require_columns(rows, ("question", "caption", "gpt_answer", "category"), "LLaVA-Bench-in-the-Wild")
    rule_table = load_llava_wild_judge_spec()["rules"] if rules is None else rules.get("rules", rules)
    # Check every category before paying for any request: the official script asserts mid-run, and lmms-eval
    # would silently send an empty rule.
    for row in rows:
        if f"llava_bench_{row['category']}" not in rule_table:
            raise UserError(
                f"LLaVA-W question {row.get('question_id')!r} has category {row['category']!r} with no review "
                f"rule: use one of {', '.join(LLAVA_WILD_CATEGORIES)}."
            )
    settings = (
        settings or client.settings or resolve_judge_settings("llava_wild", protocol, model=client.model)
    )

    def judge(item: tuple[Mapping[str, Any], str | None]) -> JudgeOutcome:
        row, prediction = item
        tally = _SampleTally(client, row.get("question_id"), protocol)
        if prediction is None:
            return tally.failed("no prediction for this question", by_judge=False)
        messages = build_llava_wild_judge_messages(row, prediction, rules, protocol)
        for attempt in range(settings.retries + 1):
            # attempt > 0: the same request on purpose, so it must reach the judge, not the cached answer
            reply = tally.ask(messages, settings.temperature, settings.max_tokens, repeat=attempt)
            if not reply.ok:
                return tally.failed(reply.error or "the judge failed")
            pair = parse_llava_review(reply.content, protocol)
            if review_is_valid(pair):
                return tally.outcome((pair[0], pair[1]))
        first_line = (tally.content or "").strip().split("\n")[0]
        return tally.outcome(
            (FAILED_REVIEW[0], FAILED_REVIEW[1]),
            f"the judge gave no review with two scores in 1-10 in {settings.retries + 1} answer(s) "
            f"(last first line: {_short_answer(first_line)}); counted as [-1, -1] as the graders do",
        )

    return _map_in_order(judge, list(zip(rows, _align_predictions(rows, predictions), strict=True)), workers)


JudgeFunction = Callable[..., list[JudgeOutcome]]
# which judge scores a task, by the task's scorer (tasks/*.yaml `scorer`)
JUDGES_BY_SCORER: dict[str, JudgeFunction] = {"mmvet": judge_mmvet, "llava_wild": judge_llava_wild}


def judge_for_scorer(scorer: str | None) -> JudgeFunction:
    """The judge function for a judged task's scorer."""
    if scorer not in JUDGES_BY_SCORER:
        raise ValueError(f"no judge scores {scorer!r}; judged scorers: {', '.join(JUDGES_BY_SCORER)}")
    return JUDGES_BY_SCORER[scorer]


# --------------------------------------------------------------------------------------------- plumbing

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")


def _map_in_order(fn: Callable[[_Item], _Result], items: list[_Item], workers: int) -> list[_Result]:
    if workers <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="judge") as pool:
        return list(pool.map(fn, items))


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown judge protocol {protocol!r}: use one of {', '.join(PROTOCOLS)}.")


def _require_columns(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], task: str) -> None:
    for row in rows:
        missing = [column for column in columns if column not in row]
        if missing:
            raise UserError(
                f"{task} row {row.get('question_id')!r} lacks column(s) {', '.join(missing)}: "
                "give the dataset in the hub dataset's own column names."
            )


def _align_predictions(
    rows: Sequence[Mapping[str, Any]], predictions: Mapping[Any, str | None] | Sequence[str | None]
) -> list[str | None]:
    """One prediction per row: looked up by question_id (also as a string) or taken in order."""
    if isinstance(predictions, Mapping):
        aligned: list[str | None] = []
        for row in rows:
            question_id = row.get("question_id")
            if question_id in predictions:
                aligned.append(predictions[question_id])
            else:
                aligned.append(predictions.get(str(question_id)))
        return aligned
    if len(predictions) != len(rows):
        raise ValueError(f"{len(predictions)} predictions for {len(rows)} rows")
    return list(predictions)
