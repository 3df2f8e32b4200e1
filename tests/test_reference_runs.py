"""The committed reference runs under results/reference stay readable by report, leaderboard and regress."""

from __future__ import annotations

import csv

from tinyllava_bench.cli import main
from tinyllava_bench.paths import REPO_ROOT

REFERENCE = REPO_ROOT / "results" / "reference"


def test_reference_runs_report_as_the_demo_ablation(tmp_path, capsys):
    out = tmp_path / "table.csv"
    assert main(["report", str(REFERENCE), "--group-by", "recipe", "--format", "csv", "--out", str(out)]) == 0
    rows = list(csv.reader(out.read_text().splitlines()))
    assert [row[0] for row in rows[1:3]] == ["demo-base", "demo-share"]
    board = tmp_path / "board.csv"
    assert main(["leaderboard", str(REFERENCE), "--out", str(board)]) == 0
    assert main(["leaderboard", str(REFERENCE), "--out", str(board), "--append"]) == 0
    assert len(list(csv.DictReader(board.open()))) == 2


def test_share_is_no_regression_against_base_but_base_is_one_against_share(capsys):
    base, share = REFERENCE / "demo" / "demo-base", REFERENCE / "demo" / "demo-share"
    assert main(["regress", "--baseline", str(base), "--current", str(share)]) == 0
    # GQA falls from 45.6 to 31.1 the other way round: McNemar finds it significant
    assert main(["regress", "--baseline", str(share), "--current", str(base)]) == 1
    assert "gqa" in capsys.readouterr().out
