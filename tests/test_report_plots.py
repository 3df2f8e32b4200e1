"""The report's charts, read back from their figures: each benchmark's scale (MME out of the categories the run
scored), axes from 0, the blind baseline where one is given, tick labels that do not collide."""

from __future__ import annotations

import json

import pytest

from tests.test_report_tables import run_cli, write_run
from tinyllava_bench.paths import REPO_ROOT
from tinyllava_bench.report.plots import (
    ablation_deltas_figure,
    benchmark_bars_figure,
    benchmark_scales,
    overview_figure,
)
from tinyllava_bench.report.runs import load_runs
from tinyllava_bench.report.tables import paper_table, results_table

DEMO_RUNS = [REPO_ROOT / "results" / "reference" / "demo" / name for name in ("demo-base", "demo-share")]
# the demo's blind answerer on the reference world (demo.blind.blind_scores, seed 0, 400 questions a task)
BLIND = {"gqa": 33.4, "pope": 63.3, "mme": 263.2, "scienceqa_img": 40.0, "vqav2": 37.0, "textvqa": 14.25}


def demo_table():
    return results_table(load_runs(DEMO_RUNS), group_by="recipe")


def panels(figure) -> dict[str, object]:
    """Benchmark label -> its panel (the title's first line names it)."""
    return {axes.get_title().split("\n")[0]: axes for axes in figure.axes}


def test_mme_is_drawn_out_of_the_categories_the_run_scored():
    table = demo_table()
    scales = benchmark_scales(table)
    # the demo scores 5 perception categories (existence, count, position, color, OCR): 5 x 200
    assert scales["MME"].top == 1000.0 and not scales["MME"].per_row_percent
    assert scales["MME"].caption == "max 1,000 (5 categories)"
    assert {scales[b].top for b in ("VQAv2", "GQA", "SQA-I", "TextVQA", "POPE")} == {100.0}
    mme = panels(benchmark_bars_figure(table))["MME"]
    assert mme.get_ylim()[0] == 0.0 and max(mme.get_yticks()) == 1000.0
    heights = [bar.get_height() for bar in mme.patches]
    assert heights == pytest.approx([row.cells["MME"].value for row in table.rows])


def test_mme_of_a_run_without_its_categories_and_the_papers_mme_are_out_of_2000(tmp_path):
    run = write_run(tmp_path / "a", "m", {"gqa": 61.0, "mme": 1400.0})
    assert benchmark_scales(results_table(load_runs([run])))["MME"].top == 2000.0
    assert benchmark_scales(paper_table())["MME"].top == 2000.0


def test_rows_out_of_different_maxima_are_drawn_as_percent_of_their_own(tmp_path):
    runs = [write_run(tmp_path / "all", "all", {"mme": 1400.0}), *DEMO_RUNS[:1]]
    table = results_table(load_runs(runs))
    scale = benchmark_scales(table)["MME"]
    assert scale.per_row_percent and scale.top == 100.0
    heights = [bar.get_height() for bar in panels(benchmark_bars_figure(table))["MME"].patches]
    assert heights == pytest.approx([70.0, table.rows[1].cells["MME"].value / 10.0])


def test_every_axis_starts_at_zero():
    table = demo_table()
    for axes in benchmark_bars_figure(table).axes:
        assert axes.get_ylim()[0] == 0.0, axes.get_title()
    assert overview_figure(table).axes[0].get_ylim()[0] == 0.0
    # the differences go both ways; their axis holds 0 and draws it
    low, high = ablation_deltas_figure(table).axes[0].get_ylim()
    assert low < 0.0 < high


def test_the_blind_baseline_is_drawn_on_each_benchmark_it_has():
    table = demo_table()
    figure = benchmark_bars_figure(table, baseline=BLIND)
    by_label = panels(figure)
    expected = {"VQAv2": 37.0, "GQA": 33.4, "SQA-I": 40.0, "TextVQA": 14.25, "POPE": 63.3, "MME": 263.2}
    for label, value in expected.items():
        lines = [c for c in by_label[label].collections if c.get_linestyle()[0][1]]  # the dashed ones
        assert len(lines) == 1, label
        assert lines[0].get_segments()[0][0][1] == pytest.approx(value), label
        assert f"blind\n{value:.1f}" in [t.get_text() for t in by_label[label].texts]
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert legend == ["demo-base", "demo-share", "answering without the picture"]
    assert not any(c.get_linestyle()[0][1] for a in benchmark_bars_figure(table).axes for c in a.collections)


def test_ablation_differences_are_points_of_each_benchmarks_own_maximum():
    table = demo_table()
    share = next(row for row in table.rows if not row.is_reference)
    axes = ablation_deltas_figure(table).axes[0]
    heights = [bar.get_height() for bar in axes.patches]
    labels = [t.get_text() for t in axes.get_xticklabels()]
    assert labels[-1] == "MME\n(% of 1,000)"
    assert heights[-1] == pytest.approx(share.cells["MME"].delta / 10.0)  # of 1,000, not of 2,000
    assert heights[1] == pytest.approx(share.cells["GQA"].delta)


def test_tick_labels_turn_only_when_they_would_collide(tmp_path):
    table = demo_table()
    for figure in (ablation_deltas_figure(table), overview_figure(table)):
        assert {t.get_rotation() for t in figure.axes[0].get_xticklabels()} == {0.0}
    long_names = {f"a_rather_long_task_name_{i}": 50.0 for i in range(9)}
    runs = [
        write_run(tmp_path / name, name, long_names, card={"recipe": name, "llm": "x"}) for name in ("p", "q")
    ]
    crowded = results_table(load_runs(runs), group_by="recipe")
    for figure in (ablation_deltas_figure(crowded), overview_figure(crowded)):
        assert {t.get_rotation() for t in figure.axes[0].get_xticklabels()} == {30.0}


def test_report_blind_scores_flag_reads_a_demo_json_and_is_checked(tmp_path, capsys):
    demo_json = tmp_path / "demo.json"
    demo_json.write_text(json.dumps({"seconds": {}, "blind": BLIND}))
    plots = tmp_path / "plots"
    argv = ["report", *map(str, DEMO_RUNS), "--group-by", "recipe", "--plots", str(plots)]
    code, _, err = run_cli([*argv, "--blind-scores", str(demo_json)], capsys)
    assert code == 0 and str(plots / "benchmarks.png") in err

    code, _, err = run_cli([*argv[:5], "--blind-scores", str(demo_json)], capsys)
    assert code == 2 and "--blind-scores is drawn on the plots: add --plots DIR" in err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"gqa": "33.4"}))
    code, _, err = run_cli([*argv, "--blind-scores", str(bad)], capsys)
    assert code == 2 and "task -> headline score" in err
    code, _, err = run_cli([*argv, "--blind-scores", str(tmp_path / "missing.json")], capsys)
    assert code == 2 and "cannot read it" in err
