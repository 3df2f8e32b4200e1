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
from tinyllava_bench.metrics import PROTOCOLS
from tinyllava_bench.metrics.llava_wild import (
    CATEGORIES as LLAVA_WILD_CATEGORIES,
)
from tinyllava_bench.metrics.llava_wild import (
    JUDGE_SETTINGS as LLAVA_WILD_JUDGE_SETTINGS,
)
from tinyllava_bench.metrics.llava_wild import (
    build_llava_wild_judge_messages,
    load_judge_spec,
    parse_llava_review,
)
from tinyllava_bench.metrics.mmvet import JUDGE_SETTINGS as MMVET_JUDGE_SETTINGS
from tinyllava_bench.metrics.mmvet import build_mmvet_judge_message, parse_mmvet_score

# Judge model ids of the original runs; GPT-judged scores drift with the judge, so record whichever is used.
OFFICIAL_MMVET_JUDGE_MODEL: str = MMVET_JUDGE_SETTINGS["official"]["model"]
OFFICIAL_LLAVA_WILD_JUDGE_MODEL: str = LLAVA_WILD_JUDGE_SETTINGS["official"]["model"]
LMMS_EVAL_JUDGE_MODEL: str = MMVET_JUDGE_SETTINGS["lmms-eval"]["model"]  # its MODEL_VERSION default

MMVET_OFFICIAL_MAX_TRIES = 5  # the grader gives up (score 0.0) once its try counter passes this
MMVET_LMMS_EVAL_EMPTY_PATIENCE = 3  # get_chat_response asks this many times while the answer is empty
# lmms-eval re-asks forever at the same temperature while the judge answers a number outside [0, 1];
# we stop after this many such answers and record an error rather than loop.
MMVET_LMMS_EVAL_OUT_OF_RANGE_LIMIT = 5

Score = float | tuple[float, float]


@dataclass(frozen=True)
class JudgeOutcome:
    """The judge's verdict on one sample; `score` is None exactly when `error` is set."""

    question_id: Any
    score: Score | None  # MM-Vet: correctness in [0, 1]; LLaVA-W: (reference score, model score)
    content: str | None  # the last raw judge answer this verdict rests on
    n_requests: int  # HTTP requests sent for this sample (0 when everything came from the cache)
    cached: bool  # every judge answer used came from the cache
    error: str | None
    judge_model: str  # the model id asked for
    served_model: str | None  # the model id the endpoint reported (last answer)
    protocol: str


def default_judge_model(task: str, protocol: str = "official") -> str:
    """The judge the original runs used for `task` ("mmvet" or "llava_wild") under `protocol`."""
    _check_protocol(protocol)
    if task == "mmvet":
        return MMVET_JUDGE_SETTINGS[protocol]["model"]
    if task == "llava_wild":
        return LLAVA_WILD_JUDGE_SETTINGS[protocol]["model"]
    raise UserError(f"no judge for task {task!r}: use 'mmvet' or 'llava_wild'.")


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

    def outcome(self, score: Score | None, error: str | None = None) -> JudgeOutcome:
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
        )


def _user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def _judge_mmvet_official(
    tally: _SampleTally, question: str, gt_answer: str, prediction: str
) -> JudgeOutcome:
    settings = MMVET_JUDGE_SETTINGS["official"]
    max_tokens = settings["max_tokens"]
    temperature = float(settings["temperature"])
    reply = tally.ask(
        _user(build_mmvet_judge_message(question, gt_answer, prediction)), temperature, max_tokens
    )
    if not reply.ok:
        return tally.outcome(None, reply.error)
    score = parse_mmvet_score(reply.content, "official")
    retry_messages = _user(build_mmvet_judge_message(question, gt_answer, prediction, "official", retry=True))
    try_time = 1
    while score is None:
        # As in the grader: the first retry still runs at temperature 0; +0.5 after each retry; the answer to
        # the retry that pushes the counter past the limit is never parsed.
        reply = tally.ask(retry_messages, temperature, max_tokens)
        if not reply.ok:
            return tally.outcome(None, reply.error)
        try_time += 1
        temperature += 0.5
        if try_time > MMVET_OFFICIAL_MAX_TRIES:
            score = 0.0
            break
        score = parse_mmvet_score(reply.content, "official")
    return tally.outcome(score)


def _reads_as_number(content: str) -> bool:
    """Whether lmms-eval's float() of the first word succeeds (then it re-asks at the same temperature)."""
    try:
        float(content.strip().split(" ")[0].strip())
    except ValueError:
        return False
    return True


def _judge_mmvet_lmms_eval(
    tally: _SampleTally, question: str, gt_answer: str, prediction: str
) -> JudgeOutcome:
    settings = MMVET_JUDGE_SETTINGS["lmms-eval"]
    max_tokens = settings["max_tokens"]
    temperature = float(settings["temperature"])
    messages = _user(build_mmvet_judge_message(question, gt_answer, prediction, "lmms-eval"))
    asks_at: dict[float, int] = {}  # identical requests re-asked on purpose must not be served from the cache
    out_of_range = 0
    while True:
        content = ""
        for _ in range(MMVET_LMMS_EVAL_EMPTY_PATIENCE):
            repeat = asks_at.get(temperature, 0)
            asks_at[temperature] = repeat + 1
            reply = tally.ask(messages, temperature, max_tokens, repeat=repeat)
            if not reply.ok:
                return tally.outcome(None, reply.error)
            content = (reply.content or "").strip()
            if content:
                break
        if not content:
            return tally.outcome(0.0)
        score = parse_mmvet_score(content, "lmms-eval")
        if score is not None:
            return tally.outcome(score)
        if not _reads_as_number(content):
            # lmms-eval also sends one more request here and throws its answer away; it cannot change the
            # score, so we do not pay for it.
            temperature += 0.5
            if temperature >= 2:
                return tally.outcome(0.0)
            continue
        out_of_range += 1
        if out_of_range >= MMVET_LMMS_EVAL_OUT_OF_RANGE_LIMIT:
            return tally.outcome(
                None,
                f"judge answered a number outside [0, 1] {out_of_range} times ({content!r}); "
                "lmms-eval would keep asking forever",
            )


def judge_mmvet(
    client: JudgeClient,
    rows: Sequence[Mapping[str, Any]],
    predictions: Mapping[Any, str | None] | Sequence[str | None],
    protocol: str = "official",
    workers: int = 4,
) -> list[JudgeOutcome]:
    """Grade MM-Vet predictions (rows: question_id, question, answer); outcomes in the order of `rows`."""
    _check_protocol(protocol)
    _require_columns(rows, ("question", "answer"), "MM-Vet")
    judge_one = _judge_mmvet_official if protocol == "official" else _judge_mmvet_lmms_eval

    def judge(item: tuple[Mapping[str, Any], str | None]) -> JudgeOutcome:
        row, prediction = item
        tally = _SampleTally(client, row.get("question_id"), protocol)
        if prediction is None:
            return tally.outcome(None, "no prediction for this question")
        return judge_one(tally, row["question"], row["answer"], prediction)

    return _map_in_order(judge, list(zip(rows, _align_predictions(rows, predictions), strict=True)), workers)


def judge_llava_wild(
    client: JudgeClient,
    rows: Sequence[Mapping[str, Any]],
    predictions: Mapping[Any, str | None] | Sequence[str | None],
    protocol: str = "official",
    rules: Mapping[str, Any] | None = None,
    workers: int = 4,
) -> list[JudgeOutcome]:
    """Review LLaVA-W answers against the rows' `gpt_answer`; each score is (reference, model), in row order.

    `rules`: a llava_wild_judge.json-like spec or a bare LLaVA rule.json table (default: the bundled one).
    """
    _check_protocol(protocol)
    _require_columns(rows, ("question", "caption", "gpt_answer", "category"), "LLaVA-Bench-in-the-Wild")
    rule_table = load_judge_spec()["rules"] if rules is None else rules.get("rules", rules)
    # Check every category before paying for any request: the official script asserts mid-run, and lmms-eval
    # would silently send an empty rule.
    for row in rows:
        if f"llava_bench_{row['category']}" not in rule_table:
            raise UserError(
                f"LLaVA-W question {row.get('question_id')!r} has category {row['category']!r} with no review "
                f"rule: use one of {', '.join(LLAVA_WILD_CATEGORIES)}."
            )
    settings = LLAVA_WILD_JUDGE_SETTINGS[protocol]

    def judge(item: tuple[Mapping[str, Any], str | None]) -> JudgeOutcome:
        row, prediction = item
        tally = _SampleTally(client, row.get("question_id"), protocol)
        if prediction is None:
            return tally.outcome(None, "no prediction for this question")
        messages = build_llava_wild_judge_messages(row, prediction, rules, protocol)
        reply = tally.ask(messages, float(settings["temperature"]), settings["max_tokens"])
        if not reply.ok:
            return tally.outcome(None, reply.error)
        reference_score, model_score = parse_llava_review(reply.content, protocol)
        return tally.outcome((reference_score, model_score))

    return _map_in_order(judge, list(zip(rows, _align_predictions(rows, predictions), strict=True)), workers)


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
