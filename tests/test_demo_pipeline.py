"""The demo verb end to end (shortened): world -> two recipes trained -> evaluated -> table, leaderboard, plots."""

from __future__ import annotations

import contextlib
import csv
import io
import json
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.demo.settings import DemoSettings, Variant
from tinyllava_bench.demo.training import training_config


def test_training_configs_follow_the_recipes_stages() -> None:
    settings = DemoSettings()
    parts = {"llm": "/llm", "vision": "/vision"}
    base = training_config(Variant("b", "base"), parts, settings)
    share = training_config(Variant("s", "share"), parts, settings)
    assert base["recipe"] == "base" and share["recipe"] == "share"
    assert list(base["stage_overrides"]) == ["pretrain", "finetune"]
    assert list(share["stage_overrides"]) == ["pretrain", "share-pretrain", "finetune"]
    # share's extra stage trains the tower's upper half, as the paper's layers >= 12 of 27
    assert share["stage_overrides"]["share-pretrain"]["vision"] == f"partial({settings.vision_layers // 2})"
    # everything but the recipe is the same: the ablation varies one axis
    assert {k: v for k, v in base.items() if k not in ("name", "recipe", "stage_overrides")} == {
        k: v for k, v in share.items() if k not in ("name", "recipe", "stage_overrides")
    }


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """A quick demo whose output goes to files, not a terminal (as in CI or `demo > log`): folder, out, err."""
    output = tmp_path_factory.mktemp("demo") / "out"
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        assert main(["demo", "--output", str(output), "--quick", "--threads", "1"]) == 0
    return output, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo_output(demo_run: tuple[Path, str, str]) -> Path:
    return demo_run[0]


def test_demo_output_to_a_file_has_stage_lines_no_bars_and_ends_with_the_summary(demo_run) -> None:
    output, out, err = demo_run
    for stage in (
        "[1/5] demo world",
        "[2/5]",
        "[3/5] training demo-base",
        "[4/5] evaluating",
        "[5/5] report",
    ):
        assert stage in out, stage
    assert "\r" not in out + err  # no bar redraws in a file
    record = json.loads((output / "demo.json").read_text())
    assert out.rstrip().endswith(record["printed"].rstrip())  # it records exactly what it printed
    assert record["settings"]["threads"] == 1 and record["threads"]["threads"] == 1
    for path in ("ablation.md", "leaderboard.csv", "data", "base", "runs/demo-share", "demo.json"):
        assert str(output / path) in out, path
    for verb in ("report", "regress", "view"):
        assert f"tinyllava-bench {verb} " in out
    # what regress finds is printed, one test per benchmark of the table
    assert set(record["regress"]) == set(record["scores"]["demo-base"])
    assert "- regress demo-share against demo-base" in out


def test_quiet_demo_prints_the_table_and_summary_only(tmp_path: Path, capsys) -> None:
    assert main(["demo", "--output", str(tmp_path / "q"), "--quick", "--quiet"]) == 0
    captured = capsys.readouterr()
    assert "[1/5]" not in captured.out and captured.err == ""
    record = json.loads((tmp_path / "q" / "demo.json").read_text())
    assert captured.out.strip() == record["printed"].strip()


def test_quick_demo_writes_ordinary_run_folders_table_leaderboard_and_plots(
    demo_output: Path, capsys
) -> None:
    runs = sorted((demo_output / "runs").iterdir())
    assert [run.name for run in runs] == ["demo-base", "demo-share"]
    for run in runs:
        results = json.loads((run / "results.json").read_text())
        assert results["model"]["card"]["recipe"] == run.name.removeprefix("demo-")
        assert set(results["tasks"]) == {"gqa", "pope", "mme", "scienceqa_img", "vqav2", "textvqa"}
        for name, task in results["tasks"].items():
            assert task["n_samples"] > 0 and task["n_errors"] == 0, name
            assert (run / f"samples_{name}.jsonl").stat().st_size > 0
    table = (demo_output / "ablation.md").read_text()
    assert "| demo-base | base (ref) |" in table and "| demo-share | share |" in table
    with open(demo_output / "leaderboard.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted(row["model"] for row in rows) == ["demo-base", "demo-share"]
    plots = sorted((demo_output / "plots").glob("*.png"))
    assert len(plots) == 3 and all(p.stat().st_size > 1000 for p in plots)
    record = json.loads((demo_output / "demo.json").read_text())
    assert set(record["scores"]) == {"demo-base", "demo-share"} and record["seconds"]["total"] > 0
    # the scale to read the scores against: answering without the picture, every task scored
    assert set(record["blind"]) == set(record["scores"]["demo-base"])
    assert all(isinstance(value, float) for value in record["blind"].values())


def test_report_and_regress_work_on_the_demo_runs(demo_output: Path, tmp_path: Path, capsys) -> None:
    base, share = demo_output / "runs" / "demo-base", demo_output / "runs" / "demo-share"
    out = tmp_path / "table.csv"
    assert (
        main(["report", str(base), str(share), "--group-by", "recipe", "--format", "csv", "--out", str(out)])
        == 0
    )
    assert "demo-share" in out.read_text()
    capsys.readouterr()
    # the same run against itself: no change anywhere, so no regression
    assert main(["regress", "--baseline", str(base), "--current", str(base)]) == 0
    assert "gqa" in capsys.readouterr().out


def test_demo_refuses_a_folder_that_holds_something(tmp_path: Path, capsys) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["demo", "--output", str(tmp_path), "--quick"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"


# --- the README's demo block: written from a run, checked against a run ---------------------------------------


def _readme_with_block(tmp_path: Path, demo_output: Path) -> tuple[Path, Path]:
    from tinyllava_bench.demo import readme

    readme_path, seeds = tmp_path / "README.md", tmp_path / "seeds.json"
    readme_path.write_text(f"# title\n\nbefore\n\n{readme.BEGIN}\nstale\n{readme.END}\n\nafter\n")
    assert readme.main(["--seeds", str(demo_output), "--seeds-file", str(seeds)]) == 0
    assert readme.main([str(demo_output), "--readme", str(readme_path), "--seeds-file", str(seeds)]) == 0
    return readme_path, seeds


def test_readme_block_is_written_from_the_run_and_the_check_holds(demo_output: Path, tmp_path: Path) -> None:
    from tinyllava_bench.demo import readme

    readme_path, seeds = _readme_with_block(tmp_path, demo_output)
    text = readme_path.read_text()
    assert text.startswith("# title\n\nbefore\n\n") and text.endswith("\n\nafter\n") and "stale" not in text
    assert (demo_output / "ablation.md").read_text().strip() in text  # the table the demo printed
    argv = [str(demo_output), "--readme", str(readme_path), "--seeds-file", str(seeds), "--check"]
    assert readme.main(argv) == 0
    # the picture under the block is the run's chart, and says which numbers it shows
    from tinyllava_bench.report.plots import read_plotted_values

    drawn = read_plotted_values(tmp_path / readme.PLOT)
    scores = json.loads((demo_output / "demo.json").read_text())["scores"]
    labels = readme._labels()
    assert drawn == {
        model: {labels[task]: pytest.approx(value) for task, value in by_task.items()}
        for model, by_task in scores.items()
    }


def test_readme_check_fails_when_the_block_drifts(demo_output: Path, tmp_path: Path, capsys) -> None:
    from tinyllava_bench.demo import readme

    readme_path, seeds = _readme_with_block(tmp_path, demo_output)
    argv = [str(demo_output), "--readme", str(readme_path), "--seeds-file", str(seeds)]

    def drift(points: float) -> None:
        """The base model's first benchmark (VQAv2) off by `points` in README's table."""
        good = readme_path.read_text()
        row = next(line for line in good.splitlines() if line.startswith("| demo-base |"))
        cells = row.split("|")
        cells[3] = f" {float(cells[3]) + points:.1f} "
        readme_path.write_text(good.replace(row, "|".join(cells)))

    # one seed summarised: a tolerance of 0, so any changed number fails, named with both values
    drift(0.5)
    assert readme.main([*argv, "--check"]) == 1
    assert "VQAv2: README" in capsys.readouterr().err
    # a tolerance of a point (as a spread across seeds gives, and the block then states): half a point passes,
    # a point and a half does not
    summary = json.loads(seeds.read_text())
    summary["tolerance"] = dict.fromkeys(summary["tolerance"], 1.0)
    seeds.write_text(json.dumps(summary))
    assert readme.main(argv) == 0  # the block rewritten: it states the new tolerance
    assert "VQAv2 ±1.0" in readme_path.read_text()
    drift(0.5)
    assert readme.main([*argv, "--check"]) == 0
    drift(1.0)
    assert readme.main([*argv, "--check"]) == 1
    # a changed word never passes
    assert readme.main(argv) == 0
    readme_path.write_text(readme_path.read_text().replace("Without the picture", "Without a picture"))
    assert readme.main([*argv, "--check"]) == 1
    assert "the words differ" in capsys.readouterr().err


def test_readme_check_fails_when_the_run_contradicts_an_across_seed_claim(
    demo_output: Path, tmp_path: Path
) -> None:
    from tinyllava_bench.demo import readme

    readme_path, seeds = _readme_with_block(tmp_path, demo_output)
    record = readme.read_record(demo_output)
    summary = json.loads(seeds.read_text())
    task = summary["tasks"][0]
    base, share = record["scores"]["demo-base"][task], record["scores"]["demo-share"][task]
    # claim the opposite of what this run shows: a win for the recipe that did not win here
    summary["claims"]["current_wins" if share <= base else "baseline_wins"].append(task)
    problems = readme.contradicted_claims(record, summary)
    assert len(problems) == 1 and task in problems[0]


def test_a_rerun_on_other_rounding_is_measured_and_widens_the_tolerance(
    demo_output: Path, tmp_path: Path
) -> None:
    import shutil

    from tinyllava_bench.demo import readme
    from tinyllava_bench.errors import UserError

    record = readme.read_record(demo_output)
    task = readme.summarize_seeds([demo_output])["tasks"][0]
    rerun = tmp_path / "avx2"
    shutil.copytree(demo_output, rerun)
    changed = json.loads((rerun / "demo.json").read_text())
    changed["provenance"]["cpu_capability"] = "AVX2"  # as `ATEN_CPU_CAPABILITY=avx2` records it
    base, share = changed["scores"]["demo-base"][task], changed["scores"]["demo-share"][task]
    # the rerun reverses which recipe wins on `task`, by 3 points more than the gap
    changed["scores"]["demo-share"][task] = base - (share - base) - 3.0 if share != base else base + 3.0
    (rerun / "demo.json").write_text(json.dumps(changed))

    summary = readme.summarize_seeds([demo_output], [rerun])
    moved = abs(changed["scores"]["demo-share"][task] - share)
    (measured,) = summary["other_rounding"]
    assert measured["moves"][task] == pytest.approx(moved, abs=0.1)
    assert summary["tolerance"][task] >= measured["moves"][task]
    assert measured["path"].startswith("torch's AVX2 kernels") and measured["seed_path"] != measured["path"]
    assert any(task in problem for problem in measured["contradicted"])
    block = readme.render_block(record, summary)
    assert "Measured: seed 0 again on another floating-point path (torch's AVX2 kernels" in block
    assert "it contradicted: " in block and "reasoning here, not a measurement" not in block
    assert "reasoning here, not a measurement" in readme.render_block(
        record, readme.summarize_seeds([demo_output])
    )
    with pytest.raises(UserError, match="own floating-point path"):
        readme.summarize_seeds([demo_output], [demo_output])
