"""Reading predictions files and placing each prediction on its data row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks import load_predictions, read_predictions


def _write(path: Path, lines: list[object]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_match_by_question_id_across_int_and_text(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [{"question_id": "5", "prediction": "five"}, {"question_id": 7, "prediction": "seven"}],
    )
    matched = load_predictions(path, [7, 5, 9], "vqav2")
    assert matched.predictions == ["seven", "five", None]
    assert matched.missing == [2] and matched.n_matched == 2
    text_ids = load_predictions(path, ["5", "7"], "gqa")
    assert text_ids.predictions == ["five", "seven"]


def test_match_by_index_wins_and_is_checked_against_the_id(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl",
        [{"index": 1, "prediction": "b"}, {"index": 0, "question_id": "a.png", "prediction": "a"}],
    )
    assert load_predictions(path, ["a.png", "a.png"], "mme").predictions == ["a", "b"]
    wrong = _write(tmp_path / "w.jsonl", [{"index": 0, "question_id": "b.png", "prediction": "x"}])
    with pytest.raises(UserError, match=r"w\.jsonl, line 1: index 0 is the row with question_id 'a\.png'"):
        load_predictions(wrong, ["a.png", "b.png"], "mme")
    past = _write(tmp_path / "past.jsonl", [{"index": 5, "prediction": "x"}])
    with pytest.raises(UserError, match="past the end"):
        load_predictions(past, ["a", "b"], "mme")


def test_repeated_ids_in_the_data_ask_for_an_index(tmp_path: Path) -> None:
    # MME: two questions per image, and the image path is the question_id
    path = _write(tmp_path / "p.jsonl", [{"question_id": "artwork/1.jpg", "prediction": "Yes"}])
    with pytest.raises(UserError) as error:
        load_predictions(path, ["artwork/1.jpg", "artwork/1.jpg"], "mme")
    message = str(error.value)
    assert "line 1" in message and "matches 2 rows" in message and '"index"' in message


def test_duplicate_predictions_for_a_row_are_refused(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl", [{"question_id": 1, "prediction": "a"}, {"question_id": "1", "prediction": "b"}]
    )
    with pytest.raises(UserError, match="lines 1 and 2 both answer data row 0"):
        load_predictions(path, [1, 2], "vqav2")


def test_unknown_ids_are_listed(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl", [{"question_id": 1, "prediction": "a"}, {"question_id": 99, "prediction": "b"}]
    )
    with pytest.raises(
        UserError, match=r"1 prediction\(s\) have a question_id that is not in the data.*99 \(line 2\)"
    ):
        load_predictions(path, [1, 2], "vqav2")


def test_malformed_lines_name_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "p.jsonl", [{"question_id": 1, "prediction": "a"}, "", '{"question_id": 2, "prediction": ']
    )
    with pytest.raises(UserError, match=r"p\.jsonl, line 3: not valid JSON"):
        read_predictions(path)
    cases = [
        ([{"question_id": 1}], 'no "prediction" field'),
        ([{"question_id": 1, "prediction": 3}], "must be text"),
        ([{"prediction": "a"}], 'needs "question_id" or "index"'),
        ([{"index": -1, "prediction": "a"}], "non-negative integer"),
        (["[1, 2]"], "JSON object"),
    ]
    for lines, message in cases:
        with pytest.raises(UserError, match=message):
            read_predictions(_write(tmp_path / "case.jsonl", lines))
    with pytest.raises(UserError, match="is empty"):
        read_predictions(_write(tmp_path / "empty.jsonl", []))
    with pytest.raises(UserError, match="cannot read predictions file"):
        read_predictions(tmp_path / "absent.jsonl")


def test_llava_answer_files_are_read(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "answers.jsonl", [{"question_id": 3, "prompt": "q", "text": "Yes", "answer_id": "x"}]
    )
    assert load_predictions(path, [3], "pope").predictions == ["Yes"]
