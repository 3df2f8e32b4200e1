"""Loading task rows from local copies in every accepted shape, offline, in the hub datasets' column names."""

from __future__ import annotations

import io
import json
from pathlib import Path

import datasets
import pytest
from PIL import Image

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks import ImageLoadError, dataset_fingerprint, load_task_data, load_task_rows


def _png(colour: tuple[int, int, int], size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _vqa_rows(n: int = 3) -> list[dict]:
    return [
        {
            "question_id": 100 + i,
            "question": f"What colour is thing {i}?",
            "answers": [{"answer": "red", "answer_confidence": "yes", "answer_id": k + 1} for k in range(10)],
            "multiple_choice_answer": "red",
            "answer_type": "other",
            "question_type": "what color",
            "image_id": i,
        }
        for i in range(n)
    ]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _embedded_dataset(rows: list[dict], colours: list[tuple[int, int, int]]) -> datasets.Dataset:
    with_images = [
        dict(row, image={"bytes": _png(c), "path": f"{i}.png"})
        for i, (row, c) in enumerate(zip(rows, colours, strict=True))
    ]
    return datasets.Dataset.from_list(with_images).cast_column("image", datasets.Image())


def test_jsonl_with_image_files_beside_it(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    rows = _vqa_rows()
    for i, row in enumerate(rows):
        (tmp_path / "images" / f"{i}.png").write_bytes(_png((i * 40, 0, 0)))
        row["image"] = f"images/{i}.png"
    data = load_task_data("vqav2", _write_jsonl(tmp_path / "vqav2.jsonl", rows))
    assert len(data) == 3 and data.question_ids() == [100, 101, 102]
    assert data.image(2).getpixel((0, 0)) == (80, 0, 0)
    assert data.rows[0]["answers"][0]["answer"] == "red"


def test_parquet_with_embedded_images(tmp_path: Path) -> None:
    path = tmp_path / "vqav2.parquet"
    _embedded_dataset(_vqa_rows(), [(1, 2, 3), (4, 5, 6), (7, 8, 9)]).to_parquet(str(path))
    data = load_task_data("vqav2", path)
    assert data.image(1).getpixel((0, 0)) == (4, 5, 6)
    assert data.provenance()["fingerprint"].startswith("sha256:")
    scoring_rows = load_task_rows("vqav2", path, need_images=False)
    assert "image" not in scoring_rows.column_names and len(scoring_rows) == 3


def test_save_to_disk_folder_and_dataset_dict(tmp_path: Path) -> None:
    dataset = _embedded_dataset(_vqa_rows(), [(9, 9, 9)] * 3)
    dataset.save_to_disk(str(tmp_path / "plain"))
    assert load_task_data("vqav2", tmp_path / "plain").image(0).getpixel((0, 0)) == (9, 9, 9)
    datasets.DatasetDict({"validation": dataset, "train": dataset.select([0])}).save_to_disk(
        str(tmp_path / "dict")
    )
    assert len(load_task_rows("vqav2", tmp_path / "dict")) == 3  # picks the task's split
    with pytest.raises(UserError, match="needs 'testdev'"):
        load_task_rows("vqav2_testdev", tmp_path / "dict")


def test_folder_with_one_jsonl_and_images(tmp_path: Path) -> None:
    rows = _vqa_rows(1)
    rows[0]["image"] = "pic.png"
    (tmp_path / "pic.png").write_bytes(_png((5, 6, 7)))
    _write_jsonl(tmp_path / "questions.jsonl", rows)
    assert load_task_data("vqav2", tmp_path).image(0).getpixel((0, 0)) == (5, 6, 7)


def test_data_root_rule(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "vqav2.jsonl", _vqa_rows(2))
    (tmp_path / "pope").mkdir()
    pope = [{"question_id": "1", "question": "Is there a cat?", "answer": "yes", "category": "random"}]
    _write_jsonl(tmp_path / "pope" / "data.jsonl", pope)
    assert len(load_task_rows("vqav2", data_root=tmp_path, need_images=False)) == 2
    assert load_task_rows("pope", data_root=tmp_path, need_images=False)[0]["answer"] == "yes"
    with pytest.raises(UserError, match=r"looked for gqa\.parquet, gqa\.jsonl, gqa\.json, gqa"):
        load_task_rows("gqa", data_root=tmp_path, need_images=False)
    _write_jsonl(tmp_path / "pope.jsonl", pope)
    with pytest.raises(UserError, match="ambiguous"):
        load_task_rows("pope", data_root=tmp_path, need_images=False)


def test_missing_columns_are_named_with_the_file(tmp_path: Path) -> None:
    rows = [{"question_id": 1, "question": "q?"}]
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(UserError) as error:
        load_task_rows("vqav2", path, need_images=False)
    assert "'answers'" in str(error.value) and str(path) in str(error.value)


def test_scoring_needs_no_image_column_but_running_does(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "vqav2.jsonl", _vqa_rows(2))
    assert len(load_task_rows("vqav2", path, need_images=False)) == 2
    with pytest.raises(UserError, match="no image column 'image'"):
        load_task_data("vqav2", path, need_images=True)


def test_prompt_columns_are_checked_only_when_running(tmp_path: Path) -> None:
    rows = [{"question_id": 1, "question": "what?", "answers": ["a"] * 10, "image": "x.png"}]
    path = _write_jsonl(tmp_path / "textvqa.jsonl", rows)
    assert len(load_task_rows("textvqa", path, need_images=False)) == 1
    with pytest.raises(UserError, match="'ocr_tokens'"):
        load_task_data("textvqa", path)
    assert (
        len(load_task_data("textvqa", path, protocol="lmms-eval")) == 1
    )  # lmms-eval's prompt has no OCR line


def test_a_damaged_image_fails_its_own_row_only(tmp_path: Path) -> None:
    rows = _vqa_rows(2)
    rows[0]["image"] = {"bytes": b"\x89PNG broken", "path": None}
    rows[1]["image"] = {"bytes": _png((1, 1, 1)), "path": None}
    path = tmp_path / "vqav2.parquet"
    datasets.Dataset.from_list(rows).cast_column("image", datasets.Image()).to_parquet(str(path))
    data = load_task_data("vqav2", path)
    with pytest.raises(ImageLoadError):
        data.image(0)
    assert data.image(1).getpixel((0, 0)) == (1, 1, 1)


def _gqa_rows() -> list[dict]:
    return [
        {"id": "q1", "imageId": "n10", "question": "Is it red?", "answer": "yes", "isBalanced": True},
        {"id": "q2", "imageId": "n20", "question": "What is it?", "answer": "cup", "isBalanced": True},
    ]


def test_gqa_rows_carrying_images(tmp_path: Path) -> None:
    rows = [dict(row, image={"bytes": _png((i, i, i)), "path": None}) for i, row in enumerate(_gqa_rows())]
    path = tmp_path / "gqa.parquet"
    datasets.Dataset.from_list(rows).cast_column("image", datasets.Image()).to_parquet(str(path))
    assert load_task_data("gqa", path).image(1).getpixel((0, 0)) == (1, 1, 1)


def test_gqa_sibling_images_dataset(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "gqa.jsonl", _gqa_rows())
    images = [
        {"id": "n20", "image": {"bytes": _png((20, 0, 0)), "path": None}},
        {"id": "n10", "image": {"bytes": _png((10, 0, 0)), "path": None}},
    ]
    datasets.Dataset.from_list(images).cast_column("image", datasets.Image()).to_parquet(
        str(tmp_path / "gqa_images.parquet")
    )
    data = load_task_data("gqa", tmp_path / "gqa.jsonl")
    assert data.image(0).getpixel((0, 0)) == (10, 0, 0)
    assert data.image(1).getpixel((0, 0)) == (20, 0, 0)


def test_gqa_image_files_named_by_image_id(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "n10.jpg").write_bytes(_png((10, 10, 10)))  # PIL reads by content, not suffix
    _write_jsonl(tmp_path / "gqa.jsonl", _gqa_rows())
    data = load_task_data("gqa", tmp_path / "gqa.jsonl")
    assert data.image(0).getpixel((0, 0)) == (10, 10, 10)
    with pytest.raises(ImageLoadError, match="n20"):
        data.image(1)


def test_gqa_without_any_images_is_a_user_error(tmp_path: Path) -> None:
    _write_jsonl(tmp_path / "gqa.jsonl", _gqa_rows())
    with pytest.raises(UserError, match="carry no images"):
        load_task_data("gqa", tmp_path / "gqa.jsonl")
    assert len(load_task_rows("gqa", tmp_path / "gqa.jsonl", need_images=False)) == 2


def test_fingerprints(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "vqav2.jsonl", _vqa_rows(2))
    first = dataset_fingerprint("vqav2", path)
    assert first == dataset_fingerprint("vqav2", path) and first.startswith("sha256:")
    _write_jsonl(path, _vqa_rows(3))
    assert dataset_fingerprint("vqav2", path) != first
    assert dataset_fingerprint("gqa") == "hub:lmms-lab/GQA/testdev_balanced_instructions:testdev@main"


def test_malformed_data_files(tmp_path: Path) -> None:
    bad = tmp_path / "vqav2.jsonl"
    bad.write_text('{"question_id": 1}\n{oops\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"line 2: not valid JSON"):
        load_task_rows("vqav2", bad, need_images=False)
    mixed = _vqa_rows(2)
    mixed[1]["question_id"] = "not a number"
    with pytest.raises(UserError, match="mixed types"):
        load_task_rows("vqav2", _write_jsonl(tmp_path / "mixed.jsonl", mixed), need_images=False)
    with pytest.raises(UserError, match="does not exist"):
        load_task_rows("vqav2", tmp_path / "nowhere.jsonl")
    (tmp_path / "data.csv").write_text("a,b\n", encoding="utf-8")
    with pytest.raises(UserError, match=r"\.parquet, \.jsonl or \.json"):
        load_task_rows("vqav2", tmp_path / "data.csv")


def test_hub_loading_passes_the_revision_and_joins_gqa_images(monkeypatch: pytest.MonkeyPatch) -> None:
    # stands in for the hub: records what was asked and serves two small in-memory configs
    calls = []
    images = [{"id": "n20", "image": {"bytes": _png((20, 0, 0)), "path": None}}]

    def fake_load_dataset(path, name=None, split=None, revision=None):
        calls.append((path, name, split, revision))
        if name == "testdev_balanced_images":
            return datasets.Dataset.from_list(images).cast_column("image", datasets.Image())
        return datasets.Dataset.from_list(_gqa_rows())

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    data = load_task_data("gqa")
    assert calls == [
        ("lmms-lab/GQA", "testdev_balanced_instructions", "testdev", "main"),
        ("lmms-lab/GQA", "testdev_balanced_images", "testdev", "main"),
    ]
    assert data.image(1).getpixel((0, 0)) == (20, 0, 0)
    with pytest.raises(ImageLoadError, match="n10"):
        data.image(0)
    assert data.provenance()["revision"] == "main" and data.provenance()["local_path"] is None


def test_hub_failure_points_to_a_local_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    def unreachable(*args, **kwargs):
        raise ConnectionError("Couldn't reach the Hub")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(UserError, match=r"could not load lmms-lab/MME split test \(revision main\).*--data"):
        load_task_rows("mme", need_images=False)


def _sqa_rows(ids: list | None) -> list[dict]:
    rows = [
        {"question": f"Which is solid {i}?", "hint": "", "choices": ["milk", "rock"], "answer": 1}
        for i in range(3)
    ]
    if ids is not None:
        for row, qid in zip(rows, ids, strict=True):
            row["question_id"] = qid
    return rows


def test_a_local_scienceqa_copy_keeps_its_own_question_ids(tmp_path: Path) -> None:
    with_ids = load_task_data(
        "scienceqa_img", _write_jsonl(tmp_path / "a.jsonl", _sqa_rows(["7", "11", "4"])), need_images=False
    )
    assert with_ids.question_ids() == ["7", "11", "4"]
    without = load_task_data(
        "scienceqa_img", _write_jsonl(tmp_path / "b.jsonl", _sqa_rows(None)), need_images=False
    )
    assert without.question_ids() == [0, 1, 2]  # the hub copy has no ids: row indices, as before
