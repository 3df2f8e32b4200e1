"""Resume after SIGKILL, data parallelism over 2 gloo processes, and batch size: none changes a prediction."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tinyllava_bench.cli import main

EVAL = [sys.executable, "-m", "tinyllava_bench", "eval"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoints):
    from tinyllava_bench.testing.datasets import write_task_data

    data = tmp_path_factory.mktemp("data")
    for task in ("gqa", "pope"):
        write_task_data(task, data, n=16, seed=1)
    return {"checkpoint": tiny_checkpoints("llama", "siglip")["factory"], "data": data}


def _args(setup, output: Path, *extra: str, tasks: str = "gqa,pope") -> list[str]:
    return [
        "--model",
        str(setup["checkpoint"]),
        "--tasks",
        tasks,
        "--data-root",
        str(setup["data"]),
        "--output",
        str(output),
        "--device",
        "cpu",
        "--num-workers",
        "0",
        "--task-options",
        "generation.max_new_tokens=24",
        *extra,
    ]


def _samples(run: Path, task: str) -> list[dict]:
    lines = (run / f"samples_{task}.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _comparable(run: Path) -> dict:
    results = json.loads((run / "results.json").read_text())
    tasks = {
        name: {k: entry[k] for k in ("metrics", "n_samples", "n_errors")}
        for name, entry in results["tasks"].items()
    }
    samples = {
        task: [
            {
                k: s[k]
                for k in ("key", "index", "question_id", "prompt", "prediction", "parsed", "score", "error")
            }
            for s in _samples(run, task)
        ]
        for task in results["tasks"]
    }
    return {"tasks": tasks, "samples": samples}


@pytest.fixture(scope="module")
def reference(setup, tmp_path_factory):
    run = tmp_path_factory.mktemp("reference")
    assert main(["eval", *_args(setup, run, "--batch-size", "1")]) == 0
    return _comparable(run)


def test_batch_8_equals_batch_1(setup, reference, tmp_path):
    assert main(["eval", *_args(setup, tmp_path, "--batch-size", "8")]) == 0
    assert _comparable(tmp_path) == reference
    assert len(reference["samples"]["gqa"]) == 16 and len(reference["samples"]["pope"]) == 16


def test_sigkill_mid_task_then_rerun_equals_uninterrupted(setup, reference, tmp_path):
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen(
        [*EVAL, *_args(setup, tmp_path, "--batch-size", "1")],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = tmp_path / "samples_gqa.partial.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and len(log.read_bytes().splitlines()) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished_before = len(log.read_bytes().splitlines())
    assert 3 <= finished_before < 16
    assert not (tmp_path / "samples_gqa.jsonl").exists()

    assert main(["eval", *_args(setup, tmp_path, "--batch-size", "1")]) == 0
    assert _comparable(tmp_path) == reference
    results = json.loads((tmp_path / "results.json").read_text())
    # the rerun generated only what the killed run had not finished
    assert results["provenance"]["samples_generated"] <= 32 - finished_before
    keys = [s["key"] for s in _samples(tmp_path, "gqa")]
    assert len(keys) == len(set(keys)) == 16


def test_rerun_redoes_nothing_and_changed_settings_redo_everything(setup, tmp_path):
    assert main(["eval", *_args(setup, tmp_path, "--batch-size", "4", tasks="gqa")]) == 0
    assert main(["eval", *_args(setup, tmp_path, "--batch-size", "4", tasks="gqa")]) == 0
    assert json.loads((tmp_path / "results.json").read_text())["provenance"]["samples_generated"] == 0
    # another template changes every prompt: nothing stale may be reused
    assert (
        main(
            ["eval", *_args(setup, tmp_path, "--batch-size", "4", "--model-args", "template=v1", tasks="gqa")]
        )
        == 0
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["provenance"]["samples_generated"] == 16
    assert (
        main(["eval", *_args(setup, tmp_path, "--batch-size", "4", "--protocol", "lmms-eval", tasks="gqa")])
        == 0
    )
    assert json.loads((tmp_path / "results.json").read_text())["provenance"]["samples_generated"] == 16


def test_torchrun_two_processes_equal_one(setup, reference, tmp_path):
    env = {**os.environ, "TQDM_DISABLE": "1", "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "tinyllava_bench",
        "eval",
        *_args(setup, tmp_path, "--batch-size", "3"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert _comparable(tmp_path) == reference
    assert sorted(p.name for p in tmp_path.glob("samples_gqa.partial*")) == [
        "samples_gqa.partial.rank0.jsonl",
        "samples_gqa.partial.rank1.jsonl",
    ]
