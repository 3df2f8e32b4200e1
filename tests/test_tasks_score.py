"""The `score` and `tasks` verbs end to end through the CLI, on small hand-made datasets with known answers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer
from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks import load_task, score_predictions
from tinyllava_bench.tasks.submission import mmvet_submission, vqav2_submission


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _score(
    tmp_path: Path, task: str, rows: list[dict], predictions: list[dict], *extra: str
) -> tuple[int, dict]:
    data = _jsonl(tmp_path / f"{task}.jsonl", rows)
    preds = _jsonl(tmp_path / "predictions.jsonl", predictions)
    out = tmp_path / "out" / "score.json"
    code = main(
        ["score", task, "--data", str(data), "--predictions", str(preds), "--output", str(out), *extra]
    )
    return code, (json.loads(out.read_text()) if out.exists() else {})


def _vqa_row(qid: int, answers: list[str]) -> dict:
    records = [{"answer": a, "answer_confidence": "yes", "answer_id": i + 1} for i, a in enumerate(answers)]
    return {
        "question_id": qid,
        "question": "q?",
        "answers": records,
        "answer_type": "other",
        "image": "none.jpg",
    }


VQA_ROWS = [
    _vqa_row(1, ["red"] * 10),
    _vqa_row(2, ["red"] * 10),
    _vqa_row(
        3, ["cup"] * 3 + ["mug"] * 7
    ),  # "cup" scores (3 x 2/3 + 7 x 1) / 10 = 0.9 over the leave-one-out sets
    _vqa_row(4, ["red"] * 10),
]
VQA_PREDICTIONS = [
    {"question_id": 1, "prediction": "Red"},
    {"question_id": "2", "prediction": "blue"},
    {"question_id": 3, "prediction": "cup"},
]


def test_vqav2_score_file_summary_and_missing_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, result = _score(tmp_path, "vqav2", VQA_ROWS, VQA_PREDICTIONS)
    assert code == 3  # a row without a prediction: finished, but incomplete
    assert result["task"] == "vqav2" and result["protocol"] == "official"
    assert (result["n"], result["n_rows"], result["n_missing"]) == (3, 4, 1)
    assert result["metrics"]["accuracy"] == pytest.approx(100 * 1.9 / 3)
    assert result["missing"] == [{"index": 3, "question_id": 4}]
    assert [s["score"] for s in result["samples"]] == pytest.approx([1.0, 0.0, 0.9])
    assert [s["question_id"] for s in result["samples"]] == [1, 2, 3]
    assert result["samples"][0]["parsed"] == "red" and result["samples"][0]["prediction"] == "Red"
    assert result["dataset"]["fingerprint"].startswith("sha256:")
    stdout = capsys.readouterr().out
    assert "accuracy *" in stdout and "63.33" in stdout and "1 without a prediction" in stdout
    assert "wrote " in stdout and "score.json" in stdout


def test_missing_rows_can_count_as_wrong(tmp_path: Path) -> None:
    code, result = _score(tmp_path, "vqav2", VQA_ROWS, VQA_PREDICTIONS, "--missing-as-wrong")
    assert code == 0 and result["n"] == 4 and result["missing"] == []
    assert result["metrics"]["accuracy"] == pytest.approx(100 * 1.9 / 4)


def test_mme_with_repeated_ids_scores_by_index(tmp_path: Path) -> None:
    rows = [
        {
            "question_id": "existence/1.jpg",
            "question": "A? Please answer yes or no.",
            "answer": "Yes",
            "category": "existence",
        },
        {
            "question_id": "existence/1.jpg",
            "question": "B? Please answer yes or no.",
            "answer": "No",
            "category": "existence",
        },
        {
            "question_id": "existence/2.jpg",
            "question": "C? Please answer yes or no.",
            "answer": "Yes",
            "category": "existence",
        },
        {
            "question_id": "existence/2.jpg",
            "question": "D? Please answer yes or no.",
            "answer": "No",
            "category": "existence",
        },
    ]
    by_id = [{"question_id": row["question_id"], "prediction": "Yes"} for row in rows]
    code, _ = _score(tmp_path, "mme", rows, by_id)
    assert code == 1  # ambiguous ids: the run cannot proceed; the error asks for "index"
    by_index = [{"index": i, "prediction": p} for i, p in enumerate(["Yes", "No", "Yes", "Yes"])]
    code, result = _score(tmp_path, "mme", rows, by_index)
    assert code == 0
    # acc 3/4 = 75, acc+ 1/2 images = 50 -> existence 125; perception sums the subtasks present
    assert result["metrics"]["perception"] == pytest.approx(125.0)


def test_scienceqa_rows_are_identified_by_index(tmp_path: Path) -> None:
    rows = [
        {"question": "Q1", "hint": "", "choices": ["x", "y"], "answer": 0},
        {"question": "Q2", "hint": "h", "choices": ["x", "y"], "answer": 1},
    ]
    predictions = [
        {"question_id": 0, "prediction": "A"},
        {"question_id": 1, "prediction": "The answer is A."},
    ]
    code, result = _score(tmp_path, "scienceqa_img", rows, predictions)
    assert code == 0 and result["metrics"]["accuracy"] == pytest.approx(50.0)
    assert [s["question_id"] for s in result["samples"]] == [0, 1]


def test_gqa_writes_the_eval_py_submission(tmp_path: Path) -> None:
    rows = [
        {"id": "201", "imageId": "n1", "question": "Is it red?", "answer": "yes", "isBalanced": True},
        {"id": "202", "imageId": "n2", "question": "What is it?", "answer": "cup", "isBalanced": True},
    ]
    predictions = [{"question_id": "201", "prediction": "Yes."}, {"question_id": 202, "prediction": "A Cup"}]
    submission = tmp_path / "gqa_predictions.json"
    code, result = _score(tmp_path, "gqa", rows, predictions, "--submission", str(submission))
    assert code == 0 and result["metrics"]["accuracy"] == pytest.approx(50.0)
    assert json.loads(submission.read_text()) == [
        {"questionId": "201", "prediction": "yes"},
        {"questionId": "202", "prediction": "a cup"},
    ]


def test_vqav2_testdev_writes_a_padded_evalai_file_and_no_metrics(tmp_path: Path) -> None:
    rows = [{"question_id": 11, "question": "How many?"}, {"question_id": 12, "question": "What?"}]
    test_split = _jsonl(tmp_path / "test2015.jsonl", [{"question_id": q} for q in (10, 11, 12)])
    code, result = _score(
        tmp_path,
        "vqav2_testdev",
        rows,
        [{"question_id": 11, "prediction": "Two"}],
        "--test-questions",
        str(test_split),
    )
    assert code == 3 and result["metrics"] == {} and "official server" in result["note"]  # 1 row unanswered
    submission = tmp_path / "out" / "score.submission.json"
    assert json.loads(submission.read_text()) == [
        {"question_id": 10, "answer": ""},
        {"question_id": 11, "answer": "2"},
        {"question_id": 12, "answer": ""},
    ]


def test_mmvet_calls_the_judge_and_records_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test-key")
    rows = [
        {"question_id": "v1_0", "question": "What is 2+2?", "answer": "4", "capability": "math"},
        {"question_id": "v1_1", "question": "Read the sign.", "answer": "STOP", "capability": "rec,ocr"},
    ]
    predictions = [{"question_id": "v1_0", "prediction": "4"}, {"question_id": "v1_1", "prediction": "stop"}]
    with JudgeServer(reply="0.5") as server:
        args = ("--judge-model", "gpt-test", "--judge-base-url", server.base_url)
        code, result = _score(tmp_path, "mmvet", rows, predictions, *args)
        assert len(server.requests) == 2
    assert code == 0 and result["judge_model"] == "gpt-test" and result["n_judge_failures"] == 0
    assert result["metrics"]["total"] == pytest.approx(50.0)
    submission = json.loads((tmp_path / "out" / "score.submission.json").read_text())
    assert submission == {"v1_0": "4", "v1_1": "stop"}
    with JudgeServer(reply="1.0", faults=[400, 400]) as server:  # 400s are not retried: two failed samples
        args = (
            "--judge-model",
            "gpt-test",
            "--judge-base-url",
            server.base_url,
            "--judge-cache",
            str(tmp_path / "new"),
        )
        code, result = _score(tmp_path, "mmvet", rows, predictions, *args)
    assert code == 3 and result["n_judge_failures"] == 2
    assert all(sample["score"] is None and sample["error"] for sample in result["samples"])


def test_judged_task_without_a_judge_is_a_user_error() -> None:
    rows = [{"question_id": "v1_0", "question": "q", "answer": "a", "capability": "rec"}]
    with pytest.raises(UserError, match="LLM judge"):
        score_predictions(load_task("mmvet"), rows, ["x"])


def test_user_errors_print_one_line_with_their_exit_status(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _jsonl(tmp_path / "vqav2.jsonl", VQA_ROWS)
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"question_id": 1, "prediction": "a"}\nnot json\n', encoding="utf-8")
    assert main(["score", "vqav2", "--data", str(data), "--predictions", str(broken)]) == 1  # cannot proceed
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "broken.jsonl, line 2" in error and "Traceback" not in error
    assert main(["score", "vqa_v3", "--data", str(data), "--predictions", str(broken)]) == 2
    assert "known tasks" in capsys.readouterr().err


def test_lmms_eval_protocol_is_passed_to_the_scorer(tmp_path: Path) -> None:
    rows = [{"id": "1", "imageId": "n", "question": "q", "answer": "yes", "isBalanced": True}]
    predictions = [{"question_id": "1", "prediction": "Yes."}]
    code, result = _score(tmp_path, "gqa", rows, predictions, "--protocol", "lmms-eval")
    assert code == 0 and result["protocol"] == "lmms-eval"
    assert result["metrics"]["accuracy"] == pytest.approx(100.0)  # lmms-eval ignores case and punctuation


def test_tasks_verb_lists_every_task(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tasks"]) == 0
    table = capsys.readouterr().out
    for name in (
        "vqav2",
        "vqav2_testdev",
        "gqa",
        "scienceqa_img",
        "textvqa",
        "pope",
        "mme",
        "mmvet",
        "llava_wild",
    ):
        assert f"\n{name} " in table
    assert main(["tasks", "--format", "json"]) == 0
    listing = {entry["name"]: entry for entry in json.loads(capsys.readouterr().out)}
    assert listing["pope"]["size"] == 9000 and listing["mme"]["headline"] == "perception"


def test_submission_id_forms() -> None:
    # LLaVA's converter writes v1_<id> for integer ids; the hub's ids already read v1_<n>
    assert mmvet_submission([0, "v1_1", 2], ["a", "b", None]) == {"v1_0": "a", "v1_1": "b"}
    assert vqav2_submission(["7", 8], ["Yes.", None]) == [
        {"question_id": 7, "answer": "yes"},
        {"question_id": 8, "answer": ""},
    ]


def test_score_output_that_cannot_be_written_is_a_one_line_error(tmp_path):
    from tinyllava_bench.tasks.scoring import write_score_output

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(UserError, match="scores.json: cannot .*pass another --output"):
        write_score_output({"metrics": {}}, blocker / "scores.json")
    assert blocker.read_text() == "not a folder"
