"""A flaky judge (429, 500, timeouts, dropped connections, malformed bodies on 30% of calls) changes no score; a
judge that keeps failing past the retry budget leaves a per-sample error that is counted and retried next run."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer
from tests.reliability.conftest import ROWS, assert_one_error_line, eval_argv, read_jsonl

JUDGED = ("mmvet", "llava_wild")
FAULT_KINDS = (429, 500, "delay", "drop", "malformed", "no_choices")
# quick retries so a fault costs milliseconds; the timeout sits well below the server's injected delay
FAST_JUDGE = {
    "OPENAI_API_KEY": "sk-local-test-key-0000",
    "TINYLLAVA_BENCH_JUDGE_TIMEOUT": "1",
    "TINYLLAVA_BENCH_JUDGE_RETRIES": "6",
    "TINYLLAVA_BENCH_JUDGE_BACKOFF": "0.01",
}


def judge_reply(body: dict, _call: int) -> str:
    content = body["messages"][-1]["content"]
    return "8 6\nAssistant 2 is less detailed." if "[Assistant 1]" in content else "0.5"


def fault_schedule(n_calls: int, fraction: float, seed: int) -> list:
    """Faults by call number: every kind once among the first 16 calls, then `fraction` of calls at random."""
    rng = random.Random(seed)
    head = list(FAULT_KINDS) + [None] * (16 - len(FAULT_KINDS))  # a run makes at least 12 good calls
    rng.shuffle(head)
    tail = [rng.choice(FAULT_KINDS) if rng.random() < fraction else None for _ in range(n_calls - len(head))]
    return head + tail


def judged_argv(
    checkpoint: Path, data_root: Path, output: Path, server: JudgeServer, *extra: str
) -> list[str]:
    return eval_argv(
        checkpoint,
        data_root,
        output,
        ",".join(JUDGED),
        "--batch-size",
        "6",
        "--judge-model",
        "judge-test",
        "--judge-base-url",
        server.base_url,
        *extra,
    )


def _scores(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    return {
        task: {
            "metrics": results["tasks"][task]["metrics"],
            "n_errors": results["tasks"][task]["n_errors"],
            "n_judge_failures": results["tasks"][task]["n_judge_failures"],
            "samples": [
                (s["index"], s["score"], s["error"]) for s in read_jsonl(run / f"samples_{task}.jsonl")
            ],
        }
        for task in JUDGED
    }


@pytest.fixture(scope="module")
def clean_run(fork_server, checkpoint, data_root, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("clean-judge")
    with JudgeServer(reply=judge_reply) as server:
        finished = fork_server.run(judged_argv(checkpoint, data_root, run, server), env=FAST_JUDGE)
    assert finished.returncode == 0, finished.stderr[-3000:]
    scores = _scores(run)
    assert all(scores[task]["n_errors"] == 0 for task in JUDGED)
    return run


def test_faults_on_30_percent_of_calls_leave_the_scores_of_a_clean_run(
    fork_server, checkpoint, data_root, clean_run, tmp_path
):
    schedule = fault_schedule(200, 0.3, seed=7)
    with JudgeServer(reply=judge_reply, faults=schedule, delay_s=3.0) as server:
        finished = fork_server.run(judged_argv(checkpoint, data_root, tmp_path, server), env=FAST_JUDGE)
        assert finished.returncode == 0, finished.stderr[-3000:]
        sent = list(server.faults_sent)
    assert _scores(tmp_path) == _scores(clean_run)
    # every kind of fault really happened, and they were about 30% of the calls
    assert {fault for fault in sent if fault is not None} == set(FAULT_KINDS)
    faulted = sum(fault is not None for fault in sent)
    assert 0.15 <= faulted / len(sent) <= 0.5, (faulted, len(sent))
    assert len(sent) - faulted == 2 * ROWS  # one good answer per sample, never one twice


def _failing_reply(poisoned: list[str]):
    """Answers like judge_reply, except a body without choices (malformed, retryable) for the poisoned questions."""

    def reply(body: dict, call: int):
        content = body["messages"][-1]["content"]
        if any(question in content for question in poisoned):
            return {"id": f"chatcmpl-{call}", "object": "chat.completion", "model": "judge-test"}
        return judge_reply(body, call)

    return reply


def _unique_question(data_root: Path, task: str) -> tuple[int, str]:
    import pandas as pd

    questions = list(pd.read_parquet(data_root / f"{task}.parquet", columns=["question"])["question"])
    for index, question in enumerate(questions):
        if sum(question in other for other in questions) == 1:
            return index, question
    raise AssertionError(f"no question of {task} is unique")


@pytest.mark.parametrize("keep_logs", [True, False], ids=["with-logs", "logs-deleted"])
def test_failures_past_the_retry_budget_are_recorded_counted_and_retried(
    fork_server, checkpoint, data_root, clean_run, tmp_path, keep_logs
):
    poisoned = {task: _unique_question(data_root, task) for task in JUDGED}
    env = {**FAST_JUDGE, "TINYLLAVA_BENCH_JUDGE_RETRIES": "2"}
    with JudgeServer(reply=_failing_reply([q for _, q in poisoned.values()])) as server:
        finished = fork_server.run(judged_argv(checkpoint, data_root, tmp_path, server), env=env)
        assert finished.returncode == 3, finished.stderr[-3000:]  # finished, two samples unjudged
        assert server.request_count == 2 * ROWS + 2 * 2  # the two poisoned samples: 3 requests each, not 1
    scores = _scores(tmp_path)
    for task, (index, _question) in poisoned.items():
        # counted once, as a judge failure (n_errors counts the samples that failed for other reasons)
        assert (scores[task]["n_errors"], scores[task]["n_judge_failures"]) == (0, 1)
        failed = [s for s in scores[task]["samples"] if s[2]]
        assert [s[0] for s in failed] == [index]
        assert failed[0][1] is None and "judge gave up after 3 request(s): malformed reply" in failed[0][2]
        # the sample still has its prediction: the rerun only asks the judge again
        assert read_jsonl(tmp_path / f"samples_{task}.jsonl")[index]["prediction"] is not None
    # the summary table's errors column
    for task in JUDGED:
        row = next(line.split() for line in finished.stdout.splitlines() if line.startswith(task + " "))
        assert row[-4:] == [str(ROWS), "0", "1", "official"], row
    if not keep_logs:  # README: the .partial logs may be deleted once a run is complete
        for log in tmp_path.glob("samples_*.partial*.jsonl"):
            log.unlink()

    with JudgeServer(reply=judge_reply) as server:
        finished = fork_server.run(judged_argv(checkpoint, data_root, tmp_path, server), env=env)
        assert finished.returncode == 0, finished.stderr[-3000:]
        assert server.request_count == 2  # only the two failed samples; the rest come from the cache
    assert _scores(tmp_path) == _scores(clean_run)
    assert json.loads((tmp_path / "results.json").read_text())["provenance"]["samples_generated"] == 0


@pytest.mark.parametrize(
    ("change", "fragments"),
    [
        ({"TINYLLAVA_BENCH_JUDGE_RETRIES": "lots"}, ["TINYLLAVA_BENCH_JUDGE_RETRIES='lots'", "whole number"]),
        ({"TINYLLAVA_BENCH_JUDGE_TIMEOUT": "0"}, ["TINYLLAVA_BENCH_JUDGE_TIMEOUT='0'", "seconds > 0"]),
        ({"TINYLLAVA_BENCH_JUDGE_BACKOFF": "-1"}, ["TINYLLAVA_BENCH_JUDGE_BACKOFF='-1'", "seconds >= 0"]),
        ({"OPENAI_API_KEY": ""}, ["OPENAI_API_KEY is not set"]),
    ],
    ids=["retries", "timeout", "backoff", "no-key"],
)
def test_judge_problems_found_before_any_generation(
    fork_server, checkpoint, data_root, tmp_path, change, fragments
):
    with JudgeServer(reply=judge_reply) as server:
        finished = fork_server.run(
            judged_argv(checkpoint, data_root, tmp_path, server), env={**FAST_JUDGE, **change}
        )
        assert server.request_count == 0
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, *fragments)
    assert not list(tmp_path.glob("samples_*"))  # refused before a single sample was generated


def test_an_unwritable_judge_cache_is_found_before_any_generation(
    fork_server, checkpoint, data_root, tmp_path
):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the judge cache should go")
    run = tmp_path / "run"
    with JudgeServer(reply=judge_reply) as server:
        argv = judged_argv(checkpoint, data_root, run, server, "--judge-cache", str(blocker / "cache"))
        finished = fork_server.run(argv, env=FAST_JUDGE)
        assert server.request_count == 0
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "judge cache", "--judge-cache")
    assert not list(run.glob("samples_*"))  # refused before a single sample was generated


def test_results_record_how_the_judge_was_asked(clean_run):
    from tinyllava_bench.tasks import load_task

    results = json.loads((clean_run / "results.json").read_text())
    for task in JUDGED:
        entry = results["tasks"][task]
        expected = load_task(task).judge_for("official")
        judge = dict(entry["judge"])
        assert judge.pop("base_url").startswith("http://127.0.0.1:")
        assert judge == {
            "model": "judge-test",  # --judge-model; the rest from tasks/<task>.yaml
            "temperature": expected.temperature,
            "max_tokens": expected.max_tokens,
            "retries": expected.retries,
        }
        assert entry["n_judge_failures"] == 0


def _strict_json(path: Path) -> dict:
    def refuse(constant: str):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


def test_judge_answers_that_are_no_score_are_counted_never_numbers(
    fork_server, checkpoint, data_root, tmp_path
):
    """One MM-Vet question judged "nan" and one LLaVA-W review without scores: the graders' stand-ins (0.0 and
    [-1, -1]) are used, each counted as a judge failure, and results.json stays valid JSON."""
    poisoned = {task: _unique_question(data_root, task) for task in JUDGED}

    def reply(body: dict, call: int) -> str:
        content = body["messages"][-1]["content"]
        if poisoned["mmvet"][1] in content and "[Assistant 1]" not in content:
            return "nan"
        if poisoned["llava_wild"][1] in content and "[Assistant 1]" in content:
            return "100 -5\nscores outside 1-10"
        return judge_reply(body, call)

    with JudgeServer(reply=reply) as server:
        finished = fork_server.run(judged_argv(checkpoint, data_root, tmp_path, server), env=FAST_JUDGE)
    assert finished.returncode in (0, 3), finished.stderr[-3000:]  # 3: the exit status of counted failures
    results = _strict_json(tmp_path / "results.json")
    for task, (index, _question) in poisoned.items():
        entry = results["tasks"][task]
        assert entry["n_judge_failures"] == 1, entry
        sample = read_jsonl(tmp_path / f"samples_{task}.jsonl")[index]
        assert sample["score"] == (0.0 if task == "mmvet" else -1.0)
    assert results["tasks"]["mmvet"]["metrics"]["total"] == pytest.approx(50.0 * (ROWS - 1) / ROWS, abs=0.05)
