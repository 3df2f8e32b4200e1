"""`eval --protocol lmms-eval` on MM-Vet samples as lmms-eval's tinyllava does (temperature 0.2), seeded per
sample, recorded in results.json, the same at any batch size; the paper protocol stays greedy."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer
from tinyllava_bench import load_model
from tinyllava_bench.cli import main
from tinyllava_bench.models.sampling import Sampling, sample_seed
from tinyllava_bench.tasks import load_task, load_task_data

N = 5


@pytest.fixture(scope="module")
def setup(tmp_path_factory, tiny_checkpoints):
    from tinyllava_bench.testing.datasets import write_task_data

    data = tmp_path_factory.mktemp("data")
    write_task_data("mmvet", data, n=N, seed=2)
    return {"checkpoint": tiny_checkpoints("phi", "siglip")["native"], "data": data}


def _eval(setup, output: Path, *extra: str) -> dict:
    args = [
        "eval",
        "--model",
        str(setup["checkpoint"]),
        "--tasks",
        "mmvet",
        "--data-root",
        str(setup["data"]),
        "--output",
        str(output),
        "--judge-model",
        "judge-test",
        "--judge-base-url",
        setup["judge_url"],
        "--num-workers",
        "0",
        "--task-options",
        "generation.max_new_tokens=10",
        *extra,
    ]
    assert main(args) == 0
    results = json.loads((output / "results.json").read_text())
    samples = [json.loads(line) for line in (output / "samples_mmvet.jsonl").read_text().splitlines()]
    return {"entry": results["tasks"]["mmvet"], "predictions": [s["prediction"] for s in samples]}


@pytest.fixture(scope="module")
def runs(setup, tmp_path_factory, monkeypatch_module):
    monkeypatch_module.setenv("OPENAI_API_KEY", "sk-test-secret-key-123456")
    out = {}
    with JudgeServer(reply=lambda body, call: "0.5") as server:
        setup["judge_url"] = server.base_url
        root = tmp_path_factory.mktemp("runs")
        lmms = ("--protocol", "lmms-eval")
        out["seed7_bs1"] = _eval(setup, root / "a", *lmms, "--seed", "7", "--batch-size", "1")
        out["seed7_bs3"] = _eval(setup, root / "b", *lmms, "--seed", "7", "--batch-size", "3")
        # the same folder under another seed: the sampled answers are not reused from the seed-7 run
        out["seed8_same_folder"] = _eval(setup, root / "b", *lmms, "--seed", "8", "--batch-size", "3")
        out["official"] = _eval(setup, root / "c", "--seed", "7", "--batch-size", "3")
    return out


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_mmvet_settings_per_protocol():
    task = load_task("mmvet")
    assert task.generation_for("lmms-eval").record(7) == {
        "max_new_tokens": 1024,
        "temperature": 0.2,
        "num_beams": 1,
        "top_p": 1.0,
        "top_k": 50,
        "do_sample": True,
        "seed": 7,
    }
    assert task.generation_for("official").record(7) == {
        "max_new_tokens": 1024,
        "temperature": 0.0,
        "num_beams": 1,
        "top_p": None,
        "top_k": None,
        "do_sample": False,
        "seed": None,
    }
    assert load_task("textvqa").generation_for("lmms-eval").max_new_tokens == 1024
    assert load_task("textvqa").generation_for("official").max_new_tokens == 128


def test_lmms_eval_protocol_samples_seeded_and_records_it(setup, runs):
    entry = runs["seed7_bs3"]["entry"]
    assert entry["generation"] == {
        "max_new_tokens": 10,
        "temperature": 0.2,
        "num_beams": 1,
        "top_p": 1.0,
        "top_k": 50,
        "do_sample": True,
        "seed": 7,
    }
    assert runs["official"]["entry"]["generation"]["do_sample"] is False
    assert runs["official"]["entry"]["generation"]["seed"] is None
    assert runs["seed8_same_folder"]["entry"]["generation"]["seed"] == 8

    # each answer is the model's sampled answer from the stream of (seed, task, row, question id)
    task = load_task("mmvet")
    data = load_task_data(task, data_root=setup["data"], protocol="lmms-eval")
    model = load_model(str(setup["checkpoint"]))
    from tinyllava_bench.tasks import build_question

    rows = data.rows.remove_columns("image").to_list()
    ids = data.question_ids()
    expected = [
        model.generate(
            [data.image(i)],
            [build_question(task, rows[i], "lmms-eval")],
            max_new_tokens=10,
            sampling=Sampling(0.2, (sample_seed(7, "mmvet", i, ids[i]),), top_k=50, top_p=1.0),
        )[0]
        for i in range(N)
    ]
    assert runs["seed7_bs3"]["predictions"] == expected
    assert runs["seed7_bs1"]["predictions"] == expected  # batch size changes nothing
    assert runs["seed8_same_folder"]["predictions"] != expected


def test_paper_protocol_stays_greedy(setup, runs):
    task = load_task("mmvet")
    data = load_task_data(task, data_root=setup["data"], protocol="official")
    model = load_model(str(setup["checkpoint"]))
    from tinyllava_bench.tasks import build_question

    rows = data.rows.remove_columns("image").to_list()
    expected = [
        model.generate([data.image(i)], [build_question(task, rows[i], "official")], max_new_tokens=10)[0]
        for i in range(N)
    ]
    assert runs["official"]["predictions"] == expected
