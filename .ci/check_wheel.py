"""Run inside a venv that has only the built wheel installed (no checkout on sys.path): the tool finds its task
files and model cards from the installed package, lists them, and evaluates a tiny model end to end."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import tinyllava_bench
from tinyllava_bench.cli import main
from tinyllava_bench.paths import model_zoo_dir, tasks_dir
from tinyllava_bench.testing.datasets import write_task_data
from tinyllava_bench.testing.models import build_tiny_model, write_tiny_checkpoints

package = Path(tinyllava_bench.__file__).resolve().parent
assert "site-packages" in str(package), f"not the installed wheel: {package}"
found = {"tasks": tasks_dir(), "model_zoo": model_zoo_dir()}
assert all(folder.is_relative_to(package) for folder in found.values()), found
assert main(["tasks"]) == 0
assert main(["zoo", "--format", "json"]) == 0
with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp)
    layouts = write_tiny_checkpoints(build_tiny_model("phi", "siglip"), root / "ckpt", ["native"])
    checkpoint = layouts["native"]
    write_task_data("gqa", root / "data", n=4, seed=0)
    argv = ["eval", "--model", str(checkpoint), "--tasks", "gqa", "--data-root", str(root / "data")]
    status = main([*argv, "--output", str(root / "run"), "--device", "cpu", "--num-workers", "0"])
    results = json.loads((root / "run" / "results.json").read_text())
    assert status == 0 and results["tasks"]["gqa"]["n_samples"] == 4, (status, results["tasks"])
print(f"wheel check: tasks, zoo and a tiny eval run from {package}", file=sys.stderr)
