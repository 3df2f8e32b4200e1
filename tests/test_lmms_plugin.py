"""The lmms-eval model `tinyllava_bench`: entry point, batched answers equal `TinyLlava.generate`, losses, real CLI.

Needs the `lmms` extra (`pip install -e ".[dev,lmms]"`); skipped only when lmms_eval cannot be imported.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

pytest.importorskip(
    "lmms_eval", reason="lmms-eval is not installed (optional extra: pip install -e '.[dev,lmms]')"
)

import torch  # noqa: E402
from lmms_eval.api.instance import GenerationResult, Instance  # noqa: E402
from loguru import logger  # noqa: E402

from tinyllava_bench import load_model  # noqa: E402
from tinyllava_bench.errors import UserError  # noqa: E402
from tinyllava_bench.lmms.adapter import TinyLlavaBench  # noqa: E402
from tinyllava_bench.models.tokenization import IGNORE_INDEX  # noqa: E402

TASK_DIR = Path(__file__).parent / "data" / "lmms_task"
TASK = "smoke"
QUESTIONS = [
    "What?",
    "What is the color of the shape in the top left corner of the picture?",
    "How many shapes are there?",
    "Is there a red circle? Please answer yes or no.",
    "What word is written?",
]
SIZES = [(31, 20), (20, 31), (28, 28), (64, 17), (40, 40)]


def make_image(width: int, height: int, seed: int) -> Image.Image:
    # not tests.conftest's: lmms-eval's dependency latex2sympy2 installs a top-level `tests` package that shadows ours
    rng = np.random.RandomState(seed)
    return Image.fromarray((rng.rand(height, width, 3) * 255).astype("uint8"))


@pytest.fixture(scope="module")
def docs():
    """Documents as lmms-eval hands them to doc_to_visual: one image each, of different sizes."""
    return [
        {"question": q, "image": make_image(w, h, seed=i)}
        for i, (q, (w, h)) in enumerate(zip(QUESTIONS, SIZES))
    ]


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoints):
    return tiny_checkpoints("phi", "siglip")


@pytest.fixture(scope="module")
def factory_adapter(checkpoint, docs):
    """One adapter for the tests that change no setting (loading costs a second each time)."""
    return make_adapter(checkpoint["factory"], docs, batch_size=3)


def make_adapter(path: Path, docs: list[dict], **model_args) -> TinyLlavaBench:
    adapter = TinyLlavaBench(pretrained=str(path), **model_args)
    adapter.task_dict = {TASK: {"test": docs}}  # what lmms-eval's evaluator sets before asking for answers
    return adapter


def one_image(doc: dict) -> list:
    return [doc["image"]]


def no_image(doc: dict) -> list:
    return []


def generate_request(doc_id: int, context: str, doc_to_visual=one_image, **gen_kwargs) -> Instance:
    gen_kwargs = {"max_new_tokens": 8, "until": ["\n\n"], **gen_kwargs}
    args = (context, gen_kwargs, doc_to_visual, doc_id, TASK, "test")
    return Instance("generate_until", args, idx=0, metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})


def loglikelihood_request(doc_id: int, context: str, continuation, doc_to_visual=one_image) -> Instance:
    args = (context, continuation, doc_to_visual, doc_id, TASK, "test")
    return Instance("loglikelihood", args, idx=0, metadata={"task": TASK, "doc_id": doc_id, "repeats": 1})


def pairs(results: list) -> list[tuple[float, bool]]:
    return [r.text if isinstance(r, GenerationResult) else r for r in results]


def text_only_answer(model, question: str, max_new_tokens: int) -> str:
    """The language model alone on token ids (no embedding splice): the reference for text-only documents."""
    prompt = model.render_prompt(question).replace("<image>\n", "")
    ids = model.tokenizer(prompt, return_tensors="pt").input_ids
    eos = model.language_model.config.eos_token_id
    with torch.inference_mode():
        out = model.language_model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=eos,
            eos_token_id=eos,
        )
    return model.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True).strip()


def continuation_loss(model, question: str, continuation: str, image) -> float:
    """-sum log p(continuation | prompt) through the training forward (right padded, labels), not the adapter."""
    prompt_ids = (
        model.prompt_ids(question)
        if image is not None
        else model.tokenizer(model.render_prompt(question).replace("<image>\n", "")).input_ids
    )
    cont = model.tokenizer(continuation, add_special_tokens=False).input_ids
    pixels = model.pixel_values(image)[None] if image is not None else None
    with torch.inference_mode():
        out = model(
            input_ids=[prompt_ids + cont],
            labels=[[IGNORE_INDEX] * len(prompt_ids) + cont],
            pixel_values=pixels,
        )
    return out.loss.item() * len(cont)


# ----- registration ---------------------------------------------------------------------------------------------


def test_entry_point_registers_the_adapter_with_lmms_eval():
    from importlib.metadata import entry_points

    from lmms_eval.models import get_model
    from lmms_eval.models.registry_v2 import ModelManifest

    found = [ep for ep in entry_points(group="lmms_eval.models") if ep.name == "tinyllava_bench"]
    assert found, (
        "no lmms_eval.models entry point named tinyllava_bench: add it to pyproject.toml and reinstall "
        "(pip install -e '.[dev,lmms]')"
    )
    manifest = found[0].load()()
    assert isinstance(manifest, ModelManifest)
    assert manifest.simple_class_path == "tinyllava_bench.lmms.adapter.TinyLlavaBench"
    assert get_model("tinyllava_bench") is TinyLlavaBench


# ----- generate_until -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["factory", "hf_llava"])  # legacy: in the placeholder test
def test_batched_answers_equal_generate_one_at_a_time(checkpoint, docs, layout):
    adapter = make_adapter(checkpoint[layout], docs, batch_size=3)
    model = load_model(str(checkpoint[layout]))
    requests = [generate_request(i, doc["question"]) for i, doc in enumerate(docs)]
    answers = adapter.generate_until(requests)
    expected = [model.generate([d["image"]], [d["question"]], max_new_tokens=8)[0] for d in docs]
    assert answers == expected
    assert len(set(expected)) > 1  # the prompts did not all collapse to one answer
    # answers depend on the image, so an image given to the wrong prompt after sorting would show
    shifted = [
        model.generate([docs[i - 1]["image"]], [d["question"]], max_new_tokens=8)[0]
        for i, d in enumerate(docs)
    ]
    assert shifted != expected


def test_max_new_tokens_and_until_cut_the_answer(factory_adapter, docs):
    adapter = factory_adapter
    model = adapter.model
    doc = docs[1]
    short = model.generate_ids([doc["image"]], [doc["question"]], max_new_tokens=2)[0]
    [answer] = adapter.generate_until([generate_request(1, doc["question"], max_new_tokens=2)])
    assert answer == model.decode([short])[0] and len(short) <= 2

    raw = model.tokenizer.decode(
        model.generate_ids([doc["image"]], [doc["question"]], 8)[0], skip_special_tokens=True
    )
    stop = raw.strip()[3:5]  # a stop string in the middle of the answer
    assert stop and raw.find(stop) > 0
    [cut] = adapter.generate_until([generate_request(1, doc["question"], until=["never here", stop])])
    assert cut == raw[: raw.find(stop)].strip()
    assert len(cut) < len(raw.strip())


def test_text_only_documents_use_the_language_model_alone(factory_adapter, docs):
    adapter = factory_adapter
    requests = [generate_request(i, d["question"], doc_to_visual=no_image) for i, d in enumerate(docs[:3])]
    requests.insert(1, generate_request(3, docs[3]["question"]))  # an image document in the same call
    answers = adapter.generate_until(requests)
    model = adapter.model
    assert answers[0] == text_only_answer(model, docs[0]["question"], 8)
    assert answers[2] == text_only_answer(model, docs[1]["question"], 8)
    assert answers[3] == text_only_answer(model, docs[2]["question"], 8)
    assert answers[1] == model.generate([docs[3]["image"]], [docs[3]["question"]], max_new_tokens=8)[0]


def test_image_placeholder_in_the_context_is_not_doubled(checkpoint, docs):
    adapter = make_adapter(checkpoint["legacy"], docs, batch_size=2)  # legacy keeps the question as given
    plain, tagged = adapter.generate_until(
        [generate_request(0, docs[0]["question"]), generate_request(0, "<image>\n" + docs[0]["question"])]
    )
    assert plain == tagged
    assert plain == adapter.model.generate([docs[0]["image"]], [docs[0]["question"]], max_new_tokens=8)[0]


def test_several_images_use_the_first_or_refuse(checkpoint, docs):
    def two_images(doc):
        return [doc["image"], docs[4]["image"]]

    adapter = make_adapter(checkpoint["factory"], docs)
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        [answer] = adapter.generate_until(
            [generate_request(2, docs[2]["question"], doc_to_visual=two_images)]
        )
    finally:
        logger.remove(sink)
    assert answer == adapter.model.generate([docs[2]["image"]], [docs[2]["question"]], max_new_tokens=8)[0]
    assert any("first image" in w for w in warnings)

    strict = make_adapter(checkpoint["factory"], docs, multi_image="error")
    with pytest.raises(UserError, match="2 images"):
        strict.generate_until([generate_request(2, docs[2]["question"], doc_to_visual=two_images)])
    with pytest.raises(UserError, match="images only"):
        strict.generate_until([generate_request(0, "What?", doc_to_visual=lambda doc: ["/videos/clip.mp4"])])


def test_sampling_requests_get_greedy_answers_and_a_warning(checkpoint, docs):
    adapter = make_adapter(checkpoint["factory"], docs)
    warnings: list[str] = []
    sink = logger.add(lambda message: warnings.append(str(message)), level="WARNING")
    try:
        [answer] = adapter.generate_until(
            [generate_request(0, docs[0]["question"], do_sample=True, temperature=0.7)]
        )
    finally:
        logger.remove(sink)
    assert answer == adapter.model.generate([docs[0]["image"]], [docs[0]["question"]], max_new_tokens=8)[0]
    assert any("greedily" in w for w in warnings)


# ----- loglikelihood --------------------------------------------------------------------------------------------


def test_loglikelihood_is_the_continuation_loss_batched(factory_adapter, docs):
    adapter = factory_adapter
    model = adapter.model
    cases = [
        (0, " red", one_image),
        (0, " green blue", one_image),
        (1, " yes", one_image),
        (2, " two", no_image),
        (3, " no", one_image),
        (4, " red", one_image),
    ]
    requests = [loglikelihood_request(i, docs[i]["question"], cont, visual) for i, cont, visual in cases]
    results = pairs(adapter.loglikelihood(requests))
    for (doc_id, cont, visual), (loss, _) in zip(cases, results):
        image = docs[doc_id]["image"] if visual is one_image else None
        assert loss == pytest.approx(
            continuation_loss(model, docs[doc_id]["question"], cont, image), rel=1e-4
        )
    assert results[0][0] != pytest.approx(results[5][0], rel=1e-3)  # same question, other image: other loss


def test_loglikelihood_target_function_gets_the_answer_space(factory_adapter, docs):
    adapter = factory_adapter
    doc = docs[1]
    # `loglikelihood` tasks pass doc_to_target (no delimiter): scored as the answer after "ASSISTANT: "
    [(loss, _)] = pairs(adapter.loglikelihood([loglikelihood_request(1, doc["question"], lambda d: "yes")]))
    expected = continuation_loss(adapter.model, doc["question"], " yes", doc["image"])
    assert loss == pytest.approx(expected, rel=1e-4)


def test_is_greedy_says_whether_greedy_generation_gives_the_continuation(factory_adapter, docs):
    adapter = factory_adapter
    model = adapter.model
    requests, expected_flags = [], []
    for doc_id, doc in enumerate(docs[:3]):
        generated = model.generate_ids([doc["image"]], [doc["question"]], max_new_tokens=3)[0]
        context = adapter.encode_text(adapter.render_prompt(doc["question"], with_image=True))
        for k in (1, 2, 3):
            for continuation in (model.tokenizer.decode(generated[:k]), " red"):
                whole = adapter.encode_text(adapter.render_prompt(doc["question"], True) + continuation)
                tokens = whole[len(context) :]
                expected_flags.append(whole[: len(context)] == context and tokens == generated[: len(tokens)])
                requests.append(loglikelihood_request(doc_id, doc["question"], continuation))
    flags = [greedy for _, greedy in pairs(adapter.loglikelihood(requests))]
    assert flags == expected_flags
    assert True in flags and False in flags


# ----- settings ---------------------------------------------------------------------------------------------------


def test_model_args_are_checked_and_batch_size_from_model_args_wins(checkpoint):
    adapter = TinyLlavaBench.create_from_arg_string(
        f"pretrained={checkpoint['factory']},batch_size=4,template=phi", {"batch_size": 1, "device": None}
    )
    assert adapter.batch_size == 4 and adapter.model.settings.template == "phi"
    with pytest.raises(UserError, match="unknown model_args temperature"):
        TinyLlavaBench(pretrained=str(checkpoint["factory"]), temperature=0)
    with pytest.raises(UserError, match="batch_size"):
        TinyLlavaBench(pretrained=str(checkpoint["factory"]), batch_size="auto")
    with pytest.raises(UserError, match="pretrained"):
        TinyLlavaBench()
    with pytest.raises(NotImplementedError, match="multi-round"):
        TinyLlavaBench(pretrained=str(checkpoint["factory"])).generate_until_multi_round([])


# ----- the real CLI ---------------------------------------------------------------------------------------------


def write_smoke_dataset(folder: Path, docs: list[dict]) -> list[dict]:
    import datasets

    rows = [
        {
            "question": docs[0]["question"],
            "image": docs[0]["image"],
            "answer": "red",
            "choices": ["red", "blue"],
        },
        {
            "question": docs[1]["question"],
            "image": docs[1]["image"],
            "answer": "yes",
            "choices": ["yes", "no"],
        },
        {"question": docs[2]["question"], "image": None, "answer": "two", "choices": ["one", "two three"]},
        {
            "question": docs[3]["question"],
            "image": docs[3]["image"],
            "answer": "no",
            "choices": ["no", "yes"],
        },
        {
            "question": docs[4]["question"],
            "image": docs[4]["image"],
            "answer": "cat",
            "choices": ["cat", "dog"],
        },
    ]
    for row in rows:
        row["label"] = 0
    features = datasets.Features(
        {
            "question": datasets.Value("string"),
            "image": datasets.Image(),
            "answer": datasets.Value("string"),
            "choices": datasets.Sequence(datasets.Value("string")),
            "label": datasets.Value("int64"),
        }
    )
    (folder / "smoke_data").mkdir()
    datasets.Dataset.from_list(rows, features=features).to_parquet(
        str(folder / "smoke_data" / "test.parquet")
    )
    return rows


@pytest.mark.slow
def test_lmms_eval_cli_runs_the_adapter_on_local_tasks(checkpoint, docs, tmp_path):
    rows = write_smoke_dataset(tmp_path, docs)
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf_home"),
        "HF_DATASETS_CACHE": str(tmp_path / "hf_datasets"),
    }
    command = [
        sys.executable,
        "-m",
        "lmms_eval",
        "eval",
        "--model",
        "tinyllava_bench",
        "--model_args",
        f"pretrained={checkpoint['factory']},batch_size=2,device=cpu",
        "--tasks",
        "tinyllava_smoke_gen,tinyllava_smoke_mc",
        "--include_path",
        str(TASK_DIR),
        "--output_path",
        str(tmp_path / "out"),
        "--log_samples",
    ]
    # the task YAMLs read smoke_data/test.parquet relative to where lmms-eval runs
    run = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr
    # lmms-eval exits 0 even when evaluation fails: the files are the evidence
    results_files = glob.glob(str(tmp_path / "out" / "*" / "*_results.json"))
    assert results_files, f"lmms-eval wrote no results (exit {run.returncode}):\n{log[-4000:]}"
    results = json.loads(Path(results_files[0]).read_text())["results"]
    assert 0.0 <= results["tinyllava_smoke_gen"]["smoke_match,none"] <= 1.0
    assert 0.0 <= results["tinyllava_smoke_mc"]["acc,none"] <= 1.0

    def samples(task: str) -> list[dict]:
        [path] = glob.glob(str(tmp_path / "out" / "*" / f"*_samples_{task}.jsonl"))
        lines = Path(path).read_text().splitlines()
        return sorted((json.loads(line) for line in lines), key=lambda s: s["doc_id"])

    model = load_model(str(checkpoint["factory"]))
    generated = samples("tinyllava_smoke_gen")
    assert [s["doc_id"] for s in generated] == list(range(len(rows)))
    for sample, row in zip(generated, rows):
        context = sample["input"]  # the question text lmms-eval passed, its post-prompt included
        assert context.startswith(row["question"]) and context != row["question"]
        if row["image"] is None:
            expected = text_only_answer(model, context, max_new_tokens=6)
        else:
            expected = model.generate([row["image"].convert("RGB")], [context], max_new_tokens=6)[0]
        assert sample["filtered_resps"] == expected

    scored = samples("tinyllava_smoke_mc")
    for sample, row in zip(scored, rows):
        losses = [float(loss) for loss, _ in sample["filtered_resps"]]
        image = None if row["image"] is None else row["image"].convert("RGB")
        expected = [continuation_loss(model, sample["input"], " " + c, image) for c in row["choices"]]
        assert losses == pytest.approx(expected, rel=1e-4)
        assert sample["acc"] == float(min(range(len(losses)), key=losses.__getitem__) == 0)
