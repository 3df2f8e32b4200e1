"""LLaVA's evaluation folder (`playground/data/eval`, from its eval.zip) as task data: the paper's question sets.

`--data-root` pointing at that folder reads a task from the files LLaVA's scripts/v1_5/eval/*.sh read (the task
YAML's `dataset.llava_eval` names them): the question file, the images folder and the label or annotation files.
Each row's prompt is the question file's own text, taken as the original script takes it (model_vqa_loader.py
and model_vqa.py use `text` as is; model_vqa_science.py strips "<image>" and appends the letter suffix), kept in
the PROMPT_COLUMN column, which build_question returns unchanged. Labels are joined the way each original
scorer joins them, quirks included (POPE: by position within a category, as eval_pope.py zips them).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import LlavaEvalConfig, TaskConfig
from tinyllava_bench.tasks.encoding import json_lines, not_utf8_error

# the column holding a row's finished prompt text, read from the question file
PROMPT_COLUMN = "prompt_from_file"


@dataclass
class LlavaEvalRows:
    """A task's rows read from LLaVA's folder, with what provenance needs to name the question set."""

    records: list[dict[str, Any]]
    image_dir: Path
    files: list[Path]  # the question and label files the rows come from (what the fingerprint hashes)
    question_set: str  # e.g. "llava_eval:pope/llava_pope_test.jsonl"
    counts: dict[str, int] = field(default_factory=dict)  # rows read, dropped, mismatched: loud, never silent


@dataclass
class ReaderRows:
    """What one reader gives: the rows, the files they come from, and its counts (the images folder and the
    question set's name are the task's layout's, added by read_llava_eval)."""

    records: list[dict[str, Any]]
    files: list[Path]
    counts: dict[str, int] = field(default_factory=dict)


def llava_eval_folder(task: TaskConfig, root: Path) -> Path | None:
    """The task's folder under LLaVA's eval folder `root` when its question file is there, else None."""
    layout = task.dataset.llava_eval
    if layout is None:
        return None
    folder = root / layout.folder
    return folder if (folder / layout.questions).is_file() else None


def read_llava_eval(task: TaskConfig, root: Path) -> LlavaEvalRows:
    layout = task.dataset.llava_eval
    assert layout is not None
    folder = root / layout.folder
    questions_file = folder / layout.questions
    read = _READERS[layout.reader](task, layout, folder, questions_file)
    if not read.records:
        raise UserError(f"{questions_file} gives no rows for task {task.name}")
    return LlavaEvalRows(
        read.records,
        folder / layout.images,
        read.files,
        f"llava_eval:{layout.folder}/{layout.questions}",
        read.counts,
    )


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open(encoding="utf-8") as handle:
            records = [record for _, record in json_lines(handle, path)]
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror or exc}") from None
    for number, record in enumerate(records, 1):
        if not isinstance(record, dict):
            raise UserError(f"{path}, line {number}: each line must be a JSON object")
    return records


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise UserError(f"{path} is missing; LLaVA's eval folder has it (see LLaVA's docs/Evaluation.md)")
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}, line {exc.lineno}: not valid JSON ({exc.msg})") from None


def _field(record: dict[str, Any], key: str, path: Path, number: int) -> Any:
    if key not in record:
        raise UserError(f"{path}, entry {number}: no {key!r} key (LLaVA's files have it)")
    return record[key]


def _loader_rows(
    path: Path, extra: tuple[str, ...] = (), optional: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """Question-file lines as model_vqa_loader.py / model_vqa.py read them: `text` is the whole prompt.

    `extra` keys are required; `optional` keys are copied when a line has them (the original never reads them).
    """
    rows = []
    for number, line in enumerate(_read_jsonl(path), 1):
        text = _field(line, "text", path, number)
        row = {
            "question_id": _field(line, "question_id", path, number),
            "question": text,
            "image": _field(line, "image", path, number),
            PROMPT_COLUMN: text,
        }
        for key in extra:
            row[key] = _field(line, key, path, number)
        row.update((key, line[key]) for key in optional if key in line)
        rows.append(row)
    return rows


def _pope(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file, ("category",))
    label_dir = folder / (layout.annotations or "coco")
    if not label_dir.is_dir():
        raise UserError(
            f"POPE label folder {label_dir} is missing (POPE's output/coco, see LLaVA's Evaluation.md)"
        )
    # eval_pope.py: every file of the folder is coco_pope_<category>.json, a JSON line per question
    label_files = sorted(label_dir.iterdir())
    labels: dict[str, list[dict[str, Any]]] = {}
    for path in label_files:
        if not (path.name.startswith("coco_pope_") and path.name.endswith(".json")):
            raise UserError(f"{path}: POPE's label folder may only hold coco_pope_<category>.json files")
        labels[path.name[len("coco_pope_") : -len(".json")]] = _read_jsonl(path)
    # an answer's category is that of the LAST question with its id (eval_pope.py builds a dict by question_id)
    category_of = {row["question_id"]: row["category"] for row in rows}
    kept, position = [], dict.fromkeys(labels, 0)
    counts = {"question_rows": len(rows), "unlabelled_dropped": 0, "category_from_other_row": 0}
    counts["label_image_mismatches"] = 0
    for row in rows:
        category = category_of[row["question_id"]]
        counts["category_from_other_row"] += category != row["category"]
        if category not in labels or position[category] >= len(labels[category]):
            counts["unlabelled_dropped"] += 1  # eval_pope.py never scores it (no file, or zip() ran out)
            continue
        label = labels[category][position[category]]
        position[category] += 1
        if "label" not in label:
            raise UserError(f"{label_dir / f'coco_pope_{category}.json'}: a line has no 'label'")
        counts["label_image_mismatches"] += label.get("image", row["image"]) != row["image"]
        kept.append(dict(row, category=category, answer=label["label"]))
    for category, lines in labels.items():
        counts[f"labels_unused_{category}"] = len(lines) - position[category]
    return ReaderRows(kept, [questions_file, *label_files], counts)


def _scienceqa(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    entries = _read_json(questions_file)
    if not isinstance(entries, list):
        raise UserError(f"{questions_file} must hold a JSON list (LLaVA's llava_test_CQM-A.json)")
    problems_file = folder / (layout.annotations or "problems.json")
    problems = _read_json(problems_file)
    suffix = task.prompt.suffix  # model_vqa_science.py --single-pred-prompt
    rows = []
    for number, entry in enumerate(entries, 1):
        if "image" not in entry:
            continue  # IMG accuracy counts only prompts with an image (eval_science_qa.py's is_multimodal)
        prob_id = _field(entry, "id", questions_file, number)
        problem = problems.get(prob_id)
        if problem is None:
            raise UserError(f"{problems_file} has no problem {prob_id!r} that {questions_file.name} asks")
        value = _field(entry, "conversations", questions_file, number)[0]["value"]
        text = value.replace("<image>", "").strip()
        rows.append(
            {
                "question_id": prob_id,
                "question": text,
                "image": entry["image"],
                PROMPT_COLUMN: text + suffix,
                "choices": problem["choices"],
                "answer": problem["answer"],
                "hint": problem.get("hint", ""),
                **{key: problem.get(key) for key in ("subject", "category", "grade")},
            }
        )
    counts = {"question_rows": len(entries), "image_rows": len(rows)}
    return ReaderRows(rows, [questions_file, problems_file], counts)


def _gqa(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file)
    answers_file = folder / (layout.annotations or "data/testdev_balanced_questions.json")
    answers = _read_json(answers_file)  # GQA's eval.py reads {question id: {"answer", "imageId", ...}}
    for row in rows:
        gold = answers.get(str(row["question_id"]))
        if gold is None:
            raise UserError(
                f"{answers_file} has no question {row['question_id']!r} that {questions_file.name} asks"
            )
        row.update(
            id=str(row["question_id"]),
            answer=gold.get("answer"),
            imageId=gold.get("imageId"),
            isBalanced=gold.get("isBalanced"),
        )
    return ReaderRows(rows, [questions_file, answers_file])


def _textvqa_question(prompt: str) -> str:
    # eval_textvqa.py's prompt_processor for LLaVA's two prompt shapes
    lines = prompt.split("\n")
    if "Reference OCR token: " in prompt and len(lines) == 3:
        return (lines[1] if prompt.startswith("Reference OCR token:") else lines[0]).lower()
    if len(lines) == 2:
        return lines[0].lower()
    raise UserError(f"TextVQA prompt {prompt[:60]!r} has neither of the shapes eval_textvqa.py reads")


def _textvqa(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file)
    annotation_file = folder / (layout.annotations or "TextVQA_0.5.1_val.json")
    data = _read_json(annotation_file)
    # eval_textvqa.py joins on (image_id, lower-cased question): LLaVA's question_id holds the image id
    by_key = {(a["image_id"], a["question"].lower()): a for a in data["data"]}
    for row in rows:
        annotation = by_key.get((row["question_id"], _textvqa_question(row["question"])))
        if annotation is None:
            raise UserError(f"{annotation_file} has no question matching {row['question'][:60]!r}")
        row.update(answers=annotation["answers"], image_id=annotation["image_id"])
    return ReaderRows(rows, [questions_file, annotation_file])


def _mmvet(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file)
    answers_file = folder / (layout.annotations or "mm-vet.json")
    answers = _read_json(answers_file)  # MM-Vet's {"v1_<n>": {"question", "answer", "capability", ...}}
    for row in rows:
        key = f"v1_{row['question_id']}"  # convert_mmvet_for_eval.py's key
        gold = answers.get(key)
        if gold is None:
            raise UserError(f"{answers_file} has no {key!r}, which {questions_file.name} asks")
        row.update(answer=gold["answer"], capability=gold["capability"])
    return ReaderRows(rows, [questions_file, answers_file])


def _llava_wild(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file, ("category",))
    context_file = folder / "context.jsonl"
    answers_file = folder / (layout.annotations or "answers_gpt4.jsonl")
    # eval_gpt_review_bench.py: the caption by image, GPT-4's answers zipped with the questions by position
    captions = {context["image"]: context["caption"] for context in _read_jsonl(context_file)}
    gpt_answers = _read_jsonl(answers_file)
    if len(gpt_answers) < len(rows):
        raise UserError(f"{answers_file} has {len(gpt_answers)} answers for {len(rows)} questions")
    for row, answer in zip(rows, gpt_answers, strict=False):
        if row["image"] not in captions:
            raise UserError(f"{context_file} has no caption for image {row['image']!r}")
        row.update(caption=captions[row["image"]], gpt_answer=answer["text"])
    return ReaderRows(rows, [questions_file, context_file, answers_file])


def _questions_only(
    task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path
) -> ReaderRows:
    # VQAv2 test-dev: no answers anywhere; the submission file is graded on EvalAI
    return ReaderRows(_loader_rows(questions_file), [questions_file])


# MME's answers as LLaVA's playground/data/eval/MME/convert_answer_to_mme.py finds them (haotian-liu/LLaVA
# commit 32cebc3809441cc40d8ac7b2855d148308741f2a; TinyLLaVA_Factory's scripts/eval/mme.sh runs the same file)
_MME_SHORT_ANSWER = "Answer the question using a single word or phrase."
_MME_YES_NO = "Please answer yes or no."


def _mme_ground_truth(gt_dir: Path) -> tuple[dict[tuple[str, str, str], str], list[Path]]:
    """convert_answer_to_mme.py's get_gt: {(category, txt file name, question): answer}, and the files read.

    A category folder with an images/ subfolder keeps its answers in questions_answers_YN/, any other holds
    them beside its images; every .txt there is one image's "question<TAB>answer" lines.
    """
    truth: dict[tuple[str, str, str], str] = {}
    files: list[Path] = []
    # sorted: os.listdir's order is arbitrary, and the fingerprint must not depend on it
    for category_dir in sorted(path for path in gt_dir.iterdir() if path.is_dir()):
        qa_dir = category_dir / "questions_answers_YN" if (category_dir / "images").exists() else category_dir
        if not qa_dir.is_dir():  # get_gt asserts it
            raise UserError(f"MME category {category_dir} has images/ but no questions_answers_YN/ folder")
        for path in sorted(qa_dir.iterdir()):
            if not path.name.endswith(".txt"):
                continue
            files.append(path)
            try:
                # text mode with universal newlines, as get_gt's `for line in open(...)` reads it
                with path.open(encoding="utf-8") as handle:
                    lines = list(handle)
            except UnicodeDecodeError as exc:
                raise not_utf8_error(path, exc) from None
            for number, line in enumerate(lines, 1):
                fields = line.strip().split("\t")  # get_gt: question, answer = line.strip().split('\t')
                if len(fields) != 2:
                    raise UserError(
                        f"{path}, line {number}: not 'question<TAB>answer' (MME's answer file format;"
                        " convert_answer_to_mme.py stops on it)"
                    )
                truth[(category_dir.name, path.name, fields[0])] = fields[1]
    return truth, files


def _mme_key(
    question_id: str, prompt: str, truth: dict[tuple[str, str, str], str]
) -> tuple[tuple[str, str, str], bool]:
    """The ground-truth key convert_answer_to_mme.py looks up for one answer, and whether it took the 2-space form."""
    category = question_id.split("/")[0]
    # the image's answer file: the name up to its FIRST dot, then .txt ("a.b.png" -> "a.txt")
    file = question_id.split("/")[-1].split(".")[0] + ".txt"
    if _MME_SHORT_ANSWER in prompt:
        prompt = prompt.replace(_MME_SHORT_ANSWER, "").strip()
    two_spaces = False
    if _MME_YES_NO not in prompt:
        prompt = prompt + " " + _MME_YES_NO
        if (category, file, prompt) not in truth:
            # some MME questions have two spaces before "Please"; the fallback is tried without checking it exists
            prompt = prompt.replace(" " + _MME_YES_NO, "  " + _MME_YES_NO)
            two_spaces = True
    return (category, file, prompt), two_spaces


def _mme(task: TaskConfig, layout: LlavaEvalConfig, folder: Path, questions_file: Path) -> ReaderRows:
    rows = _loader_rows(questions_file, optional=("category",))
    gt_dir = folder / (layout.annotations or "MME_Benchmark_release_version")
    if not gt_dir.is_dir():
        raise UserError(
            f"MME folder {gt_dir} is missing (MME's MME_Benchmark_release_version, images and answers;"
            " see LLaVA's docs/Evaluation.md)"
        )
    truth, label_files = _mme_ground_truth(gt_dir)
    counts = {"question_rows": len(rows), "category_key_differs": 0, "two_space_questions": 0}
    used: set[tuple[str, str, str]] = set()
    for number, row in enumerate(rows, 1):
        question_id = row["question_id"]
        if not isinstance(question_id, str) or not isinstance(row["question"], str):
            raise UserError(
                f"{questions_file}, line {number}: question_id (MME's image path) and text must be strings"
            )
        key, two_spaces = _mme_key(question_id, row["question"], truth)
        if key not in truth:
            raise UserError(
                f"{gt_dir}: no answer for {key[0]}/{key[1]} question {key[2]!r}, which {questions_file.name}"
                f" line {number} asks (convert_answer_to_mme.py stops with a KeyError)"
            )
        used.add(key)
        counts["two_space_questions"] += two_spaces
        # the score file an answer goes to is named by the question_id's first part, not the line's category
        counts["category_key_differs"] += row.pop("category", key[0]) != key[0]
        row.update(category=key[0], answer=truth[key])
    counts["labels_unused"] = len(truth) - len(used)
    # calculation.py takes each category's lines two at a time as one image (acc+); our scorer groups rows by
    # question_id, the same thing while each image's two questions are adjacent (as in LLaVA's file)
    by_category: dict[str, list[str]] = {}
    for row in rows:
        by_category.setdefault(row["category"], []).append(row["question_id"])
    counts["image_pairs_not_adjacent"] = sum(
        1
        for ids in by_category.values()
        for start in range(0, len(ids), 2)
        if len(ids[start : start + 2]) != 2 or ids[start] != ids[start + 1]
    )
    return ReaderRows(rows, [questions_file, *label_files], counts)


_READERS: dict[str, Callable[[TaskConfig, LlavaEvalConfig, Path, Path], ReaderRows]] = {
    "pope": _pope,
    "scienceqa": _scienceqa,
    "gqa": _gqa,
    "textvqa": _textvqa,
    "mmvet": _mmvet,
    "llava_wild": _llava_wild,
    "questions_only": _questions_only,
    "mme": _mme,
}
