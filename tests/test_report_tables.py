"""Tests for `report`: run-folder reading, paper-shaped tables, ablation and paper views, formats and plots."""

from __future__ import annotations

import csv
import io
import json
import struct
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.report.paper import paper_table_a1
from tinyllava_bench.report.runs import load_run, load_samples, runs_to_frame

PAPER_ORDER = ["VQAv2", "GQA", "SQA-I", "TextVQA", "MM-Vet", "POPE", "LLaVA-W", "MME"]
HEADLINES = {"pope": "f1", "mme": "perception", "mmvet": "total", "llava_wild": "relative_score"}


def write_run(
    folder: Path,
    name: str,
    scores: dict[str, float],
    *,
    card: dict | None = None,
    protocol: str = "official",
    task_extra: dict[str, dict] | None = None,
    source: str | None = None,
) -> Path:
    """A run folder as docs/run_folder.md describes it: one headline value per task."""
    folder.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for task, value in scores.items():
        headline = HEADLINES.get(task, "accuracy")
        tasks[task] = {
            "metrics": {headline: value},
            "headline": headline,
            "n_samples": 100,
            "n_errors": 0,
            "protocol": protocol,
            "judge_model": None,
            "dataset": {"id": f"lmms-lab/{task}", "split": "test", "revision": "a" * 40},
            "limit": None,
            **(task_extra or {}).get(task, {}),
        }
    results = {
        "schema_version": 1,
        "model": {"name": name, "source": source or name, "layout": "legacy", "card": card or {}},
        "tasks": tasks,
        "config": {},
        "provenance": {
            "tool_version": "0.1.0",
            "git_commit": "abc",
            "started_at": "2026-11-26T12:00:00+00:00",
        },
    }
    (folder / "results.json").write_text(json.dumps(results), encoding="utf-8")
    return folder


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def read_csv(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text)))


def test_table_has_paper_column_order_one_decimal_and_empty_cells(tmp_path, capsys):
    run = write_run(tmp_path / "a", "model-a", {"mme": 1464.87, "gqa": 61.934, "pope": 86.45})
    code, out, _ = run_cli(["report", str(run), "--format", "csv"], capsys)
    assert code == 0
    header, row = read_csv(out)
    assert header == ["Model", *PAPER_ORDER]
    values = dict(zip(header, row, strict=True))
    assert values["Model"] == "model-a"
    assert values["GQA"] == "61.9"
    assert values["POPE"] == "86.5"  # 86.45 rounds to one decimal like the paper prints
    assert values["MME"] == "1464.9"
    assert values["VQAv2"] == values["SQA-I"] == values["MM-Vet"] == ""


def test_markdown_is_the_default_and_keeps_column_order(tmp_path, capsys):
    run = write_run(tmp_path / "a", "model-a", {"gqa": 60.0})
    code, out, _ = run_cli(["report", str(run)], capsys)
    assert code == 0
    header_line = next(line for line in out.splitlines() if line.startswith("| Model"))
    assert [c.strip() for c in header_line.strip("|").split("|")] == ["Model", *PAPER_ORDER]
    assert "| model-a |  | 60.0 |" in out


def test_headline_key_in_results_wins_over_the_default(tmp_path, capsys):
    run = write_run(
        tmp_path / "a",
        "model-a",
        {"gqa": 50.0},
        task_extra={"gqa": {"metrics": {"accuracy": 50.0, "balanced": 70.0}, "headline": "balanced"}},
    )
    code, out, _ = run_cli(["report", str(run), "--format", "md"], capsys)
    assert code == 0
    assert "| 70.0 |" in out
    assert "gqa=balanced" in out


def test_testdev_fills_vqav2_before_val_and_extra_tasks_are_appended(tmp_path, capsys):
    run = write_run(tmp_path / "a", "m", {"vqav2": 70.0, "vqav2_testdev": 71.0, "mmbench": 40.0})
    code, out, _ = run_cli(["report", str(run), "--format", "csv"], capsys)
    header, row = read_csv(out)
    assert header == ["Model", *PAPER_ORDER, "mmbench"]
    assert row[1] == "71.0"
    assert row[-1] == "40.0"


def test_protocol_is_a_column_only_where_rows_differ(tmp_path, capsys):
    a = write_run(tmp_path / "a", "m-a", {"gqa": 60.0})
    b = write_run(tmp_path / "b", "m-b", {"gqa": 61.0}, protocol="lmms-eval")
    _, out, _ = run_cli(["report", str(a), str(b), "--format", "csv"], capsys)
    header, first, second = read_csv(out)
    assert header[:2] == ["Model", "Protocol"]
    assert (first[1], second[1]) == ("official", "lmms-eval")

    c = write_run(tmp_path / "c", "m-c", {"gqa": 62.0})
    _, out, _ = run_cli(["report", str(a), str(c)], capsys)
    assert "Protocol: official (all rows)." in out
    assert "| Protocol" not in out


def test_a_run_with_two_protocols_gives_two_rows(tmp_path):
    run = write_run(tmp_path / "a", "m", {"gqa": 60.0, "pope": 85.0})
    results = json.loads((run / "results.json").read_text())
    results["tasks"]["pope"]["protocol"] = "lmms-eval"
    (run / "results.json").write_text(json.dumps(results))
    from tinyllava_bench.report.tables import results_table

    table = results_table([load_run(run)])
    assert [(r.labels["Model"], r.labels["Protocol"]) for r in table.rows] == [
        ("m", "official"),
        ("m", "lmms-eval"),
    ]
    assert table.rows[0].cells["GQA"].value == 60.0 and table.rows[0].cells["POPE"].value is None
    assert table.rows[1].cells["POPE"].value == 85.0 and table.rows[1].cells["GQA"].value is None


def test_same_model_twice_gets_told_apart_by_folder(tmp_path, capsys):
    a = write_run(tmp_path / "first", "m", {"gqa": 60.0})
    b = write_run(tmp_path / "second", "m", {"gqa": 61.0})
    _, out, _ = run_cli(["report", str(a), str(b), "--format", "csv"], capsys)
    assert [row[0] for row in read_csv(out)[1:]] == ["m [first]", "m [second]"]


def ablation_runs(tmp_path: Path) -> list[str]:
    cards = [
        ("phi-clip", {"llm": "phi-2", "vision": "clip", "recipe": "base"}, 60.0),
        ("tl-clip", {"llm": "tinyllama", "vision": "clip", "recipe": "base"}, 55.0),
        ("phi-sig", {"llm": "phi-2", "vision": "siglip", "recipe": "base"}, 61.5),
        ("tl-sig", {"llm": "tinyllama", "vision": "siglip", "recipe": "base"}, 54.2),
    ]
    return [
        str(write_run(tmp_path / name, name, {"gqa": gqa, "pope": 80.0}, card=card))
        for name, card, gqa in cards
    ]


def test_group_by_groups_rows_and_shows_deltas_to_the_first_row(tmp_path, capsys):
    code, out, _ = run_cli(
        ["report", *ablation_runs(tmp_path), "--group-by", "vision", "--format", "csv"], capsys
    )
    assert code == 0
    header, *rows = read_csv(out)
    # recipe is the same everywhere, so only llm is shown as a grouping column; vision is the varying axis.
    assert header[:5] == ["Model", "LLM", "Vision", "Group", "Reference"]
    by_model = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert [row[0] for row in rows] == ["phi-clip", "phi-sig", "tl-clip", "tl-sig"]
    assert by_model["phi-clip"]["Reference"] == "yes" and by_model["phi-clip"]["GQA delta"] == ""
    assert by_model["phi-sig"]["GQA delta"] == "+1.5"
    assert by_model["tl-sig"]["GQA delta"] == "-0.8"
    assert by_model["tl-sig"]["POPE delta"] == "+0.0"
    assert by_model["phi-sig"]["Group"] == by_model["phi-clip"]["Group"] != by_model["tl-sig"]["Group"]


def test_group_by_markdown_names_the_reference(tmp_path, capsys):
    _, out, _ = run_cli(["report", *ablation_runs(tmp_path), "--group-by", "vision"], capsys)
    assert "| phi-clip | phi-2 | clip (ref) |" in out
    assert "61.5 (+1.5)" in out
    assert "first row, marked (ref)" in out.replace("group's first row", "first row")
    assert "Same in all rows: recipe=base." in out


def test_group_by_an_axis_no_card_has_is_a_user_error(tmp_path, capsys):
    run = write_run(tmp_path / "a", "m", {"gqa": 60.0}, card={"llm": "phi-2"})
    code, _, err = run_cli(["report", str(run), "--group-by", "connector"], capsys)
    assert code == 2
    assert "model.card.connector" in err


def test_paper_view_matches_by_paper_variant_name_or_checkpoint(tmp_path, capsys):
    by_card = write_run(
        tmp_path / "a",
        "my-phi",
        {"gqa": 61.5, "mme": 1470.0},
        card={"paper_variant": "TinyLLaVA-share-Sig-Phi"},
    )
    by_name = write_run(tmp_path / "b", "TinyLLaVA-base-C-TL", {"gqa": 58.1})
    by_checkpoint = write_run(tmp_path / "c", "two-b", {"gqa": 62.4}, source="bczhou/TinyLLaVA-2.0B")
    unmatched = write_run(tmp_path / "d", "mystery", {"gqa": 50.0})
    argv = [
        "report",
        str(by_card),
        str(by_name),
        str(by_checkpoint),
        str(unmatched),
        "--paper",
        "--format",
        "csv",
    ]
    _, out, _ = run_cli(argv, capsys)
    header, *rows = read_csv(out)
    assert header[:5] == ["Model", "Paper row", "VQAv2", "VQAv2 paper", "VQAv2 delta"]
    table = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert table["my-phi"]["Paper row"] == "TinyLLaVA-share-Sig-Phi"
    assert (table["my-phi"]["GQA"], table["my-phi"]["GQA paper"], table["my-phi"]["GQA delta"]) == (
        "61.5",
        "62.0",
        "-0.5",
    )
    assert table["my-phi"]["MME delta"] == "+5.1"
    assert table["my-phi"]["VQAv2"] == "" and table["my-phi"]["VQAv2 paper"] == "79.9"
    assert table["TinyLLaVA-base-C-TL"]["GQA delta"] == "+0.0"
    assert table["two-b"]["Paper row"] == "TinyLLaVA-share-Sig-SLM"
    assert table["two-b"]["GQA delta"] == "+0.5"
    assert table["mystery"]["Paper row"] == "" and table["mystery"]["GQA paper"] == ""

    _, out, _ = run_cli(["report", str(by_card), str(unmatched), "--paper"], capsys)
    assert "61.5 / 62.0 (-0.5)" in out
    assert "No paper row for: mystery" in out


def test_report_paper_alone_prints_table_a1(tmp_path, capsys):
    code, out, _ = run_cli(["report", "--paper", "--format", "csv"], capsys)
    assert code == 0
    header, *rows = read_csv(out)
    assert header == ["Model", *PAPER_ORDER]
    assert len(rows) == 12
    assert [row[0] for row in rows] == [row.variant for row in paper_table_a1()]
    assert rows[0][0] == "TinyLLaVA-base-C-TL" and rows[-1][0] == "TinyLLaVA-share-Sig-Phi"
    assert rows[-1][1:] == ["79.9", "62.0", "69.1", "59.1", "32.0", "86.4", "75.8", "1464.9"]
    assert rows[0][-1] == ""  # no MME in the paper for base-C-TL

    code, out, _ = run_cli(["report", "--paper"], capsys)
    assert sum(1 for line in out.splitlines() if line.startswith("| TinyLLaVA-")) == 12


def test_latex_and_html_formats(tmp_path, capsys):
    run = write_run(tmp_path / "a", "model_a&b", {"gqa": 60.0})
    _, latex, _ = run_cli(["report", str(run), "--format", "latex"], capsys)
    assert "\\toprule" in latex and "\\bottomrule" in latex
    assert "model\\_a\\&b & " in latex
    assert "Model & VQAv2 & GQA & SQA-I & TextVQA & MM-Vet & POPE & LLaVA-W & MME \\\\" in latex
    out_file = tmp_path / "table.html"
    code, stdout, _ = run_cli(["report", str(run), "--format", "html", "--out", str(out_file)], capsys)
    assert code == 0 and stdout == ""
    html_text = out_file.read_text()
    assert html_text.startswith('<table class="tinyllava-bench-report">')
    assert "model_a&amp;b" in html_text and '<td align="right">60.0</td>' in html_text


def test_report_out_where_a_file_stands_for_its_folder_names_no_flag_report_lacks(tmp_path, capsys):
    # the message once spoke of eval's "run folder" and told report's user to pass --output, which report lacks
    run = write_run(tmp_path / "a", "m", {"gqa": 60.0})
    (tmp_path / "taken").write_text("a file, not a folder")
    code, _, err = run_cli(["report", str(run), "--out", str(tmp_path / "taken" / "table.md")], capsys)
    assert code == 2
    assert str(tmp_path / "taken") in err and "is a file" in err
    assert "--output" not in err and "run folder" not in err


def test_report_without_runs_or_paper_is_a_user_error(capsys):
    code, _, err = run_cli(["report"], capsys)
    assert code == 2
    assert "--paper" in err


def test_folder_without_results_json_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_cli(["report", str(tmp_path / "empty")], capsys)
    assert code == 2
    assert "no results.json" in err


def test_bad_schema_version_is_a_clear_error(tmp_path):
    run = write_run(tmp_path / "a", "m", {"gqa": 60.0})
    results = json.loads((run / "results.json").read_text())
    results["schema_version"] = 99
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match="schema_version 99"):
        load_run(run)
    del results["schema_version"]
    (run / "results.json").write_text(json.dumps(results))
    with pytest.raises(UserError, match="schema_version None"):
        load_run(run)
    (run / "results.json").write_text("{not json")
    with pytest.raises(UserError, match="not valid JSON"):
        load_run(run)


def test_unknown_keys_are_accepted_and_nested_metrics_flattened(tmp_path):
    run = write_run(tmp_path / "a", "m", {"pope": 86.0}, task_extra={"pope": {"new_task_key": [1, 2]}})
    results = json.loads((run / "results.json").read_text())
    results["future_top_level"] = {"x": 1}
    results["model"]["card"]["new_card_key"] = "v"
    results["tasks"]["pope"]["metrics"] = {"f1": 86.0, "adversarial": {"f1": 84.0, "note": "text"}}
    (run / "results.json").write_text(json.dumps(results))
    loaded = load_run(run)
    assert loaded.tasks["pope"].metrics == {"f1": 86.0, "adversarial.f1": 84.0}
    assert loaded.tasks["pope"].headline_value == 86.0
    frame = runs_to_frame([loaded])
    assert list(frame["metric"]) == ["f1", "adversarial.f1"]
    assert list(frame["headline"]) == [True, False]


def test_samples_reader_skips_a_truncated_last_line_only(tmp_path):
    good = '{"index": 0, "score": 1.0}\n{"index": 1, "score": 0.0}\n'
    (tmp_path / "s.jsonl").write_text(good + '{"index": 2, "sco')
    assert [s["index"] for s in load_samples(tmp_path / "s.jsonl")] == [0, 1]
    (tmp_path / "bad.jsonl").write_text('{"index": 0}\nnot json\n{"index": 2}\n')
    with pytest.raises(UserError, match="line 2"):
        load_samples(tmp_path / "bad.jsonl")


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plots_are_written_as_real_pngs(tmp_path, capsys):
    plots = tmp_path / "plots"
    code, _, err = run_cli(
        ["report", *ablation_runs(tmp_path), "--group-by", "vision", "--plots", str(plots)], capsys
    )
    assert code == 0
    names = sorted(p.name for p in plots.iterdir())
    assert names == ["ablation_deltas.png", "benchmarks.png", "overview.png"]
    for path in plots.iterdir():
        width, height = png_size(path)
        assert width >= 600 and height >= 400
        assert path.stat().st_size > 10_000  # an empty canvas compresses to far less
        assert str(path) in err


def test_paper_comparison_plots(tmp_path, capsys):
    run = write_run(
        tmp_path / "a", "m", {"gqa": 61.0, "mme": 1400.0}, card={"paper_variant": "TinyLLaVA-share-Sig-Phi"}
    )
    code, _, _ = run_cli(["report", str(run), "--paper", "--plots", str(tmp_path / "p")], capsys)
    assert code == 0
    assert sorted(p.name for p in (tmp_path / "p").iterdir()) == ["benchmarks.png", "overview.png"]
    for path in (tmp_path / "p").iterdir():
        png_size(path)


def test_paper_table_as_an_ablation_view(capsys):
    code, out, _ = run_cli(["report", "--paper", "--group-by", "vision", "--format", "csv"], capsys)
    assert code == 0
    header, *rows = read_csv(out)
    assert len(rows) == 12
    by_model = {row[0]: dict(zip(header, row, strict=True)) for row in rows}
    assert by_model["TinyLLaVA-share-C-Phi"]["Reference"] == "yes"
    assert by_model["TinyLLaVA-share-Sig-Phi"]["GQA delta"] == "+1.0"
    assert by_model["TinyLLaVA-share-Sig-Phi"]["SQA-I delta"] == "-1.0"


def test_paper_and_group_by_together_on_runs_is_a_user_error(tmp_path, capsys):
    run = write_run(tmp_path / "a", "m", {"gqa": 60.0}, card={"vision": "clip"})
    code, _, err = run_cli(["report", str(run), "--paper", "--group-by", "vision"], capsys)
    assert code == 2
    assert "choose one" in err


def test_a_folder_of_run_folders_stands_for_all_of_them_sorted(tmp_path, capsys):
    write_run(tmp_path / "results" / "z" / "run", "model-z", {"gqa": 50.0})
    write_run(tmp_path / "results" / "a", "model-a", {"gqa": 60.0})
    (tmp_path / "results" / "empty").mkdir()
    code, out, _ = run_cli(["report", str(tmp_path / "results"), "--format", "csv"], capsys)
    assert code == 0
    assert [row[0] for row in read_csv(out)[1:]] == ["model-a", "model-z"]
    # a folder with no run anywhere below is still the clear per-folder error
    code, _, err = run_cli(["report", str(tmp_path / "results" / "empty")], capsys)
    assert code == 2 and "no results.json" in err


def test_runs_on_different_question_sets_are_never_side_by_side_silently(tmp_path, capsys):
    # LLaVA's llava_pope_test.jsonl (the paper's 8,910 questions) beside the hub's 9,000-row POPE
    llava = {"question_set": {"source": "llava_eval:pope/llava_pope_test.jsonl", "rows": 8910}}
    hub = {"question_set": {"source": "hub:lmms-lab/POPE:test", "rows": 9000}}
    a = write_run(tmp_path / "a", "model-a", {"pope": 86.4}, task_extra={"pope": {"dataset": llava}})
    b = write_run(tmp_path / "b", "model-b", {"pope": 85.0}, task_extra={"pope": {"dataset": hub}})
    code, out, _ = run_cli(["report", str(a), str(b)], capsys)
    assert code == 0
    assert "POPE: rows scored on different question sets, not directly comparable" in out
    assert "llava_pope_test.jsonl (8,910 rows)" in out and "lmms-lab/POPE:test (9,000 rows)" in out
    same = write_run(tmp_path / "c", "model-c", {"pope": 80.0}, task_extra={"pope": {"dataset": llava}})
    _, out, _ = run_cli(["report", str(a), str(same)], capsys)
    assert "different question sets" not in out
