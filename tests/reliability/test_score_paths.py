"""`score` never writes its result over one of its own inputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyllava_bench.cli import main

ROWS = [
    {"id": "201", "imageId": "n1", "question": "Is it red?", "answer": "yes", "isBalanced": True},
    {"id": "202", "imageId": "n2", "question": "What is it?", "answer": "cup", "isBalanced": True},
]
PREDICTIONS = [{"question_id": "201", "prediction": "Yes."}, {"question_id": 202, "prediction": "A Cup"}]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize("flag", ["--output", "--submission"])
@pytest.mark.parametrize("target", ["predictions", "data"])
def test_an_output_that_is_an_input_is_refused(tmp_path, capsys, flag, target):
    data = _jsonl(tmp_path / "gqa.jsonl", ROWS)
    predictions = _jsonl(tmp_path / "predictions.jsonl", PREDICTIONS)
    before = {path: path.read_bytes() for path in (data, predictions)}
    victim = {"predictions": predictions, "data": data}[target]
    # the same file by another spelling counts too
    spelled = tmp_path / "sub" / ".." / victim.name
    (tmp_path / "sub").mkdir()
    argv = ["score", "gqa", "--data", str(data), "--predictions", str(predictions), flag, str(spelled)]
    if flag == "--submission":
        argv += ["--output", str(tmp_path / "score.json")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("error: ") and "is an input" in error and len(error.splitlines()) == 1
    assert {path: path.read_bytes() for path in before} == before
    assert not (tmp_path / "score.json").exists()
