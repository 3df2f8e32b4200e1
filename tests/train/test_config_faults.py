"""Config and flag faults of `train`: one line each, found before anything is written (so the corrected rerun is
not refused), and values that cannot train (NaN, infinity, zero epochs) never reach the Trainer."""

from __future__ import annotations

import importlib.util

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.train.commands import resume_command

from .conftest import write_colour_data, write_config

FAST = ["--max-steps", "1", "--per-device-batch-size", "2", "--grad-accum", "1", "--dataloader-workers", "0"]


def _missing_backend() -> str:
    for name in ("wandb", "mlflow", "comet_ml", "neptune", "clearml"):
        if importlib.util.find_spec(name) is None:
            return name
    pytest.skip("every tracker backend is installed")


CONFIG_FAULTS = [
    ({"seed": "abc"}, "seed"),
    ({"model_max_length": "abc"}, "model_max_length"),
    ({"data": ["a", "b"]}, "data"),
    ({"stage_overrides": ["pretrain"]}, "stage_overrides"),
    ({"stage_overrides": {"pretrain": {"module_lr": {"connector": "fast"}}}}, "module_lr.connector"),
    ({"stage_overrides": {"pretrain": {"lr_scheduler": "sometimes"}}}, "lr_scheduler"),
    ({"stage_overrides": {"pretrain": {"learning_rate": float("inf")}}}, "learning_rate"),
    ({"stage_overrides": {"pretrain": {"learning_rate": float("nan")}}}, "learning_rate"),
    ({"stage_overrides": {"pretrain": {"learning_rate": 0}}}, "learning_rate"),
    ({"stage_overrides": {"pretrain": {"epochs": 0}}}, "epochs"),
    ({"stage_overrides": {"pretrain": {"max_grad_norm": float("nan")}}}, "max_grad_norm"),
    ({"llm": "/no/such/folder/llm"}, "no such model folder"),
]


@pytest.mark.parametrize(("settings", "named"), CONFIG_FAULTS, ids=[n for _, n in CONFIG_FAULTS])
def test_config_faults_are_one_line_before_anything_is_written(
    tmp_path, capsys, model_parts, settings, named
):
    data = write_colour_data(tmp_path / "data", {"pretrain": 4})
    config = write_config(tmp_path / "c.yaml", model_parts(), recipe="base", **settings)
    capsys.readouterr()  # the fixture's own output
    output = tmp_path / "out"
    argv = ["train", "--config", str(config), "--data-root", str(data), "--output", str(output)]
    assert main([*argv, "--stages", "pretrain", *FAST]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("error: ") and named in error[0], error
    assert not output.exists()


def test_flag_faults_are_one_line_before_anything_is_written(tmp_path, capsys, model_parts):
    data = write_colour_data(tmp_path / "data", {"pretrain": 4})
    config = write_config(tmp_path / "c.yaml", model_parts(), recipe="base")
    capsys.readouterr()  # the fixture's own output
    output = tmp_path / "out"
    argv = ["train", "--config", str(config), "--data-root", str(data), "--stages", "pretrain", *FAST]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for extra, named in (
        (["--output", str(output), "--dataloader-workers", "-1"], "--dataloader-workers"),
        (["--output", str(output), "--report-to", _missing_backend()], "not installed"),
        (["--output", str(output), "--report-to", "carrier-pigeon"], "unknown backend"),
        (["--output", str(a_file)], "is a file"),
    ):
        assert main([*argv, *extra]) == 2
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith("error: ") and named in error[0], error
        assert not output.exists() and a_file.read_text() == "x"


def test_the_interrupt_message_names_a_command_that_resumes():
    argv = ["train", "--config", "my config.yaml", "--output", "runs/a"]
    assert resume_command(argv) == "tinyllava-bench train --config 'my config.yaml' --output runs/a --resume"
    assert resume_command([*argv, "--resume"]).count("--resume") == 1
    assert "--resume" in resume_command(["-m", "pytest"])  # not a train command line: said in words
