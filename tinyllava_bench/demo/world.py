"""The demo's benchmark copies and training data, drawn from the synthetic world in the hub datasets' own columns.

`write_task_data` writes one task as `root/<task>.parquet` (images embedded, as the hub's parquet files) or
`root/<task>.jsonl` plus image files under `root/images/`; `load_task_data(task, data_root=root)` reads either.
Benchmark images come from the world's eval part only (see scenes.Scene.split); training data, in
training_data.py, from the train part.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.questions import (
    QA,
    arithmetic_question,
    ask,
    color_question,
    exists_question,
    families_for,
    human_answers,
    mme_questions,
    read_question,
    refer,
    shape_question,
)
from tinyllava_bench.demo.scenes import (
    COLORS,
    NUMBER_WORDS,
    SHAPES,
    WORDS,
    Scene,
    brief_caption,
    detailed_caption,
    plural,
    png_bytes,
    position_phrase,
    render_scene,
    sample_scene,
    seeded_rng,
)

DEMO_TASKS = (
    "vqav2",
    "vqav2_testdev",
    "gqa",
    "scienceqa_img",
    "textvqa",
    "pope",
    "mme",
    "mmvet",
    "llava_wild",
)
IMAGE_MODES = ("embedded", "files")
IMAGES_DIR = "images"
# MME subtasks the world can draw: five perception ones and one cognition one
MME_CATEGORIES = ("existence", "count", "position", "color", "OCR", "numerical_calculation")

_VQA_FAMILIES = ("color", "shape", "count", "position", "exists", "verify")
_GQA_FAMILIES = ("color", "shape", "position", "exists", "verify", "choose")
# GQA's (structural, semantic, detailed) question types for each family
_GQA_TYPES = {
    "color": ("query", "attr", "queryAttr"),
    "shape": ("query", "cat", "categoryRel"),
    "position": ("query", "rel", "positionQuery"),
    "exists": ("verify", "obj", "existAttr"),
    "verify": ("verify", "attr", "verifyAttr"),
    "choose": ("choose", "attr", "chooseAttr"),
}
_GQA_PROGRAMS = {
    "color": "select: {kind} ->query: color",
    "shape": "select: {kind} ->query: name",
    "position": "select: {kind} ->filter color: {color} ->query: position",
    "exists": "select: {kind} ->filter color: {color} ->exist: ?",
    "verify": "select: {kind} ->verify color: ?",
    "choose": "select: {kind} ->choose color: ?",
}


@dataclass(frozen=True)
class Picture:
    """A row's image before writing: `name` is its file stem, unique within one task's data."""

    name: str
    scene: Scene


Rows = list[dict[str, Any]]


def random_scene_kind(rng: random.Random, text_share: float, arithmetic_share: float = 0.0) -> str:
    draw = rng.random()
    if draw < arithmetic_share:
        return "arithmetic"
    return "text" if draw < arithmetic_share + text_share else "shapes"


def distinct_questions(scene: Scene, rng: random.Random, families: tuple[str, ...], count: int) -> list[QA]:
    usable = [family for family in families if family in families_for(scene)] or list(families_for(scene))
    return [ask(scene, rng, family) for family in rng.sample(usable, min(count, len(usable)))]


# --- one function per task: n rows in the hub dataset's columns, images as Picture -------------------------------


def _vqav2_rows(n: int, rng: random.Random, testdev: bool) -> Rows:
    rows: Rows = []
    first_image_id = 200_000 if testdev else 100_000
    image_index = 0
    while len(rows) < n:
        image_id = first_image_id + image_index
        scene = sample_scene(rng, random_scene_kind(rng, text_share=0.2), "eval")
        picture = Picture(f"{image_id:012d}", scene)
        for number, qa in enumerate(distinct_questions(scene, rng, _VQA_FAMILIES, rng.randint(1, 3))):
            if len(rows) == n:
                break
            answers = None
            if not testdev:
                confidences = rng.choices(("yes", "maybe"), weights=(9, 1), k=10)
                answers = [
                    {"answer": text, "answer_confidence": confidence, "answer_id": i + 1}
                    for i, (text, confidence) in enumerate(zip(human_answers(qa, rng), confidences))
                ]
            rows.append(
                {
                    "question_type": None if testdev else qa.question_type,
                    "multiple_choice_answer": None if testdev else qa.answer,
                    "answers": answers,
                    "image_id": image_id,
                    "answer_type": None if testdev else qa.answer_type,
                    "question_id": image_id * 1000 + number,
                    "question": qa.question,
                    "image": picture,
                }
            )
        image_index += 1
    return rows


def _gqa_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    image_index = 0
    while len(rows) < n:
        scene = sample_scene(rng, "shapes", "eval")
        picture = Picture(f"n{100_000 + image_index}", scene)
        for qa in distinct_questions(scene, rng, _GQA_FAMILIES, 2):
            if len(rows) == n:
                break
            structural, semantic, detailed = _GQA_TYPES[qa.family]
            rows.append(
                {
                    "id": str(20_000_000 + len(rows)),
                    "imageId": picture.name,
                    "question": qa.question,
                    "answer": qa.answer,
                    "fullAnswer": qa.full_answer,
                    # GQA's eval.py scores only balanced questions; a few unbalanced ones exercise that rule
                    "isBalanced": rng.random() < 0.85,
                    "groups": {"global": None, "local": f"{qa.family}-{qa.about[1]}"},
                    "types": {"structural": structural, "semantic": semantic, "detailed": detailed},
                    "semanticStr": _GQA_PROGRAMS[qa.family].format(color=qa.about[0], kind=qa.about[1]),
                    "image": picture,
                }
            )
        image_index += 1
    return rows


_SCIENCE_TOPICS = {
    "shape": (
        "natural science",
        "geometry",
        "Identify shapes",
        "Identify circles, squares and triangles",
        "A circle is round. A square has four equal sides. A triangle has three sides.",
    ),
    "color": (
        "natural science",
        "colors",
        "Identify colors",
        "Name the color of an object",
        "Red, green, blue, yellow, purple and orange are colors. Look at an object to tell its color.",
    ),
    "count": (
        "natural science",
        "counting",
        "Count objects",
        "Count the shapes in a picture",
        "To count objects, point at each one once and say the next number.",
    ),
    "read": (
        "language science",
        "reading",
        "Read words",
        "Read a word in a picture",
        "Letters make words. Read the letters from left to right to read a word.",
    ),
}


def _science_question(scene: Scene, rng: random.Random) -> tuple[str, str, list[str], str]:
    """(family, question, choices, correct choice) of one ScienceQA-style multiple-choice question."""
    if scene.words:
        word = rng.choice(scene.words)
        where = "in the picture" if len(scene.words) == 1 else position_phrase(word.position)
        others = [w for w in WORDS if w != word.text and all(w != shown.text for shown in scene.words)]
        choices = [word.text, *rng.sample(others, rng.randint(1, 3))]
        return "read", f"Which word is written {where}?", choices, word.text
    shape = rng.choice(scene.shapes)
    family = rng.choice(("shape", "color", "count"))
    if family == "shape":
        return family, f"Which shape is {position_phrase(shape.position)}?", list(SHAPES), shape.kind
    if family == "color":
        others = [c for c in COLORS if c != shape.color]
        choices = [shape.color, *rng.sample(others, rng.randint(1, 3))]
        return family, f"What color is {refer(scene, shape)}?", choices, shape.color
    count = len(scene.shapes)
    numbers = [count, *rng.sample([k for k in range(1, 6) if k != count], rng.randint(1, 3))]
    return family, "How many shapes are in the picture?", [str(k) for k in sorted(numbers)], str(count)


def science_row(scene: Scene, rng: random.Random) -> tuple[dict[str, Any], str]:
    """A ScienceQA-IMG row (image left out) and the correct option's text."""
    family, question, choices, correct = _science_question(scene, rng)
    if family != "count":
        rng.shuffle(choices)
    subject, topic, category, skill, lecture = _SCIENCE_TOPICS[family]
    context = "The picture shows some writing." if scene.words else "The picture shows some shapes."
    solution = f"Look at the picture. The answer is {correct}."
    row = {
        "question": question,
        "choices": choices,
        "answer": choices.index(correct),
        "hint": context if rng.random() < 0.5 else "",
        "task": "closed choice",
        "grade": rng.choice(("grade1", "grade2", "grade3")),
        "subject": subject,
        "topic": topic,
        "category": category,
        "skill": skill,
        "lecture": lecture,
        "solution": solution,
    }
    return row, correct


def _scienceqa_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    for index in range(n):
        scene = sample_scene(rng, random_scene_kind(rng, text_share=0.3), "eval")
        row, _ = science_row(scene, rng)
        rows.append({"image": Picture(f"sqa_{index:05d}", scene), **row})
    return rows


def ocr_tokens(scene: Scene) -> list[str]:
    ordered = sorted(scene.words, key=lambda word: ("top", "center", "bottom").index(word.position))
    return [word.text.lower() for word in ordered]


def _textvqa_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    image_index = 0
    while len(rows) < n:
        scene = sample_scene(rng, "text", "eval")
        image_id = f"{rng.getrandbits(64):016x}"
        picture = Picture(image_id, scene)
        # one image in eight: the OCR system found nothing, and the prompt has no OCR line (LLaVA's val file)
        tokens = [] if rng.random() < 0.125 else ocr_tokens(scene)
        for qa in distinct_questions(scene, rng, ("read", "read_by_color", "word_color"), rng.randint(1, 2)):
            if len(rows) == n:
                break
            question = qa.question[0].lower() + qa.question[1:]  # TextVQA questions are written lower-case
            rows.append(
                {
                    "image_id": image_id,
                    "question_id": 34_602 + len(rows),
                    "question": question,
                    "question_tokens": question.rstrip("?").split(),
                    "image": picture,
                    "image_width": scene.width,
                    "image_height": scene.height,
                    "answers": human_answers(qa, rng),
                    "image_classes": ["Poster", "Text"],
                    "set_name": "val",
                    "ocr_tokens": tokens,
                }
            )
        image_index += 1
    return rows


def _pope_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    per_category = [n // 3 + (i < n % 3) for i in range(3)]
    image_index = 0
    for category, size in zip(("adversarial", "popular", "random"), per_category):
        number = 0
        while number < size:
            scene = sample_scene(rng, "shapes", "eval")
            picture = Picture(f"pope_{image_index:05d}", scene)
            image_index += 1
            # a yes and a no question per image keeps each category balanced
            answers = [True, False] if rng.random() < 0.5 else [False, True]
            for present in answers[: size - number]:
                qa = exists_question(scene, rng, present, category, where=" in the image")
                number += 1
                rows.append(
                    {
                        "id": str(len(rows)),
                        "question_id": str(
                            number
                        ),  # POPE numbers questions per category: ids repeat across them
                        "question": qa.question,
                        "answer": qa.answer,
                        "image_source": f"demo_{picture.name}",
                        "image": picture,
                        "category": category,
                    }
                )
    return rows


def _mme_scene_kind(category: str) -> str:
    return {"OCR": "text", "numerical_calculation": "arithmetic"}.get(category, "shapes")


def _mme_rows(n: int, rng: random.Random) -> Rows:
    images = (n + 1) // 2
    per_category = {
        c: images // len(MME_CATEGORIES) + (i < images % len(MME_CATEGORIES))
        for i, c in enumerate(MME_CATEGORIES)
    }
    rows: Rows = []
    for category in MME_CATEGORIES:
        for number in range(1, per_category[category] + 1):
            scene = sample_scene(rng, _mme_scene_kind(category), "eval")
            path = f"{category}/{number:04d}.png"
            picture = Picture(f"{category}_{number:04d}", scene)
            pair = list(mme_questions(category, scene, rng))
            rng.shuffle(pair)
            for qa in pair:
                rows.append(
                    {
                        "question_id": path,
                        "image": picture,
                        "question": qa.question,
                        "answer": qa.answer,
                        "category": category,
                    }
                )
    return rows


def _mmvet_question(scene: Scene, kind: str, rng: random.Random) -> tuple[str, str, str]:
    """(question, answer with MM-Vet's <AND>/<OR> marks, capability) for one MM-Vet-style row."""
    if kind == "arithmetic":
        qa = arithmetic_question(scene)
        return qa.question, qa.answer, "ocr,math"
    if kind == "text":
        if len(scene.words) == 2 and rng.random() < 0.5:
            word = rng.choice(scene.words)
            return read_question(scene, word).question, word.text, "ocr,spat"
        return "What is written in the image?", "<AND>".join(w.text for w in scene.words), "ocr"
    shape = rng.choice(scene.shapes)
    asked = rng.choice(("color", "shape", "position", "count"))
    if asked == "color":
        return color_question(scene, shape).question, shape.color, "rec"
    if asked == "shape":
        return shape_question(scene, shape).question, shape.kind, "rec,spat"
    if asked == "position":
        answer = f"{shape.position}<OR>{position_phrase(shape.position)}"
        return f"Where is the {shape.color} {shape.kind} in the image?", answer, "rec,spat"
    count = len(scene.shapes)
    return "How many shapes are in the image?", f"{count}<OR>{NUMBER_WORDS[count]}", "rec"


def _mmvet_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    for index in range(n):
        kind = ("shapes", "shapes", "text", "shapes", "text", "arithmetic")[index % 6]
        scene = sample_scene(rng, kind, "eval")
        question, answer, capability = _mmvet_question(scene, kind, rng)
        rows.append(
            {
                "question_id": f"v1_{index}",
                "image": Picture(f"v1_{index}", scene),
                "question": question,
                "answer": answer,
                "image_source": f"v1_{index}.png",
                "capability": capability,
            }
        )
    return rows


def _complex_question(scene: Scene, rng: random.Random) -> tuple[str, str]:
    if scene.words:
        question = "If you had to copy the writing in this image, what would you write and in which colors?"
        parts = [f'"{w.text}" in {w.color} {position_phrase(w.position)}' for w in scene.words]
        return question, f"You would write {' and '.join(parts)}, on a {scene.background} background."
    shape = rng.choice(scene.shapes)
    rest = [s for s in scene.shapes if s is not shape]
    question = (
        f"If the {shape.color} {shape.kind} were taken out of the picture, how many shapes would be left?"
    )
    if not rest:
        return question, f"No shapes would be left: only the {scene.background} background would remain."
    listed = ", ".join(f"the {s.color} {s.kind} {position_phrase(s.position)}" for s in rest)
    count = len(rest)
    return question, f"{NUMBER_WORDS[count].capitalize()} {plural('shape', count)} would be left: {listed}."


def _llava_wild_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    image_index = 0
    while len(rows) < n:
        scene = sample_scene(rng, "text" if image_index % 3 == 2 else "shapes", "eval")
        picture = Picture(f"{image_index + 1:03d}", scene)
        if scene.words:
            conversation = read_question(scene, rng.choice(scene.words))
        else:
            conversation = color_question(scene, rng.choice(scene.shapes))
        complex_question, complex_answer = _complex_question(scene, rng)
        questions = [
            ("conv", conversation.question, conversation.full_answer),
            ("detail", "Describe this image in detail.", detailed_caption(scene)),
            ("complex", complex_question, complex_answer),
        ]
        for category, question, answer in questions:
            if len(rows) == n:
                break
            rows.append(
                {
                    "question_id": len(rows),
                    "question": question,
                    "image": picture,
                    "caption": brief_caption(scene),
                    "gpt_answer": answer,
                    "category": category,
                    "image_id": picture.name,
                }
            )
        image_index += 1
    return rows


_ROW_BUILDERS: dict[str, Callable[[int, random.Random], Rows]] = {
    "vqav2": lambda n, rng: _vqav2_rows(n, rng, testdev=False),
    "vqav2_testdev": lambda n, rng: _vqav2_rows(n, rng, testdev=True),
    "gqa": _gqa_rows,
    "scienceqa_img": _scienceqa_rows,
    "textvqa": _textvqa_rows,
    "pope": _pope_rows,
    "mme": _mme_rows,
    "mmvet": _mmvet_rows,
    "llava_wild": _llava_wild_rows,
}


def _features(task: str) -> Any:
    """The hub dataset's column types, so all-null columns (test-split answers) keep their real type."""
    from datasets import Features, Image, List, Value

    string, image = Value("string"), Image()
    if task in ("vqav2", "vqav2_testdev"):
        answer = {"answer": string, "answer_confidence": string, "answer_id": Value("int64")}
        columns = {
            "question_type": string,
            "multiple_choice_answer": string,
            "answers": List(answer),
            "image_id": Value("int64"),
            "answer_type": string,
            "question_id": Value("int64"),
            "question": string,
            "image": image,
        }
    elif task == "gqa":
        columns = {
            "id": string,
            "imageId": string,
            "question": string,
            "answer": string,
            "fullAnswer": string,
            "isBalanced": Value("bool"),
            "groups": {"global": string, "local": string},
            "types": {"structural": string, "semantic": string, "detailed": string},
            "semanticStr": string,
        }
    elif task == "scienceqa_img":
        columns = {"image": image, "question": string, "choices": List(string), "answer": Value("int8")}
        columns.update(
            dict.fromkeys(("hint", "task", "grade", "subject", "topic", "category", "skill"), string)
        )
        columns.update({"lecture": string, "solution": string})
    elif task == "textvqa":
        columns = {
            "image_id": string,
            "question_id": Value("int32"),
            "question": string,
            "question_tokens": List(string),
            "image": image,
            "image_width": Value("int32"),
            "image_height": Value("int32"),
            "answers": List(string),
            "image_classes": List(string),
            "set_name": string,
            "ocr_tokens": List(string),
        }
    elif task == "pope":
        columns = {
            "id": string,
            "question_id": string,
            "question": string,
            "answer": string,
            "image_source": string,
            "image": image,
            "category": string,
        }
    elif task == "mme":
        columns = {
            "question_id": string,
            "image": image,
            "question": string,
            "answer": string,
            "category": string,
        }
    elif task == "mmvet":
        columns = {
            "question_id": string,
            "image": image,
            "question": string,
            "answer": string,
            "image_source": string,
            "capability": string,
        }
    elif task == "llava_wild":
        columns = {
            "question_id": Value("int32"),
            "question": string,
            "image": image,
            "caption": string,
            "gpt_answer": string,
            "category": string,
            "image_id": string,
        }
    else:
        raise ValueError(f"no demo data for task {task!r}")
    return Features(columns)


def task_rows(task: str, n: int = 20, seed: int = 0) -> Rows:
    """The demo rows of `task` with each image as a Picture (its scene says what it shows); deterministic by seed."""
    if task not in _ROW_BUILDERS:
        from tinyllava_bench.errors import UserError

        raise UserError(f"the demo world has no data for task {task!r}; it has: {', '.join(DEMO_TASKS)}")
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    return _ROW_BUILDERS[task](n, seeded_rng("eval", task, seed))


class _ImageStore:
    """Renders each picture once and writes it embedded ({bytes, path}) or as a file under root/images/."""

    def __init__(self, root: Path, folder: str | None, image_mode: str) -> None:
        self.root, self.folder, self.image_mode = root, folder, image_mode
        self._bytes: dict[str, bytes] = {}

    def png(self, picture: Picture) -> bytes:
        if picture.name not in self._bytes:
            self._bytes[picture.name] = png_bytes(render_scene(picture.scene))
        return self._bytes[picture.name]

    def value(self, picture: Picture) -> Any:
        if self.image_mode == "embedded":
            return {"bytes": self.png(picture), "path": f"{picture.name}.png"}
        relative = Path(IMAGES_DIR, *([self.folder] if self.folder else []), f"{picture.name}.png")
        target = self.root / relative
        if picture.name not in self._bytes:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(self.png(picture))
        return relative.as_posix()


def _write_table(rows: Rows, features: Any, path: Path) -> None:
    if path.suffix == ".parquet":
        import datasets
        import pyarrow.parquet as pq

        # the table carries the features in its schema metadata, as a hub parquet file does; pyarrow writes it
        # without datasets' progress bar
        pq.write_table(datasets.Dataset.from_list(rows, features=features).data.table, path)
        return
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def write_task_data(task: str, root: Path, n: int = 20, seed: int = 0, image_mode: str = "embedded") -> Path:
    """Write `n` demo rows of `task` (MME: pairs, so n rounded up to even) under `root`; returns the data file.

    embedded: root/<task>.parquet with the images inside (GQA: the images in root/gqa_images.parquet, joined on
    imageId = id, as the hub's two configs). files: root/<task>.jsonl whose image column holds paths relative to
    root (GQA: no image column, the files root/images/<imageId>.png, GQA's own layout).
    """
    if image_mode not in IMAGE_MODES:
        raise ValueError(f"image_mode must be one of {', '.join(IMAGE_MODES)}, got {image_mode!r}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rows = task_rows(task, n, seed)
    suffix = ".parquet" if image_mode == "embedded" else ".jsonl"
    path = root / f"{task}{suffix}"
    features = _features(task)
    if task == "gqa":
        store = _ImageStore(root, None, image_mode)
        pictures = {row["image"].name: row.pop("image") for row in rows}
        if image_mode == "embedded":
            from datasets import Features, Image, Value

            images = [{"id": name, "image": store.value(picture)} for name, picture in pictures.items()]
            _write_table(
                images, Features({"id": Value("string"), "image": Image()}), root / f"{task}_images.parquet"
            )
        else:
            for picture in pictures.values():
                store.value(picture)
    else:
        store = _ImageStore(root, task, image_mode)
        for row in rows:
            row["image"] = store.value(row["image"])
    _write_table(rows, features, path)
    return path


def write_all_tasks(
    root: Path, n: int = 20, seed: int = 0, image_mode: str = "embedded", tasks: tuple[str, ...] = DEMO_TASKS
) -> dict[str, Path]:
    """write_task_data for each of `tasks` into one folder (a `--data-root`); task name -> data file."""
    return {task: write_task_data(task, root, n, seed, image_mode) for task in tasks}
