"""Two-process DDP training on CPU (gloo) through torchrun and the real command line."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

import tinyllava_bench
from tinyllava_bench.train.stage_folder import TRAINING_RECORD

from .conftest import write_colour_data, write_config


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes(tmp_path, model_parts):
    parts = model_parts("phi", "siglip")
    data = write_colour_data(tmp_path / "data", {"pretrain": 8, "finetune": 8}, text_only=4)
    config = write_config(tmp_path / "c.yaml", parts, recipe="base")
    output = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={_free_port()}",
        "-m",
        "tinyllava_bench",
        "train",
        "--config",
        str(config),
        "--data-root",
        str(data),
        "--output",
        str(output),
        "--max-steps",
        "3",
        "--per-device-batch-size",
        "2",
        "--grad-accum",
        "1",
        "--dataloader-workers",
        "0",
        "--logging-steps",
        "1",
        "--no-progress",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    # only the main process prints the stage folders
    assert done.stdout.split() == [str(output / "pretrain"), str(output / "finetune")]
    for stage in ("pretrain", "finetune"):
        record = json.loads((output / stage / TRAINING_RECORD).read_text())
        assert record["batch"]["world_size"] == 2 and record["batch"]["global"] == 4
        assert record["steps"] == 3 and len(record["loss_history"]) == 3
    pretrain = tinyllava_bench.load_model(str(output / "pretrain")).state_dict()
    finetune = tinyllava_bench.load_model(str(output / "finetune")).state_dict()
    assert not torch.equal(
        pretrain["language_model.lm_head.weight"], finetune["language_model.lm_head.weight"]
    )
    assert torch.equal(
        pretrain["vision_tower.model.encoder.layers.0.mlp.fc1.weight"],
        finetune["vision_tower.model.encoder.layers.0.mlp.fc1.weight"],
    )
