"""The trainer on tiny models: what each recipe stage trains and freezes, resume, LoRA, checkpoints, the CLI."""

from __future__ import annotations

import json
import re

import pytest
import torch

import tinyllava_bench
from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.train.plan import build_plan
from tinyllava_bench.train.stage_folder import CHECKPOINTS, TRAINABLE_WEIGHTS, TRAINING_RECORD, is_complete
from tinyllava_bench.train.trainer import initial_model, run_training

from .conftest import CrashAt, run_options, write_colour_data, write_config

SHARE_STAGES = ("pretrain", "share-pretrain", "finetune")


def _weights(folder) -> dict[str, torch.Tensor]:
    return tinyllava_bench.load_model(str(folder)).state_dict()


def _expected_trainable(name: str, vision: str, connector: str, llm: str) -> bool:
    """The spec, written out: which tensor a stage's tune settings train."""
    if name.startswith("connector."):
        return connector != "frozen"
    if name.startswith("language_model."):
        return llm == "full"
    if vision == "frozen":
        return False
    from_layer = int(re.fullmatch(r"partial\((\d+)\)", vision).group(1))
    layer = re.search(r"encoder\.layers\.(\d+)\.", name)
    return bool(layer) and int(layer.group(1)) >= from_layer


def _check_stage(before, after, vision, connector, llm):
    assert before.keys() == after.keys()
    trained = frozen = 0
    for name in after:
        if _expected_trainable(name, vision, connector, llm):
            assert not torch.equal(before[name], after[name]), f"{name} should have trained"
            trained += 1
        else:
            assert torch.equal(before[name], after[name]), f"{name} should be bit-identical"
            frozen += 1
    assert trained and frozen


@pytest.fixture(scope="module")
def share_run(tmp_path_factory, model_parts):
    """The paper's share recipe end to end (vision partial from layer 1 of the tiny tower), 3 steps per stage."""
    root = tmp_path_factory.mktemp("share-run")
    parts = model_parts("phi", "siglip", vision_layers=4)
    data = write_colour_data(root / "data", {stage: 8 for stage in SHARE_STAGES}, text_only=2)
    config = write_config(
        root / "config.yaml",
        parts,
        recipe="share",
        stage_overrides={"share-pretrain": {"vision": "partial(1)"}},
    )
    plan = build_plan(None, config, run_options(root / "out", data, max_steps=3))
    start = initial_model(plan).state_dict()
    folders = run_training(plan)
    return {"root": root, "parts": parts, "data": data, "plan": plan, "start": start, "folders": folders}


def test_each_share_stage_trains_exactly_its_modules(share_run):
    folders = share_run["folders"]
    assert [f.name for f in folders] == list(SHARE_STAGES)
    pretrain, share_pretrain, finetune = (_weights(f) for f in folders)
    _check_stage(share_run["start"], pretrain, "frozen", "full", "frozen")
    _check_stage(pretrain, share_pretrain, "partial(1)", "full", "full")
    _check_stage(share_pretrain, finetune, "frozen", "full", "full")


def test_share_factory_freezes_the_tower(share_run, tmp_path):
    pretrain = share_run["folders"][0]
    config = write_config(tmp_path / "c.yaml", share_run["parts"], recipe="share-factory")
    options = run_options(tmp_path / "out", share_run["data"], max_steps=3, stages=["share-pretrain"])
    options.init_from = str(pretrain)
    (folder,) = run_training(build_plan(None, config, options))
    _check_stage(_weights(pretrain), _weights(folder), "frozen", "full", "full")


def test_stage_records(share_run):
    folders = share_run["folders"]
    records = [json.loads((f / TRAINING_RECORD).read_text()) for f in folders]
    assert [r["stage"] for r in records] == list(SHARE_STAGES)
    assert all(r["status"] == "complete" and r["recipe"] == "share" and r["steps"] == 3 for r in records)
    assert records[0]["started_from"] == {
        "llm": share_run["parts"]["llm"],
        "vision": share_run["parts"]["vision"],
    }
    assert records[1]["started_from"] == str(folders[0]) and records[2]["started_from"] == str(folders[1])
    assert records[1]["stage_recipe"]["vision"] == "partial(1)"
    finetune = records[2]
    assert finetune["data"]["text_only"] == 2 and finetune["data"]["with_images"] == 8
    assert finetune["data"]["fingerprint"].startswith("sha256:") and finetune["seed"] == 42
    assert finetune["batch"] == {
        "per_device": 4,
        "grad_accum": 1,
        "world_size": 1,
        "global": 4,
        "recipe_global": 128,
    }
    assert finetune["trainable_parameters"]["vision"]["trainable"] == 0
    assert [h["step"] for h in finetune["loss_history"]] == [1, 2, 3]
    config = json.loads((folders[2] / "config.json").read_text())
    assert config["training"]["stage"] == "finetune"
    assert config["training"]["data_fingerprint"] == finetune["data"]["fingerprint"]
    assert config["settings"]["template"] == "phi" and config["settings"]["max_length"] == 256
    # finished stages keep no intermediate checkpoints unless asked
    assert not (folders[0] / CHECKPOINTS).exists()


def test_finished_run_needs_resume_and_skips_done_stages(share_run):
    plan = share_run["plan"]
    with pytest.raises(UserError, match="--resume"):
        run_training(plan)
    plan.options.resume = True
    try:
        stamp = (share_run["folders"][0] / "model.safetensors").stat().st_mtime_ns
        assert run_training(plan) == share_run["folders"]
        assert (share_run["folders"][0] / "model.safetensors").stat().st_mtime_ns == stamp
    finally:
        plan.options.resume = False


def test_later_stage_needs_its_predecessor(share_run, tmp_path):
    config = write_config(tmp_path / "c.yaml", share_run["parts"], recipe="share")
    plan = build_plan(None, config, run_options(tmp_path / "out", share_run["data"], stages=["finetune"]))
    with pytest.raises(UserError, match="share-pretrain"):
        run_training(plan)


def test_resume_equals_uninterrupted(share_run, tmp_path):
    config = write_config(tmp_path / "c.yaml", share_run["parts"], recipe="base")

    def plan(output, resume=False):
        options = run_options(
            output, share_run["data"], max_steps=4, save_steps=2, per_device_batch_size=2, stages=["finetune"]
        )
        options.init_from = str(share_run["folders"][0])
        options.resume = resume
        return build_plan(None, config, options)

    (straight,) = run_training(plan(tmp_path / "straight"))
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(plan(tmp_path / "crashed"), callbacks=[CrashAt(3)])
    stage_dir = tmp_path / "crashed" / "finetune"
    assert not is_complete(stage_dir)
    checkpoint = stage_dir / CHECKPOINTS / "checkpoint-2"
    assert (checkpoint / TRAINABLE_WEIGHTS).is_file()
    with pytest.raises(UserError, match="--resume"):
        run_training(plan(tmp_path / "crashed"))
    (resumed,) = run_training(plan(tmp_path / "crashed", resume=True))
    record = json.loads((resumed / TRAINING_RECORD).read_text())
    assert record["resumed_from"] == str(checkpoint) and record["steps"] == 4
    a, b = _weights(straight), _weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    start = _weights(share_run["folders"][0])
    assert not torch.equal(a["connector.0.weight"], start["connector.0.weight"])


def test_lora_stage_saves_a_merged_plain_model(share_run, tmp_path):
    pytest.importorskip("peft")
    config = write_config(
        tmp_path / "c.yaml",
        share_run["parts"],
        recipe="base-lora",
        stage_overrides={"finetune": {"llm": "lora(r=4, alpha=8)", "learning_rate": 1e-2}},
    )
    options = run_options(tmp_path / "out", share_run["data"], max_steps=3, stages=["finetune"])
    options.init_from = str(share_run["folders"][0])
    (folder,) = run_training(build_plan(None, config, options))
    record = json.loads((folder / TRAINING_RECORD).read_text())
    llm = record["trainable_parameters"]["llm"]
    assert 0 < llm["trainable"] < llm["total"] // 2
    before, after = _weights(share_run["folders"][0]), _weights(folder)
    assert before.keys() == after.keys()  # merged: no adapter tensors left
    assert not torch.equal(
        before["language_model.model.layers.0.self_attn.q_proj.weight"],
        after["language_model.model.layers.0.self_attn.q_proj.weight"],
    )
    assert torch.equal(before["language_model.lm_head.weight"], after["language_model.lm_head.weight"])
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("vision_tower."))


def test_cli_trains_and_reports_errors(share_run, tmp_path, capsys):
    config = write_config(tmp_path / "c.yaml", share_run["parts"], recipe="base")
    args = [
        "train",
        "--config",
        str(config),
        "--data-root",
        str(share_run["data"]),
        "--output",
        str(tmp_path / "o"),
    ]
    fast = [
        "--max-steps",
        "2",
        "--per-device-batch-size",
        "4",
        "--grad-accum",
        "1",
        "--dataloader-workers",
        "0",
    ]
    assert main([*args, *fast, "--stages", "pretrain"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "o" / "pretrain")]
    assert (
        main([*args, *fast, "--stages", "pretrain"]) == 1
    )  # the output folder holds a run: it cannot proceed without --resume
    assert "--resume" in capsys.readouterr().err
    assert main([*args, *fast, "--stages", "finetune", "--resume"]) == 0
    assert is_complete(tmp_path / "o" / "finetune")
    if importlib_util_missing("deepspeed"):
        assert main([*args, *fast, "--output", str(tmp_path / "ds"), "--deepspeed", "zero2"]) == 1
        assert "pip install deepspeed" in capsys.readouterr().err
    assert main(["train", "--output", str(tmp_path / "x")]) == 2
    assert "--variant" in capsys.readouterr().err


def importlib_util_missing(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is None


def test_bf16_with_activation_checkpointing(share_run, tmp_path):
    config = write_config(
        tmp_path / "c.yaml",
        share_run["parts"],
        recipe="share",
        stage_overrides={"share-pretrain": {"vision": "partial(2)"}},
    )
    options = run_options(
        tmp_path / "out", share_run["data"], max_steps=2, stages=["share-pretrain"], precision="bf16"
    )
    options.init_from = str(share_run["folders"][0])
    options.gradient_checkpointing = True
    (folder,) = run_training(build_plan(None, config, options))
    record = json.loads((folder / TRAINING_RECORD).read_text())
    assert record["precision"] == "bf16" and record["gradient_checkpointing"] and record["steps"] == 2
    assert all(h["loss"] == h["loss"] for h in record["loss_history"])  # finite, not NaN
    before, after = _weights(share_run["folders"][0]), _weights(folder)
    layer = "vision_tower.model.encoder.layers.{}.mlp.fc1.weight"
    assert torch.equal(before[layer.format(1)], after[layer.format(1)])
    assert not torch.equal(before[layer.format(2)], after[layer.format(2)])
    assert not torch.equal(before["connector.0.weight"], after["connector.0.weight"])
