"""`train --dry-run`: the examples equal fixed vectors (the original code's encoding) for every template, caption and
chat stages, the cases the original handles its own way included; the printed plan is the paper's recipes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from PIL import Image

from tinyllava_bench.cli import main
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.train.plan import build_plan
from tinyllava_bench.train.trainer import preflight

from .conftest import run_options, write_config

VECTORS = Path(__file__).parent / "dry_run_vectors.json"
MAX_LENGTH = 200  # the system prompt is about 110 tokens of the tiny tokenizers: the long record is cut
CHAT_CASES = [
    ("phi", "phi"),
    ("llama", "v1"),
    ("llama", "llama"),
    ("gemma", "gemma"),
    ("qwen2", "qwen2_base"),
    ("qwen2", "qwen2_instruct"),
]
CAPTION_CASES = ["phi", "llama"]  # without and with a BOS token


def chat_records(eos: str) -> list[dict]:
    def turns(*values: str) -> list[dict]:
        return [{"from": ("human", "gpt")[i % 2], "value": v} for i, v in enumerate(values)]

    return [
        # a turn of `<image>` alone: `USER: <image> ASSISTANT:`, no newline after the placeholder
        {"id": "image-only", "image": "a.png", "conversations": turns("<image>", "A red circle.")},
        {
            "id": "two-turns",
            "image": "a.png",
            "conversations": turns("What is it?\n<image>", "a circle", "Red?", "yes"),
        },
        {"id": "text-only", "conversations": turns("Is the sky blue?", "yes")},
        # the end-of-answer text inside an answer: the whole sample is masked (every label -100)
        {"id": "eos-text", "conversations": turns("Quote it.", f"It ends with {eos} here.")},
        # longer than model_max_length, image in the second turn: cut, kept, the first answer still learned
        {
            "id": "long",
            "image": "a.png",
            "conversations": turns("Hi.", "Hello there.", "<image>\nDescribe it.", "circle " * 60),
        },
        {"id": "empty-answer", "conversations": turns("Say nothing.", "")},
        {"id": "malformed", "conversations": turns("Only a question.")},
    ]


CAPTION_RECORDS = [
    {
        "id": "caption",
        "image": "a.png",
        "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "a red circle"}],
    },
    {
        "id": "caption-question",
        "image": "a.png",
        "conversations": [
            {"from": "human", "value": "Describe.\n<image>"},
            {"from": "gpt", "value": "red </s> round"},
        ],
    },
    {
        "id": "no-image",
        "conversations": [{"from": "human", "value": "<image>"}, {"from": "gpt", "value": "nothing"}],
    },
]


def _data_root(root: Path, eos: str) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (30, 20), (200, 30, 30)).save(root / "images" / "a.png")
    (root / "pretrain.json").write_text(json.dumps(CAPTION_RECORDS))
    (root / "finetune.json").write_text(json.dumps(chat_records(eos)))
    return root


def _dry_run(tmp_path: Path, parts: dict, template: str, *extra: str, **config) -> Path:
    root = _data_root(tmp_path / "data", get_template(template).eos)
    config_path = write_config(
        tmp_path / "c.yaml", parts, template=template, model_max_length=MAX_LENGTH, **config
    )
    output = tmp_path / "out"
    args = ["train", "--config", str(config_path), "--data-root", str(root), "--output", str(output)]
    assert main([*args, "--dry-run", "--no-progress", *extra]) == 0
    return output


def _examples(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def vectors() -> dict:
    return json.loads(VECTORS.read_text())


@pytest.mark.parametrize(("family", "template"), CHAT_CASES)
def test_chat_examples_equal_the_fixed_vectors(tmp_path, model_parts, vectors, family, template):
    output = _dry_run(tmp_path, model_parts(family), template)
    examples = _examples(output / "finetune" / "examples.jsonl")
    assert examples == vectors["chat"][template]
    by_id = {e["id"]: e for e in examples}
    assert by_id["malformed"] == {"id": "malformed", "skipped": "malformed_conversation"}
    assert set(by_id["eos-text"]["labels"]) == {-100}
    assert len(by_id["long"]["input_ids"]) < MAX_LENGTH and -200 in by_id["long"]["input_ids"]
    text = (output / "finetune" / "examples.txt").read_text()
    assert "USER: <image> ASSISTANT:⟦" in text.replace("\n", "\\n")
    assert "=== malformed: set aside (malformed_conversation)" in text


@pytest.mark.parametrize("family", CAPTION_CASES)
def test_caption_examples_equal_the_fixed_vectors(tmp_path, model_parts, vectors, family):
    output = _dry_run(
        tmp_path, model_parts(family), "phi" if family == "phi" else "llama", "--stages", "pretrain"
    )
    examples = _examples(output / "pretrain" / "examples.jsonl")
    assert examples == vectors["caption"][family]
    assert examples[-1] == {"id": "no-image", "skipped": "text_only_in_caption_stage"}
    assert not (output / "finetune").exists()


def test_keep_eos_text_option_trains_on_the_sample(tmp_path, model_parts):
    output = _dry_run(tmp_path, model_parts("phi"), "phi", "--keep-eos-text", "--examples", "4")
    example = {e["id"]: e for e in _examples(output / "finetune" / "examples.jsonl")}["eos-text"]
    assert set(example["labels"]) != {-100}
    assert (
        "⟦ It ends with <|endoftext|> here.<|endoftext|>⟧"
        in (output / "finetune" / "examples.txt").read_text()
    )


def test_dry_run_writes_no_weights_and_the_run_may_follow(tmp_path, model_parts):
    output = _dry_run(tmp_path, model_parts("phi"), "phi", "--examples", "2")
    files = sorted(p.relative_to(output).as_posix() for p in output.rglob("*") if p.is_file())
    assert files == [f"{s}/examples.{x}" for s in ("finetune", "pretrain") for x in ("jsonl", "txt")]
    assert len(_examples(output / "finetune" / "examples.jsonl")) == 2
    config = tmp_path / "c.yaml"
    plan = build_plan(None, config, run_options(output, tmp_path / "data"))
    preflight(plan)  # the examples do not make the folder a started run


def _plan_lines(capsys, tmp_path, parts, variant, monkeypatch) -> list[str]:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    root = _data_root(tmp_path / "data", "<|endoftext|>")
    (root / "share-pretrain.json").write_text(json.dumps(CAPTION_RECORDS))
    config = write_config(tmp_path / "c.yaml", parts, variant=variant)
    config.write_text(config.read_text().replace("model_max_length: 256\n", ""))
    args = ["train", "--config", str(config), "--data-root", str(root), "--output", str(tmp_path / "o")]
    capsys.readouterr()
    assert main([*args, "--dry-run", "--examples", "1", "--deepspeed", "auto", "--no-progress"]) == 0
    return capsys.readouterr().out.splitlines()


def test_plan_of_the_papers_base_recipe(tmp_path, model_parts, capsys, monkeypatch):
    lines = _plan_lines(capsys, tmp_path, model_parts("phi"), "TinyLLaVA-base-Sig-Phi", monkeypatch)
    text = "\n".join(lines)
    assert lines[0] == "recipe: base (paper launch scripts); stages: pretrain, finetune"
    assert "precision: fp32; gradient checkpointing: off; seed: 42; processes: 1" in text
    pretrain, finetune = text.split("stage finetune")
    assert "template: pretrain; image aspect: square; model_max_length: 3072" in pretrain
    assert (
        "trains: vision frozen (0/" in pretrain
        and "connector full (" in pretrain
        and "llm frozen (0/" in pretrain
    )
    assert (
        "learning rate: connector 0.001; epochs 1; warmup ratio 0.03; scheduler cosine; weight decay 0; "
        in pretrain
    )
    assert "batch: 32 per device x 8 accumulation x 1 process(es) = 256 (recipe 256); grouped" in pretrain
    assert "deepspeed: zero2 (" in pretrain
    assert "template: model; image aspect: model (pad); model_max_length: 3072" in finetune
    assert "learning rate: connector 2e-05, llm 2e-05; epochs 1;" in finetune
    assert (
        "batch: 16 per device x 8 accumulation x 1 process(es) = 128 (recipe 128); grouped by modality and length: yes"
        in finetune
    )
    assert "deepspeed: zero3 (" in finetune
    assert lines[-1] == "dry run: nothing trained, no weights written"


def test_plan_of_the_papers_share_recipe(tmp_path, model_parts, capsys, monkeypatch):
    parts = model_parts("phi", vision_layers=14)  # the share stage tunes the tower from layer 12
    lines = _plan_lines(capsys, tmp_path, parts, "TinyLLaVA-share-Sig-Phi", monkeypatch)
    text = "\n".join(lines)
    assert lines[0] == "recipe: share (paper launch scripts); stages: pretrain, share-pretrain, finetune"
    share = text.split("stage share-pretrain")[1].split("stage finetune")[0]
    assert "data: " in share and "share-pretrain.json (3 records)" in share
    assert "template: pretrain; image aspect: square; model_max_length: 3072" in share
    assert "trains: vision partial(12) (" in share and "llm full (" in share
    assert "learning rate: vision 2e-05, connector 2e-05, llm 2e-05; epochs 1;" in share
    assert "batch: 8 per device x 32 accumulation x 1 process(es) = 256 (recipe 256)" in share
    assert "deepspeed: zero3 (" in share
