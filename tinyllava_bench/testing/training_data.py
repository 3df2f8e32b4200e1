"""Training data in LLaVA's format (the demo's): caption pretraining and finetuning in the eval tasks' question styles.

Images come from the world's train part, so no demo training image is ever a demo benchmark image.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyllava_bench.testing.datasets import IMAGES_DIR
from tinyllava_bench.testing.questions import (
    NEGATIVE_SAMPLING,
    arithmetic_question,
    ask,
    exists_question,
    families_for,
    mme_questions,
    read_question,
)
from tinyllava_bench.testing.scenes import (
    Scene,
    brief_caption,
    detailed_caption,
    png_bytes,
    render_scene,
    sample_scene,
    scene_kind,
    seeded_rng,
)
from tinyllava_bench.testing.task_rows import (
    distinct_questions,
    ocr_tokens,
    random_scene_kind,
    science_row,
)

# Protocol strings shared with the eval prompts (byte-exact, from the task YAMLs).
SHORT_ANSWER_SUFFIX = "\nAnswer the question using a single word or phrase."
MULTIPLE_CHOICE_SUFFIX = "\nAnswer with the option's letter from the given choices directly."
OCR_PREFIX = "\nReference OCR token: "
MME_SUFFIX = " Please answer yes or no."
OPTION_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
IMAGE_TOKEN = "<image>"
_MME_CATEGORIES_OF_KIND = {
    "shapes": ("existence", "count", "position", "color"),
    "text": ("OCR",),
    "arithmetic": ("numerical_calculation",),
}

_BRIEF_PROMPTS = (
    "Describe the image briefly.",
    "Give a short description of the picture.",
    "Write a brief caption for this image.",
    "Summarize what the picture shows in one sentence.",
    "What does this image show? Answer in one sentence.",
)


_DETAILED_PROMPT = "Describe this image in detail."


def _conversation(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    messages = []
    for number, (question, answer) in enumerate(turns):
        messages.append({"from": "human", "value": f"{IMAGE_TOKEN}\n{question}" if number == 0 else question})
        messages.append({"from": "gpt", "value": answer})
    return messages


def _short_turns(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """VQAv2/GQA style: several short-answer questions about one image, answered as VQA annotators write answers
    (lower case: "red", the very word the demo LLM learnt for what the picture shows)."""
    families = families_for(scene)
    turns = []
    # several questions per image (as VQAv2/GQA records in LLaVA-665K): many grounded answers per sequence
    for _ in range(rng.randint(3, 6)):
        qa = ask(scene, rng, rng.choice(families))
        turns.append((qa.question + SHORT_ANSWER_SUFFIX, qa.answer))
    return turns


def _ocr_turns(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """TextVQA style: the capitalised question, the OCR tokens line (when there are tokens), the short suffix."""
    tokens = ocr_tokens(scene)
    turns = []
    for qa in distinct_questions(scene, rng, ("read", "read_by_color", "word_color"), rng.randint(1, 2)):
        ocr_line = OCR_PREFIX + ", ".join(tokens) if rng.random() < 0.8 else ""
        turns.append((qa.question.capitalize() + ocr_line + SHORT_ANSWER_SUFFIX, qa.answer))
    return turns


def _multiple_choice_turns(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """ScienceQA style: optional context line, question, lettered options, the letter-only suffix."""
    row, correct = science_row(scene, rng)
    options = "\n".join(f"{OPTION_LETTERS[i]}. {choice}" for i, choice in enumerate(row["choices"]))
    context = f"Context: {row['hint']}\n" if row["hint"] else ""
    prompt = f"{context}{row['question']}\n{options}{MULTIPLE_CHOICE_SUFFIX}"
    return [(prompt, OPTION_LETTERS[row["choices"].index(correct)])]


def _yes_no_turns(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """POPE style (shape scenes, half the time) or MME style: a yes and a no question about one image."""
    if scene.shapes and rng.random() < 0.5:
        sampling = rng.choice(NEGATIVE_SAMPLING)
        pair = [
            exists_question(scene, rng, present, sampling, where=" in the image") for present in (True, False)
        ]
    else:
        category = rng.choice(_MME_CATEGORIES_OF_KIND[scene_kind(scene)])
        # the official MME prompt drops "Please answer yes or no." and adds the short-answer suffix
        pair = [
            dataclasses.replace(q, question=q.question.replace(MME_SUFFIX, ""))
            for q in mme_questions(category, scene, rng)
        ]
    rng.shuffle(pair)
    return [(qa.question + SHORT_ANSWER_SUFFIX, qa.answer) for qa in pair]


def _open_turns(scene: Scene, rng: random.Random) -> list[tuple[str, str]]:
    """LLaVA-W / MM-Vet style: a question with a full-sentence answer, then a detailed description."""
    kind = scene_kind(scene)
    if kind == "shapes":
        qa = ask(scene, rng, rng.choice(("color", "shape", "count", "position")))
    elif kind == "arithmetic":
        qa = arithmetic_question(scene)
    else:
        qa = read_question(scene, rng.choice(scene.words))
    turns = [(qa.question, qa.full_answer)]
    if rng.random() < 0.7:
        turns.append((_DETAILED_PROMPT, detailed_caption(scene)))
    return turns


def _text_only_turns(rng: random.Random) -> list[tuple[str, str]]:
    left, right = rng.randint(1, 9), rng.randint(1, 9)
    facts = [
        ("How many sides does a triangle have?", "A triangle has three sides."),
        ("How many sides does a square have?", "A square has four equal sides."),
        ("What color do you get when you mix red and yellow?", "Mixing red and yellow gives orange."),
        (f"What is {left} plus {right}?", f"{left} plus {right} is {left + right}."),
        ("Name three shapes.", "Circle, square and triangle."),
    ]
    return rng.sample(facts, rng.randint(1, 2))


_FINETUNE_STYLES: tuple[tuple[str, float, Callable[[Scene, random.Random], list[tuple[str, str]]]], ...] = (
    ("short", 0.50, _short_turns),
    ("ocr", 0.10, _ocr_turns),
    ("multiple_choice", 0.10, _multiple_choice_turns),
    ("yes_no", 0.20, _yes_no_turns),
    ("open", 0.10, _open_turns),
)


def _finetune_scene(style: str, rng: random.Random) -> Scene:
    if style == "ocr":
        return sample_scene(rng, "text", "train")
    if style == "multiple_choice":
        return sample_scene(rng, random_scene_kind(rng, text_share=0.3), "train")
    return sample_scene(rng, random_scene_kind(rng, text_share=0.2, arithmetic_share=0.1), "train")


def _write_json(records: list[dict[str, Any]], path: Path) -> None:
    path.write_text(json.dumps(records, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _caption_records(
    stage: str, n: int, seed: int, image_folder: Path, detailed: bool
) -> list[dict[str, Any]]:
    rng = seeded_rng("train", stage, seed)
    records = []
    for index in range(n):
        scene = sample_scene(rng, random_scene_kind(rng, text_share=0.25, arithmetic_share=0.1), "train")
        name = f"{stage}/{index:06d}.png"
        _save_png(scene, image_folder / name)
        turn = (
            (_DETAILED_PROMPT, detailed_caption(scene))
            if detailed
            else (rng.choice(_BRIEF_PROMPTS), brief_caption(scene))
        )
        records.append(
            {"id": f"demo-{stage}-{index:06d}", "image": name, "conversations": _conversation([turn])}
        )
    return records


def write_training_data(
    root: Path, n_pretrain: int, n_finetune: int, seed: int = 0, n_share_pretrain: int = 0
) -> dict[str, Path]:
    """Write LLaVA-format root/pretrain.json (brief captions, LLaVA-558K's role), root/finetune.json (the eval
    tasks' question styles, LLaVA-665K's role) and, when n_share_pretrain > 0, root/share-pretrain.json (detailed
    captions: ShareGPT4V's role in the paper's share recipe).

    Images go to root/images/<stage>/ and the records name them relative to root/images (LLaVA's
    --image_folder). About one finetune record in twenty is text-only (no "image" key). Returns the paths under
    "pretrain", "finetune", "share-pretrain" (when written) and "image_folder".
    """
    root = Path(root)
    image_folder = root / IMAGES_DIR
    paths = {
        "pretrain": root / "pretrain.json",
        "finetune": root / "finetune.json",
        "image_folder": image_folder,
    }
    root.mkdir(parents=True, exist_ok=True)
    _write_json(
        _caption_records("pretrain", n_pretrain, seed, image_folder, detailed=False), paths["pretrain"]
    )
    if n_share_pretrain:
        paths["share-pretrain"] = root / "share-pretrain.json"
        records = _caption_records("share-pretrain", n_share_pretrain, seed, image_folder, detailed=True)
        _write_json(records, paths["share-pretrain"])

    rng = seeded_rng("train", "finetune", seed)
    text_only = max(1, n_finetune // 20) if n_finetune >= 4 else 0
    text_only_rows = set(rng.sample(range(n_finetune), text_only))
    weights = [weight for _, weight, _ in _FINETUNE_STYLES]
    finetune = []
    for index in range(n_finetune):
        record_id = f"demo-finetune-{index:06d}"
        if index in text_only_rows:
            turns = _text_only_turns(rng)
            messages = [
                {"from": role, "value": value} for q, a in turns for role, value in (("human", q), ("gpt", a))
            ]
            finetune.append({"id": record_id, "conversations": messages})
            continue
        style, _, build = rng.choices(_FINETUNE_STYLES, weights=weights)[0]
        scene = _finetune_scene(style, rng)
        name = f"finetune/{index:06d}.png"
        _save_png(scene, image_folder / name)
        finetune.append({"id": record_id, "image": name, "conversations": _conversation(build(scene, rng))})
    _write_json(finetune, paths["finetune"])
    return paths


def spelled_conversations(n: int, seed: int) -> list[tuple[str, list[tuple[str, str]], Scene | None]]:
    """`n` (stage, turns, scene) samples for the demo LLM's text-only pretraining, in the training data's styles:
    three in ten a brief caption (stage "pretrain"), the rest the finetune mix (stage "finetune", scene None for
    the text-only ones). The scenes are new ones from the world's train part; no image is drawn."""
    rng = seeded_rng("train", "language", seed)
    weights = [weight for _, weight, _ in _FINETUNE_STYLES]
    samples: list[tuple[str, list[tuple[str, str]], Scene | None]] = []
    for _ in range(n):
        draw = rng.random()
        if draw < 0.3:
            scene = sample_scene(rng, random_scene_kind(rng, text_share=0.25, arithmetic_share=0.1), "train")
            samples.append(("pretrain", [(IMAGE_TOKEN, brief_caption(scene))], scene))
        elif draw < 0.3 + 0.7 / 20:  # the finetune data's share of text-only conversations
            samples.append(("finetune", _text_only_turns(rng), None))
        else:
            style, _, build = rng.choices(_FINETUNE_STYLES, weights=weights)[0]
            scene = _finetune_scene(style, rng)
            turns = build(scene, rng)
            samples.append(("finetune", [(f"{IMAGE_TOKEN}\n{turns[0][0]}", turns[0][1]), *turns[1:]], scene))
    return samples


def _save_png(scene: Scene, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(png_bytes(render_scene(scene)))
