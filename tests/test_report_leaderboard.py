"""Tests for `leaderboard`: documented column order, one row per (model, protocol), append without duplicates."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tinyllava_bench.cli import main
from tinyllava_bench.report.leaderboard import LEADERBOARD_COLUMNS

# Spelled out here so that any change to the documented order fails a test.
EXPECTED_COLUMNS = [
    "model",
    "protocol",
    "layout",
    "llm",
    "vision",
    "connector",
    "recipe",
    "data",
    "template",
    "image_aspect",
    "vqav2",
    "gqa",
    "scienceqa_img",
    "textvqa",
    "mmvet",
    "pope",
    "llava_wild",
    "mme",
    "n_vqav2",
    "n_gqa",
    "n_scienceqa_img",
    "n_textvqa",
    "n_mmvet",
    "n_pope",
    "n_llava_wild",
    "n_mme",
    "judge_model",
    "datasets",
    "tool_version",
    "git_commit",
    "checkpoint_fingerprint",
    "date",
]
HEADLINES = {"pope": "f1", "mme": "perception", "mmvet": "total", "llava_wild": "relative_score"}


def write_run(
    folder: Path,
    name: str,
    scores: dict[str, float],
    *,
    fingerprint: str = "sha256:aaa",
    protocols: dict[str, str] | None = None,
    judges: dict[str, str] | None = None,
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    tasks = {
        task: {
            "metrics": {HEADLINES.get(task, "accuracy"): value},
            "headline": HEADLINES.get(task, "accuracy"),
            "n_samples": 50 + index,
            "n_errors": 0,
            "protocol": (protocols or {}).get(task, "official"),
            "judge_model": (judges or {}).get(task),
            "dataset": {"id": f"lmms-lab/{task}", "revision": "0123456789abcdef0123456789abcdef01234567"},
            "limit": None,
        }
        for index, (task, value) in enumerate(scores.items())
    }
    card = {
        "llm": "phi-2",
        "vision": "siglip-so400m-patch14-384",
        "connector": "mlp2x_gelu",
        "recipe": "share",
        "data": "sharegpt4v",
        "template": "phi",
        "image_aspect": "pad",
        "paper_variant": None,
    }
    results = {
        "schema_version": 1,
        "model": {"name": name, "source": name, "layout": "legacy", "card": card},
        "tasks": tasks,
        "config": {},
        "provenance": {
            "tool_version": "0.1.0",
            "git_commit": "deadbeef",
            "checkpoint_fingerprint": fingerprint,
            "started_at": "2026-11-26T12:00:00+00:00",
        },
    }
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def read_rows(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames or []), list(reader)


def test_columns_follow_the_documented_order_and_values(tmp_path, capsys):
    run = write_run(tmp_path / "a", "m-a", {"mme": 1464.87, "gqa": 61.934}, judges={"gqa": None})
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(run), "--out", str(out)]) == 0
    columns, rows = read_rows(out)
    assert columns == EXPECTED_COLUMNS == list(LEADERBOARD_COLUMNS)
    (row,) = rows
    assert (row["model"], row["protocol"], row["layout"], row["llm"]) == (
        "m-a",
        "official",
        "legacy",
        "phi-2",
    )
    assert (row["gqa"], row["mme"], row["pope"]) == ("61.93", "1464.87", "")
    assert (row["n_mme"], row["n_gqa"], row["n_pope"]) == ("50", "51", "")
    assert row["datasets"] == "gqa=lmms-lab/gqa@0123456789ab;mme=lmms-lab/mme@0123456789ab"
    assert (row["tool_version"], row["git_commit"], row["date"]) == ("0.1.0", "deadbeef", "2026-11-26")
    assert "1 row(s) added" in capsys.readouterr().err


def test_append_same_run_twice_never_duplicates_and_a_new_run_adds_one(tmp_path):
    first = write_run(tmp_path / "a", "m-a", {"gqa": 60.0})
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(first), "--out", str(out)]) == 0
    assert main(["leaderboard", str(first), "--out", str(out), "--append"]) == 0
    assert main(["leaderboard", str(first), "--out", str(out), "--append"]) == 0
    columns, rows = read_rows(out)
    assert len(rows) == 1 and columns == EXPECTED_COLUMNS

    second = write_run(tmp_path / "b", "m-b", {"gqa": 55.0, "pope": 85.0})
    assert main(["leaderboard", str(second), "--out", str(out), "--append"]) == 0
    columns, rows = read_rows(out)
    assert [r["model"] for r in rows] == ["m-a", "m-b"]
    assert columns == EXPECTED_COLUMNS

    # A re-evaluation of the same checkpoint replaces its row in place.
    rerun = write_run(tmp_path / "a2", "m-a", {"gqa": 60.5})
    assert main(["leaderboard", str(rerun), "--out", str(out), "--append"]) == 0
    _, rows = read_rows(out)
    assert [(r["model"], r["gqa"]) for r in rows] == [("m-a", "60.50"), ("m-b", "55.00")]

    # Other weights under the same name are another evaluation: a new row.
    retrained = write_run(tmp_path / "a3", "m-a", {"gqa": 58.0}, fingerprint="sha256:bbb")
    assert main(["leaderboard", str(retrained), "--out", str(out), "--append"]) == 0
    _, rows = read_rows(out)
    assert len(rows) == 3


def test_without_append_the_file_is_overwritten(tmp_path):
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(write_run(tmp_path / "a", "m-a", {"gqa": 60.0})), "--out", str(out)]) == 0
    assert main(["leaderboard", str(write_run(tmp_path / "b", "m-b", {"gqa": 61.0})), "--out", str(out)]) == 0
    _, rows = read_rows(out)
    assert [r["model"] for r in rows] == ["m-b"]


def test_two_protocols_in_one_run_give_two_rows(tmp_path):
    run = write_run(
        tmp_path / "a",
        "m-a",
        {"gqa": 60.0, "textvqa": 55.8, "mmvet": 30.0},
        protocols={"textvqa": "lmms-eval"},
        judges={"mmvet": "gpt-4-0613"},
    )
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(run), str(run), "--out", str(out)]) == 0
    _, rows = read_rows(out)
    assert [(r["protocol"], r["gqa"], r["textvqa"]) for r in rows] == [
        ("official", "60.00", ""),
        ("lmms-eval", "", "55.80"),
    ]
    assert rows[0]["judge_model"] == "gpt-4-0613" and rows[1]["judge_model"] == ""


def test_append_keeps_user_columns_and_rows_it_does_not_own(tmp_path):
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(write_run(tmp_path / "a", "m-a", {"gqa": 60.0})), "--out", str(out)]) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join([lines[0] + ",notes", lines[1] + ",hand-written"]) + "\n")
    assert (
        main(
            [
                "leaderboard",
                str(write_run(tmp_path / "b", "m-b", {"gqa": 61.0})),
                "--out",
                str(out),
                "--append",
            ]
        )
        == 0
    )
    columns, rows = read_rows(out)
    assert columns == [*EXPECTED_COLUMNS, "notes"]
    assert [(r["model"], r["notes"]) for r in rows] == [("m-a", "hand-written"), ("m-b", "")]


def test_appending_to_a_foreign_csv_is_a_user_error(tmp_path, capsys):
    out = tmp_path / "other.csv"
    out.write_text("a,b\n1,2\n")
    code = main(
        ["leaderboard", str(write_run(tmp_path / "a", "m", {"gqa": 1.0})), "--out", str(out), "--append"]
    )
    assert code == 2
    assert "key column" in capsys.readouterr().err
    assert out.read_text() == "a,b\n1,2\n"


def test_append_to_a_header_only_file_keeps_its_extra_columns(tmp_path):
    out = tmp_path / "board.csv"
    out.write_text(",".join([*EXPECTED_COLUMNS, "notes"]) + "\n")
    assert (
        main(
            [
                "leaderboard",
                str(write_run(tmp_path / "a", "m-a", {"gqa": 60.0})),
                "--out",
                str(out),
                "--append",
            ]
        )
        == 0
    )
    columns, rows = read_rows(out)
    assert columns == [*EXPECTED_COLUMNS, "notes"] and len(rows) == 1


# --- merges, atomic and locked writes, formula escaping (issue 16 item 5, issue 22 item 6) ---


def test_appending_a_partial_run_keeps_the_benchmarks_it_does_not_carry(tmp_path):
    out = tmp_path / "board.csv"
    first = write_run(
        tmp_path / "a", "m-a", {"gqa": 60.0, "mmvet": 30.0, "pope": 85.0}, judges={"mmvet": "gpt-4-0613"}
    )
    assert main(["leaderboard", str(first), "--out", str(out)]) == 0
    # the same checkpoint, later evaluated on MME and LLaVA-W only (another judge)
    second = write_run(
        tmp_path / "b", "m-a", {"mme": 1400.0, "llava_wild": 55.0}, judges={"llava_wild": "gpt-4o"}
    )
    assert main(["leaderboard", str(second), "--out", str(out), "--append"]) == 0
    _, rows = read_rows(out)
    (row,) = rows
    assert (row["gqa"], row["mmvet"], row["pope"], row["mme"], row["llava_wild"]) == (
        "60.00",
        "30.00",
        "85.00",
        "1400.00",
        "55.00",
    )
    assert (row["n_gqa"], row["n_pope"], row["n_mme"]) == ("50", "52", "50")
    assert row["datasets"] == ";".join(
        f"{task}=lmms-lab/{task}@0123456789ab" for task in ("gqa", "mmvet", "pope", "llava_wild", "mme")
    )
    assert row["judge_model"] == "mmvet=gpt-4-0613;llava_wild=gpt-4o"

    # a run that carries a benchmark the row has replaces that benchmark (and its count) and nothing else
    third = write_run(tmp_path / "c", "m-a", {"pope": 86.5})
    assert main(["leaderboard", str(third), "--out", str(out), "--append"]) == 0
    (row,) = read_rows(out)[1]
    assert (row["gqa"], row["pope"], row["n_pope"], row["mme"]) == ("60.00", "86.50", "50", "1400.00")
    assert row["judge_model"] == "mmvet=gpt-4-0613;llava_wild=gpt-4o"


def test_several_runs_of_one_evaluation_say_which_was_kept(tmp_path, capsys):
    out = tmp_path / "board.csv"
    earlier = write_run(tmp_path / "a", "m-a", {"gqa": 60.0, "pope": 85.0})
    later = write_run(tmp_path / "b", "m-a", {"gqa": 61.0})
    assert main(["leaderboard", str(earlier), str(later), "--out", str(out)]) == 0
    (row,) = read_rows(out)[1]
    assert (row["gqa"], row["pope"]) == ("61.00", "85.00")
    err = capsys.readouterr().err
    assert (
        f"leaderboard: {earlier} and {later} are one evaluation (model m-a, protocol official, checkpoint "
        f"sha256:aaa, tool 0.1.0), merged into one row; gqa: kept {later}, dropped {earlier}" in err
    )


def test_a_failed_write_leaves_the_old_leaderboard_whole(tmp_path):
    import resource
    import subprocess
    import sys

    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(write_run(tmp_path / "a", "m-a", {"gqa": 60.0})), "--out", str(out)]) == 0
    before = out.read_bytes()
    limit = len(before) + 40  # too small for the file with a second row: the write fails part way (EFBIG)

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    run = write_run(tmp_path / "b", "m-b", {"gqa": 61.0, "pope": 85.0})
    result = subprocess.run(
        [sys.executable, "-m", "tinyllava_bench.cli", "leaderboard", str(run), "--out", str(out), "--append"],
        preexec_fn=small_files,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "cannot write" in result.stderr
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".board.csv")) == []


def _append_models(out: str, runs: list[str], start, results) -> None:
    start.wait()
    codes = [main(["leaderboard", run, "--out", out, "--append"]) for run in runs]
    results.put(codes)


def test_concurrent_appends_lose_nothing(tmp_path):
    import multiprocessing

    out = tmp_path / "board.csv"
    per_process = 15
    batches = [
        [str(write_run(tmp_path / f"{who}{i}", f"{who}-{i}", {"gqa": 50.0 + i})) for i in range(per_process)]
        for who in ("left", "right")
    ]
    context = multiprocessing.get_context("fork")
    start, results = context.Barrier(2), context.Queue()
    workers = [
        context.Process(target=_append_models, args=(str(out), batch, start, results)) for batch in batches
    ]
    for worker in workers:
        worker.start()
    codes = [results.get(timeout=300) for _ in workers]
    for worker in workers:
        worker.join(timeout=60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert codes == [[0] * per_process, [0] * per_process]
    columns, rows = read_rows(out)
    assert columns == EXPECTED_COLUMNS
    expected = {f"{who}-{i}" for who in ("left", "right") for i in range(per_process)}
    assert sorted(r["model"] for r in rows) == sorted(expected)


def test_text_that_a_spreadsheet_would_run_as_a_formula_is_escaped(tmp_path):
    out = tmp_path / "board.csv"
    run = write_run(tmp_path / "a", '=HYPERLINK("http://evil","x")', {"gqa": 60.0})
    results = json.loads((run / "results.json").read_text())
    results["model"]["card"].update(
        {"llm": "+1+2", "vision": "-2", "connector": "@SUM(A1)", "recipe": "\t=1"}
    )
    (run / "results.json").write_text(json.dumps(results))
    assert main(["leaderboard", str(run), "--out", str(out)]) == 0
    (row,) = read_rows(out)[1]
    assert row["model"] == '\'=HYPERLINK("http://evil","x")'
    assert (row["llm"], row["vision"], row["connector"], row["recipe"]) == (
        "'+1+2",
        "'-2",
        "'@SUM(A1)",
        "'\t=1",
    )
    assert row["gqa"] == "60.00"
    # the escaped name is still the same model: appending the run again replaces its row
    assert main(["leaderboard", str(run), "--out", str(out), "--append"]) == 0
    assert len(read_rows(out)[1]) == 1


def test_a_benchmark_the_paper_has_no_number_for_adds_no_column(tmp_path, monkeypatch):
    """docs/adding_a_task.md's worked example (POPE-adv, no paper_column): a run that has it still gets its row,
    with the paper's columns only (it used to write a `None` key the CSV writer refused with a traceback)."""
    from tests.test_task_registry import _copy_tasks, _doc_example

    name, text = _doc_example()
    folder = _copy_tasks(tmp_path / "tasks")
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    monkeypatch.setenv("TINYLLAVA_BENCH_TASKS_DIR", str(folder))
    run = write_run(tmp_path / "run", "model-a", {"gqa": 61.9, name: 80.0})
    out = tmp_path / "board.csv"
    assert main(["leaderboard", str(run), "--out", str(out)]) == 0
    header, rows = read_rows(out)
    assert header == EXPECTED_COLUMNS
    assert len(rows) == 1 and rows[0]["gqa"] == "61.90" and rows[0]["pope"] == ""
