"""Faulty training data: unreadable images and odd records are set aside and counted when the data is prepared,
never a traceback; the tokenised cache follows the images; JSONL errors name their line; links cannot leave the
image folder."""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image

from tests.reliability.test_bad_inputs import bilevel_png
from tinyllava_bench.errors import UserError
from tinyllava_bench.models.preprocess import preprocessor_for
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.testing.models import build_tokenizer
from tinyllava_bench.train import encoding as train_encoding
from tinyllava_bench.train.collator import ConversationCollator
from tinyllava_bench.train.data import build_dataset
from tinyllava_bench.train.image_checks import safe_image_path
from tinyllava_bench.train.records import read_records

QUESTION = "<image>\nWhat color is it?"


def _record(record_id: str, image, question: str = QUESTION, answer: str = "green") -> dict:
    return {
        "id": record_id,
        "image": image,
        "conversations": [{"from": "human", "value": question}, {"from": "gpt", "value": answer}],
    }


def _png(colour=(10, 200, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _build(tmp_path, records, cache=False):
    path = tmp_path / "data.json"
    path.write_text(json.dumps(records))
    return build_dataset(
        path,
        tmp_path / "images",
        get_template("phi"),
        build_tokenizer("phi"),
        preprocessor_for("siglip", 28, "pad"),
        image_tokens=4,
        max_length=256,
        caption_stage=False,
        progress=False,
        cache_dir=tmp_path / "cache" if cache else None,
    )


@pytest.fixture
def images(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    good = _png()
    (folder / "good.png").write_bytes(good)
    (folder / "garbage.png").write_bytes(b"this is not an image at all")
    (folder / "empty.png").write_bytes(b"")
    (folder / "truncated.png").write_bytes(good[: len(good) // 2])
    (folder / "bomb.png").write_bytes(bilevel_png(20_000, 10_000))  # 200 megapixels, a few kB
    return folder


def test_unreadable_images_are_set_aside_with_id_and_reason(tmp_path, images):
    bad = ["garbage.png", "empty.png", "truncated.png", "bomb.png"]
    records = [_record("ok", "good.png")] + [_record(f"bad-{name}", name) for name in bad]
    dataset = _build(tmp_path, records)
    report = dataset.report.to_dict()
    assert dataset.sample_ids == ["ok"]
    assert report["skipped"] == {train_encoding.SKIP_UNREADABLE_IMAGE: 4}
    assert {e["id"]: e["image"] for e in report["image_errors"]} == {f"bad-{n}": n for n in bad}
    reasons = {e["image"]: e["reason"] for e in report["image_errors"]}
    assert "pixels" in reasons["bomb.png"] and "0 bytes" in reasons["empty.png"]
    assert "not an image" in reasons["garbage.png"]


def test_an_image_broken_after_preparation_is_skipped_and_named(tmp_path, images):
    dataset = _build(tmp_path, [_record("a", "good.png"), _record("b", "good.png")])
    (images / "good.png").write_bytes(b"broken since")
    sample = dataset[0]
    assert sample == {"skipped": "a"}
    batch = ConversationCollator(0)([sample, dataset[1]])
    assert batch["skipped"] == ["a", "b"] and batch["input_ids"].shape[0] == 0


def test_the_cache_is_keyed_by_the_images(tmp_path, images):
    records = [_record("a", "good.png"), _record("b", "garbage.png")]
    first = _build(tmp_path, records, cache=True)
    assert first.report.skipped == {train_encoding.SKIP_UNREADABLE_IMAGE: 1}
    # the advised fix for a corrupt image: replace it, or remove it
    (images / "garbage.png").write_bytes(_png((200, 10, 10)))
    fixed = _build(tmp_path, records, cache=True)
    assert fixed.sample_ids == ["a", "b"] and fixed.report.skipped == {}
    (images / "good.png").unlink()
    removed = _build(tmp_path, records, cache=True)
    assert removed.sample_ids == ["b"] and removed.report.skipped == {train_encoding.SKIP_MISSING_IMAGE: 1}
    again = _build(tmp_path, records, cache=True)  # nothing changed: read back
    assert again.sample_ids == ["b"]


def test_odd_records_are_set_aside_not_a_traceback(tmp_path, images):
    records = [
        _record("ok", "good.png"),
        _record("number", 5),
        _record("mapping", {"path": "good.png"}),
        _record("surrogate", "good.png", answer="green \ud800"),
    ]
    dataset = _build(tmp_path, records)
    assert dataset.sample_ids == ["ok"]
    assert dataset.report.skipped == {train_encoding.SKIP_BAD_IMAGE_FIELD: 2, train_encoding.SKIP_BAD_TEXT: 1}
    assert dataset.report.skipped_examples[train_encoding.SKIP_BAD_IMAGE_FIELD] == ["number", "mapping"]


def test_a_truncated_jsonl_line_names_its_own_line(tmp_path):
    lines = [json.dumps(_record(str(i), "good.png")) for i in range(3)]
    path = tmp_path / "data.jsonl"
    path.write_text(lines[0] + "\n" + lines[1] + "\n" + lines[2][:40] + "\n")
    with pytest.raises(UserError, match=r"line 3: not valid JSON"):
        read_records(path)
    path.write_bytes(lines[0].encode() + b"\n\xff\xfe\n")
    with pytest.raises(UserError, match=r"line 2: not UTF-8"):
        read_records(path)


def test_a_linked_image_may_not_leave_the_folder(tmp_path, images):
    outside = tmp_path / "secret.png"
    outside.write_bytes(_png())
    os.symlink(outside, images / "link.png")
    with pytest.raises(UserError, match="symbolic link"):
        safe_image_path(images, "link.png")
    with pytest.raises(UserError, match="symbolic link"):
        _build(tmp_path, [_record("ok", "good.png"), _record("l", "link.png")])
    # links inside the folder, and linked subfolders (an image store), are the layout's business
    os.symlink(images / "good.png", images / "inside.png")
    store = tmp_path / "store"
    store.mkdir()
    (store / "x.png").write_bytes(_png())
    os.symlink(store, images / "coco")
    dataset = _build(tmp_path, [_record("i", "inside.png"), _record("s", "coco/x.png")])
    assert dataset.sample_ids == ["i", "s"]
