"""The demo world: deterministic data in the hub columns, loadable and scorable, with answers the pictures bear out.

Answers are checked against the decoded images by an independent reading of the pixels (palette colours, fill
ratio for the shape, centroid for the position, bitmap-font templates for the words), not against the scene model.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.data import load_task_data
from tinyllava_bench.tasks.prompts import build_question
from tinyllava_bench.testing.datasets import DEMO_TASKS, write_all_tasks, write_task_data
from tinyllava_bench.testing.scenes import COLORS, IMAGE_SIZES, WORDS, Scene, Shape, sample_scene, seeded_rng
from tinyllava_bench.testing.training_data import write_training_data

N = 20
SCORED_TASKS = ("vqav2", "gqa", "scienceqa_img", "textvqa", "pope", "mme")
POSITION_WORDS = {
    "on the left": "left",
    "on the right": "right",
    "at the top": "top",
    "at the bottom": "bottom",
}
POSITION = "(on the left|on the right|at the top|at the bottom)"
NUMBERS = ("zero", "one", "two", "three", "four", "five")


@pytest.fixture(scope="module")
def data_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    roots = {}
    for mode in ("embedded", "files"):
        roots[mode] = tmp_path_factory.mktemp(mode)
        write_all_tasks(roots[mode], n=N, seed=0, image_mode=mode)
    return roots


# --- an independent reading of a demo picture --------------------------------------------------------------------


@dataclass
class SeenObject:
    color: str
    kind: str  # from the fill ratio of the bounding box: square 1, circle ~0.78, triangle ~0.5
    position: str  # from the centroid
    mask: np.ndarray


def see(image: Image.Image) -> list[SeenObject]:
    """Every palette-coloured blob of the image (the demo draws each colour at most once per picture)."""
    pixels = np.asarray(image.convert("RGB"))
    height, width = pixels.shape[:2]
    seen = []
    for color, rgb in COLORS.items():
        mask = np.all(pixels == rgb, axis=-1)
        if not mask.any():
            continue
        ys, xs = np.nonzero(mask)
        cx, cy = xs.mean() / width, ys.mean() / height
        position = "left" if cx < 0.35 else "right" if cx > 0.65 else "top" if cy < 0.5 else "bottom"
        fill = mask.sum() / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
        kind = "square" if fill > 0.95 else "circle" if fill > 0.65 else "triangle"
        seen.append(SeenObject(color, kind, position, mask))
    return seen


def _crop(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


@cache
def _template(text: str, scale: int) -> np.ndarray:
    canvas = Image.new("L", (8 * len(text) + 8, 16), 0)
    ImageDraw.Draw(canvas).text((2, 2), text, font=ImageFont.load_default_imagefont(), fill=255)
    return _crop(np.kron(np.asarray(canvas) > 0, np.ones((scale, scale), dtype=bool)))


_CANDIDATE_TEXTS = list(WORDS) + [f"{a}+{b}=" for a in range(1, 10) for b in range(1, 10)]


def read_text(mask: np.ndarray) -> str:
    """Template OCR: the candidate text whose bitmap-font rendering (at any integer scale) is exactly `mask`."""
    cropped = _crop(mask)
    for text in _CANDIDATE_TEXTS:
        for scale in (1, 2, 3):
            template = _template(text, scale)
            if template.shape == cropped.shape and np.array_equal(template, cropped):
                return text
    raise AssertionError("no candidate text matches the written pixels")


def words_of(image: Image.Image) -> list[tuple[str, str, str]]:
    """(text, color, position top/center/bottom) of each written word, top to bottom."""
    height = image.height
    found = []
    for thing in see(image):
        ys = np.nonzero(thing.mask)[0]
        cy = ys.mean() / height
        position = "top" if cy < 0.4 else "bottom" if cy > 0.6 else "center"
        found.append((ys.mean(), read_text(thing.mask), thing.color, position))
    return [(text, color, position) for _, text, color, position in sorted(found)]


def expected_answer(question: str, image: Image.Image) -> str:
    """What the picture says the answer is (lower-case), for every question pattern the demo asks."""
    question = question.replace(" Please answer yes or no.", "")
    objects = see(image)

    def one(kind: str | None = None, position: str | None = None, color: str | None = None) -> SeenObject:
        matches = [
            o
            for o in objects
            if (kind is None or o.kind == kind)
            and (position is None or o.position == POSITION_WORDS[position])
            and (color is None or o.color == color)
        ]
        assert len(matches) == 1, f"{question!r} does not single out one object in the picture"
        return matches[0]

    def yes(condition: bool) -> str:
        return "yes" if condition else "no"

    patterns = [
        # words and arithmetic first: their pictures hold no shapes
        (r"[Ww]hat word is written in the image\?", lambda: single_word()),
        (rf"[Ww]hat word is written {POSITION}\?", lambda p: word_where(POSITION_WORDS[p])),
        (r"[Ww]hat word is written in (\w+)\?", lambda c: word_colored(c)),
        (r'[Ww]hat color is the word "(\w+)"\?', lambda w: color_of_word(w)),
        (r"What is written in the image\?", lambda: "<and>".join(t.lower() for t, _, _ in words_of(image))),
        (r'Is the word in the image "(\w+)"\?', lambda w: yes(any(t == w for t, _, _ in words_of(image)))),
        (
            r"Is the answer to the arithmetic question in the image (\d+)\?",
            lambda v: yes(arithmetic() == int(v)),
        ),
        (r"What is the answer to the arithmetic question in the image\?", lambda: str(arithmetic())),
        # shapes
        (rf"What color is the (\w+)(?: {POSITION})?\?", lambda k, p=None: one(k, p).color),
        (rf"What shape is {POSITION}\?", lambda p: one(position=p).kind),
        (r"How many shapes are (?:there|in the image)\?", lambda: str(len(objects))),
        (r"How many (circle|square|triangle)s are there\?", lambda k: str(sum(o.kind == k for o in objects))),
        (r"Where is the (\w+) (\w+)(?: in the image)?\?", lambda c, k: one(k, color=c).position),
        (
            r"Is there an? (\w+) (\w+)(?: in the image| in this image)?\?",
            lambda c, k: yes(any(o.color == c and o.kind == k for o in objects)),
        ),
        (rf"Is the (\w+)(?: {POSITION})? (\w+) or (\w+)\?", lambda k, p, c1, c2: one(k, p).color),
        (r"Is the number of shapes in this image (\w+)\?", lambda n: yes(NUMBERS.index(n) == len(objects))),
        (
            rf"Is the (\w+) (\w+) {POSITION} of the image\?",
            lambda c, k, p: yes(one(k, color=c).position == POSITION_WORDS[p]),
        ),
        (rf"Is the (\w+)(?: {POSITION})? in the image (\w+)\?", lambda k, p, c: yes(one(k, p).color == c)),
        (rf"Is the (\w+)(?: {POSITION})? (\w+)\?", lambda k, p, c: yes(one(k, p).color == c)),
    ]

    def single_word() -> str:
        words = words_of(image)
        assert len(words) == 1
        return words[0][0].lower()

    def word_where(position: str) -> str:
        return next(t for t, _, p in words_of(image) if p == position).lower()

    def word_colored(color: str) -> str:
        return next(t for t, c, _ in words_of(image) if c == color).lower()

    def color_of_word(word: str) -> str:
        return next(c for t, c, _ in words_of(image) if t == word.upper())

    def arithmetic() -> int:
        (text, _, _), *_ = words_of(image)
        left, right = text.rstrip("=").split("+")
        return int(left) + int(right)

    for pattern, answer in patterns:
        match = re.fullmatch(pattern, question)
        if match:
            return answer(*match.groups())
    raise AssertionError(f"the test knows no rule for the question {question!r}")


# --- determinism ---------------------------------------------------------------------------------------------------


def _folder_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("mode", ["embedded", "files"])
def test_same_seed_writes_identical_bytes_and_another_seed_different_rows(tmp_path: Path, mode: str) -> None:
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        write_all_tasks(tmp_path / name, n=8, seed=seed, image_mode=mode)
    first, again, other = (_folder_bytes(tmp_path / name) for name in "abc")
    assert first == again and len(first) >= len(DEMO_TASKS)
    for task in DEMO_TASKS:
        data_file = f"{task}.parquet" if mode == "embedded" else f"{task}.jsonl"
        assert first[data_file] != other[data_file], task
    questions = {
        seed: load_task_data("vqav2", data_root=tmp_path / name).rows["question"]
        for name, seed in (("a", 0), ("c", 1))
    }
    assert questions[0] != questions[1]


def test_task_data_images_differ_between_tasks(data_roots: dict[str, Path]) -> None:
    images = {}
    for task in ("vqav2", "pope", "mme"):
        data = load_task_data(task, data_root=data_roots["embedded"])
        images[task] = data.image(0).tobytes()
    assert len(set(images.values())) == 3


# --- every task loads, decodes and prompts --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["embedded", "files"])
@pytest.mark.parametrize("task", DEMO_TASKS)
def test_every_task_loads_decodes_and_builds_prompts(
    data_roots: dict[str, Path], task: str, mode: str
) -> None:
    data = load_task_data(task, data_root=data_roots[mode])
    expected_suffix = ".parquet" if mode == "embedded" else ".jsonl"
    assert data.source.path.name == task + expected_suffix
    assert len(data) == N
    for index in range(len(data)):
        image = data.image(index)
        assert image.mode == "RGB" and image.size in IMAGE_SIZES
        assert build_question(task, data.rows[index])
    if mode == "files" and task != "gqa":
        assert all(path.startswith(f"images/{task}/") for path in data.rows["image"])


def test_hub_column_types(data_roots: dict[str, Path]) -> None:
    def row(task: str) -> dict:
        return load_task_data(task, data_root=data_roots["embedded"], need_images=False).rows[0]

    vqa = row("vqav2")
    assert isinstance(vqa["question_id"], int) and isinstance(vqa["image_id"], int)
    assert len(vqa["answers"]) == 10 and set(vqa["answers"][0]) == {
        "answer",
        "answer_confidence",
        "answer_id",
    }
    assert vqa["answer_type"] in ("yes/no", "number", "other")
    testdev = row("vqav2_testdev")
    assert testdev["answers"] is None and testdev["multiple_choice_answer"] is None
    gqa = row("gqa")
    assert (
        isinstance(gqa["id"], str)
        and isinstance(gqa["isBalanced"], bool)
        and set(gqa["types"])
        == {
            "structural",
            "semantic",
            "detailed",
        }
    )
    sqa = row("scienceqa_img")
    assert isinstance(sqa["choices"], list) and 0 <= sqa["answer"] < len(sqa["choices"])
    textvqa = row("textvqa")
    assert len(textvqa["answers"]) == 10 and isinstance(textvqa["ocr_tokens"], list)
    assert row("pope")["category"] in ("adversarial", "popular", "random")
    mme = row("mme")
    assert re.fullmatch(r"[A-Za-z_]+/\d{4}\.png", mme["question_id"]) and mme["answer"] in ("Yes", "No")
    assert mme["question"].endswith("? Please answer yes or no.")
    assert row("llava_wild")["category"] in ("conv", "detail", "complex")


def test_gqa_images_live_apart_joined_on_image_id(data_roots: dict[str, Path]) -> None:
    embedded, files = data_roots["embedded"], data_roots["files"]
    assert (embedded / "gqa_images.parquet").is_file()
    rows = load_task_data("gqa", data_root=embedded, need_images=False).rows
    assert "image" not in rows.column_names
    assert all((files / "images" / f"{image_id}.png").is_file() for image_id in rows["imageId"])


# --- answers agree with the pictures --------------------------------------------------------------------------------


@pytest.mark.parametrize("task", ["vqav2", "gqa", "textvqa", "pope", "mme"])
def test_answers_match_the_pictures(data_roots: dict[str, Path], task: str) -> None:
    data = load_task_data(task, data_root=data_roots["embedded"])
    for index, row in enumerate(data.rows):
        gold = {"vqav2": row.get("multiple_choice_answer"), "textvqa": (row.get("answers") or [""])[0]}.get(
            task, row.get("answer")
        )
        assert expected_answer(row["question"], data.image(index)) == str(gold).lower(), row["question"]


def test_mmvet_and_scienceqa_answers_match_the_pictures(data_roots: dict[str, Path]) -> None:
    mmvet = load_task_data("mmvet", data_root=data_roots["files"])
    for index, row in enumerate(mmvet.rows):
        first_alternative = row["answer"].split("<OR>")[0].lower()
        assert expected_answer(row["question"], mmvet.image(index)) == first_alternative, row["question"]
    sqa = load_task_data("scienceqa_img", data_root=data_roots["files"])
    for index, row in enumerate(sqa.rows):
        question = {
            "Which word is written in the picture?": "What word is written in the image?",
            "How many shapes are in the picture?": "How many shapes are there?",
        }.get(row["question"], row["question"].replace("Which shape is", "What shape is"))
        question = question.replace("Which word is written", "What word is written")
        correct = row["choices"][row["answer"]].lower()
        assert expected_answer(question, sqa.image(index)) == correct, row["question"]
        assert sorted(row["choices"]) == sorted(set(row["choices"]))  # one right option only


def test_a_single_shape_color_question_names_the_dominant_non_background_color(tmp_path: Path) -> None:
    data = load_task_data("vqav2", data=write_task_data("vqav2", tmp_path, n=200, seed=3))
    checked = 0
    for index, row in enumerate(data.rows):
        if not row["question"].startswith("What color is the ") or '"' in row["question"]:
            continue
        pixels = np.asarray(data.image(index)).reshape(-1, 3)
        colors, counts = np.unique(pixels, axis=0, return_counts=True)
        background = colors[counts.argmax()]
        named = {rgb: name for name, rgb in COLORS.items()}
        shape_colors = [named[tuple(int(v) for v in c)] for c in colors if tuple(c) != tuple(background)]
        if len(shape_colors) == 1:
            assert row["multiple_choice_answer"] == shape_colors[0]
            checked += 1
    assert checked >= 3


def test_yes_no_tasks_are_balanced(data_roots: dict[str, Path]) -> None:
    pope = load_task_data("pope", data_root=data_roots["embedded"], need_images=False).rows
    for category in ("adversarial", "popular", "random"):
        answers = [a for a, c in zip(pope["answer"], pope["category"]) if c == category]
        assert abs(answers.count("yes") - answers.count("no")) <= 1 and answers
    mme = load_task_data("mme", data_root=data_roots["embedded"], need_images=False).rows
    per_image: dict[str, list[str]] = {}
    for question_id, answer in zip(mme["question_id"], mme["answer"]):
        per_image.setdefault(question_id, []).append(answer)
    assert all(sorted(answers) == ["No", "Yes"] for answers in per_image.values())


def test_pope_no_questions_follow_each_categorys_negative_sampling(tmp_path: Path) -> None:
    data = load_task_data("pope", data=write_task_data("pope", tmp_path, n=90, seed=5))
    near = total = 0
    for index, row in enumerate(data.rows):
        if row["category"] != "adversarial" or row["answer"] != "no":
            continue
        color, kind = re.fullmatch(r"Is there an? (\w+) (\w+) in the image\?", row["question"]).groups()
        objects = see(data.image(index))
        near += any(o.color == color or o.kind == kind for o in objects)
        total += 1
    assert total >= 10 and near == total


# --- scoring gold predictions gives the maximum ---------------------------------------------------------------------


def _gold(task: str, row: dict) -> str:
    if task == "vqav2":
        return row["multiple_choice_answer"]
    if task == "scienceqa_img":
        return "ABCDE"[row["answer"]]
    if task == "textvqa":
        return row["answers"][0]
    return row["answer"]


def _score(tmp_path: Path, task: str, data_file: Path, predictions: list[str]) -> dict:
    lines = [{"index": i, "prediction": p} for i, p in enumerate(predictions)]
    predictions_file = tmp_path / f"{task}.predictions.jsonl"
    predictions_file.write_text("".join(json.dumps(line) + "\n" for line in lines))
    output = tmp_path / f"{task}.score.json"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = main(
            [
                "score",
                task,
                "--data",
                str(data_file),
                "--predictions",
                str(predictions_file),
                "--output",
                str(output),
            ]
        )
    assert code == 0
    return json.loads(output.read_text())["metrics"]


@pytest.mark.parametrize("mode", ["embedded", "files"])
@pytest.mark.parametrize("task", SCORED_TASKS)
def test_gold_predictions_score_the_maximum(
    data_roots: dict[str, Path], tmp_path: Path, task: str, mode: str
) -> None:
    data = load_task_data(task, data_root=data_roots[mode], need_images=False)
    metrics = _score(tmp_path, task, data.source.path, [_gold(task, row) for row in data.rows])
    if task == "pope":
        assert metrics["f1"] == pytest.approx(100.0)
        assert all(metrics[f"{c}_f1"] == pytest.approx(100.0) for c in ("adversarial", "popular", "random"))
    elif task == "mme":
        perception = {"existence", "count", "position", "color", "OCR"} & set(data.rows["category"])
        assert metrics["perception"] == pytest.approx(200.0 * len(perception)) and len(perception) == 5
        assert metrics["cognition"] == pytest.approx(200.0)
    else:
        assert metrics["accuracy"] == pytest.approx(100.0)


def test_blind_guesses_score_far_below_gold(data_roots: dict[str, Path], tmp_path: Path) -> None:
    mme = load_task_data("mme", data_root=data_roots["embedded"], need_images=False)
    always_yes = _score(tmp_path, "mme", mme.source.path, ["Yes"] * len(mme))
    assert always_yes["perception"] == pytest.approx(50.0 * 5)  # acc 50, acc+ 0 in each subtask
    pope = load_task_data("pope", data_root=data_roots["embedded"], need_images=False)
    assert _score(tmp_path, "pope", pope.source.path, ["yes"] * len(pope))["accuracy"] <= 60.0
    vqa = load_task_data("vqav2", data_root=data_roots["embedded"], need_images=False)
    assert _score(tmp_path, "vqav2", vqa.source.path, ["yes"] * len(vqa))["accuracy"] < 40.0


# --- training data ---------------------------------------------------------------------------------------------------


def test_training_data_is_llava_format_with_existing_images(tmp_path: Path) -> None:
    from tinyllava_bench.train.records import conversation_turns

    paths = write_training_data(tmp_path, n_pretrain=12, n_finetune=60, seed=0)
    folder = paths["image_folder"]
    pretrain = json.loads(paths["pretrain"].read_text())
    finetune = json.loads(paths["finetune"].read_text())
    assert len(pretrain) == 12 and len(finetune) == 60
    for record in pretrain + finetune:
        assert conversation_turns(record) is not None, record["id"]
        values = [m["value"] for m in record["conversations"]]
        if "image" in record:
            assert (folder / record["image"]).is_file() and not Path(record["image"]).is_absolute()
            assert values[0].startswith("<image>\n") and sum(v.count("<image>") for v in values) == 1
        else:
            assert not any("<image>" in v for v in values)
    assert all("image" in record for record in pretrain)
    assert 1 <= sum("image" not in record for record in finetune) <= 6
    questions = [m["value"] for r in finetune for m in r["conversations"] if m["from"] == "human"]
    assert any(q.endswith("\nAnswer the question using a single word or phrase.") for q in questions)
    multiple_choice = [
        r for r in finetune if r["conversations"][0]["value"].endswith("given choices directly.")
    ]
    assert multiple_choice and all(
        re.fullmatch(r"[A-E]", r["conversations"][1]["value"]) for r in multiple_choice
    )
    assert {"Yes", "No"} <= {m["value"] for r in finetune for m in r["conversations"] if m["from"] == "gpt"}
    assert any("\nReference OCR token: " in q for q in questions)


def test_training_data_is_deterministic_and_shares_no_image_with_eval(tmp_path: Path) -> None:
    first = write_training_data(tmp_path / "a", 20, 40, seed=1)
    write_training_data(tmp_path / "b", 20, 40, seed=1)
    assert _folder_bytes(tmp_path / "a") == _folder_bytes(tmp_path / "b")
    write_all_tasks(tmp_path / "eval", n=40, seed=1, image_mode="files")
    train_images = {np.asarray(Image.open(p)).tobytes() for p in first["image_folder"].rglob("*.png")}
    eval_images = {np.asarray(Image.open(p)).tobytes() for p in (tmp_path / "eval" / "images").rglob("*.png")}
    assert train_images and eval_images and not train_images & eval_images


def test_scenes_come_from_fixed_disjoint_eval_and_train_parts() -> None:
    drawn = {
        split: [sample_scene(seeded_rng("test", seed), "text", split, count=1) for seed in range(150)]
        for split in ("eval", "train")
    }
    assert all(scene.split() == split for split, scenes in drawn.items() for scene in scenes)
    signatures = {split: {scene.signature() for scene in scenes} for split, scenes in drawn.items()}
    assert not signatures["eval"] & signatures["train"]
    # the part depends only on what a scene shows: about a quarter of the 18 one-shape scenes on one canvas is eval
    shares = [
        Scene(64, 64, "white", shapes=(Shape(kind, color, "left", 8),)).split()
        for kind in ("circle", "square", "triangle")
        for color in COLORS
    ]
    assert 1 <= shares.count("eval") <= 12


def test_training_prompts_use_the_task_configs_protocol_strings() -> None:
    from tinyllava_bench.tasks.registry import load_task
    from tinyllava_bench.testing import training_data

    assert load_task("vqav2").prompt_for("official").suffix == training_data.SHORT_ANSWER_SUFFIX
    assert load_task("mme").prompt_for("official").suffix == training_data.SHORT_ANSWER_SUFFIX
    assert training_data.MME_SUFFIX.strip() in load_task("mme").prompt_for("official").remove
    science = load_task("scienceqa_img").prompt_for("official")
    assert science.suffix == training_data.MULTIPLE_CHOICE_SUFFIX and science.context_prefix == "Context: "
    assert load_task("textvqa").prompt_for("official").ocr_prefix == training_data.OCR_PREFIX


def test_training_answers_match_the_pictures(tmp_path: Path) -> None:
    paths = write_training_data(tmp_path, n_pretrain=0, n_finetune=40, seed=2)
    checked = 0
    for record in json.loads(paths["finetune"].read_text()):
        if "image" not in record:
            continue
        image = Image.open(paths["image_folder"] / record["image"]).convert("RGB")
        messages = record["conversations"]
        for human, gpt in zip(messages[0::2], messages[1::2]):
            question = human["value"].removeprefix("<image>\n")
            suffix = "\nAnswer the question using a single word or phrase."
            if not question.endswith(suffix) or "Reference OCR token" in question:
                continue
            assert expected_answer(question.removesuffix(suffix), image) == gpt["value"].lower(), question
            checked += 1
    assert checked >= 20


# --- misuse ----------------------------------------------------------------------------------------------------------


def test_unknown_task_and_image_mode_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no data for task 'coco'"):
        write_task_data("coco", tmp_path)
    with pytest.raises(ValueError, match="image_mode"):
        write_task_data("pope", tmp_path, image_mode="zip")
