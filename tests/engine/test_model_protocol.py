"""The model protocol (engine/model_protocol.py): the TinyLLaVA adapter, the bare generate loop and the fake all
run under the engine; the engine's timing hooks (engine/hooks.py) see every phase, properly nested."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tinyllava_bench.engine.hooks import EvalHooks
from tinyllava_bench.engine.model_protocol import BareGenerateModel, EvalModel, TinyLlavaModel
from tinyllava_bench.engine.runner import EvalConfig, evaluate
from tinyllava_bench.testing.fake_model import FakeModel, yes_or_no

N = 8


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("data")
    for task in ("gqa", "pope"):
        write_task_data(task, root, n=N, seed=3)
    return root


def _config(model: str, data_root: Path, output: Path, tasks: list[str], **extra) -> EvalConfig:
    return EvalConfig(
        model=model,
        tasks=tasks,
        output=output,
        data_root=data_root,
        num_workers=0,
        show_progress=False,
        max_error_rate=0.5,
        task_options={"generation.max_new_tokens": 6},
        **extra,
    )


def _samples(output: Path, task: str) -> list[dict]:
    return [json.loads(line) for line in (output / f"samples_{task}.jsonl").read_text().splitlines()]


def test_every_implementation_satisfies_the_protocol(tiny_checkpoints):
    from tinyllava_bench import load_model

    model = load_model(str(tiny_checkpoints("phi", "siglip")["native"]))
    for implementation in (TinyLlavaModel(model), BareGenerateModel(model), FakeModel()):
        assert isinstance(implementation, EvalModel), type(implementation).__name__
    assert not isinstance(model, EvalModel)  # the raw model is not what the engine runs


def test_evaluate_with_the_fake_model(data_root, tmp_path):
    failing = {}

    def fails(question: str) -> bool:  # the first question generated for POPE fails, alone
        if not failing and "Answer the question" in question:
            failing["question"] = question
        return question == failing.get("question")

    fake = FakeModel(fails=fails)
    results = evaluate(_config("fake", data_root, tmp_path, ["pope", "gqa"], batch_size=4), model=fake)

    assert results["model"]["source"] == "fake" and results["model"]["card"] == fake.card_fields()
    assert results["provenance"]["dtype"] == "float32" and results["provenance"]["checkpoint_dir"] is None
    assert not fake.released  # a model handed to evaluate is the caller's to release
    for task in ("pope", "gqa"):
        samples = _samples(tmp_path, task)
        assert [s["index"] for s in samples] == list(range(N))
        for sample in samples:
            question = sample["prompt"].removeprefix("USER: <image>\n").removesuffix(" ASSISTANT:")
            if question == failing["question"]:
                assert sample["prediction"] is None
                assert sample["error"].startswith("generation: RuntimeError: the fake model fails")
            else:
                assert sample["prediction"] == yes_or_no(question) and sample["error"] is None
    pope = results["tasks"]["pope"]
    assert pope["n_samples"] == N and pope["n_errors"] == 1
    assert results["tasks"]["gqa"]["n_errors"] == 0 and results["summary"]["n_errors"] == 1
    # GQA's exact match over the fake's yes/no answers, counted here from the labels (unbalanced rows stay out)
    scored = [s for s in _samples(tmp_path, "gqa") if s["score"] is not None]
    assert scored and all(s["score"] == float(s["prediction"] == s["fields"]["answer"]) for s in scored)
    right = sum(s["prediction"] == s["fields"]["answer"] for s in scored)
    assert results["tasks"]["gqa"]["metrics"]["accuracy"] == pytest.approx(100 * right / len(scored))

    # a rerun generates nothing: every answer is read back from the run folder
    asked: list[str] = []
    again = FakeModel(fails=lambda question: asked.append(question) or fails(question))
    evaluate(_config("fake", data_root, tmp_path, ["pope", "gqa"], batch_size=4), model=again)
    assert (
        asked == [failing["question"]] and again.generated == []
    )  # only the failed one is retried (and fails)


def test_bare_loop_and_tinyllava_adapter_agree(tiny_checkpoints, data_root, tmp_path):
    from tinyllava_bench import load_model

    model = load_model(str(tiny_checkpoints("phi", "siglip")["native"]))
    predictions = {}
    for name, adapter in (("batched", TinyLlavaModel(model)), ("bare", BareGenerateModel(model))):
        out = tmp_path / name
        evaluate(
            _config(str(model.checkpoint_dir), data_root, out, ["gqa", "pope"], batch_size=4), model=adapter
        )
        predictions[name] = {task: [s["prediction"] for s in _samples(out, task)] for task in ("gqa", "pope")}
    assert predictions["bare"] == predictions["batched"]
    assert all(p is not None for task in predictions["bare"].values() for p in task)
    assert (
        len({p for task in predictions["bare"].values() for p in task}) > 1
    )  # not one answer for everything


class Recording(EvalHooks):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.batches: list[tuple[str, int]] = []

    def on_phase_start(self, name: str) -> None:
        self.events.append(("start", name))

    def on_phase_end(self, name: str) -> None:
        self.events.append(("end", name))

    def on_batch(self, task: str, records: list[dict]) -> None:
        self.batches.append((task, len(records)))


def test_hooks_see_the_phases_in_order(tiny_checkpoints, data_root, tmp_path):
    hooks = Recording()
    checkpoint = str(tiny_checkpoints("phi", "siglip")["native"])
    evaluate(_config(checkpoint, data_root, tmp_path, ["gqa"], batch_size=4), hooks=hooks)

    stack, parents = [], {}
    for kind, name in hooks.events:  # properly nested: every end closes the innermost open phase
        if kind == "start":
            parents.setdefault(name, stack[-1] if stack else None)
            stack.append(name)
        else:
            assert stack.pop() == name
    assert stack == []
    assert parents == {
        "load_model": None,
        "checkpoint_fingerprint": None,
        "run_task": None,
        "generate_loop": "run_task",
        "wait_for_images": "generate_loop",
        "model_generate": "generate_loop",
        "decode": "generate_loop",
        "samples_log_write": "generate_loop",
        "score_and_write": "run_task",
    }
    starts = [name for kind, name in hooks.events if kind == "start"]
    first = {name: starts.index(name) for name in parents}
    assert first["load_model"] < first["checkpoint_fingerprint"] < first["run_task"] < first["generate_loop"]
    assert first["wait_for_images"] < first["model_generate"] < first["decode"] < first["samples_log_write"]
    assert starts[-1] == "score_and_write"
    assert sum(n for _, n in hooks.batches) == N and {task for task, _ in hooks.batches} == {"gqa"}
    # the last wait finds no batch left: one more wait than batches
    assert starts.count("wait_for_images") == len(hooks.batches) + 1
