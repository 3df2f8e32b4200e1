"""The lmms-eval model `tinyllava_bench`: entry point, answers as lmms-eval's own `tinyllava` gives them (whole
decoded text, sampling when temperature > 0, seeded), batched = one at a time, losses, the real CLI.

Needs the `lmms` extra (`pip install -e ".[dev,lmms]"`); skipped when lmms_eval cannot be imported, except under
CI=true, where that fails.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

# under CI=true a missing lmms-eval fails the run (the import below raises) instead of skipping it: CI installs it
if not os.environ.get("CI"):
    pytest.importorskip(
        "lmms_eval", reason="lmms-eval is not installed (optional extra: pip install -e '.[dev,lmms]')"
    )

import torch  # noqa: E402
from lmms_eval.api.instance import GenerationResult, Instance  # noqa: E402
from loguru import logger  # noqa: E402

from tinyllava_bench import load_model  # noqa: E402
from tinyllava_bench.errors import UserError  # noqa: E402
from tinyllava_bench.lmms.adapter import TinyLlavaBench  # noqa: E402
from tinyllava_bench.models.sampling import Sampling, sample_seed  # noqa: E402
from tinyllava_bench.models.tokenization import IGNORE_INDEX  # noqa: E402
from tinyllava_bench.testing.images import make_image  # noqa: E402

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


def raw_answer(model, image, question: str, max_new_tokens: int, sampling=None) -> str:
    """The decoded answer, neither cut nor stripped: what lmms-eval's tinyllava model returns."""
    ids = model.generate_ids([image], [question], max_new_tokens=max_new_tokens, sampling=sampling)
    return model.tokenizer.batch_decode(ids, skip_special_tokens=True)[0]


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
    return model.tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


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
    expected = [raw_answer(model, d["image"], d["question"], 8) for d in docs]
    assert answers == expected
    assert len(set(expected)) > 1  # the prompts did not all collapse to one answer
    # answers depend on the image, so an image given to the wrong prompt after sorting would show
    shifted = [raw_answer(model, docs[i - 1]["image"], d["question"], 8) for i, d in enumerate(docs)]
    assert shifted != expected


def test_until_never_cuts_the_answer_unless_cut_at_until(checkpoint, factory_adapter, docs):
    adapter = factory_adapter
    model = adapter.model
    doc = docs[1]
    short = model.generate_ids([doc["image"]], [doc["question"]], max_new_tokens=2)[0]
    [answer] = adapter.generate_until([generate_request(1, doc["question"], max_new_tokens=2)])
    assert answer == model.tokenizer.decode(short, skip_special_tokens=True) and len(short) <= 2

    raw = raw_answer(model, doc["image"], doc["question"], 8)
    stop = raw.strip()[3:5]  # a stop string in the middle of the answer
    assert stop and raw.find(stop) > 0
    request = generate_request(1, doc["question"], until=["never here", stop])
    # lmms-eval's tinyllava receives `until` and returns the whole decoded text, unstripped
    assert adapter.generate_until([request]) == [raw]
    cutting = make_adapter(checkpoint["factory"], docs, cut_at_until="true")
    [cut] = cutting.generate_until([request])
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
    assert answers[1] == raw_answer(model, docs[3]["image"], docs[3]["question"], 8)


def test_image_placeholder_in_the_context_is_not_doubled(checkpoint, docs):
    adapter = make_adapter(checkpoint["legacy"], docs, batch_size=2)  # legacy keeps the question as given
    plain, tagged = adapter.generate_until(
        [generate_request(0, docs[0]["question"]), generate_request(0, "<image>\n" + docs[0]["question"])]
    )
    assert plain == tagged
    assert plain == raw_answer(adapter.model, docs[0]["image"], docs[0]["question"], 8)


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
    assert answer == raw_answer(adapter.model, docs[2]["image"], docs[2]["question"], 8)
    assert any("first image" in w for w in warnings)

    strict = make_adapter(checkpoint["factory"], docs, multi_image="error")
    with pytest.raises(UserError, match="2 images"):
        strict.generate_until([generate_request(2, docs[2]["question"], doc_to_visual=two_images)])
    with pytest.raises(UserError, match="images only"):
        strict.generate_until([generate_request(0, "What?", doc_to_visual=lambda doc: ["/videos/clip.mp4"])])


def test_temperature_above_zero_samples_seeded_whatever_do_sample_says(checkpoint, docs):
    model_args = {"batch_size": 3, "seed": "11"}
    adapter = make_adapter(checkpoint["factory"], docs, **model_args)
    model = adapter.model
    # as MM-Vet's lmms-eval settings (0.2): temperature > 0 with do_sample false is sampling in lmms-eval's tinyllava
    mmvet = {"temperature": 0.7, "top_p": 1.0, "do_sample": False, "num_beams": 1}
    sampled = [generate_request(i, d["question"], **mmvet) for i, d in enumerate(docs)]
    greedy = [generate_request(i, d["question"]) for i, d in enumerate(docs)]
    answers = adapter.generate_until(sampled + greedy)

    def sampling(doc_id: int) -> Sampling:
        return Sampling(0.7, (sample_seed(11, TASK, doc_id),), top_k=50, top_p=1.0)

    expected = [raw_answer(model, d["image"], d["question"], 8, sampling(i)) for i, d in enumerate(docs)]
    greedy_expected = [raw_answer(model, d["image"], d["question"], 8) for d in docs]
    assert answers[: len(docs)] == expected
    assert answers[len(docs) :] == greedy_expected  # greedy requests in the same call: still greedy
    assert expected != greedy_expected
    one_at_a_time = make_adapter(checkpoint["factory"], docs, batch_size=1, seed=11)
    assert one_at_a_time.generate_until(sampled) == expected
    other_seed = make_adapter(checkpoint["factory"], docs, batch_size=3, seed=12)
    assert other_seed.generate_until(sampled) != expected


def test_generation_settings_are_read_as_lmms_eval_tinyllava_reads_them(factory_adapter):
    decoding = factory_adapter._decoding
    assert decoding("t", {}) == (1024, 0.0, None)  # its max_new_tokens default; greedy
    assert decoding("t", {"until": ["\n\n"], "max_gen_toks": 5}) == (1024, 0.0, None)  # only max_new_tokens
    mmvet = {"max_new_tokens": 1024, "temperature": 0.2, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    assert decoding("t", mmvet) == (1024, 0.2, 1.0)
    gqa = {"max_new_tokens": 16, "temperature": 0, "top_p": 1.0, "num_beams": 1, "do_sample": False}
    assert decoding("t", gqa) == (16, 0.0, None)
    assert decoding("t", {"do_sample": True}) == (1024, 0.0, None)  # do_sample alone never samples
    with pytest.raises(UserError, match="temperature"):
        decoding("t", {"temperature": "hot"})


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
    with pytest.raises(UserError, match="cut_at_until='maybe'"):
        TinyLlavaBench(pretrained=str(checkpoint["factory"]), cut_at_until="maybe")
    with pytest.raises(UserError, match="seed='x'"):
        TinyLlavaBench(pretrained=str(checkpoint["factory"]), seed="x")
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


def run_lmms_eval(folder: Path, model_args: str, tasks: str) -> tuple[dict, Callable[[str], list[dict]]]:
    """lmms-eval's CLI, offline, on the smoke tasks: (its results, task -> its logged samples by doc_id)."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "HF_HOME": str(folder / "hf_home"),
        "HF_DATASETS_CACHE": str(folder / "hf_datasets"),
    }
    command = [
        sys.executable,
        "-m",
        "lmms_eval",
        "eval",
        "--model",
        "tinyllava_bench",
        "--model_args",
        model_args,
        "--tasks",
        tasks,
        "--include_path",
        str(TASK_DIR),
        "--output_path",
        str(folder / "out"),
        "--log_samples",
    ]
    # the task YAMLs read smoke_data/test.parquet relative to where lmms-eval runs
    run = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=300)
    log = run.stdout + run.stderr
    # lmms-eval exits 0 even when evaluation fails: the files are the evidence
    results_files = glob.glob(str(folder / "out" / "*" / "*_results.json"))
    assert results_files, f"lmms-eval wrote no results (exit {run.returncode}):\n{log[-4000:]}"

    def samples(task: str) -> list[dict]:
        [path] = glob.glob(str(folder / "out" / "*" / f"*_samples_{task}.jsonl"))
        lines = Path(path).read_text().splitlines()
        return sorted((json.loads(line) for line in lines), key=lambda s: s["doc_id"])

    return json.loads(Path(results_files[0]).read_text())["results"], samples


@pytest.mark.slow
def test_lmms_eval_cli_runs_the_adapter_on_local_tasks(checkpoint, docs, tmp_path):
    rows = write_smoke_dataset(tmp_path, docs)
    results, samples = run_lmms_eval(
        tmp_path,
        f"pretrained={checkpoint['factory']},batch_size=2,device=cpu",
        "tinyllava_smoke_gen,tinyllava_smoke_mc",
    )
    assert 0.0 <= results["tinyllava_smoke_gen"]["smoke_match,none"] <= 1.0
    assert 0.0 <= results["tinyllava_smoke_mc"]["acc,none"] <= 1.0

    model = load_model(str(checkpoint["factory"]))
    generated = samples("tinyllava_smoke_gen")
    assert [s["doc_id"] for s in generated] == list(range(len(rows)))
    for sample, row in zip(generated, rows):
        context = sample["input"]  # the question text lmms-eval passed, its post-prompt included
        assert context.startswith(row["question"]) and context != row["question"]
        if row["image"] is None:
            expected = text_only_answer(model, context, max_new_tokens=6)
        else:
            expected = raw_answer(model, row["image"].convert("RGB"), context, max_new_tokens=6)
        assert sample["filtered_resps"] == expected

    scored = samples("tinyllava_smoke_mc")
    for sample, row in zip(scored, rows):
        losses = [float(loss) for loss, _ in sample["filtered_resps"]]
        image = None if row["image"] is None else row["image"].convert("RGB")
        expected = [continuation_loss(model, sample["input"], " " + c, image) for c in row["choices"]]
        assert losses == pytest.approx(expected, rel=1e-4)
        assert sample["acc"] == float(min(range(len(losses)), key=losses.__getitem__) == 0)


@pytest.fixture(scope="module")
def blank_line_checkpoint(checkpoint, tmp_path_factory):
    """The tiny factory checkpoint with the newline token's logit raised until answers hold blank lines mid-text."""
    import shutil

    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("blank-line") / "factory"
    shutil.copytree(checkpoint["factory"], folder)
    weights = load_file(str(checkpoint["factory"] / "model.safetensors"))
    model = load_model(str(checkpoint["factory"]))
    [newline] = model.tokenizer("\n", add_special_tokens=False).input_ids
    original = weights["language_model.lm_head.bias"].clone()
    for boost in (2.5, 2.25, 2.75, 2.0, 3.0):
        weights["language_model.lm_head.bias"] = original.clone()
        weights["language_model.lm_head.bias"][newline] += boost
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        boosted = load_model(str(folder))
        answers = [
            raw_answer(boosted, make_image(w, h, seed=i), QUESTIONS[i], 12) for i, (w, h) in enumerate(SIZES)
        ]
        if sum(_blank_line_inside(a) for a in answers) >= 2:
            return folder
    raise AssertionError("no newline boost gave answers with a blank line inside; retune the boosts")


def recorded(sample: dict) -> str:
    """The answer as the model returned it: lmms-eval logs `resps` only where its filters (which strip) changed it."""
    return sample.get("resps", sample["filtered_resps"])


def _blank_line_inside(text: str) -> bool:
    """A blank line with answer text before and after it: what cutting at "\n\n" would change."""
    head, sep, tail = text.strip().partition("\n\n")
    return bool(sep and head.strip() and tail.strip())


@pytest.mark.slow
def test_lmms_eval_records_whole_answers_blank_lines_included_and_seeded_samples(
    blank_line_checkpoint, docs, tmp_path
):
    rows = write_smoke_dataset(tmp_path, docs)
    _, samples = run_lmms_eval(
        tmp_path,
        f"pretrained={blank_line_checkpoint},batch_size=2,device=cpu,seed=5",
        "tinyllava_smoke_blank,tinyllava_smoke_sample",
    )
    model = load_model(str(blank_line_checkpoint))
    images = [None if row["image"] is None else row["image"].convert("RGB") for row in rows]

    # the task gives no `until`, so lmms-eval's TaskConfig passes ["\n\n"] (its fewshot_delimiter)
    blank = samples("tinyllava_smoke_blank")
    assert [s["doc_id"] for s in blank] == list(range(len(rows)))
    for sample, image in zip(blank, images):
        if image is None:
            expected = text_only_answer(model, sample["input"], max_new_tokens=12)
        else:
            expected = raw_answer(model, image, sample["input"], 12)
        assert recorded(sample) == expected and sample["filtered_resps"] == expected.strip()
    # the point: blank lines inside answers reach lmms-eval as lmms-eval's tinyllava leaves them
    assert sum(_blank_line_inside(s["filtered_resps"]) for s in blank) >= 2

    sampled = samples("tinyllava_smoke_sample")
    for sample, image in zip(sampled, images):
        if image is None:
            continue
        stream = Sampling(
            0.2, (sample_seed(5, "tinyllava_smoke_sample", sample["doc_id"]),), top_k=50, top_p=1.0
        )
        assert recorded(sample) == raw_answer(model, image, sample["input"], 8, stream)
