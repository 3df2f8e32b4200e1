"""Rows of the judged tasks (MM-Vet, LLaVA-Bench in the wild): open questions with reference answers."""

from __future__ import annotations

import random

from tinyllava_bench.testing.questions import (
    arithmetic_question,
    color_question,
    read_question,
    shape_question,
)
from tinyllava_bench.testing.scenes import (
    NUMBER_WORDS,
    Scene,
    brief_caption,
    detailed_caption,
    plural,
    position_phrase,
    sample_scene,
)
from tinyllava_bench.testing.task_rows import Picture, Rows


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


def mmvet_rows(n: int, rng: random.Random) -> Rows:
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


def llava_wild_rows(n: int, rng: random.Random) -> Rows:
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
