"""--data-root on LLaVA's playground/data/eval: each benchmark read from its usual files, prompts from the files.

The folder is built on the fly, a few rows per benchmark, with the key names LLaVA's files use.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks import build_question, load_task_data
from tinyllava_bench.tasks.data import dataset_fingerprint
from tinyllava_bench.tasks.scoring import score_predictions

SHORT = "\nAnswer the question using a single word or phrase."
LETTER = "\nAnswer with the option's letter from the given choices directly."


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")


def _json(path: Path, data: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data), encoding="utf-8")


def _image(path: Path, colour: tuple[int, int, int] = (10, 20, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (4, 3), colour).save(path)


def _pope(root: Path) -> None:
    folder = root / "pope"
    questions, labels = [], {"adversarial": [], "popular": [], "random": []}
    qid = 0
    for category, n_questions, n_labels in (("adversarial", 2, 2), ("popular", 2, 2), ("random", 2, 3)):
        for k in range(n_labels):
            image = f"COCO_val2014_{category[:3]}{k}.jpg"
            text = f"Is there a dog in the imange {category} {k}?"  # LLaVA's file keeps such typos
            labels[category].append(
                {"question_id": k + 1, "image": image, "text": text, "label": "yes" if k % 2 == 0 else "no"}
            )
            if k < n_questions:
                qid += 1
                questions.append(
                    {"question_id": qid, "image": image, "text": text + SHORT, "category": category}
                )
                _image(folder / "val2014" / image)
    _jsonl(folder / "llava_pope_test.jsonl", questions)
    for category, lines in labels.items():
        _jsonl(folder / "coco" / f"coco_pope_{category}.json", lines)


def _scienceqa(root: Path) -> None:
    folder = root / "scienceqa"
    entries = [
        {
            "id": "4",
            "image": "4/image.png",
            "conversations": [
                {
                    "from": "human",
                    "value": "Context: N/A\nQuestion: Which is a solid?\nOptions: (A) milk (B) rock\n<image>",
                },
                {"from": "gpt", "value": "B"},
            ],
        },
        {  # a text-only problem: not part of the IMG subset
            "id": "5",
            "conversations": [
                {"from": "human", "value": "Context: N/A\nQuestion: 2+2?\nOptions: (A) 4 (B) 5"},
                {"from": "gpt", "value": "A"},
            ],
        },
    ]
    _json(folder / "llava_test_CQM-A.json", entries)
    problems = {
        "4": {
            "question": "Which is a solid?",
            "choices": ["milk", "rock"],
            "answer": 1,
            "hint": "",
            "image": "image.png",
            "subject": "natural science",
            "category": "Solids and liquids",
            "grade": "grade2",
        },
        "5": {
            "question": "2+2?",
            "choices": ["4", "5"],
            "answer": 0,
            "hint": "",
            "image": None,
            "subject": "language science",
            "category": "x",
            "grade": "grade1",
        },
    }
    _json(folder / "problems.json", problems)
    _json(folder / "pid_splits.json", {"test": ["4", "5"]})
    _image(folder / "images" / "test" / "4" / "image.png")


def _gqa(root: Path) -> None:
    folder = root / "gqa"
    _jsonl(
        folder / "llava_gqa_testdev_balanced.jsonl",
        [{"question_id": "201307251", "image": "n435808.jpg", "text": "Is the sky blue?" + SHORT}],
    )
    _json(
        folder / "data" / "testdev_balanced_questions.json",
        {
            "201307251": {
                "question": "Is the sky blue?",
                "answer": "yes",
                "imageId": "n435808",
                "isBalanced": True,
            }
        },
    )
    _image(folder / "data" / "images" / "n435808.jpg")


def _textvqa(root: Path) -> None:
    folder = root / "textvqa"
    _jsonl(
        folder / "llava_textvqa_val_v051_ocr.jsonl",
        [
            {
                "question_id": "003a8ae2ef43b901",
                "image": "003a8ae2ef43b901.jpg",
                "text": "What does the sign say?\nReference OCR token: STOP\nAnswer the question using a single word or phrase.",
            },
            {
                "question_id": "00b0a1e7ab6ff7a2",
                "image": "00b0a1e7ab6ff7a2.jpg",
                "text": "What brand is it?\nAnswer the question using a single word or phrase.",
            },
        ],
    )
    _json(
        folder / "TextVQA_0.5.1_val.json",
        {
            "data": [
                {
                    "question_id": 34602,
                    "image_id": "003a8ae2ef43b901",
                    "question": "what does the sign say?",
                    "answers": ["stop"] * 10,
                },
                {
                    "question_id": 34603,
                    "image_id": "00b0a1e7ab6ff7a2",
                    "question": "what brand is it?",
                    "answers": ["nokia"] * 10,
                },
            ]
        },
    )
    _image(folder / "train_images" / "003a8ae2ef43b901.jpg")
    _image(folder / "train_images" / "00b0a1e7ab6ff7a2.jpg")


def _mmvet(root: Path) -> None:
    folder = root / "mm-vet"
    _jsonl(
        folder / "llava-mm-vet.jsonl",
        [{"question_id": 0, "image": "v1_0.png", "text": "What is x in the equation?"}],
    )
    _json(
        folder / "mm-vet.json",
        {
            "v1_0": {
                "imagename": "v1_0.png",
                "capability": ["ocr", "math"],
                "question": "What is x in the equation?",
                "answer": "-1 <AND> -5",
            }
        },
    )
    _image(folder / "images" / "v1_0.png")


def _llava_wild(root: Path) -> None:
    folder = root / "llava-bench-in-the-wild"
    _jsonl(
        folder / "questions.jsonl",
        [
            {
                "question_id": 0,
                "image": "001.jpg",
                "text": "What is the name of this famous sight?",
                "category": "conv",
            }
        ],
    )
    _jsonl(folder / "context.jsonl", [{"id": "001", "image": "001.jpg", "caption": "A ramen bowl."}])
    _jsonl(
        folder / "answers_gpt4.jsonl",
        [{"question_id": 0, "text": "It is a bowl of ramen.", "model_id": "gpt-4-0314"}],
    )
    _image(folder / "images" / "001.jpg")


def _vqav2(root: Path) -> None:
    folder = root / "vqav2"
    _jsonl(
        folder / "llava_vqav2_mscoco_test-dev2015.jsonl",
        [
            {
                "question_id": 262144000,
                "image": "COCO_test2015_000000262144.jpg",
                "text": "Is the ball flying?" + SHORT,
                "category": "default",
            }
        ],
    )
    _image(folder / "test2015" / "COCO_test2015_000000262144.jpg")


def _mme_line(image: str, question: str) -> dict:
    # llava_mme.jsonl (haotian-liu/LLaVA 32cebc3): question_id == image == MME's path, text = question + suffix
    return {"question_id": image, "image": image, "text": question + SHORT, "category": image.split("/")[0]}


def _answers(path: Path, lines: list[tuple[str, str]]) -> None:
    # MME's per-image answer file: "question<TAB>answer" lines, the question ending "Please answer yes or no."
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"{question}\t{answer}\n" for question, answer in lines), encoding="utf-8")


def _mme(root: Path) -> None:
    folder = root / "MME"
    mme = folder / "MME_Benchmark_release_version"
    _jsonl(
        folder / "llava_mme.jsonl",
        [
            _mme_line("code_reasoning/0020.png", "Is a python code shown in the picture?"),
            _mme_line("code_reasoning/0020.png", "Is a c++ code shown in the picture?"),
            _mme_line("artwork/images/14777.jpg", "Does this artwork belong to the type of religious?"),
            _mme_line("artwork/images/14777.jpg", "Does this artwork belong to the type of historical?"),
        ],
    )
    # a cognition category keeps images and answers side by side
    _image(mme / "code_reasoning" / "0020.png")
    _answers(
        mme / "code_reasoning" / "0020.txt",
        [
            ("Is a python code shown in the picture? Please answer yes or no.", "Yes"),
            ("Is a c++ code shown in the picture? Please answer yes or no.", "No"),
        ],
    )
    # an image no question asks: its answers are read and left unused
    _answers(
        mme / "code_reasoning" / "0014.txt",
        [("The image shows a python code. Is the output of the code '7'? Please answer yes or no.", "Yes")],
    )
    # artwork, celebrity, landmark, posters and scene keep them in images/ and questions_answers_YN/
    _image(mme / "artwork" / "images" / "14777.jpg", (200, 100, 50))
    _answers(
        mme / "artwork" / "questions_answers_YN" / "14777.txt",
        [
            ("Does this artwork belong to the type of religious? Please answer yes or no.", "Yes"),
            # some MME questions have two spaces before "Please"
            ("Does this artwork belong to the type of historical?  Please answer yes or no.", "No"),
        ],
    )


@pytest.fixture
def llava_eval(tmp_path: Path) -> Path:
    root = tmp_path / "playground" / "data" / "eval"
    for build in (_pope, _scienceqa, _gqa, _textvqa, _mmvet, _llava_wild, _vqav2, _mme):
        build(root)
    return root


def test_pope_reads_llavas_question_set_and_joins_labels_by_position_per_category(llava_eval: Path) -> None:
    data = load_task_data("pope", data_root=llava_eval)
    assert len(data) == 6
    rows = data.rows.to_list()
    # the prompt is the file's text byte for byte, typo and suffix included, under both protocols
    assert build_question("pope", rows[0]) == "Is there a dog in the imange adversarial 0?" + SHORT
    assert build_question("pope", rows[0], "lmms-eval") == rows[0]["question"]
    assert [(r["category"], r["answer"]) for r in rows] == [
        ("adversarial", "yes"),
        ("adversarial", "no"),
        ("popular", "yes"),
        ("popular", "no"),
        ("random", "yes"),
        ("random", "no"),
    ]
    assert data.image(0).size == (4, 3)
    question_set = data.provenance()["question_set"]
    assert question_set["source"] == "llava_eval:pope/llava_pope_test.jsonl" and question_set["rows"] == 6
    assert question_set["fingerprint"] == dataset_fingerprint("pope", data_root=llava_eval)
    assert question_set["fingerprint"].startswith("sha256:")
    # random's label file is longer than its questions (3,000 vs 2,910 in the real files): zip() drops the tail
    assert question_set["counts"]["labels_unused_random"] == 1
    assert question_set["counts"]["unlabelled_dropped"] == 0


def test_pope_scores_like_eval_pope(llava_eval: Path) -> None:
    data = load_task_data("pope", data_root=llava_eval, need_images=False)
    predictions = ["Yes", "Yes", "No, there is not.", "No", "yes", "no"]
    result = score_predictions(data.task, data.rows, predictions, "official")
    # labels yes,no per category; adversarial: TP 1, FP 1; popular: FN 1, TN 1; random: both right
    metrics = result["metrics"]
    assert (metrics["adversarial_precision"], metrics["adversarial_recall"]) == (50.0, 100.0)
    assert metrics["adversarial_f1"] == pytest.approx(200 / 3)
    assert (metrics["popular_f1"], metrics["random_f1"]) == (0.0, 100.0)
    assert metrics["f1"] == pytest.approx((200 / 3 + 0 + 100) / 3)


def test_pope_question_ids_shared_across_categories_take_the_last_category(tmp_path: Path) -> None:
    # eval_pope.py keys questions by question_id, so a repeated id gets the category of its last question
    folder = tmp_path / "pope"
    _jsonl(
        folder / "llava_pope_test.jsonl",
        [
            {
                "question_id": 1,
                "image": "a.jpg",
                "text": "Is there a cat in the image?",
                "category": "adversarial",
            },
            {
                "question_id": 1,
                "image": "b.jpg",
                "text": "Is there a dog in the image?",
                "category": "random",
            },
        ],
    )
    _jsonl(
        folder / "coco" / "coco_pope_adversarial.json", [{"question_id": 1, "image": "a.jpg", "label": "no"}]
    )
    _jsonl(
        folder / "coco" / "coco_pope_random.json",
        [
            {"question_id": 1, "image": "b.jpg", "label": "yes"},
            {"question_id": 2, "image": "c.jpg", "label": "no"},
        ],
    )
    data = load_task_data("pope", data_root=tmp_path, need_images=False)
    assert [(r["category"], r["answer"]) for r in data.rows.to_list()] == [
        ("random", "yes"),
        ("random", "no"),
    ]
    counts = data.provenance()["question_set"]["counts"]
    assert counts["category_from_other_row"] == 1 and counts["label_image_mismatches"] == 2


def test_scienceqa_reads_the_cqm_a_file_image_questions_only(llava_eval: Path) -> None:
    data = load_task_data("scienceqa_img", data_root=llava_eval)
    assert data.question_ids() == ["4"]
    row = data.rows.to_list()[0]
    expected = "Context: N/A\nQuestion: Which is a solid?\nOptions: (A) milk (B) rock" + LETTER
    assert build_question("scienceqa_img", row) == expected
    assert (row["answer"], row["choices"]) == (1, ["milk", "rock"])
    assert data.image(0).size == (4, 3)
    assert data.provenance()["question_set"]["counts"] == {"question_rows": 2, "image_rows": 1}


def test_gqa_textvqa_mmvet_llava_wild_and_vqav2_read_their_files(llava_eval: Path) -> None:
    gqa = load_task_data("gqa", data_root=llava_eval)
    assert gqa.question_ids() == ["201307251"] and gqa.rows[0]["answer"] == "yes"
    assert build_question("gqa", gqa.rows.to_list()[0]) == "Is the sky blue?" + SHORT
    assert gqa.image(0).size == (4, 3)

    textvqa = load_task_data("textvqa", data_root=llava_eval)
    rows = textvqa.rows.to_list()
    assert [r["answers"][0] for r in rows] == ["stop", "nokia"]
    assert build_question("textvqa", rows[0]) == "What does the sign say?\nReference OCR token: STOP" + SHORT

    mmvet = load_task_data("mmvet", data_root=llava_eval)
    assert mmvet.rows[0]["answer"] == "-1 <AND> -5" and mmvet.rows[0]["capability"] == ["ocr", "math"]
    assert build_question("mmvet", mmvet.rows.to_list()[0], "lmms-eval") == "What is x in the equation?"

    wild = load_task_data("llava_wild", data_root=llava_eval)
    assert (wild.rows[0]["caption"], wild.rows[0]["gpt_answer"]) == (
        "A ramen bowl.",
        "It is a bowl of ramen.",
    )

    vqav2 = load_task_data("vqav2_testdev", data_root=llava_eval)
    assert vqav2.question_ids() == [262144000] and vqav2.image(0).size == (4, 3)


def test_mme_reads_llava_mme_jsonl_and_finds_answers_as_convert_answer_to_mme(llava_eval: Path) -> None:
    data = load_task_data("mme", data_root=llava_eval)
    rows = data.rows.to_list()
    # the prompt is the file's text byte for byte (model_vqa_loader.py), under both protocols
    text = "Is a python code shown in the picture?" + SHORT
    assert build_question("mme", rows[0]) == text and build_question("mme", rows[0], "lmms-eval") == text
    assert [(r["question_id"], r["category"], r["answer"]) for r in rows] == [
        ("code_reasoning/0020.png", "code_reasoning", "Yes"),
        ("code_reasoning/0020.png", "code_reasoning", "No"),
        ("artwork/images/14777.jpg", "artwork", "Yes"),
        ("artwork/images/14777.jpg", "artwork", "No"),  # found under the two-space form
    ]
    # images from MME's folder, flat and images/ layouts both
    assert data.image(0).size == (4, 3) and data.image(2).getpixel((0, 0)) == (200, 100, 50)
    question_set = data.provenance()["question_set"]
    assert (question_set["source"], question_set["rows"]) == ("llava_eval:MME/llava_mme.jsonl", 4)
    assert question_set["fingerprint"] == dataset_fingerprint("mme", data_root=llava_eval)
    assert question_set["counts"] == {
        "question_rows": 4,
        "category_key_differs": 0,
        "two_space_questions": 1,
        "labels_unused": 1,
        "image_pairs_not_adjacent": 0,
    }


def test_mme_from_llavas_folder_scores_like_calculation_py(llava_eval: Path) -> None:
    data = load_task_data("mme", data_root=llava_eval, need_images=False)
    result = score_predictions(data.task, data.rows, ["Yes", "No", "Yes", "Yes"], "official")
    metrics = result["metrics"]
    # code_reasoning: both right (acc 100, acc+ 100); artwork: one of two right (acc 50, acc+ 0)
    assert (metrics["code_reasoning"], metrics["artwork"]) == (200.0, 50.0)
    assert (metrics["cognition"], metrics["perception"]) == (200.0, 50.0)


def test_mme_answer_file_and_category_come_from_the_question_id(tmp_path: Path) -> None:
    # convert_answer_to_mme.py: category = question_id's first part (not the line's "category"), answer file =
    # the name up to its first dot + ".txt"; a question already ending "Please answer yes or no." is kept
    folder = tmp_path / "MME"
    line = {
        "question_id": "existence/000000.v2.jpg",
        "image": "existence/000000.v2.jpg",
        "text": "Is there a dog in this image? Please answer yes or no.",
        "category": "count",
    }
    _jsonl(folder / "llava_mme.jsonl", [line, dict(line, text="Is there a cat in this image?" + SHORT)])
    _answers(
        folder / "MME_Benchmark_release_version" / "existence" / "000000.txt",
        [
            ("Is there a dog in this image? Please answer yes or no.", "No"),
            ("Is there a cat in this image? Please answer yes or no.", "Yes"),
        ],
    )
    data = load_task_data("mme", data_root=tmp_path, need_images=False)
    assert [(r["category"], r["answer"]) for r in data.rows.to_list()] == [
        ("existence", "No"),
        ("existence", "Yes"),
    ]
    assert data.provenance()["question_set"]["counts"]["category_key_differs"] == 2


def test_mme_image_pairs_that_are_not_adjacent_are_counted(tmp_path: Path) -> None:
    # calculation.py pairs each category's lines two at a time; interleaved images would be paired wrongly there
    folder = tmp_path / "MME"
    questions = [("a.png", "Q1?"), ("b.png", "Q1?"), ("a.png", "Q2?"), ("b.png", "Q2?")]
    _jsonl(folder / "llava_mme.jsonl", [_mme_line(f"OCR/{image}", q) for image, q in questions])
    for image in ("a", "b"):
        _answers(
            folder / "MME_Benchmark_release_version" / "OCR" / f"{image}.txt",
            [("Q1? Please answer yes or no.", "Yes"), ("Q2? Please answer yes or no.", "No")],
        )
    data = load_task_data("mme", data_root=tmp_path, need_images=False)
    assert data.provenance()["question_set"]["counts"]["image_pairs_not_adjacent"] == 2


def test_mme_answer_files_are_part_of_the_fingerprint(llava_eval: Path) -> None:
    before = dataset_fingerprint("mme", data_root=llava_eval)
    answers = llava_eval / "MME" / "MME_Benchmark_release_version" / "code_reasoning" / "0020.txt"
    answers.write_text(answers.read_text().replace("\tNo", "\tYes"), encoding="utf-8")
    assert dataset_fingerprint("mme", data_root=llava_eval) != before


def test_mme_missing_or_malformed_answers_are_one_line(llava_eval: Path) -> None:
    mme = llava_eval / "MME" / "MME_Benchmark_release_version"
    questions = llava_eval / "MME" / "llava_mme.jsonl"
    kept = questions.read_text()
    _jsonl(questions, [{"question_id": 20, "image": "code_reasoning/0020.png", "text": "Is it code?"}])
    with pytest.raises(UserError, match="line 1: question_id .* must be strings"):
        load_task_data("mme", data_root=llava_eval, need_images=False)
    questions.write_text(kept)
    answers = mme / "artwork" / "questions_answers_YN" / "14777.txt"
    # neither the one-space nor the two-space form is there: convert_answer_to_mme.py stops with a KeyError
    answers.write_text("Does this artwork belong to the type of religious? Please answer yes or no.\tYes\n")
    with pytest.raises(
        UserError, match=r"no answer for artwork/14777.txt question 'Does this artwork belong"
    ):
        load_task_data("mme", data_root=llava_eval, need_images=False)
    answers.write_text("14777.jpg\tDoes this artwork belong to the type of religious?\tYes\n")
    with pytest.raises(UserError, match=r"14777.txt, line 1: not 'question<TAB>answer'"):
        load_task_data("mme", data_root=llava_eval, need_images=False)
    (mme / "artwork" / "questions_answers_YN").rename(mme / "artwork" / "answers")
    with pytest.raises(UserError, match="has images/ but no questions_answers_YN/"):
        load_task_data("mme", data_root=llava_eval, need_images=False)
    mme.rename(mme.with_name("elsewhere"))
    with pytest.raises(UserError, match="MME_Benchmark_release_version is missing"):
        load_task_data("mme", data_root=llava_eval, need_images=False)


def test_mme_folder_also_seen_as_mme_is_still_llavas(llava_eval: Path) -> None:
    # on a case-insensitive disk (macOS, Windows) LLaVA's MME/ also answers to mme/, the task's own-layout name;
    # a link gives the same view here: one folder under two names is LLaVA's, not a second copy of the data
    (llava_eval / "mme").symlink_to(llava_eval / "MME", target_is_directory=True)
    data = load_task_data("mme", data_root=llava_eval, need_images=False)
    assert data.provenance()["question_set"]["source"] == "llava_eval:MME/llava_mme.jsonl"


def test_the_hub_stays_the_default_and_own_layout_wins(llava_eval: Path, tmp_path: Path) -> None:
    from tinyllava_bench.tasks.data_source import resolve_data_source

    assert resolve_data_source("pope").kind == "hub"
    assert resolve_data_source("pope", data_root=llava_eval).kind == "llava_eval"
    # LLaVA's vqav2/ folder is test-dev: the validation task refuses it and names the task that reads it
    with pytest.raises(UserError, match="run task vqav2_testdev on it"):
        load_task_data("vqav2", data_root=llava_eval)
    with pytest.raises(UserError, match="nor LLaVA's eval layout"):
        load_task_data("gqa", data_root=tmp_path)


def test_a_missing_label_folder_is_one_line(tmp_path: Path) -> None:
    _jsonl(
        tmp_path / "pope" / "llava_pope_test.jsonl",
        [{"question_id": 1, "image": "a.jpg", "text": "Is there a cat?", "category": "random"}],
    )
    with pytest.raises(UserError, match="label folder"):
        load_task_data("pope", data_root=tmp_path)


def test_eval_runs_pope_and_mme_from_llavas_folder_and_records_the_question_sets(
    tiny_checkpoints, llava_eval, tmp_path
):
    from tinyllava_bench.cli import main

    checkpoint = tiny_checkpoints("qwen2", "clip")["native"]
    args = ["eval", "--model", str(checkpoint), "--tasks", "pope,mme", "--data-root", str(llava_eval)]
    args += [
        "--output",
        str(tmp_path / "run"),
        "--task-options",
        "generation.max_new_tokens=4",
        "--num-workers",
        "0",
    ]
    assert main(args) == 0
    tasks = json.loads((tmp_path / "run" / "results.json").read_text())["tasks"]
    question_set = tasks["pope"]["dataset"]["question_set"]
    assert (question_set["source"], question_set["rows"]) == ("llava_eval:pope/llava_pope_test.jsonl", 6)
    assert tasks["pope"]["n_samples"] == 6
    question_set = tasks["mme"]["dataset"]["question_set"]
    assert (question_set["source"], question_set["rows"]) == ("llava_eval:MME/llava_mme.jsonl", 4)
    assert question_set["counts"]["two_space_questions"] == 1
    assert tasks["mme"]["n_samples"] == 4
    assert {"perception", "cognition", "artwork", "code_reasoning"} <= set(tasks["mme"]["metrics"])
    logged = "".join(path.read_text() for path in (tmp_path / "run").rglob("*.jsonl"))
    assert json.dumps("Is there a dog in the imange random 1?" + SHORT)[1:-1] in logged
    assert json.dumps("Does this artwork belong to the type of historical?" + SHORT)[1:-1] in logged
