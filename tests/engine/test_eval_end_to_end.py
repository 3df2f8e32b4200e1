"""`eval` end to end: all eight tasks on a tiny checkpoint (judged ones through a local OpenAI-compatible server),
every checkpoint layout, the run folder's schema, and one-line errors."""

from __future__ import annotations

import json

import pytest

from tests.judge_server import JudgeServer
from tinyllava_bench.cli import main
from tinyllava_bench.tasks.registry import all_tasks

# what `--tasks all` runs (the registry's in_all tasks)
ALL_TASKS = all_tasks()

SHORT = ["--task-options", "generation.max_new_tokens=12", "--batch-size", "4", "--num-workers", "0"]


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("data")
    for task in ALL_TASKS:
        write_task_data(task, root, n=6, seed=3)
    return root


def _judge_reply(body, _call):
    content = body["messages"][-1]["content"]
    return "8 6\nAssistant 2 is less detailed." if "[Assistant 1]" in content else "0.5"


def test_all_eight_tasks(tiny_checkpoints, data_root, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret-key-123456")
    checkpoint = tiny_checkpoints("qwen2", "clip")["native"]
    with JudgeServer(reply=_judge_reply) as server:
        args = [
            "eval",
            "--model",
            str(checkpoint),
            "--tasks",
            "all",
            "--data-root",
            str(data_root),
            "--output",
            str(tmp_path),
            "--judge-model",
            "judge-test",
            "--judge-base-url",
            server.base_url,
            *SHORT,
        ]
        assert main(args) == 0
        first_calls = server.request_count
        # one request per distinct (question, prediction) of the 6 MM-Vet + 6 LLaVA-W samples: never one twice
        sent = [json.dumps(body["messages"], sort_keys=True) for body in server.requests]
        assert 2 <= first_calls <= 12 and len(set(sent)) == len(sent)
        assert main(args) == 0  # a rerun: nothing generated, every judge answer from the cache
        assert server.request_count == first_calls
    out = capsys.readouterr().out
    assert "task" in out and "mme" in out and "perception" in out

    results = json.loads((tmp_path / "results.json").read_text())
    assert results["schema_version"] == 1 and set(results["tasks"]) == set(ALL_TASKS)
    headline = {
        "vqav2": "accuracy",
        "gqa": "accuracy",
        "scienceqa_img": "accuracy",
        "textvqa": "accuracy",
        "pope": "f1",
        "mme": "perception",
        "mmvet": "total",
        "llava_wild": "relative_score",
    }
    for task, entry in results["tasks"].items():
        assert entry["headline"] == headline[task]
        assert entry["headline"] in entry["metrics"], task
        assert entry["n_samples"] == 6 and entry["n_errors"] == 0 and entry["protocol"] == "official"
        samples = [json.loads(line) for line in (tmp_path / f"samples_{task}.jsonl").read_text().splitlines()]
        assert [s["index"] for s in samples] == list(range(6))
        for sample in samples:
            assert sample["prompt"].endswith("ASSISTANT:") and isinstance(sample["prediction"], str)
            assert "parsed" in sample and sample["error"] is None
            # GQA's official accuracy leaves unbalanced questions out: they carry no score
            assert sample["score"] is not None or (
                task == "gqa" and not sample["fields"].get("isBalanced", True)
            )
    assert results["tasks"]["mmvet"]["metrics"]["total"] == pytest.approx(50.0)
    assert results["tasks"]["mmvet"]["judge_model"] == "judge-test"
    assert results["tasks"]["llava_wild"]["metrics"]["relative_score"] == pytest.approx(75.0)
    provenance = results["provenance"]
    for key in (
        "tool_version",
        "packages",
        "device",
        "checkpoint_fingerprint",
        "seed",
        "wall_time_s",
        "samples_per_s",
        "started_at",
    ):
        assert key in provenance, key
    assert results["tasks"]["gqa"]["dataset"]["fingerprint"]
    assert results["config"]["model_settings"]["template"] == "qwen2_base"
    # the API key is in no file the run wrote
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"sk-test-secret-key-123456" not in path.read_bytes(), path


@pytest.mark.parametrize("layout", ["legacy", "factory", "factory_split", "hf_llava"])
def test_every_layout_evaluates(tiny_checkpoints, data_root, tmp_path, layout):
    checkpoint = tiny_checkpoints("phi", "siglip")[layout]
    assert (
        main(
            [
                "eval",
                "--model",
                str(checkpoint),
                "--tasks",
                "pope",
                "--data-root",
                str(data_root),
                "--output",
                str(tmp_path),
                *SHORT,
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["model"]["layout"] == ("factory" if layout == "factory_split" else layout)
    assert 0.0 <= results["tasks"]["pope"]["metrics"]["f1"] <= 100.0


def test_user_errors_are_one_line(tiny_checkpoints, data_root, tmp_path, capsys):
    checkpoint = tiny_checkpoints("phi", "siglip")["native"]
    assert main(["eval", "--model", str(checkpoint), "--tasks", "nope", "--output", str(tmp_path)]) == 2
    assert "unknown task" in capsys.readouterr().err
    assert (
        main(["eval", "--model", str(tmp_path / "missing"), "--tasks", "gqa", "--output", str(tmp_path)]) == 1
    )
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
