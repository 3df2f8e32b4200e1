"""Bad inputs end to end: each one is either a per-sample error while the run goes on, or one clear line on stderr
(`error: ...`, exit 2); images in unusual modes simply work; a full disk keeps the finished samples."""

from __future__ import annotations

import io
import json
import shutil
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.reliability.conftest import (
    REPO_ROOT,
    ROWS,
    assert_one_error_line,
    comparable,
    eval_argv,
    read_jsonl,
)
from tinyllava_bench.testing.images import make_image

# ----------------------------------------------------------------------------------------------- image files


def _encoded(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bilevel_png(width: int, height: int, rows: int | None = None) -> bytes:
    """A black 1-bit PNG of width x height written row by row (never held in memory); `rows` stops the pixel
    data early, as a header that lies about the image's size does."""
    row = b"\0" + bytes((width + 7) // 8)
    packer = zlib.compressobj(9)
    pixels = b"".join(packer.compress(row * 1000) for _ in range(min(height, rows or height) // 1000))
    pixels += packer.compress(row * (min(height, rows or height) % 1000)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", pixels)
        + _png_chunk(b"IEND", b"")
    )


def _sixteen_bit() -> Image.Image:
    ramp = np.linspace(0, 65535, 32 * 32, dtype=np.uint16).reshape(32, 32)
    return Image.fromarray(ramp)


# (file name, bytes or None for "no file", question, what the sample's error says; None = it must just work)
GOOD = [
    ("rgb.png", lambda: _encoded(make_image(40, 30, 1), "PNG")),
    ("cmyk.jpg", lambda: _encoded(make_image(40, 30, 2, "CMYK"), "JPEG")),
    ("grey16.png", lambda: _encoded(_sixteen_bit(), "PNG")),
    ("rgba.png", lambda: _encoded(make_image(40, 30, 3, "RGBA"), "PNG")),
    ("palette.png", lambda: _encoded(make_image(40, 30, 4, "P"), "PNG")),
    ("grey.png", lambda: _encoded(make_image(40, 30, 5, "L"), "PNG")),
]
BAD_IMAGES = [
    ("truncated.jpg", lambda: _encoded(make_image(64, 64, 6), "JPEG")[:400], "is damaged"),
    ("empty.jpg", lambda: b"", "is empty (0 bytes)"),
    ("huge.png", lambda: bilevel_png(20000, 20000), "decompression bomb"),
    ("bomb.png", lambda: bilevel_png(100000, 100000, rows=8), "decompression bomb"),
    ("garbage.png", lambda: b"this is not an image at all" * 10, "not an image PIL can read"),
]


def _pope_row(index: int, image: str | None, question: str | None = "Is there a cat in the image?") -> dict:
    return {
        "id": str(index),
        "question_id": f"q{index}",
        "question": question,
        "answer": "yes" if index % 2 else "no",
        "image_source": f"img{index}",
        "image": image,
        "category": ("adversarial", "popular", "random")[index % 3],
    }


@pytest.fixture(scope="module")
def bad_pope(tmp_path_factory) -> tuple[Path, dict[str, str | None]]:
    """A POPE copy (jsonl + image files) mixing good images, bad images, escaping paths and bad questions.
    Returns (data root, question_id -> expected error fragment or None)."""
    top = tmp_path_factory.mktemp("bad-pope")
    root = top / "data"
    (root / "images").mkdir(parents=True)
    outside = top / "outside.png"  # a real image, but not inside the dataset folder
    outside.write_bytes(_encoded(make_image(20, 20, 9), "PNG"))
    rows, expected = [], {}
    for name, content in GOOD:
        (root / "images" / name).write_bytes(content())
        rows.append(_pope_row(len(rows), f"images/{name}"))
        expected[rows[-1]["question_id"]] = None
    for name, content, error in BAD_IMAGES:
        (root / "images" / name).write_bytes(content())
        rows.append(_pope_row(len(rows), f"images/{name}"))
        expected[rows[-1]["question_id"]] = error
    for image, error in (
        ("../outside.png", "points outside the dataset folder"),
        (str(outside), "points outside the dataset folder"),
        ("images/../../outside.png", "points outside the dataset folder"),
        ("images/missing.png", "does not exist"),
    ):
        rows.append(_pope_row(len(rows), image))
        expected[rows[-1]["question_id"]] = error
    empty = "prompt: task pope: the question (column 'question') is empty"
    for question, error in (
        ("", empty),
        ("   ", empty),
        (None, "column 'question' must be text, got NoneType"),
    ):
        rows.append(_pope_row(len(rows), "images/rgb.png", question))
        expected[rows[-1]["question_id"]] = error
    (root / "pope.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return root, expected


def test_bad_images_and_questions_fail_their_own_sample_only(fork_server, checkpoint, bad_pope, tmp_path):
    root, expected = bad_pope
    baseline_kb = fork_server.resident_kb()
    finished = fork_server.run(eval_argv(checkpoint, root, tmp_path, "pope", "--batch-size", "4"))
    # finished and written, but not every sample answered: exit status 3 with the count
    assert finished.returncode == 3, finished.stderr[-3000:]
    n_bad = sum(error is not None for error in expected.values())
    assert f"incomplete: {n_bad} sample(s) errored" in finished.stderr
    # the 20000x20000 image and the bomb were refused before decoding: no run took hundreds of MB more
    assert finished.maxrss_kb - baseline_kb < 300_000, (finished.maxrss_kb, baseline_kb)
    samples = {s["question_id"]: s for s in read_jsonl(tmp_path / "samples_pope.jsonl")}
    assert set(samples) == set(expected)
    for question_id, error in expected.items():
        sample = samples[question_id]
        if error is None:  # unusual modes convert and run like any RGB image
            assert sample["error"] is None and isinstance(sample["prediction"], str), sample
            assert sample["score"] is not None
        else:
            assert sample["prediction"] is None and sample["score"] is None, sample
            assert error in (sample["error"] or ""), (question_id, sample["error"], error)
            assert "\n" not in sample["error"]
    entry = json.loads((tmp_path / "results.json").read_text())["tasks"]["pope"]
    n_bad = sum(error is not None for error in expected.values())
    assert entry["n_samples"] == len(expected) and entry["n_errors"] == n_bad
    assert 0.0 <= entry["metrics"]["f1"] <= 100.0

    # failed samples are retried on the next run (and fail the same way); finished ones are not redone
    rerun = fork_server.run(eval_argv(checkpoint, root, tmp_path, "pope", "--batch-size", "4"))
    assert rerun.returncode == 3, rerun.stderr[-3000:]
    # a user who accepts that share of broken samples gets 0, the counts still said
    accepted = fork_server.run(
        eval_argv(checkpoint, root, tmp_path, "pope", "--batch-size", "4", "--max-error-rate", "0.7")
    )
    assert accepted.returncode == 0 and f"{n_bad} sample(s) errored" in accepted.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["provenance"]["samples_generated"] == n_bad
    assert results["tasks"]["pope"]["n_errors"] == n_bad


def test_images_outside_the_dataset_folder_are_never_opened(bad_pope) -> None:
    """The refusal happens on the path, before any file access (a symlink-free check of the written path)."""
    from tinyllava_bench.tasks.images import ImageLoadError, load_image

    root, _ = bad_pope
    for value in ("../outside.png", "/etc/hostname", "images/../../outside.png", {"path": "/etc/passwd"}):
        with pytest.raises(ImageLoadError, match="outside the dataset folder"):
            load_image(value, root)


# ----------------------------------------------------------------------------------------------- one-line errors


def _pope_copy(data_root: Path, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(data_root / "pope.parquet", target / "pope.parquet")
    return target


def test_missing_columns(fork_server, checkpoint, data_root, tmp_path):
    import pandas as pd

    root = tmp_path / "data"
    root.mkdir()
    pd.read_parquet(data_root / "pope.parquet").drop(columns=["category"]).to_parquet(root / "pope.parquet")
    finished = fork_server.run(eval_argv(checkpoint, root, tmp_path / "out", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "missing column(s) 'category'", "lmms-lab/POPE")


def test_non_utf8_text_in_a_jsonl_data_file(fork_server, checkpoint, bad_pope, tmp_path):
    root = tmp_path / "data"
    shutil.copytree(bad_pope[0], root)
    lines = (root / "pope.jsonl").read_bytes().split(b"\n")
    lines[2] = lines[2].replace(b"cat", b"c\xe9t")  # Latin-1, as a spreadsheet export might write it
    (root / "pope.jsonl").write_bytes(b"\n".join(lines))
    finished = fork_server.run(eval_argv(checkpoint, root, tmp_path / "out", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(
        finished.stderr, "pope.jsonl, line 3: not UTF-8 text (byte 0xe9", "save the file as UTF-8"
    )


def test_predictions_with_duplicate_unknown_or_non_utf8_ids(fork_server, data_root, tmp_path):
    import pandas as pd

    ids = list(pd.read_parquet(data_root / "pope.parquet", columns=["question_id"])["question_id"])
    index_lines = [json.dumps({"index": i, "prediction": "yes"}) for i in range(ROWS)]
    cases = {
        "duplicate": (
            index_lines + [json.dumps({"index": 2, "prediction": "no"})],
            ["both answer data row 2", "keep one"],
        ),
        "unknown": (
            [json.dumps({"question_id": "no-such-id", "prediction": "yes"})],
            ["1 prediction(s) have a question_id that is not in the data of task pope", "'no-such-id'"],
        ),
        "ambiguous": (  # POPE ids repeat across categories: matching needs "index"
            [json.dumps({"question_id": ids[0], "prediction": "yes"})],
            [f"question_id {ids[0]!r} matches", 'add "index"'],
        ),
    }
    for name, (lines, fragments) in cases.items():
        predictions = tmp_path / f"{name}.jsonl"
        predictions.write_text("\n".join(lines) + "\n")
        argv = ["score", "pope", "--data", str(data_root / "pope.parquet"), "--predictions", str(predictions)]
        finished = fork_server.run(argv)
        assert finished.returncode == 1, name
        assert_one_error_line(finished.stderr, *fragments)
    predictions = tmp_path / "latin1.jsonl"
    predictions.write_bytes(b'{"index": 0, "prediction": "s\xed"}\n')
    finished = fork_server.run(
        ["score", "pope", "--data", str(data_root / "pope.parquet"), "--predictions", str(predictions)]
    )
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "latin1.jsonl, line 1: not UTF-8 text")


def _tasks_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "tasks"
    shutil.copytree(REPO_ROOT / "tasks", folder)
    return folder


@pytest.mark.parametrize(
    ("edit", "fragments"),
    [
        (lambda text: text.replace("  split: test", "  split: [test"), ["pope.yaml is not valid YAML (line"]),
        (
            lambda text: text.replace("headline: f1", "headline: f1\nheadlines: f1"),
            ["headlines", "pope.yaml"],
        ),
        (lambda text: text.replace("size: 9000", "size: -3"), ["size", "greater than 0"]),
        (
            lambda text: text.encode("utf-8").replace(b"POPE", b"P\xd6PE"),
            ["pope.yaml, line 2: not UTF-8 text"],
        ),
    ],
    ids=["syntax", "unknown-field", "bad-value", "not-utf8"],
)
def test_invalid_task_yaml(fork_server, checkpoint, data_root, tmp_path, edit, fragments):
    folder = _tasks_folder(tmp_path)
    changed = edit((folder / "pope.yaml").read_text())
    if isinstance(changed, bytes):
        (folder / "pope.yaml").write_bytes(changed)
    else:
        (folder / "pope.yaml").write_text(changed)
    env = {"TINYLLAVA_BENCH_TASKS_DIR": str(folder)}
    for argv in (eval_argv(checkpoint, data_root, tmp_path / "out", "pope"), ["tasks"]):
        finished = fork_server.run(argv, env=env)
        assert finished.returncode == 2, argv
        assert_one_error_line(finished.stderr, *fragments)
    assert not (tmp_path / "out").exists()  # refused before any work


def test_unknown_task_and_unknown_model(fork_server, checkpoint, data_root, tmp_path):
    finished = fork_server.run(eval_argv(checkpoint, data_root, tmp_path / "a", "pope,nope"))
    assert finished.returncode == 2
    assert_one_error_line(finished.stderr, "unknown task 'nope'; known tasks:")
    finished = fork_server.run(eval_argv(tmp_path / "no-model", data_root, tmp_path / "b", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "no such folder, model-zoo name or hub id")
    finished = fork_server.run(eval_argv(Path("NotAZooModel"), data_root, tmp_path / "c", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "NotAZooModel")


@pytest.mark.parametrize("change", ["missing", "extra"])
def test_checkpoint_with_missing_or_extra_weights(fork_server, checkpoint, data_root, tmp_path, change):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "ckpt"
    shutil.copytree(checkpoint, folder)
    state = load_file(str(folder / "model.safetensors"))
    if change == "missing":
        name = sorted(k for k in state if k.startswith("language_model."))[0]
        del state[name]
        fragments = ["lacks 1 weight(s) the model needs", name]
    else:
        state["connector.9.weight"] = state["connector.0.weight"].clone()
        fragments = ["has 1 weight(s) this model has no place for", "connector.9.weight"]
    save_file(state, str(folder / "model.safetensors"))
    finished = fork_server.run(eval_argv(folder, data_root, tmp_path / "out", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, *fragments)


# ----------------------------------------------------------------------------------------------- disk full


@pytest.mark.parametrize(
    ("limit", "fragment"),
    [(1500, "samples_gqa.partial.jsonl: cannot write samples"), (3600, ": cannot write (File too large)")],
    ids=["mid-log", "at-results"],
)
def test_disk_full_is_one_line_and_keeps_finished_samples(
    fork_server, checkpoint, data_root, reference_run, tmp_path, limit, fragment
):
    """RLIMIT_FSIZE stands in for a full disk: a write past `limit` bytes fails as it would with ENOSPC."""
    argv = eval_argv(checkpoint, data_root, tmp_path, "gqa,pope", "--batch-size", "1")
    finished = fork_server.run(argv, fsize=limit)
    assert finished.returncode == 1, finished.stderr[-3000:]
    assert_one_error_line(finished.stderr, fragment, "File too large")
    kept = sum(log.read_bytes().count(b"\n") for log in tmp_path.glob("samples_*.partial.jsonl"))
    assert kept >= 1
    if (tmp_path / "results.json").exists():
        json.loads((tmp_path / "results.json").read_text())

    rerun = fork_server.run(argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert comparable(tmp_path) == comparable(reference_run)
    generated = json.loads((tmp_path / "results.json").read_text())["provenance"]["samples_generated"]
    assert generated == 2 * ROWS - kept  # what was finished before the disk filled up is not redone


def test_an_output_folder_that_cannot_be_created(fork_server, checkpoint, data_root, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    finished = fork_server.run(eval_argv(checkpoint, data_root, blocker / "run", "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "cannot create the run folder", "pass another --output")
    finished = fork_server.run(eval_argv(checkpoint, data_root, blocker, "pope"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "is a file; pass a folder as --output")
