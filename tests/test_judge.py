"""Tests of the judge: the real openai client against the local server in judge_server.py (no network)."""

from __future__ import annotations

import json
import random
import threading
import time
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer, chat_completion_body
from tinyllava_bench.errors import UserError
from tinyllava_bench.judge import client as client_module
from tinyllava_bench.judge.client import JudgeClient
from tinyllava_bench.judge.tasks import judge_llava_wild, judge_mmvet
from tinyllava_bench.paths import PROTOCOL_DIR

API_KEY = "sk-test-SECRET-7f3a9c1e5b"
RETRY_SUFFIX = "\nPredict the correctness of the answer (digit): "
LLAVA_SYSTEM = "You are a helpful and precise assistant for checking the quality of the answer."

MMVET_ROWS = [
    {
        "question_id": "v1_0",
        "question": "What is x in the equation?",
        "answer": "-1<AND>-5",
        "capability": ["ocr"],
    },
    {"question_id": "v1_1", "question": "Which fruit?", "answer": "apple<OR>pear", "capability": ["rec"]},
]
LLAVA_ROW = {
    "question_id": 7,
    "question": "What is unusual about this image?",
    "caption": "A man irons clothes on a board attached to the roof of a moving taxi.",
    "gpt_answer": "The man is ironing on top of a moving car.",
    "category": "complex",
}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    return API_KEY


def make_client(server: JudgeServer, cache_dir: Path, model: str = "gpt-4-0613", **kwargs) -> JudgeClient:
    settings = {"max_retries": 2, "timeout": 2.0, "backoff": 0.001}
    settings.update(kwargs)
    return JudgeClient(model, base_url=server.base_url, cache_dir=cache_dir, **settings)


def cache_files(cache_dir: Path) -> list[Path]:
    return [path for path in cache_dir.rglob("*") if path.is_file()]


def ask(client: JudgeClient, text: str = "hello", temperature: float = 0.0, max_tokens: int = 3):
    return client.complete([{"role": "user", "content": text}], temperature, max_tokens)


def official_prompt() -> str:
    return (PROTOCOL_DIR / "mmvet_judge_fewshot_prompt.txt").read_text(encoding="utf-8")


# ------------------------------------------------------------------------------------------ client


def test_cache_hit_on_rerun_sends_no_request(tmp_path: Path) -> None:
    with JudgeServer(reply="0.5") as server:
        first = ask(make_client(server, tmp_path))
        second = ask(make_client(server, tmp_path))  # a fresh client, as after a crash or a rerun
        assert server.request_count == 1
    assert (first.content, first.cached, first.n_requests) == ("0.5", False, 1)
    assert (second.content, second.cached, second.n_requests) == ("0.5", True, 0)
    assert second.served_model == "gpt-4-0613"


def test_mmvet_rerun_is_served_from_the_cache(tmp_path: Path) -> None:
    with JudgeServer(reply="0.5") as server:
        first = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS, ["x = 3", "apple"])
        again = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS, ["x = 3", "apple"])
        assert server.request_count == 2
    assert [o.score for o in first] == [o.score for o in again] == [0.5, 0.5]
    assert [o.cached for o in first] == [False, False]
    assert [(o.cached, o.n_requests) for o in again] == [(True, 0), (True, 0)]


def test_cache_key_covers_model_messages_and_sampling_settings(tmp_path: Path) -> None:
    with JudgeServer(reply="0.5") as server:
        client = make_client(server, tmp_path)
        ask(client)
        ask(client, temperature=0)  # 0 and 0.0 are the same request
        assert server.request_count == 1
        ask(client, temperature=0.5)
        ask(client, max_tokens=4)
        ask(client, text="hello!")
        ask(make_client(server, tmp_path, model="another-judge"))
        assert server.request_count == 5
        assert client.complete([{"role": "user", "content": "hello"}], 0.0, 3, repeat=1).cached is False
        assert server.request_count == 6


def test_429_then_success(tmp_path: Path) -> None:
    with JudgeServer(reply="0.7", faults=[429]) as server:
        reply = ask(make_client(server, tmp_path))
        assert server.faults_sent == [429, None]
    assert (reply.content, reply.error, reply.n_requests) == ("0.7", None, 2)


def test_500s_until_give_up_are_recorded_not_cached_and_retried_next_run(tmp_path: Path) -> None:
    with JudgeServer(reply="0.5", fault_fraction=1.0, fraction_fault=500) as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path, max_retries=3), MMVET_ROWS[:1], ["x = 3"])
        assert server.request_count == 4  # 1 + 3 retries
    assert outcome.score is None
    assert outcome.error is not None and "HTTP 500" in outcome.error
    assert outcome.n_requests == 4 and outcome.cached is False
    assert cache_files(tmp_path) == []

    with JudgeServer(reply="0.5") as healthy:
        [rerun] = judge_mmvet(make_client(healthy, tmp_path), MMVET_ROWS[:1], ["x = 3"])
        assert healthy.request_count == 1
    assert (rerun.score, rerun.error, rerun.cached) == (0.5, None, False)


def test_backoff_doubles_and_is_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []

    class RecordingTime:
        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append(seconds)

    monkeypatch.setattr(client_module, "time", RecordingTime)
    with JudgeServer(fault_fraction=1.0, fraction_fault=503) as server:
        reply = ask(make_client(server, tmp_path, max_retries=4, backoff=0.001, max_backoff=0.005))
    assert reply.error is not None
    assert slept == [0.001, 0.002, 0.004, 0.005]


def test_timeout_is_retried_then_reported(tmp_path: Path) -> None:
    with JudgeServer(reply="0.3", faults=["delay"], delay_s=1.5) as server:
        reply = ask(make_client(server, tmp_path, timeout=0.2))
        assert server.request_count == 2
    assert (reply.content, reply.n_requests) == ("0.3", 2)

    with JudgeServer(fault_fraction=1.0, fraction_fault="delay", delay_s=1.5) as server:
        reply = ask(make_client(server, tmp_path / "all-slow", timeout=0.2, max_retries=1))
    assert reply.content is None
    assert reply.error is not None and "timed out after 0.2s" in reply.error


def test_dropped_connection_is_retried_then_reported(tmp_path: Path) -> None:
    with JudgeServer(reply="0.9", faults=["drop", "drop"]) as server:
        reply = ask(make_client(server, tmp_path))
        assert server.request_count == 3
    assert (reply.content, reply.n_requests) == ("0.9", 3)

    with JudgeServer(fault_fraction=1.0, fraction_fault="drop") as server:
        reply = ask(make_client(server, tmp_path / "all-dropped"))
    assert reply.error is not None and "connection error" in reply.error


@pytest.mark.parametrize("fault", ["malformed", "no_choices"])
def test_malformed_body_is_retried_then_reported(tmp_path: Path, fault: str) -> None:
    with JudgeServer(reply="1.0", faults=[fault]) as server:
        reply = ask(make_client(server, tmp_path))
        assert server.request_count == 2
    assert (reply.content, reply.error) == ("1.0", None)

    with JudgeServer(fault_fraction=1.0, fraction_fault=fault) as server:
        reply = ask(make_client(server, tmp_path / "all-broken"))
        assert server.request_count == 3
    assert reply.error is not None and "malformed reply" in reply.error
    assert cache_files(tmp_path / "all-broken") == []


def test_client_errors_other_than_429_are_not_retried(tmp_path: Path) -> None:
    with JudgeServer(faults=[400]) as server:
        reply = ask(make_client(server, tmp_path, max_retries=5))
        assert server.request_count == 1
    assert reply.error is not None and "HTTP 400" in reply.error


def test_seeded_fault_fraction_is_survived(tmp_path: Path) -> None:
    with JudgeServer(reply="0.4", fault_fraction=0.3, fraction_fault=502, seed=3) as server:
        outcomes = judge_mmvet(
            make_client(server, tmp_path, max_retries=8), MMVET_ROWS * 3, ["a", "b", "c", "d", "e", "f"]
        )
        n_faults = sum(fault is not None for fault in server.faults_sent)
    assert n_faults > 0
    assert [o.score for o in outcomes] == [0.4] * 6
    assert sum(o.n_requests for o in outcomes) == 6 + n_faults


def test_missing_api_key_is_a_user_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (None, "", "  "):
        if value is None:
            monkeypatch.delenv("OPENAI_API_KEY", raising=False)
        else:
            monkeypatch.setenv("OPENAI_API_KEY", value)
        with pytest.raises(UserError) as caught:
            JudgeClient("gpt-4-0613", base_url="http://127.0.0.1:9/v1", cache_dir=tmp_path)
        message = str(caught.value)
        assert "OPENAI_API_KEY" in message and "local" in message and "\n" not in message


def test_api_key_never_reaches_the_cache_dir(tmp_path: Path) -> None:
    with JudgeServer(reply=["nope", "0.5"], faults=[500]) as server:
        judge_mmvet(make_client(server, tmp_path), MMVET_ROWS, ["x = 3", "apple"], workers=1)
        with JudgeServer(fault_fraction=1.0, fraction_fault=401) as refusing:
            judge_mmvet(make_client(refusing, tmp_path / "refused"), MMVET_ROWS[:1], ["x"])
        # the key was in play: the server saw it
        headers = {name.lower(): value for name, value in server.headers[0].items()}
        assert headers["authorization"] == f"Bearer {API_KEY}"
    files = cache_files(tmp_path)
    assert len(files) >= 3
    for path in files:
        assert API_KEY.encode() not in path.read_bytes()
        assert API_KEY not in str(path)


def test_cache_entries_are_whole_files_and_a_corrupt_one_is_asked_again(tmp_path: Path) -> None:
    with JudgeServer(reply="0.6") as server:
        ask(make_client(server, tmp_path))
        [entry] = cache_files(tmp_path)
        assert entry.parent.parent == tmp_path and entry.name.startswith(entry.parent.name)
        stored = json.loads(entry.read_text())
        assert stored["content"] == "0.6" and stored["request"]["model"] == "gpt-4-0613"
        entry.write_text('{"key": "trunc')
        reply = ask(make_client(server, tmp_path))
        assert server.request_count == 2 and reply.content == "0.6"
        assert json.loads(entry.read_text())["content"] == "0.6"
        assert [p.name for p in cache_files(tmp_path)] == [entry.name]  # no temp files left behind


# ------------------------------------------------------------------------------------------ MM-Vet


def test_mmvet_first_request_body_is_the_official_one(tmp_path: Path) -> None:
    with JudgeServer(reply="0.5", served_model="gpt-4-0613-served") as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x = 3"])
        [body] = server.requests
    expected = official_prompt() + "\nWhat is x in the equation? | -1 <AND> -5 | x = 3 | "
    assert body == {
        "model": "gpt-4-0613",
        "messages": [{"role": "user", "content": expected}],
        "temperature": 0.0,
        "max_tokens": 3,
    }
    content = body["messages"][0]["content"]
    assert content.startswith("Compare the ground truth and prediction from AI models")
    assert "correctness score.\n\nQuestion | Ground truth | Prediction | Correctness\n" in content
    assert content.endswith("characteristics. | 1.0\n\nWhat is x in the equation? | -1 <AND> -5 | x = 3 | ")
    assert (outcome.score, outcome.content, outcome.judge_model) == (0.5, "0.5", "gpt-4-0613")
    assert outcome.served_model == "gpt-4-0613-served" and outcome.protocol == "official"


def test_mmvet_or_answers_are_spaced(tmp_path: Path) -> None:
    with JudgeServer(reply="1.0") as server:
        judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[1:], ["a pear"])
        [content] = server.user_contents()
    assert content.endswith("\nWhich fruit? | apple <OR> pear | a pear | ")


def test_mmvet_unparseable_answers_retry_then_score_zero_as_the_grader_does(tmp_path: Path) -> None:
    with JudgeServer(reply="The answer") as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x = 3"])
        bodies = server.requests
    first = official_prompt() + "\nWhat is x in the equation? | -1 <AND> -5 | x = 3 | "
    assert len(bodies) == 6  # the first ask and 5 retries
    assert [b["messages"] for b in bodies[1:]] == [[{"role": "user", "content": first + RETRY_SUFFIX}]] * 5
    assert bodies[1]["messages"][0]["content"].endswith(
        " | x = 3 | \nPredict the correctness of the answer (digit): "
    )
    assert [b["temperature"] for b in bodies] == [0.0, 0.0, 0.5, 1.0, 1.5, 2.0]
    assert {b["max_tokens"] for b in bodies} == {3}
    assert (outcome.score, outcome.error, outcome.n_requests) == (0.0, None, 6)
    # the grader's 0.0 stands in for a verdict the judge never gave: a judge failure, counted by the caller
    assert "no valid score in 6 answer(s)" in outcome.judge_error and "'The answer'" in outcome.judge_error


def test_mmvet_answer_to_the_last_retry_is_never_parsed(tmp_path: Path) -> None:
    with JudgeServer(reply=["no"] * 5 + ["1.0"]) as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x = -1 or x = -5"])
        assert server.request_count == 6
    assert outcome.score == 0.0 and outcome.content == "1.0"


def test_mmvet_score_found_on_a_retry_is_kept(tmp_path: Path) -> None:
    with JudgeServer(reply=["1.5", " 0.5", "0.7 because"]) as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x = -1"])
        assert server.request_count == 3  # out of range, then a leading space (no strip before split)
    assert outcome.score == 0.7


def test_mmvet_lmms_eval_protocol_requests_and_temperature_schedule(tmp_path: Path) -> None:
    with JudgeServer(reply="n/a") as server:
        [outcome] = judge_mmvet(
            make_client(server, tmp_path), MMVET_ROWS[:1], ["x = 3"], protocol="lmms-eval"
        )
        bodies = server.requests
    content = bodies[0]["messages"][0]["content"]
    expected = official_prompt().replace(
        "correctness score.\n\nQuestion | Ground truth", "correctness score.\ngpt_query_prompt | Ground truth"
    )
    assert content == expected + "\nWhat is x in the equation? | -1 <AND> -5 | x = 3 |"
    assert all(b["messages"] == bodies[0]["messages"] for b in bodies)
    assert [b["temperature"] for b in bodies] == [0.0, 0.5, 1.0, 1.5]
    assert {b["max_tokens"] for b in bodies} == {128}
    assert (outcome.score, outcome.error, outcome.protocol) == (0.0, None, "lmms-eval")
    assert "no valid score in 4 answer(s)" in outcome.judge_error


def test_mmvet_lmms_eval_strips_and_reasks_empty_answers(tmp_path: Path) -> None:
    with JudgeServer(reply=" 0.5") as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x"], protocol="lmms-eval")
    assert outcome.score == 0.5

    with JudgeServer(reply="") as server:
        [outcome] = judge_mmvet(
            make_client(server, tmp_path / "e"), MMVET_ROWS[:1], ["x"], protocol="lmms-eval"
        )
        assert [b["temperature"] for b in server.requests] == [0.0, 0.0, 0.0]
    assert (outcome.score, outcome.n_requests) == (0.0, 3) and outcome.judge_error

    # lmms-eval re-asks a number outside [0, 1] at the same temperature without end; here it spends the same
    # 3 re-asks as an unreadable answer, then scores 0.0 and counts a judge failure
    with JudgeServer(reply="5") as server:
        [outcome] = judge_mmvet(
            make_client(server, tmp_path / "o"), MMVET_ROWS[:1], ["x"], protocol="lmms-eval"
        )
        assert [b["temperature"] for b in server.requests] == [0.0, 0.0, 0.0, 0.0]
    assert (outcome.score, outcome.error) == (0.0, None) and "(last: '5')" in outcome.judge_error


def test_missing_prediction_sends_nothing(tmp_path: Path) -> None:
    with JudgeServer() as server:
        outcomes = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS, {"v1_1": "pear"})
        assert server.request_count == 1
    assert outcomes[0].score is None and outcomes[0].error == "no prediction for this question"
    assert (outcomes[1].question_id, outcomes[1].score) == ("v1_1", 1.0)


def test_outcomes_keep_input_order_with_workers(tmp_path: Path) -> None:
    rng = random.Random(0)
    delays = [rng.uniform(0.0, 0.05) for _ in range(12)]
    lock = threading.Lock()
    state = {"active": 0, "peak": 0}

    def reply(body: dict, index: int) -> str:
        number = int(body["messages"][0]["content"].rsplit("question ", 1)[1].split(" ")[0])
        with lock:
            state["active"] += 1
            state["peak"] = max(state["peak"], state["active"])
        time.sleep(delays[number])
        with lock:
            state["active"] -= 1
        return f"0.{number % 10}"

    rows = [{"question_id": f"q{i}", "question": f"question {i}", "answer": "a"} for i in range(12)]
    with JudgeServer(reply=reply) as server:
        outcomes = judge_mmvet(make_client(server, tmp_path), rows, [f"p{i}" for i in range(12)], workers=4)
    assert [o.question_id for o in outcomes] == [f"q{i}" for i in range(12)]
    assert [o.score for o in outcomes] == [float(f"0.{i % 10}") for i in range(12)]
    assert state["peak"] >= 2


def test_unknown_protocol_is_a_user_error(tmp_path: Path) -> None:
    with JudgeServer() as server, pytest.raises(UserError, match="official"):
        judge_mmvet(make_client(server, tmp_path), MMVET_ROWS, ["a", "b"], protocol="vlmevalkit")


# ------------------------------------------------------------------------------------------ LLaVA-W


def expected_review_content(caption: str, prediction: str, category: str = "complex") -> str:
    rule = json.loads((PROTOCOL_DIR / "llava_wild_judge.json").read_text())["rules"][
        f"llava_bench_{category}"
    ]
    assert rule["prompt"].startswith("We would like to request your feedback on the performance of two AI")
    return (
        f"[Context]\n{caption}\n\n[Question]\nWhat is unusual about this image?\n\n"
        "[Assistant 1]\nThe man is ironing on top of a moving car.\n\n[End of Assistant 1]\n\n"
        f"[Assistant 2]\n{prediction}\n\n[End of Assistant 2]\n\n[System]\n{rule['prompt']}\n\n"
    )


def test_llava_wild_first_request_body_is_the_official_one(tmp_path: Path) -> None:
    review = "8 6\nAssistant 1 is accurate; Assistant 2 misses the taxi."
    with JudgeServer(reply=review) as server:
        [outcome] = judge_llava_wild(
            make_client(server, tmp_path, model="gpt-4-0314"), [LLAVA_ROW], ["A man."]
        )
        [body] = server.requests
    assert body == {
        "model": "gpt-4-0314",
        "messages": [
            {"role": "system", "content": LLAVA_SYSTEM},
            {"role": "user", "content": expected_review_content(LLAVA_ROW["caption"], "A man.")},
        ],
        "temperature": 0.2,
        "max_tokens": 1024,
    }
    assert (outcome.score, outcome.content, outcome.error) == ((8.0, 6.0), review, None)
    assert (outcome.question_id, outcome.judge_model) == (7, "gpt-4-0314")


def test_llava_wild_caption_list_is_joined_by_newlines(tmp_path: Path) -> None:
    row = {**LLAVA_ROW, "caption": ["A taxi.", "A man irons."]}
    with JudgeServer(reply="7 7") as server:
        judge_llava_wild(make_client(server, tmp_path), [row], {7: "Ironing."})
        [content] = server.user_contents()
    assert content == expected_review_content("A taxi.\nA man irons.", "Ironing.")


def test_llava_wild_review_parsing_follows_each_protocol(tmp_path: Path) -> None:
    reviews = ["9 7\nwhy", "8, 6\nwhy", "Scores: 9 and 4\nwhy", "nothing"]
    rows = [{**LLAVA_ROW, "question_id": i} for i in range(len(reviews))]
    by_prediction = {f"answer {i}": review for i, review in enumerate(reviews)}

    def reply(body: dict, index: int) -> str:
        content = body["messages"][-1]["content"]
        return next(review for prediction, review in by_prediction.items() if f"\n{prediction}\n" in content)

    predictions = [f"answer {i}" for i in range(len(reviews))]
    with JudgeServer(reply=reply) as server:
        official = judge_llava_wild(make_client(server, tmp_path), rows, predictions)
        lmms = judge_llava_wild(make_client(server, tmp_path), rows, predictions, protocol="lmms-eval")
    # official: "8, 6" becomes "8  6", three tokens on single spaces, so (-1, -1)
    assert [o.score for o in official] == [(9.0, 7.0), (-1.0, -1.0), (-1.0, -1.0), (-1.0, -1.0)]
    assert [o.score for o in lmms] == [(9.0, 7.0), (8.0, 6.0), (9.0, 4.0), (-1.0, -1.0)]


def test_llava_wild_lmms_eval_request_has_no_system_message(tmp_path: Path) -> None:
    with JudgeServer(reply="5 5") as server:
        judge_llava_wild(make_client(server, tmp_path), [LLAVA_ROW], ["A man."], protocol="lmms-eval")
        [body] = server.requests
    assert body["messages"] == [
        {"role": "user", "content": expected_review_content(LLAVA_ROW["caption"], "A man.")}
    ]
    assert (body["temperature"], body["max_tokens"]) == (0.0, 1024)


def test_llava_wild_transport_failure_gives_no_score(tmp_path: Path) -> None:
    with JudgeServer(fault_fraction=1.0, fraction_fault=500) as server:
        [outcome] = judge_llava_wild(make_client(server, tmp_path), [LLAVA_ROW], ["A man."])
    assert outcome.score is None and outcome.error is not None and outcome.content is None


def test_llava_wild_unknown_category_fails_before_any_request(tmp_path: Path) -> None:
    rows = [LLAVA_ROW, {**LLAVA_ROW, "question_id": 8, "category": "chat"}]
    with JudgeServer() as server:
        with pytest.raises(UserError, match="'chat'"):
            judge_llava_wild(make_client(server, tmp_path), rows, ["a", "b"])
        assert server.request_count == 0


def test_server_reply_can_be_a_whole_body(tmp_path: Path) -> None:
    body = chat_completion_body(None, "judge-x")  # a null content (e.g. a refusal) reads as ""
    with JudgeServer(reply=lambda request, index: body) as server:
        reply = ask(make_client(server, tmp_path))
    assert (reply.content, reply.error, reply.served_model) == ("", None, "judge-x")


# ------------------------------------------------------------------ judge failures are never numbers (issue 16.4)


@pytest.mark.parametrize("protocol", ["official", "lmms-eval"])
@pytest.mark.parametrize("answer", ["nan", "NaN", "inf", "-inf"])
def test_mmvet_nan_and_inf_are_no_score(tmp_path: Path, protocol: str, answer: str) -> None:
    """The official range check lets "nan" through; here nan and inf are re-asked, then 0.0 and a failure."""
    with JudgeServer(reply=answer) as server:
        [outcome] = judge_mmvet(make_client(server, tmp_path), MMVET_ROWS[:1], ["x = 3"], protocol=protocol)
        assert server.request_count == (6 if protocol == "official" else 4)
    assert outcome.score == 0.0 and outcome.error is None
    assert outcome.judge_error and repr(answer) in outcome.judge_error


def test_llava_wild_unreadable_review_is_asked_again_afresh(tmp_path: Path) -> None:
    """A review without two scores is re-asked with a fresh request (not the cache's copy of the same one)."""
    with JudgeServer(reply=["I cannot rate this.", "8 6\nAssistant 2 is shorter."]) as server:
        [outcome] = judge_llava_wild(make_client(server, tmp_path), [LLAVA_ROW], ["A man."])
        bodies = server.requests
    assert len(bodies) == 2 and bodies[0] == bodies[1]  # the same request, answered twice
    assert (outcome.score, outcome.judge_error, outcome.error) == ((8.0, 6.0), None, None)
    with JudgeServer(reply="never asked") as server:  # a rerun replays both answers from the cache
        [again] = judge_llava_wild(make_client(server, tmp_path), [LLAVA_ROW], ["A man."])
        assert server.request_count == 0
    assert again.score == (8.0, 6.0)


@pytest.mark.parametrize("review", ["100 -5\nodd", "0 11\nodd", "nan nan\nodd", "no scores here"])
@pytest.mark.parametrize("protocol", ["official", "lmms-eval"])
def test_llava_wild_review_outside_1_to_10_is_a_failure(tmp_path: Path, review: str, protocol: str) -> None:
    with JudgeServer(reply=review) as server:
        [outcome] = judge_llava_wild(
            make_client(server, tmp_path), [LLAVA_ROW], ["A man."], protocol=protocol
        )
        assert server.request_count == 4  # the first ask and the task file's 3 re-asks
    assert (
        outcome.score == (-1.0, -1.0) and outcome.error is None
    )  # the graders' arithmetic for a failed review
    assert "no review with two scores in 1-10 in 4 answer(s)" in outcome.judge_error


def test_judge_settings_retries_are_the_budget(tmp_path: Path) -> None:
    from tinyllava_bench.judge.settings import resolve_judge_settings

    settings = resolve_judge_settings("llava_wild", "official", retries=0)
    with JudgeServer(reply="n/a") as server:
        [outcome] = judge_llava_wild(make_client(server, tmp_path), [LLAVA_ROW], ["A"], settings=settings)
        assert server.request_count == 1
    assert outcome.judge_error
    settings = resolve_judge_settings("mmvet", "official", retries=2)
    with JudgeServer(reply="n/a") as server:
        judge_mmvet(make_client(server, tmp_path / "m"), MMVET_ROWS[:1], ["x"], settings=settings)
        assert [b["temperature"] for b in server.requests] == [0.0, 0.0, 0.5]


# ------------------------------------------------------------------ the `score` verb and `eval` end to end

SCORE_ROWS = {
    "mmvet": [
        {"question_id": "v1_0", "question": "What is 2+2?", "answer": "4", "capability": "math"},
        {"question_id": "v1_1", "question": "Read the sign.", "answer": "STOP", "capability": "rec,ocr"},
    ],
    "llava_wild": [
        {**LLAVA_ROW, "question_id": 0, "category": "conv"},
        {**LLAVA_ROW, "question_id": 1, "category": "detail"},
    ],
}


def strict_json(path: Path) -> dict:
    """Parse as JSON proper: NaN and Infinity, which Python's json would accept, fail the test."""

    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def run_score(tmp_path: Path, task: str, server: JudgeServer, *extra: str, base_url: str | None = None):
    """`tinyllava-bench score TASK` on SCORE_ROWS (every row predicted); (exit code, score file or None)."""
    from tinyllava_bench.cli import main

    data = tmp_path / f"{task}.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in SCORE_ROWS[task]), encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(
            json.dumps({"question_id": row["question_id"], "prediction": f"answer {i}"}) + "\n"
            for i, row in enumerate(SCORE_ROWS[task])
        ),
        encoding="utf-8",
    )
    out = tmp_path / "out" / "score.json"
    argv = ["score", task, "--data", str(data), "--predictions", str(predictions), "--output", str(out)]
    code = main([*argv, "--judge-base-url", base_url or server.base_url, *extra])
    return code, (strict_json(out) if out.exists() else None)


def test_score_mmvet_judge_answering_nan_writes_valid_json_and_counts_failures(tmp_path, capsys) -> None:
    with JudgeServer(reply="nan") as server:
        code, result = run_score(tmp_path, "mmvet", server)
    assert result["metrics"]["total"] == 0.0  # the official grader's 0.0 after its re-asks
    assert result["n_judge_failures"] == 2
    assert all(s["judge_error"] and s["score"] == 0.0 and "error" not in s for s in result["samples"])
    assert "judge failures  2 sample(s)" in capsys.readouterr().out


def test_score_llava_wild_whose_reviews_all_failed_prints_no_score(tmp_path, capsys) -> None:
    with JudgeServer(reply="I would rather not rate these.") as server:
        code, result = run_score(tmp_path, "llava_wild", server)
        assert server.request_count == 2 * 4  # each review asked again 3 times
    assert [name for name in result["metrics"] if name != "unscored"] == []
    assert result["n_judge_failures"] == 2 and all(s["judge_error"] for s in result["samples"])
    out = capsys.readouterr().out
    assert "100.0" not in out and "judge failures  2 sample(s)" in out


def test_score_of_an_unjudged_task_counts_no_judge_failures() -> None:
    from tinyllava_bench.tasks import score_predictions

    rows = [{"question_id": 1, "question": "Is it red?", "answer": "yes", "category": "random"}]
    assert score_predictions("pope", rows, ["Yes"])["n_judge_failures"] == 0


@pytest.mark.parametrize("protocol", ["official", "lmms-eval"])
@pytest.mark.parametrize("task", ["mmvet", "llava_wild"])
def test_score_and_eval_judge_with_the_task_files_settings(tmp_path, task, protocol) -> None:
    """Both verbs resolve model, temperature, max_tokens and retries from tasks/<task>.yaml per protocol."""
    from tinyllava_bench.engine.eval_config import EvalConfig
    from tinyllava_bench.engine.runner import _judge_client
    from tinyllava_bench.tasks import load_task

    expected = load_task(task).judge_for(protocol)
    with JudgeServer(reply="0.5" if task == "mmvet" else "8 6\nok") as server:
        code, result = run_score(tmp_path, task, server, "--protocol", protocol)
        sent = {(b["model"], b["temperature"], b["max_tokens"]) for b in server.requests}
        config = EvalConfig(
            model="m",
            tasks=[task],
            output=tmp_path / "run",
            protocol=protocol,
            judge_base_url=server.base_url,
        )
        eval_client = _judge_client(load_task(task), config, tmp_path / "run")
    assert code == 0
    assert sent == {(expected.model, expected.temperature, expected.max_tokens)}
    recorded = {k: expected.model_dump()[k] for k in ("model", "temperature", "max_tokens", "retries")}
    assert result["judge"] == {**recorded, "base_url": server.base_url}
    assert eval_client.settings.public() == result["judge"]  # eval asks the judge exactly as score does


def test_judge_flags_override_the_task_file(tmp_path) -> None:
    with JudgeServer(reply="n/a") as server:
        extra = ["--judge-model", "judge-x", "--judge-temperature", "0.7", "--judge-max-tokens", "9"]
        code, result = run_score(tmp_path, "mmvet", server, *extra, "--judge-retries", "1")
        sent = [(b["model"], b["temperature"], b["max_tokens"]) for b in server.requests]
    # two samples: the first ask and 1 re-ask each (its answer never read), temperature as the grader raises it
    assert sorted(sent) == [("judge-x", 0.7, 9)] * 4
    assert result["judge"] == {
        "model": "judge-x",
        "temperature": 0.7,
        "max_tokens": 9,
        "retries": 1,
        "base_url": server.base_url,
    }


@pytest.mark.parametrize(
    ("flag", "value", "fragment"),
    [
        ("--judge-temperature", "nan", "between 0 and 2"),
        ("--judge-max-tokens", "0", ">= 1"),
        ("--judge-retries", "-1", ">= 0"),
    ],
)
def test_bad_judge_flags_are_one_line_before_any_request(tmp_path, capsys, flag, value, fragment) -> None:
    with JudgeServer() as server:
        code, result = run_score(tmp_path, "mmvet", server, flag, value)
        assert server.request_count == 0
    err = capsys.readouterr().err
    assert code == 2 and result is None and fragment in err and len(err.strip().splitlines()) == 1


def test_score_finds_an_unwritable_judge_cache_before_any_request(tmp_path, capsys) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache should go")
    with JudgeServer() as server:
        code, result = run_score(tmp_path, "mmvet", server, "--judge-cache", str(blocker / "cache"))
        assert server.request_count == 0
    err = capsys.readouterr().err
    assert code == 1 and result is None  # the run cannot proceed (docs/exit_status.md)
    assert "judge cache" in err and "--judge-cache" in err and len(err.strip().splitlines()) == 1


def test_judge_cache_write_failing_mid_run_keeps_the_answer(tmp_path) -> None:
    blocker = tmp_path / "blocked"
    with JudgeServer(reply="0.5") as server:
        client = make_client(server, blocker)
        blocker.write_text("the cache folder was replaced by a file after the run started")
        reply = ask(client)
    assert reply.ok and reply.content == "0.5"


# ------------------------------------------------------------------ credentials (issue 16.6)

URL_PASSWORD = "pa55-Wd9xQ"
URL_KEY = "QueryKey-77aa1"


def secret_url(server: JudgeServer) -> str:
    return server.base_url.replace("http://", f"http://alice:{URL_PASSWORD}@") + f"?api-key={URL_KEY}"


def test_redactor_masks_url_credentials_and_the_key() -> None:
    from tinyllava_bench.judge.redaction import Redactor, redact_url

    url = f"https://bob:{URL_PASSWORD}@judge.example/v1?api-key={URL_KEY}&v=2"
    redact = Redactor(url, API_KEY)
    text = f"404 for {url}; no route /v1/?api-key={URL_KEY}chat; key {API_KEY}; auth bob:{URL_PASSWORD}"
    masked = redact(text)
    assert URL_PASSWORD not in masked and URL_KEY not in masked and API_KEY not in masked
    assert "https://***@judge.example/v1?api-key=***" in masked
    assert redact("other://carol:hunter22@host/x") == "other://***@host/x"  # any URL's userinfo
    assert redact("the user role is fine") == "the user role is fine"  # the user name alone is no secret
    assert redact_url(url) == "https://***@judge.example/v1?api-key=***&v=***"


def test_score_output_and_console_carry_no_url_credentials(tmp_path, capsys) -> None:
    """The server answers 404 echoing the request path, which the client built from the URL's query."""
    with JudgeServer(reply="0.5") as server:
        url = secret_url(server)
        code, result = run_score(tmp_path, "mmvet", server, base_url=url)
    captured = capsys.readouterr()
    text = (tmp_path / "out" / "score.json").read_text() + captured.out + captured.err
    assert URL_PASSWORD not in text and URL_KEY not in text
    errors = [s["error"] for s in result["samples"]]
    assert all("HTTP 404" in e and "api-key=***" in e for e in errors), errors  # the echo happened, masked
    assert result["judge"]["base_url"] == server.base_url.replace("http://", "http://***@") + "?api-key=***"
    assert result["n_judge_failures"] == 2
    cached = [path.read_text() for path in (tmp_path / "out" / "judge_cache").rglob("*") if path.is_file()]
    assert not any(URL_PASSWORD in entry or URL_KEY in entry for entry in cached)


@pytest.mark.parametrize(
    ("task", "protocol", "expected"),
    [
        # yuweihao/MM-Vet mm-vet_evaluator.py: gpt-4-0613, max_tokens 3, temperature 0, try counter past 5
        ("mmvet", "official", ("gpt-4-0613", 0.0, 3, 5)),
        # lmms-eval 0.7.3 mmvet/utils.py: MODEL_VERSION default, temperature 0.0, max_tokens 128, 0.0 at T 2.0
        ("mmvet", "lmms-eval", ("gpt-4o-2024-11-20", 0.0, 128, 3)),
        # LLaVA eval_gpt_review_bench.py: gpt-4-0314, temperature 0.2, max_tokens 1024 (re-asks: ours)
        ("llava_wild", "official", ("gpt-4-0314", 0.2, 1024, 3)),
        # lmms-eval 0.7.3 llava-in-the-wild/utils.py: OpenAIVerifier(temperature=0.0, max_tokens=1024)
        ("llava_wild", "lmms-eval", ("gpt-4o-2024-11-20", 0.0, 1024, 3)),
    ],
)
def test_task_files_carry_each_protocols_judge(task, protocol, expected) -> None:
    from tinyllava_bench.judge.settings import resolve_judge_settings
    from tinyllava_bench.judge.tasks import default_judge_model

    settings = resolve_judge_settings(task, protocol)
    assert (settings.model, settings.temperature, settings.max_tokens, settings.retries) == expected
    assert default_judge_model(task, protocol) == expected[0]


def test_the_task_schema_and_the_judge_name_the_same_judged_scorers():
    """tasks/config.py (below the judge's layer) requires a `judge:` block for these scorers; judge/tasks.py has a
    judge for each: a scorer added to one and not the other fails here, not in a user's run."""
    from tinyllava_bench.judge.tasks import JUDGES_BY_SCORER
    from tinyllava_bench.tasks.config import JUDGED_SCORERS

    assert set(JUDGED_SCORERS) == set(JUDGES_BY_SCORER)
