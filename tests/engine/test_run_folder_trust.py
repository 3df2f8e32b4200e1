"""A run folder never holds an answer that is no longer true: what the loader reads beside the checkpoint is
fingerprinted, another model's folder is refused, concurrent evals keep each other's tasks, and the exit status
says when samples failed."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file, save_file

from tests.reliability.conftest import eval_argv
from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_json_atomic
from tinyllava_bench.paths import REPO_ROOT
from tinyllava_bench.schema import read_results


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("data")
    for task in ("gqa", "pope"):
        write_task_data(task, root, n=6, seed=3)
    return root


def _argv(model: Path, data: Path, output: Path, tasks: str = "gqa") -> list[str]:
    return eval_argv(model, data, output, tasks, "--batch-size", "4")


def _legacy_copy(tiny_checkpoints, tmp_path: Path) -> tuple[Path, Path]:
    """A private copy of a legacy checkpoint and the vision tower folder its config names."""
    source = tiny_checkpoints("llama", "siglip")["legacy"]
    config = json.loads((source / "config.json").read_text())
    folder, tower = tmp_path / "legacy", tmp_path / "tower"
    shutil.copytree(source, folder)
    shutil.copytree(config["mm_vision_tower"], tower)
    config["mm_vision_tower"] = str(tower)
    (folder / "config.json").write_text(json.dumps(config))
    return folder, tower


def test_a_changed_vision_tower_outside_the_checkpoint_is_not_reused(
    tiny_checkpoints, data, tmp_path, capsys
):
    folder, tower = _legacy_copy(tiny_checkpoints, tmp_path)
    run = tmp_path / "run"
    assert main(_argv(folder, data, run)) == 0
    first = json.loads((run / "results.json").read_text())
    assert str(tower) in first["provenance"]["read_from"]

    assert main(_argv(folder, data, run)) == 0  # nothing changed: every answer reused
    assert json.loads((run / "results.json").read_text())["provenance"]["samples_generated"] == 0

    weights = tower / "model.safetensors"
    state = load_file(str(weights))
    save_file({name: tensor * 1.5 for name, tensor in state.items()}, str(weights))
    capsys.readouterr()
    assert main(_argv(folder, data, run)) == 0
    err = capsys.readouterr().err
    assert "files or settings changed" in err and "superseded" in err
    second = json.loads((run / "results.json").read_text())
    assert second["provenance"]["samples_generated"] == 6  # generated again, with the new tower
    assert second["provenance"]["read_from"] != first["provenance"]["read_from"]
    # the earlier run is kept, not lost
    kept = list((run / "superseded").glob("*/results.json"))
    earlier = json.loads(kept[0].read_text()) if len(kept) == 1 else {}
    assert earlier["provenance"]["model_key"] == first["provenance"]["model_key"]


def test_changed_tokenizer_merges_are_not_reused(tiny_checkpoints, data, tmp_path):
    folder = tmp_path / "native"
    shutil.copytree(tiny_checkpoints("phi", "siglip")["native"], folder)
    run = tmp_path / "run"
    assert main(_argv(folder, data, run)) == 0
    (folder / "notes.txt").write_text("a file the loader could read changed\n")  # e.g. merges.txt
    assert main(_argv(folder, data, run)) == 0
    assert json.loads((run / "results.json").read_text())["provenance"]["samples_generated"] == 6


def test_an_eval_into_another_models_run_folder_is_refused(tiny_checkpoints, data, tmp_path, capsys):
    checkpoints = tiny_checkpoints("phi", "siglip")
    run = tmp_path / "run"
    assert main(_argv(checkpoints["native"], data, run)) == 0
    before = (run / "results.json").read_bytes()
    capsys.readouterr()
    assert main(_argv(checkpoints["factory"], data, run, "pope")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "another model" in err and "--output" in err
    assert len(err.strip().splitlines()) == 1
    assert (run / "results.json").read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"schema_version": 99, "tasks": {}}, "newer than this tool reads"),
        ([1, 2], "not a results file"),
        ({"schema_version": 1, "tasks": []}, "not a results file"),
    ],
    ids=["newer-schema", "a-list", "tasks-a-list"],
)
def test_a_results_file_this_tool_cannot_use_is_one_line(
    tiny_checkpoints, data, tmp_path, capsys, content, message
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(content))
    assert main(_argv(tiny_checkpoints("phi", "siglip")["native"], data, run)) == 1
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert json.loads((run / "results.json").read_text()) == content  # not adopted, not relabelled


def test_two_evals_into_one_folder_keep_both_tasks(tiny_checkpoints, data, tmp_path):
    model = tiny_checkpoints("phi", "siglip")["native"]
    run = tmp_path / "run"
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "tinyllava_bench", *_argv(model, data, run, task)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for task in ("gqa", "pope")
    ]
    for process in processes:
        _, err = process.communicate(timeout=600)
        assert process.returncode == 0, err.decode()[-2000:]
    results = json.loads((run / "results.json").read_text())
    assert set(results["tasks"]) == {"gqa", "pope"}
    assert results["summary"]["n_samples"] == 12


def test_load_model_settings_are_checked(tiny_checkpoints):
    from tinyllava_bench import load_model

    folder = tiny_checkpoints("phi", "siglip")["native"]
    with pytest.raises(UserError, match="trust_remote_code must be the boolean"):
        load_model(str(folder), trust_remote_code="false")
    with pytest.raises(UserError, match="unknown model setting 'templat'.*template"):
        load_model(str(folder), templat="v1")


def test_model_args_and_task_options_keys_are_checked_before_loading(data, tmp_path, capsys):
    missing_model = tmp_path / "no-model"  # never reached: the command line is checked first
    argv = _argv(missing_model, data, tmp_path / "run")
    assert main([*argv, "--model-args", "image_aspects=pad"]) == 2
    assert "unknown model setting 'image_aspects'" in capsys.readouterr().err
    argv[argv.index("--task-options") + 1] = "prompt.sufix=x"
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no option 'prompt.sufix'" in err and "prompt.suffix" in err


@pytest.mark.parametrize(
    "config", [[1, 2], {"model_type": "tinyllava_bench"}], ids=["a-list", "missing-keys"]
)
def test_a_config_json_of_the_wrong_shape_is_one_line(tiny_checkpoints, data, tmp_path, capsys, config):
    folder = tmp_path / "ckpt"
    shutil.copytree(tiny_checkpoints("phi", "siglip")["native"], folder)
    (folder / "config.json").write_text(json.dumps(config))
    assert main(_argv(folder, data, tmp_path / "run")) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "config.json" in err and len(err.strip().splitlines()) == 1


def test_no_nan_or_infinity_reaches_a_json_file(tmp_path):
    path = tmp_path / "results.json"
    write_json_atomic(
        path, {"schema_version": 1, "tasks": {"t": {"metrics": {"a": math.nan, "b": [math.inf, 1.0]}}}}
    )
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    strict = json.loads(text, parse_constant=lambda name: pytest.fail(f"{name} in the JSON"))
    assert strict["tasks"]["t"]["metrics"] == {"a": None, "b": [None, 1.0]}
    assert read_results(path)["tasks"]["t"]["metrics"]["a"] is None
