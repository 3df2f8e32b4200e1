"""SIGKILL at random points of real eval runs, torn samples logs and stale temp files: every rerun finishes with
exactly the results of an uninterrupted run, generates only what was missing, and never duplicates a sample."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.reliability.conftest import (
    CHILD_ENV,
    REPO_ROOT,
    ROWS,
    assert_one_error_line,
    comparable,
    eval_argv,
    read_jsonl,
)

TASKS = ("gqa", "pope")
TOTAL = ROWS * len(TASKS)
TRIALS = 10


def _partial_lines(run: Path) -> int:
    """Complete lines in the write-ahead logs (what a rerun may reuse)."""
    total = 0
    for task in TASKS:
        log = run / f"samples_{task}.partial.jsonl"
        if log.is_file():
            total += log.read_bytes().count(b"\n")
    return total


def _finished_keys(run: Path) -> set[str]:
    keys = set()
    for path in run.glob("samples_*.jsonl"):
        data = path.read_bytes()
        for line in data[: data.rfind(b"\n") + 1].decode().splitlines():
            record = json.loads(line)
            if record.get("prediction") is not None:
                keys.add(record["key"])
    return keys


def _check_after_kill(run: Path) -> None:
    """What a kill at any point may leave: whole result files or none, logs torn at most in their last line."""
    if (run / "results.json").exists():
        results = json.loads((run / "results.json").read_text())  # never half written
        assert results["schema_version"] == 1
    for task in TASKS:
        final = run / f"samples_{task}.jsonl"
        if final.exists():
            assert len(read_jsonl(final)) == ROWS
        log = run / f"samples_{task}.partial.jsonl"
        if log.exists():
            data = log.read_bytes()
            for line in data[: data.rfind(b"\n") + 1].decode().splitlines():
                json.loads(line)


def _assert_resumed(run: Path, reference: dict, finished_before: int) -> None:
    assert comparable(run) == reference
    for task in TASKS:
        keys = [s["key"] for s in read_jsonl(run / f"samples_{task}.jsonl")]
        assert len(keys) == len(set(keys)) == ROWS, task
        assert [s["index"] for s in read_jsonl(run / f"samples_{task}.jsonl")] == list(range(ROWS))
    results = json.loads((run / "results.json").read_text())
    # only what the killed runs had not finished was generated again
    assert results["provenance"]["samples_generated"] == TOTAL - finished_before


def test_sigkill_at_random_points_then_rerun_equals_uninterrupted(
    fork_server, checkpoint, data_root, reference_run, tmp_path
):
    reference = comparable(reference_run)
    timer = tmp_path / "timed"
    started = time.time()
    assert (
        fork_server.run(eval_argv(checkpoint, data_root, timer, "gqa,pope", "--batch-size", "1")).returncode
        == 0
    )
    run_time = time.time() - started

    rng = random.Random(20251126)
    outcomes = []
    for trial in range(TRIALS):
        run = tmp_path / f"trial{trial}"
        argv = eval_argv(checkpoint, data_root, run, "gqa,pope", "--batch-size", "1")
        kills = 2 if trial % 4 == 3 else 1  # some trials also kill the resumed run
        for _ in range(kills):
            fork_server.start(argv)
            if trial % 2 == 0:  # after k finished samples (k = 0 kills during start-up or the first batch)
                k = rng.randrange(0, TOTAL)
                deadline = time.time() + 60
                while _partial_lines(run) < k and time.time() < deadline:
                    time.sleep(0.002)
            else:  # after a random delay: may land in loading, generating, scoring or writing results
                time.sleep(rng.uniform(0.0, run_time))
            fork_server.kill()
            finished = fork_server.wait()
            assert finished.returncode in (-signal.SIGKILL, 0), finished.stderr[-2000:]
            _check_after_kill(run)
            outcomes.append((finished.returncode, len(_finished_keys(run))))
        finished_before = len(_finished_keys(run))
        stale = run / f".results.json.stale{trial}.tmp"  # as a kill inside write_atomic leaves
        if run.is_dir():
            stale.write_text('{"schema_version": 1, "tasks": {"gq')
        rerun = fork_server.run(argv)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        _assert_resumed(run, reference, finished_before)
    killed = [finished for returncode, finished in outcomes if returncode == -signal.SIGKILL]
    # the trials must really have interrupted runs part-way, not only before or after all the work
    assert len(killed) >= TRIALS // 2
    assert any(0 < finished < TOTAL for finished in killed), outcomes


def test_sigkill_of_a_real_cli_process_mid_second_task(
    checkpoint, data_root, reference_run, fork_server, tmp_path
):
    """The same guarantee for `python -m tinyllava_bench eval` itself, killed while POPE is half done."""
    run = tmp_path / "run"
    argv = eval_argv(checkpoint, data_root, run, "gqa,pope", "--batch-size", "1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "tinyllava_bench", *argv],
        cwd=REPO_ROOT,
        env={**os.environ, **CHILD_ENV},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    log = run / "samples_pope.partial.jsonl"
    deadline = time.time() + 120
    while proc.poll() is None and time.time() < deadline:
        if log.is_file() and log.read_bytes().count(b"\n") >= 2:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _check_after_kill(run)
    # GQA was finished and written whole before POPE started
    assert len(read_jsonl(run / "samples_gqa.jsonl")) == ROWS
    assert set(json.loads((run / "results.json").read_text())["tasks"]) == {"gqa"}
    finished_before = len(_finished_keys(run))
    assert ROWS + 2 <= finished_before < TOTAL
    rerun = fork_server.run(argv)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _assert_resumed(run, comparable(reference_run), finished_before)


def test_a_line_cut_mid_write_is_repaired_on_resume(
    fork_server, checkpoint, data_root, reference_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    # as if the process died writing GQA's 4th sample, before any final file was written
    for name in ("results.json", "samples_gqa.jsonl", "samples_pope.jsonl", "submission_gqa.json"):
        (run / name).unlink()
    (run / "samples_pope.partial.jsonl").unlink()
    log = run / "samples_gqa.partial.jsonl"
    lines = log.read_bytes().splitlines(keepends=True)
    log.write_bytes(b"".join(lines[:3]) + lines[3][: len(lines[3]) // 2])

    rerun = fork_server.run(eval_argv(checkpoint, data_root, run, "gqa,pope", "--batch-size", "1"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _assert_resumed(run, comparable(reference_run), finished_before=3)
    # the torn bytes are gone: every line of the log is whole JSON, 3 kept + 3 new
    assert len(read_jsonl(log)) == ROWS
    assert (run / "submission_gqa.json").read_text() == (reference_run / "submission_gqa.json").read_text()


def test_stale_temp_files_and_a_rerun_of_a_finished_run(
    fork_server, checkpoint, data_root, reference_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    # leftovers of a kill inside write_atomic: half-written temp copies of the final files
    (run / ".results.json.k1l2x.tmp").write_text('{"schema_version": 1, "tasks": {')
    (run / ".samples_gqa.jsonl.q9w8e.tmp").write_text('{"schema_version": 1, "key": "x", "predic')
    rerun = fork_server.run(eval_argv(checkpoint, data_root, run, "gqa,pope", "--batch-size", "1"))
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    _assert_resumed(run, comparable(reference_run), finished_before=TOTAL)


def test_a_corrupt_line_inside_a_log_is_one_clear_error(
    fork_server, checkpoint, data_root, reference_run, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(reference_run, run)
    log = run / "samples_pope.partial.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:2]) + "this is not json\n" + "".join(lines[2:]))
    finished = fork_server.run(eval_argv(checkpoint, data_root, run, "gqa,pope", "--batch-size", "1"))
    assert finished.returncode == 1
    assert_one_error_line(finished.stderr, "samples_pope.partial.jsonl:3", "move it away")


def test_result_files_are_as_readable_as_the_logs(reference_run):
    """Atomic replacement goes through a temp file, which mkstemp creates private (0600); the final files must
    still get the permissions any file the user writes gets (a shared run folder is read by others)."""
    log_mode = stat.S_IMODE((reference_run / "samples_gqa.partial.jsonl").stat().st_mode)
    for name in ("results.json", "samples_gqa.jsonl", "submission_gqa.json"):
        assert stat.S_IMODE((reference_run / name).stat().st_mode) == log_mode, name


def test_predictions_holding_unicode_line_separators_survive_resume(tmp_path):
    """U+2028, U+2029 and U+0085 are legal raw in JSON text but split lines for str.splitlines and editors: a
    prediction holding one must not break the log it is resumed from."""
    from tinyllava_bench.engine.runner import finished_records
    from tinyllava_bench.engine.store import SampleWriter, read_samples

    record = {"key": "k1", "prediction": "left\u2028right\u2029end\x85!", "error": None}
    log = tmp_path / "samples_pope.partial.jsonl"
    with SampleWriter(log) as writer:
        writer.write([record, {**record, "key": "k2"}])
    assert read_samples(log) == [record, {**record, "key": "k2"}]
    assert len(log.read_text(encoding="utf-8").splitlines()) == 2  # any line-based reader sees 2 lines
    assert set(finished_records(tmp_path, "pope")) == {"k1", "k2"}
    # logs written before the escaping existed (raw U+2028 inside a line) still read back
    log.write_text(json.dumps(record, ensure_ascii=False) + "\n", encoding="utf-8")
    assert read_samples(log) == [record]
