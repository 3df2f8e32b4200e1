"""The demo verb end to end (shortened): world -> two recipes trained -> evaluated -> table, leaderboard, plots."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.demo.pipeline import DemoSettings, Variant, training_config


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
def demo_output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    output = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--output", str(output), "--quick"]) == 0
    return output


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
