"""--threads: applied before the work starts, recorded in results.json; the default degrades gracefully."""

from __future__ import annotations

import json

import pytest
import torch

from tinyllava_bench.cli import main
from tinyllava_bench.threads import available_cpus, default_threads


@pytest.fixture
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_eval_applies_threads_and_records_them(tiny_checkpoints, tmp_path, restore_threads) -> None:
    from tinyllava_bench.testing.datasets import write_task_data

    write_task_data("gqa", tmp_path / "data", n=4, seed=1)
    checkpoint = tiny_checkpoints("phi", "siglip")["native"]
    torch.set_num_threads(1)
    argv = ["eval", "--model", str(checkpoint), "--tasks", "gqa", "--data-root", str(tmp_path / "data")]
    argv += ["--batch-size", "2", "--num-workers", "0", "--task-options", "generation.max_new_tokens=4"]
    assert main([*argv, "--output", str(tmp_path / "run"), "--threads", "3"]) == 0
    assert torch.get_num_threads() == 3
    provenance = json.loads((tmp_path / "run" / "results.json").read_text())["provenance"]
    assert provenance["threads"] == 3
    # set once per process: a second command in one process records the count in force, whatever it is
    assert provenance["interop_threads"] == torch.get_num_interop_threads()


def test_threads_must_be_a_positive_number(capsys) -> None:
    for value in ("0", "-2", "two"):
        with pytest.raises(SystemExit) as exit_info:
            main(["eval", "--model", "m", "--tasks", "gqa", "--threads", value])
        assert exit_info.value.code == 2
        assert "--threads" in capsys.readouterr().err


def test_default_is_omp_num_threads_else_half_the_cores(monkeypatch) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert default_threads() == 3
    for unusable in ("0", "x", ""):
        monkeypatch.setenv("OMP_NUM_THREADS", unusable)
        assert default_threads() == max(1, available_cpus() // 2)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert default_threads() == max(1, available_cpus() // 2)
