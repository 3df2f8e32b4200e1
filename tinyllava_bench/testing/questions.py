"""Questions about a demo scene with the answers the picture implies: short answer, full sentence and VQA type."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from tinyllava_bench.testing.scenes import (
    COLORS,
    NUMBER_WORDS,
    POSITIONS,
    SHAPES,
    WORDS,
    Scene,
    Shape,
    Word,
    arithmetic_value,
    plural,
    position_phrase,
    scene_kind,
    seeded_rng,
    with_article,
)

YES, NO = "yes", "no"
# families that ask about shapes, words and arithmetic; the yes/no ones are "exists" and "verify"
SHAPE_FAMILIES = ("color", "shape", "count", "position", "exists", "verify", "choose")
TEXT_FAMILIES = ("read", "read_by_color", "word_color")
ARITHMETIC_FAMILIES = ("arithmetic",)
NEGATIVE_SAMPLING = ("random", "popular", "adversarial")  # POPE's three ways of choosing an absent object

# POPE's "popular" negatives are the objects most frequent in the dataset; here a fixed ranking of the world's
# coloured shapes stands in for frequency.
_POPULARITY = [(color, kind) for color in COLORS for kind in SHAPES]
seeded_rng("popularity").shuffle(_POPULARITY)


@dataclass(frozen=True)
class QA:
    """One question, its short answer (lower-case, as VQA/GQA annotate), a full-sentence answer and its types."""

    family: str
    question: str
    answer: str
    full_answer: str
    answer_type: str  # VQAv2's: "yes/no", "number" or "other"
    question_type: str  # VQAv2's: the question's first words
    about: tuple[str, str] = ("", "")  # (color, kind) of the shape asked about; GQA's programs name it


def _sentence(text: str) -> str:
    return text[0].upper() + text[1:]


def refer(scene: Scene, shape: Shape) -> str:
    """ "the circle" when the scene has one circle, else "the circle on the left"."""
    if sum(other.kind == shape.kind for other in scene.shapes) == 1:
        return f"the {shape.kind}"
    return f"the {shape.kind} {position_phrase(shape.position)}"


def count_of(scene: Scene, kind: str | None = None) -> int:
    return sum(kind is None or shape.kind == kind for shape in scene.shapes)


def color_question(scene: Scene, shape: Shape) -> QA:
    thing = refer(scene, shape)
    return QA(
        "color",
        f"What color is {thing}?",
        shape.color,
        _sentence(f"{thing} is {shape.color}."),
        "other",
        "what color is the",
        (shape.color, shape.kind),
    )


def shape_question(scene: Scene, shape: Shape) -> QA:
    where = position_phrase(shape.position)
    return QA(
        "shape",
        f"What shape is {where}?",
        shape.kind,
        f"The shape {where} is a {shape.kind}.",
        "other",
        "what",
        (shape.color, shape.kind),
    )


def count_question(scene: Scene, kind: str | None) -> QA:
    count = count_of(scene, kind)
    noun = kind or "shape"
    if count == 0:
        full = f"There are no {noun}s."
    else:
        full = f"There {'is' if count == 1 else 'are'} {NUMBER_WORDS[count]} {plural(noun, count)}."
    return QA("count", f"How many {noun}s are there?", str(count), full, "number", "how many")


def position_question(scene: Scene, shape: Shape) -> QA:
    thing = f"the {shape.color} {shape.kind}"
    return QA(
        "position",
        f"Where is {thing}?",
        shape.position,
        _sentence(f"{thing} is {position_phrase(shape.position)}."),
        "other",
        "where is the",
        (shape.color, shape.kind),
    )


def absent_object(scene: Scene, rng: random.Random, sampling: str = "random") -> tuple[str, str]:
    """A (color, kind) the scene does not show, chosen the way POPE's `sampling` chooses negatives."""
    present = {(shape.color, shape.kind) for shape in scene.shapes}
    absent = [pair for pair in _POPULARITY if pair not in present]
    if sampling == "popular":
        return rng.choice(absent[:3])
    if sampling == "adversarial":
        # objects that share a colour or a kind with what is there: the ones a model is likeliest to imagine
        near = [
            pair
            for pair in absent
            if any(pair[0] == color or pair[1] == kind for color, kind in sorted(present))
        ]
        return rng.choice(near or absent)
    if sampling != "random":
        raise ValueError(f"unknown negative sampling {sampling!r}; use one of {', '.join(NEGATIVE_SAMPLING)}")
    return rng.choice(absent)


def exists_question(
    scene: Scene, rng: random.Random, present: bool, sampling: str = "random", where: str = ""
) -> QA:
    """ "Is there a red circle{where}?" answered yes (a shape of the scene) or no (an absent one)."""
    if present:
        shape = rng.choice(scene.shapes)
        color, kind = shape.color, shape.kind
        full = f"Yes, there is {with_article(f'{color} {kind}')}."
    else:
        color, kind = absent_object(scene, rng, sampling)
        full = f"No, there is no {color} {kind}."
    answer = YES if present else NO
    return QA(
        "exists",
        f"Is there {with_article(f'{color} {kind}')}{where}?",
        answer,
        full,
        "yes/no",
        "is there a",
        (color, kind),
    )


def verify_question(scene: Scene, shape: Shape, rng: random.Random, true: bool) -> QA:
    """ "Is the circle red?" (GQA's verify questions)."""
    thing = refer(scene, shape)
    asked = shape.color if true else rng.choice([c for c in COLORS if c != shape.color])
    full = f"Yes, {thing} is {shape.color}." if true else f"No, {thing} is {shape.color}."
    answer = YES if true else NO
    return QA("verify", f"Is {thing} {asked}?", answer, full, "yes/no", "is the", (shape.color, shape.kind))


def choose_question(scene: Scene, shape: Shape, rng: random.Random) -> QA:
    """ "Is the circle red or blue?" (GQA's choose questions); the true colour comes first or second at random."""
    thing = refer(scene, shape)
    other = rng.choice([c for c in COLORS if c != shape.color])
    first, second = (shape.color, other) if rng.random() < 0.5 else (other, shape.color)
    return QA(
        "choose",
        f"Is {thing} {first} or {second}?",
        shape.color,
        _sentence(f"{thing} is {shape.color}."),
        "other",
        "is the",
        (shape.color, shape.kind),
    )


def read_question(scene: Scene, word: Word) -> QA:
    where = "in the image" if len(scene.words) == 1 else position_phrase(word.position)
    return QA(
        "read",
        f"What word is written {where}?",
        word.text.lower(),
        f'The word written {where} is "{word.text}".',
        "other",
        "what",
    )


def read_by_color_question(scene: Scene, word: Word) -> QA:
    return QA(
        "read_by_color",
        f"What word is written in {word.color}?",
        word.text.lower(),
        f'The word written in {word.color} is "{word.text}".',
        "other",
        "what",
    )


def word_color_question(scene: Scene, word: Word) -> QA:
    return QA(
        "word_color",
        f'What color is the word "{word.text}"?',
        word.color,
        f'The word "{word.text}" is written in {word.color}.',
        "other",
        "what color is the",
    )


def arithmetic_question(scene: Scene) -> QA:
    word = scene.words[0]
    value = arithmetic_value(word)
    expression = word.text.rstrip("=")
    return QA(
        "arithmetic",
        "What is the answer to the arithmetic question in the image?",
        str(value),
        f"The image shows {expression}, which equals {value}.",
        "number",
        "what is the",
    )


def ask(scene: Scene, rng: random.Random, family: str) -> QA:
    """A question of `family` about a random object of the scene (yes/no families: yes or no at random)."""
    if family in ARITHMETIC_FAMILIES:
        return arithmetic_question(scene)
    if family in TEXT_FAMILIES:
        word = rng.choice(scene.words)
        builder = {
            "read": read_question,
            "read_by_color": read_by_color_question,
            "word_color": word_color_question,
        }
        return builder[family](scene, word)
    shape = rng.choice(scene.shapes)
    if family == "color":
        return color_question(scene, shape)
    if family == "shape":
        return shape_question(scene, shape)
    if family == "count":
        return count_question(scene, rng.choice((None, None, *SHAPES)))
    if family == "position":
        return position_question(scene, shape)
    if family == "exists":
        return exists_question(scene, rng, rng.random() < 0.5)
    if family == "verify":
        return verify_question(scene, shape, rng, rng.random() < 0.5)
    if family == "choose":
        return choose_question(scene, shape, rng)
    raise ValueError(f"unknown question family {family!r}")


def families_for(scene: Scene) -> tuple[str, ...]:
    """The question families that make sense for the scene's kind."""
    return {"shapes": SHAPE_FAMILIES, "text": TEXT_FAMILIES, "arithmetic": ARITHMETIC_FAMILIES}[
        scene_kind(scene)
    ]


def mme_questions(category: str, scene: Scene, rng: random.Random) -> tuple[QA, QA]:
    """MME's pair for one image: a question answered Yes and one answered No, "Please answer yes or no." at the end."""
    pair: tuple[str, ...]
    wrong: Any  # the wrong value asked about: a count, a position, a colour, a word or a sum
    if category == "existence":
        shape = rng.choice(scene.shapes)
        color, kind = absent_object(scene, rng)
        pair = (
            f"Is there {with_article(f'{shape.color} {shape.kind}')} in this image?",
            f"Is there {with_article(f'{color} {kind}')} in this image?",
        )
    elif category == "count":
        count = len(scene.shapes)
        wrong = rng.choice([n for n in range(1, 6) if n != count])
        pair = tuple(f"Is the number of shapes in this image {NUMBER_WORDS[n]}?" for n in (count, wrong))
    elif category == "position":
        shape = rng.choice(scene.shapes)
        wrong = rng.choice([p for p in POSITIONS if p != shape.position])
        thing = f"the {shape.color} {shape.kind}"
        pair = tuple(f"Is {thing} {position_phrase(p)} of the image?" for p in (shape.position, wrong))
    elif category == "color":
        shape = rng.choice(scene.shapes)
        wrong = rng.choice([c for c in COLORS if c != shape.color])
        thing = refer(scene, shape)
        pair = tuple(f"Is {thing} in the image {c}?" for c in (shape.color, wrong))
    elif category == "OCR":
        word = rng.choice(scene.words)
        shown = {w.text for w in scene.words}
        wrong = rng.choice([w for w in WORDS if w not in shown])
        pair = tuple(f'Is the word in the image "{w}"?' for w in (word.text, wrong))
    elif category == "numerical_calculation":
        value = arithmetic_value(scene.words[0])
        wrong = value + rng.choice((-3, -2, -1, 1, 2, 3))
        pair = tuple(f"Is the answer to the arithmetic question in the image {v}?" for v in (value, wrong))
    else:
        raise ValueError(f"the demo world has no MME category {category!r}")
    yes, no = (f"{text} Please answer yes or no." for text in pair)
    return (QA(category, yes, "Yes", "Yes", "yes/no", "is"), QA(category, no, "No", "No", "yes/no", "is"))


def human_answers(qa: QA, rng: random.Random, count: int = 10) -> list[str]:
    """`count` annotator answers: the gold answer, with one or two equivalent spellings some of the time."""
    answers = [qa.answer] * count
    if qa.answer_type == "yes/no" or rng.random() < 0.5:
        return answers
    if qa.answer_type == "number":
        variant = NUMBER_WORDS[int(qa.answer)] if int(qa.answer) < len(NUMBER_WORDS) else qa.answer
    elif qa.family in ("shape",):
        variant = f"a {qa.answer}"
    elif qa.family in ("read", "read_by_color"):
        variant = qa.answer.upper()
    elif qa.family == "position":
        variant = f"{qa.answer} side"  # a real disagreement: it does not normalise to the gold answer
    else:
        variant = qa.answer.capitalize()
    for slot in rng.sample(range(count), rng.randint(1, 2)):
        answers[slot] = variant
    return answers
