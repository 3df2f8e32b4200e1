"""The loss curve each stage leaves beside training.json: a PNG of the logged points, diverged or resumed stages
included."""

from __future__ import annotations

import json
import math

import pytest
from PIL import Image

from tinyllava_bench.errors import UserError
from tinyllava_bench.train.loss_curve import LOSS_CURVE, POINTS_KEY, draw_loss_curve
from tinyllava_bench.train.stage_folder import TRAINING_RECORD
from tinyllava_bench.train.trainer import run_training

from .conftest import CrashAt, checkpointed_pretrain_plan, write_colour_data


@pytest.fixture(scope="module")
def setup(tmp_path_factory, model_parts):
    root = tmp_path_factory.mktemp("loss-curve")
    return {"root": root, "parts": model_parts(), "data": write_colour_data(root / "data", {"pretrain": 12})}


def _plan(setup, output, resume=False, **settings):
    return checkpointed_pretrain_plan(setup, output, resume, **settings)


def _record(folder) -> dict:
    return json.loads((folder / TRAINING_RECORD).read_text())


def _png_points(path) -> list:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.size[0] > 300 and image.size[1] > 200
        points = json.loads(image.info[POINTS_KEY])
    with Image.open(path) as image:
        image.verify()  # every chunk's CRC: a whole file, not one cut short
    return points


def _history_points(record) -> list:
    return [[h["step"], h["loss"]] for h in record["loss_history"]]


def test_a_trained_stage_leaves_its_loss_curve_of_the_logged_points(setup, tmp_path):
    (folder,) = run_training(_plan(setup, tmp_path / "out"))
    record = _record(folder)
    assert record["status"] == "complete"
    assert record["loss_curve"] == str(folder / LOSS_CURVE)
    points = _png_points(folder / LOSS_CURVE)
    # every logged step (logging_steps 1: steps 1..6), drawn from exactly what training.json holds
    assert [step for step, _ in points] == list(range(1, 7))
    assert points == _history_points(record)
    assert all(loss > 0 for _, loss in points)


def test_a_resumed_stage_draws_the_steps_of_both_sessions(setup, tmp_path):
    with pytest.raises(RuntimeError, match="simulated crash"):
        run_training(_plan(setup, tmp_path / "out"), callbacks=[CrashAt(5)])
    assert not (tmp_path / "out" / "pretrain" / LOSS_CURVE).exists()  # a crash leaves no picture
    (folder,) = run_training(_plan(setup, tmp_path / "out", resume=True))
    record = _record(folder)
    assert record["resumed_from"].endswith("checkpoint-4")
    points = _png_points(folder / LOSS_CURVE)
    assert [step for step, _ in points] == list(range(1, 7)) and points == _history_points(record)
    figure = draw_loss_curve(record)
    (axes,) = figure.axes
    assert any("resumed at step 4" in text.get_text() for text in axes.get_legend().get_texts())


def test_a_diverged_stage_draws_what_it_has(setup, tmp_path):
    plan = _plan(setup, tmp_path / "out", stage_overrides={"pretrain": {"learning_rate": 1.0e30}})
    with pytest.raises(UserError, match="diverged"):
        run_training(plan)
    folder = tmp_path / "out" / "pretrain"
    record = _record(folder)
    assert record["status"] == "diverged" and record["loss_curve"] == str(folder / LOSS_CURVE)
    points = _png_points(folder / LOSS_CURVE)
    assert (
        points == _history_points(record) and points[-1][1] is None
    )  # the non-finite loss, as training.json
    assert points[-1][0] == record["diverged_at_step"]


def _axes(record):
    (axes,) = draw_loss_curve(record).axes
    return axes


def test_the_curve_is_the_finite_points_on_labelled_axes_from_zero():
    history = [{"step": 1, "loss": 2.5}, {"step": 2, "loss": 1.75}, {"step": 3, "loss": 1.5}]
    axes = _axes({"stage": "finetune", "status": "complete", "steps": 3, "loss_history": history})
    (line,) = axes.get_lines()
    assert line.get_xydata().tolist() == [[1, 2.5], [2, 1.75], [3, 1.5]]
    assert axes.get_xlabel() == "step" and axes.get_ylabel() == "loss"
    assert axes.get_ylim()[0] == 0.0 and axes.get_ylim()[1] >= 2.5
    assert axes.get_title() == "stage finetune: 3 logged steps of 3"

    diverged = {
        "stage": "pretrain",
        "status": "diverged",
        "diverged_at_step": 3,
        "diverged_on": "loss nan",
        "steps": 3,
        "loss_history": [*history[:2], {"step": 3, "loss": math.nan}],
    }
    axes = _axes(diverged)
    curve, marker = axes.get_lines()
    assert curve.get_xydata().tolist() == [[1, 2.5], [2, 1.75]]
    assert marker.get_xdata()[0] == 3 and "diverged at step 3 (loss nan)" in axes.get_title()
    assert axes.get_ylim()[0] == 0.0

    empty = _axes({"stage": "pretrain", "status": "diverged", "diverged_at_step": 1, "loss_history": []})
    assert any("no finite loss" in text.get_text() for text in empty.texts)
