"""Benchmark rows drawn from the synthetic world in the hub datasets' own columns, one builder per short-answer
task (the judged tasks' in judged_rows.py); each image is a Picture, rendered only when datasets.py writes it.

Benchmark images come from the world's eval part only (see scenes.Scene.split); training data, in
training_data.py, from the train part.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tinyllava_bench.testing.questions import (
    QA,
    ask,
    exists_question,
    families_for,
    human_answers,
    mme_questions,
    refer,
)
from tinyllava_bench.testing.scenes import (
    COLORS,
    SHAPES,
    WORDS,
    Scene,
    position_phrase,
    sample_scene,
)

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


def vqav2_rows(n: int, rng: random.Random, testdev: bool) -> Rows:
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


def gqa_rows(n: int, rng: random.Random) -> Rows:
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


def scienceqa_rows(n: int, rng: random.Random) -> Rows:
    rows: Rows = []
    for index in range(n):
        scene = sample_scene(rng, random_scene_kind(rng, text_share=0.3), "eval")
        row, _ = science_row(scene, rng)
        rows.append({"image": Picture(f"sqa_{index:05d}", scene), **row})
    return rows


def ocr_tokens(scene: Scene) -> list[str]:
    ordered = sorted(scene.words, key=lambda word: ("top", "center", "bottom").index(word.position))
    return [word.text.lower() for word in ordered]


def textvqa_rows(n: int, rng: random.Random) -> Rows:
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


def pope_rows(n: int, rng: random.Random) -> Rows:
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


def mme_rows(n: int, rng: random.Random) -> Rows:
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
