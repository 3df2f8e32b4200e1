"""`train --quiet` logs no progress, bars appear only on a terminal, and --threads is applied and recorded."""

from __future__ import annotations

import json
import logging

import torch

from tests.train.conftest import write_colour_data, write_config
from tinyllava_bench.cli import main

FAST = ["--max-steps", "2", "--per-device-batch-size", "4", "--grad-accum", "1", "--dataloader-workers", "0"]


def test_quiet_train_logs_no_progress_and_threads_are_recorded(tmp_path, model_parts, caplog, capfd) -> None:
    data = write_colour_data(tmp_path / "data", {"pretrain": 8})
    config = write_config(tmp_path / "c.yaml", model_parts(), recipe="base")
    argv = ["train", "--config", str(config), "--data-root", str(data), "--stages", "pretrain", *FAST]

    def train(name: str, *extra: str) -> int:
        return main([*argv, "--output", str(tmp_path / name), *extra])

    capfd.readouterr()  # the fixtures' own output
    caplog.set_level(logging.INFO, logger="tinyllava_bench.train")
    assert train("loud", "--threads", "2") == 0
    loud = [r for r in caplog.records if r.name == "tinyllava_bench.train" and r.levelno == logging.INFO]
    assert any("step" in r.getMessage() for r in loud)
    record = json.loads((tmp_path / "loud" / "pretrain" / "training.json").read_text())
    assert record["threads"] == 2 and record["interop_threads"] == torch.get_num_interop_threads()
    # pytest's captured stderr is not a terminal: no bar was drawn (no carriage-return redraws)
    assert "\r" not in capfd.readouterr().err

    caplog.clear()
    assert train("quiet", "--quiet", "--threads", "1") == 0
    assert not [r for r in caplog.records if r.name == "tinyllava_bench.train" and r.levelno == logging.INFO]
    assert json.loads((tmp_path / "quiet" / "pretrain" / "training.json").read_text())["threads"] == 1
    err = capfd.readouterr().err  # not even transformers' "Writing model shards" bar
    assert "Writing model shards" not in err and "\r" not in err
