"""Shared fixtures of the reliability suite: a tiny checkpoint, small local datasets, real `tinyllava-bench`
processes for crash tests, and helpers that compare run folders."""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
ROWS = 6
# short runs: 8 new tokens, no DataLoader workers, one thread per process (the machine is shared)
FAST = ["--device", "cpu", "--num-workers", "0", "--task-options", "generation.max_new_tokens=8"]
CHILD_ENV = {"OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
PROGRESS_BAR = re.compile(r"^\w+: +\d+%\|.*\|")  # tqdm's "gqa:  33%|███▎      | 2/6 [...]"
SAMPLE_FIELDS = ("key", "index", "question_id", "prompt", "prediction", "parsed", "score", "error")


@pytest.fixture(scope="session")
def checkpoint(tiny_checkpoints) -> Path:
    return tiny_checkpoints("llama", "siglip")["native"]


@pytest.fixture(scope="session")
def data_root(tmp_path_factory) -> Path:
    """GQA and POPE (generated tasks) and MM-Vet and LLaVA-W (judged tasks), 6 rows each, images embedded."""
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("data")
    for task in ("gqa", "pope", "mmvet", "llava_wild"):
        write_task_data(task, root, n=ROWS, seed=1)
    return root


def eval_argv(model: Path, data_root: Path, output: Path, tasks: str = "gqa,pope", *extra: str) -> list[str]:
    """`eval` arguments of a short run (CLI form, without the program name)."""
    return [
        "eval",
        "--model",
        str(model),
        "--tasks",
        tasks,
        "--data-root",
        str(data_root),
        "--output",
        str(output),
        *FAST,
        *extra,
    ]


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    maxrss_kb: int  # the run's peak resident memory, the fork server's own pages included


class CliRuns:
    """Real `python -m tinyllava_bench` processes, one at a time, killable by their pid.

    (A warm fork server was faster but could hang: forking a process whose library thread pools hold locks.)
    """

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self._count = 0
        self._proc: subprocess.Popen | None = None
        self.pid: int | None = None
        self.reference: Path | None = None
        self.reference_maxrss_kb = 0

    def start(self, argv: list[str], fsize: int | None = None, env: dict[str, str] | None = None) -> int:
        """Start a run of `argv` with `env` added; `fsize` caps the size of any file it writes (RLIMIT_FSIZE).
        Returns its pid."""
        assert self.pid is None, "one run at a time"
        self._count += 1
        self._out = self.logs / f"run{self._count}.out"
        self._err = self.logs / f"run{self._count}.err"

        def limit_file_size() -> None:
            if fsize is not None:
                signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG) instead
                resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))

        with open(self._out, "w") as out, open(self._err, "w") as err:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tinyllava_bench", *argv],
                cwd=REPO_ROOT,
                env={**os.environ, **CHILD_ENV, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                preexec_fn=limit_file_size,
            )
        self.pid = self._proc.pid
        return self.pid

    def kill(self) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):  # it had already ended; wait() reports how
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float = 300) -> Finished:
        assert self.pid is not None and self._proc is not None
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                self.kill()
                os.wait4(self.pid, 0)
                self._proc.returncode = -9
                self.pid = None
                raise AssertionError(f"run did not finish in {timeout}s: {self._err.read_text()[-2000:]}")
            time.sleep(0.05)
        self._proc.returncode = os.waitstatus_to_exitcode(status)
        self.pid = None
        return Finished(self._proc.returncode, self._out.read_text(), self._err.read_text(), usage.ru_maxrss)

    def resident_kb(self) -> int:
        """Peak resident memory of the uninterrupted reference run: what a normal run needs."""
        return self.reference_maxrss_kb

    def run(
        self,
        argv: list[str],
        fsize: int | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 300,
    ) -> Finished:
        self.start(argv, fsize, env)
        return self.wait(timeout)

    def close(self) -> None:
        if self.pid is not None:
            self.kill()
            with contextlib.suppress(ChildProcessError):
                os.wait4(self.pid, 0)


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory, checkpoint, data_root):
    """Runs CLI processes; an uninterrupted run of gqa,pope (batch size 1) is written into `reference` first."""
    if not sys.platform.startswith("linux"):
        pytest.skip("these runs use os.wait4 and RLIMIT_FSIZE (Linux)")
    reference = tmp_path_factory.mktemp("reference")
    runs = CliRuns(tmp_path_factory.mktemp("cli-logs"))
    finished = runs.run(eval_argv(checkpoint, data_root, reference, "gqa,pope", "--batch-size", "1"))
    assert finished.returncode == 0, finished.stderr[-3000:]
    runs.reference = reference
    runs.reference_maxrss_kb = finished.maxrss_kb
    yield runs
    runs.close()


@pytest.fixture(scope="session")
def reference_run(fork_server) -> Path:
    """The run folder of an uninterrupted gqa,pope run, which every resumed run must equal."""
    return fork_server.reference


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()]


def comparable(run: Path) -> dict[str, Any]:
    """What must not change between an interrupted-then-resumed run and an uninterrupted one."""
    results = json.loads((run / "results.json").read_text())
    tasks = {
        name: {k: entry[k] for k in ("metrics", "n_samples", "n_errors")}
        for name, entry in results["tasks"].items()
    }
    samples = {
        task: [{k: s[k] for k in SAMPLE_FIELDS} for s in read_jsonl(run / f"samples_{task}.jsonl")]
        for task in results["tasks"]
    }
    return {"tasks": tasks, "samples": samples}


def assert_one_error_line(stderr: str, *fragments: str) -> str:
    """The CLI's contract for a user error: exactly one line on stderr, starting with `error:` (progress bars,
    which a terminal redraws in place, aside)."""
    lines = [
        line for line in stderr.split("\n") if line.strip() and not PROGRESS_BAR.match(line.split("\r")[-1])
    ]
    assert len(lines) == 1, f"expected one line on stderr, got:\n{stderr[-3000:]}"
    assert lines[0].startswith("error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]
