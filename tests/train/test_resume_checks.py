"""What `--resume` checks, what a stage records when it did not finish, and what it skips while training."""

from __future__ import annotations

import json
import math

import pytest
import torch
from transformers import TrainerCallback

import tinyllava_bench
from tinyllava_bench.errors import UserError
from tinyllava_bench.train.encoding import SKIP_IMAGE_FAILED_IN_TRAINING
from tinyllava_bench.train.resume import usable_checkpoint
from tinyllava_bench.train.stage_folder import CHECKPOINTS, TRAINABLE_WEIGHTS, TRAINING_RECORD
from tinyllava_bench.train.trainer import run_training

from .conftest import CrashAt, checkpointed_pretrain_plan, write_colour_data


def _record(folder) -> dict:
    # JSON without NaN or Infinity: parse_constant is called for exactly those
    return json.loads((folder / TRAINING_RECORD).read_text(), parse_constant=lambda c: pytest.fail(c))


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model_parts):
    root = tmp_path_factory.mktemp("resume-checks")
    parts = model_parts()
    data = write_colour_data(root / "data", {"pretrain": 12})
    return {"root": root, "parts": parts, "data": data}


def _plan(setup, output, resume=False, **settings):
    return checkpointed_pretrain_plan(setup, output, resume, **settings)


def test_resume_refuses_changed_settings_and_records_the_whole_stage(setup, tmp_path):
    (straight,) = run_training(_plan(setup, tmp_path / "straight"))
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(_plan(setup, crashed), callbacks=[CrashAt(5)])
    stage_dir = crashed / "pretrain"
    assert _record(stage_dir)["status"] == "running"
    changed_data = write_colour_data(tmp_path / "other-data", {"pretrain": 10})
    for changes, named in (
        ({"stage_overrides": {"pretrain": {"learning_rate": 1.0}}}, "stage.learning_rate 0.001 -> 1.0"),
        ({"seed": 7}, "seed 42 -> 7"),
        ({"data": changed_data}, "data.fingerprint"),
    ):
        data = changes.pop("data", None)
        with pytest.raises(UserError, match=rf"{named}.*new --output") as error:
            run_training(_plan(setup, crashed, resume=True, config_name="changed.yaml", data=data, **changes))
        assert "\n" not in str(error.value)
    # a checkpoint cut short while saving: its trainer state is empty; the one before stands in
    (stage_dir / CHECKPOINTS / "checkpoint-4" / "trainer_state.json").write_text("")
    assert usable_checkpoint(stage_dir / CHECKPOINTS, TRAINABLE_WEIGHTS).endswith("checkpoint-2")
    (resumed,) = run_training(_plan(setup, crashed, resume=True))
    record, reference = _record(resumed), _record(straight)
    assert record["status"] == "complete" and record["resumed_from"].endswith("checkpoint-2")
    a, b = (tinyllava_bench.load_model(str(f)).state_dict() for f in (straight, resumed))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # the whole stage's mean loss, not the resumed steps' only
    assert record["train_loss"] == pytest.approx(reference["train_loss"], rel=1e-6)
    assert record["fingerprint"] == reference["fingerprint"]
    # a finished stage is not returned for a command that would train another model
    with pytest.raises(UserError, match="model.connector 'mlp2x_gelu' -> 'linear'"):
        run_training(_plan(setup, crashed, resume=True, config_name="linear.yaml", connector="linear"))
    assert run_training(_plan(setup, crashed, resume=True)) == [resumed]


def test_training_json_holds_absolute_paths(setup, tmp_path, monkeypatch):
    monkeypatch.chdir(setup["root"])
    plan = _plan(setup, "relative-out", data=setup["data"].relative_to(setup["root"]))
    assert plan.options.output.is_absolute() and plan.options.data_root.is_absolute()
    assert all(path.is_absolute() for path in plan.data_paths("pretrain", "pretrain"))


def test_a_diverging_stage_stops_loudly(setup, tmp_path):
    plan = _plan(setup, tmp_path / "out", stage_overrides={"pretrain": {"learning_rate": 1.0e30}})
    with pytest.raises(UserError, match=r"diverged: .* by step \d"):
        run_training(plan)
    record = _record(tmp_path / "out" / "pretrain")
    assert record["status"] == "diverged" and record["diverged_at_step"] < 6
    assert not (tmp_path / "out" / "pretrain" / "model.safetensors").exists()
    losses = [h.get("loss") for h in record["loss_history"]]
    assert losses[-1] is None or not math.isfinite(losses[-1])


class _BreakImage(TrainerCallback):
    """Overwrites an image once the data is prepared, as a disk fault or a careless copy would."""

    def __init__(self, path) -> None:
        self.path = path

    def on_train_begin(self, args, state, control, **kwargs):
        self.path.write_bytes(b"not a png any more")


def test_an_image_broken_during_training_is_skipped_and_counted(setup, tmp_path):
    data = write_colour_data(tmp_path / "data", {"pretrain": 8})
    (folder,) = run_training(
        _plan(setup, tmp_path / "out", data=data), callbacks=[_BreakImage(data / "images" / "green.png")]
    )
    record = _record(folder)
    assert record["status"] == "complete" and record["steps"] == 6
    skipped = record["data"]["skipped"][SKIP_IMAGE_FAILED_IN_TRAINING]
    assert skipped >= 1 and record["data"]["skipped_examples"][SKIP_IMAGE_FAILED_IN_TRAINING][0] in {
        "s0",
        "s4",
    }
