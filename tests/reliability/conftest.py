"""Shared fixtures of the reliability suite: a tiny checkpoint, small local datasets, a warm fork server that
starts real `tinyllava-bench` runs for crash tests, and helpers that compare run folders."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
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
    from tinyllava_bench.demo import write_task_data

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


class ForkServer:
    """Client of tests/reliability/fork_server.py: one forked CLI run at a time, killable by its pid."""

    def __init__(self, warmup: list[str], logs: Path) -> None:
        self.logs = logs
        self._count = 0
        self._lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.fork_server", json.dumps(warmup)],
            cwd=REPO_ROOT,
            env={**os.environ, **CHILD_ENV},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=open(logs / "server.err", "w"),  # noqa: SIM115 - lives as long as the server
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        ready = self._next(timeout=300)
        assert ready.get("ready") == 0, (logs / "server.err").read_text()[-3000:]
        self.pid: int | None = None
        self.reference: Path | None = None

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(json.loads(line))
        self._lines.put(None)

    def _next(self, timeout: float) -> dict[str, Any]:
        try:
            message = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"fork server silent for {timeout}s") from None
        assert message is not None, f"fork server died: {(self.logs / 'server.err').read_text()[-3000:]}"
        return message

    def start(self, argv: list[str], fsize: int | None = None, env: dict[str, str] | None = None) -> int:
        """Fork a run of `argv` with `env` added; `fsize` caps the size of any file it writes (RLIMIT_FSIZE).
        Returns its pid."""
        assert self.pid is None, "one run at a time"
        self._count += 1
        self._out = self.logs / f"run{self._count}.out"
        self._err = self.logs / f"run{self._count}.err"
        request = {
            "argv": argv,
            "stdout": str(self._out),
            "stderr": str(self._err),
            "fsize": fsize,
            "env": env,
        }
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(request) + "\n")
        self._proc.stdin.flush()
        self.pid = self._next(timeout=30)["pid"]
        return self.pid

    def kill(self) -> None:
        assert self.pid is not None
        with contextlib.suppress(ProcessLookupError):  # it had already ended; wait() reports how
            os.kill(self.pid, signal.SIGKILL)

    def wait(self, timeout: float = 120) -> Finished:
        assert self.pid is not None
        try:
            message = self._next(timeout=timeout)
        except AssertionError:
            self.kill()
            raise
        assert message["pid"] == self.pid
        self.pid = None
        return Finished(
            message["returncode"], self._out.read_text(), self._err.read_text(), message["maxrss_kb"]
        )

    def resident_kb(self) -> int:
        """The fork server's own resident memory now: what every forked run starts with."""
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS in /proc status")

    def run(
        self,
        argv: list[str],
        fsize: int | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 120,
    ) -> Finished:
        self.start(argv, fsize, env)
        return self.wait(timeout)

    def close(self) -> None:
        if self.pid is not None:
            self.kill()
        assert self._proc.stdin is not None
        self._proc.stdin.close()
        try:
            self._proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


@pytest.fixture(scope="session")
def fork_server(tmp_path_factory, checkpoint, data_root):
    """The warm fork server; its warm-up is an uninterrupted run of gqa,pope (batch size 1) into `reference`."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the fork server needs os.fork and /proc (Linux)")
    reference = tmp_path_factory.mktemp("reference")
    logs = tmp_path_factory.mktemp("fork-logs")
    server = ForkServer(eval_argv(checkpoint, data_root, reference, "gqa,pope", "--batch-size", "1"), logs)
    server.reference = reference
    yield server
    server.close()


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
