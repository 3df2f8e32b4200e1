"""`tinyllava-bench protocols`: every paper/lmms-eval difference from the task files, the measured effect of two
real runs, and docs/protocols.md kept equal to the command's output."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.tasks import apply_overrides, load_task
from tinyllava_bench.tasks.protocols import all_differences, doc_block, render, task_differences

DOC = Path(__file__).resolve().parent.parent / "docs" / "protocols.md"


def test_mmvet_differences_exactly():
    cells = [row.cells()[1:] for row in task_differences(load_task("mmvet"))]
    pre_prompt = "First please perform reasoning, and think step by step to provide best answer to the following question: \n\n"
    assert cells == [
        ("prompt", "prompt.pre_prompt", '""', json.dumps(pre_prompt)),
        ("generation", "generation.temperature", "0.0", "0.2"),
        ("generation", "generation.top_p", "(none)", "1.0"),
        ("generation", "generation.top_k", "(none)", "50"),
        ("generation", "decoding (temperature > 0 samples)", "greedy", "sampling, seeded by --seed"),
        (
            "scorer",
            "metrics/mmvet.py: MM-Vet: the GPT judge's reply parsing and the aggregation of its per-sample scores",
            "official rules",
            "lmms-eval rules",
        ),
        ("judge", "model", '"gpt-4-0613"', '"gpt-4o-2024-11-20"'),
        ("judge", "max_tokens", "3", "128"),
        ("judge", "retries", "5", "3"),
    ]


def test_rows_follow_the_task_file():
    textvqa = load_task("textvqa")
    assert [row.setting for row in task_differences(textvqa) if row.aspect != "scorer"] == [
        "prompt.ocr_tokens",
        "prompt.ocr_skip_empty",
        "generation.max_new_tokens",
    ]
    # a user setting wins over both protocols: that difference is gone
    same_budget = apply_overrides(textvqa, {"generation.max_new_tokens": "64"})
    assert "generation.max_new_tokens" not in [row.setting for row in task_differences(same_budget)]


def test_doc_table_is_the_commands_output(capsys):
    assert main(["protocols", "--format", "markdown"]) == 0
    printed = capsys.readouterr().out
    assert printed == render(all_differences(), "markdown")
    assert doc_block(DOC.read_text(encoding="utf-8")) == printed, (
        "docs/protocols.md is stale: run `tinyllava-bench protocols --format markdown --write docs/protocols.md`"
    )


def test_one_task_table(capsys):
    assert main(["protocols", "pope"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["task", "aspect", "setting", "paper", "lmms-eval"]
    assert [line.split()[:3] for line in lines[2:]] == [
        ["pope", "prompt", "prompt.strip_before"],
        ["pope", "scorer", "metrics/pope.py:"],
    ]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_checkpoints):
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("protocol-runs")
    data = root / "data"
    for task in ("pope", "mme"):
        write_task_data(task, data, n=8, seed=4)
    checkpoint = tiny_checkpoints("llama", "siglip")["native"]
    common = ["--tasks", "pope,mme", "--data-root", str(data), "--num-workers", "0", "--batch-size", "4"]
    common += ["--task-options", "generation.max_new_tokens=6"]
    assert main(["eval", "--model", str(checkpoint), "--output", str(root / "paper"), *common]) == 0
    lmms = ["--protocol", "lmms-eval"]
    assert main(["eval", "--model", str(checkpoint), "--output", str(root / "lmms"), *lmms, *common]) == 0
    other = tiny_checkpoints("qwen2", "clip")["native"]
    assert main(["eval", "--model", str(other), "--output", str(root / "other"), *lmms, *common]) == 0
    return root


def test_runs_add_the_measured_delta(runs, capsys):
    assert main(["protocols", "--runs", str(runs / "paper"), str(runs / "lmms")]) == 0
    out = capsys.readouterr().out
    paper = json.loads((runs / "paper" / "results.json").read_text())["tasks"]
    lmms = json.loads((runs / "lmms" / "results.json").read_text())["tasks"]
    rows = [re.split(r"\s{2,}", line) for line in out.splitlines()]
    effects = {row[0]: row[2:] for row in rows if row[1:2] == ["effect (measured)"]}
    expected = {}
    for task in ("mme", "pope"):
        headline = paper[task]["headline"]
        a, b = paper[task]["metrics"][headline], lmms[task]["metrics"][headline]
        expected[task] = [f"{headline} (delta {b - a:+.2f})", str(round(a, 2)), str(round(b, 2))]
    assert effects == expected


def test_runs_must_be_one_checkpoint_under_both_protocols(runs, capsys):
    assert main(["protocols", "--runs", str(runs / "paper"), str(runs / "other")]) != 0
    assert "different checkpoints" in capsys.readouterr().err
    assert main(["protocols", "--runs", str(runs / "lmms"), str(runs / "lmms")]) != 0
    assert "one run per protocol" in capsys.readouterr().err
