"""The model zoo: every card valid, the paper's Table A1 and released checkpoints present, `zoo` lists them."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from tinyllava_bench.cli import main
from tinyllava_bench.errors import UserError
from tinyllava_bench.models.zoo import _read_card, card_for_checkpoint, find_card, list_cards
from tinyllava_bench.paths import PAPER_SCORES_CSV, REPO_ROOT
from tinyllava_bench.tasks.registry import paper_columns

# the card score keys: the paper columns the task YAMLs name
BENCHMARKS = paper_columns()

# the project's shared reference copy (shared/ sits beside the checkout, in CI too); the package ships its own copy,
# which must not drift from it
SHARED_PAPER_SCORES = (
    Path(os.environ.get("TINYLLAVA_BENCH_SHARED_REFERENCE", REPO_ROOT.parent / "shared" / "reference"))
    / "paper_scores.csv"
)

RELEASED = {
    "bczhou/TinyLLaVA-3.1B": ("legacy", "phi", "pad", 729),
    "bczhou/TinyLLaVA-2.0B": ("legacy", "phi", "pad", 729),
    "bczhou/TinyLLaVA-1.5B": ("legacy", "v1", "pad", 729),
    "bczhou/tiny-llava-v1-hf": ("hf_llava", "hf_llava", "square", 576),
    "tinyllava/TinyLLaVA-Phi-2-SigLIP-3.1B": ("factory", "phi", "square", 728),
    "tinyllava/TinyLLaVA-Gemma-SigLIP-2.4B": ("factory", "gemma", "square", 728),
    "jiajunlong/TinyLLaVA-OpenELM-450M-SigLIP-0.89B": ("factory", "llama", "square", 728),
    "Zhang199/TinyLLaVA-Qwen2-0.5B-SigLIP": ("factory", "qwen2_base", "square", 728),
    "Zhang199/TinyLLaVA-Qwen2.5-3B-SigLIP": ("factory", "qwen2_base", "square", 728),
}


def test_released_checkpoints_have_cards_with_spec_defaults():
    for checkpoint, expected in RELEASED.items():
        card = card_for_checkpoint(checkpoint)
        assert card is not None, checkpoint
        assert (card.layout, card.template, card.image_aspect, card.image_tokens) == expected, checkpoint


def test_table_a1_variants_carry_the_paper_scores():
    rows = [r for r in csv.DictReader(PAPER_SCORES_CSV.open()) if r["source"].startswith("paper Table A1")]
    assert len(rows) == 12
    for row in rows:
        card = find_card(row["variant"])
        assert card is not None and card.paper_variant == row["variant"]
        for bench in BENCHMARKS:
            if row[bench]:
                assert card.paper_scores[bench] == float(row[bench])
    assert find_card("tinyllava-share-sig-phi").checkpoint == "bczhou/TinyLLaVA-3.1B"


def test_zoo_command_formats(capsys):
    assert main(["zoo", "--format", "json"]) == 0
    cards = json.loads(capsys.readouterr().out)
    assert {c["name"] for c in cards} == {c.name for c in list_cards()}
    assert main(["zoo", "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("name,checkpoint,layout") and len(lines) == len(cards) + 1
    assert main(["zoo"]) == 0
    assert "TinyLLaVA-share-Sig-Phi" in capsys.readouterr().out
    assert main(["zoo", "--format", "markdown"]) == 0
    assert "| TinyLLaVA-share-Sig-Phi | bczhou/TinyLLaVA-3.1B | legacy |" in capsys.readouterr().out


def test_zoo_table_fits_a_120_column_terminal_and_names_every_card(capsys):
    assert main(["zoo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) <= 120
    header = lines[0].split()
    assert header[:5] == ["name", "llm", "vision", "recipe", "params_b"]
    assert header[5:] == ["VQAv2", "GQA", "SQA-I", "TextVQA", "MM-Vet", "POPE", "LLaVA-W", "MME"]
    rows = {line.split()[0]: line for line in lines[1 : 1 + len(list_cards())]}
    assert set(rows) == {card.name for card in list_cards()}
    # the scores sit under their headers (right-aligned), the second source's value marked and named below
    mme_end = lines[0].index("MME") + len("MME")
    assert rows["TinyLLaVA-share-Sig-Phi"][:mme_end].endswith("1464.9")
    sqa_end = lines[0].index("SQA-I") + len("SQA-I")
    assert rows["TinyLLaVA-share-Sig-TL"][:sqa_end].endswith("60.1*")
    assert rows["TinyLLaVA-share-Sig-Phi"][:sqa_end].endswith("69.1 ")
    assert "  TinyLLaVA-share-Sig-TL: scienceqa_img 60.3 (legacy README" in "\n".join(lines)
    # the hub ids the table leaves out are listed after it
    assert any(line.split()[:2] == ["TinyLLaVA-share-Sig-Phi", "bczhou/TinyLLaVA-3.1B"] for line in lines)


def test_zoo_markdown_has_every_column_and_escapes_cell_text(capsys):
    from tinyllava_bench.models import commands

    assert main(["zoo", "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| name | checkpoint | layout |") and lines[0].endswith(
        "| mme | also_reported |"
    )
    assert lines[1].startswith("| :-- | :-- |")
    assert len(lines) == 2 + len(list_cards())
    cells = [line.count(" | ") for line in lines]
    assert len(set(cells)) == 1  # every row has as many cells as the header
    row = next(line for line in lines if line.startswith("| TinyLLaVA-share-Sig-TL |"))
    assert "| 60.1 |" in row and "scienceqa_img 60.3 (legacy README" in row

    # a `|` or a line break in a card's text must not break the table
    rows = commands.zoo_rows()[:1]
    rows[0]["name"] = "odd|name\nsecond line"
    text = commands.render_markdown(rows)
    assert "| odd\\|name second line |" in text
    assert len(text.splitlines()) == 3


def _csv_rows() -> dict[str, dict[str, str]]:
    return {row["variant"]: row for row in csv.DictReader(PAPER_SCORES_CSV.open())}


def test_every_cards_reference_scores_equal_paper_scores_csv():
    rows = _csv_rows()
    checked = 0
    for card in list_cards():
        if not card.paper_scores:
            assert card.paper_variant is None, card.name
            continue
        row = rows.get(card.paper_variant)
        assert row is not None, f"{card.name}: paper_variant {card.paper_variant!r} is not a row of the csv"
        assert card.source == row["source"], card.name
        if row["checkpoint"]:
            assert card.checkpoint == row["checkpoint"], card.name
        csv_scores = {bench: float(row[bench]) for bench in BENCHMARKS if row[bench]}
        assert card.paper_scores == csv_scores, card.name
        checked += 1
    # every released or paper variant with scores in the csv has its card
    carded = {card.paper_variant for card in list_cards()}
    missing = [v for v, row in rows.items() if "(baseline)" not in v and v not in carded]
    assert not missing and checked == len(rows) - sum("(baseline)" in v for v in rows)


def test_the_packaged_paper_scores_equal_the_shared_reference():
    if not SHARED_PAPER_SCORES.is_file():
        pytest.skip(f"no shared reference at {SHARED_PAPER_SCORES} (set TINYLLAVA_BENCH_SHARED_REFERENCE)")
    assert PAPER_SCORES_CSV.read_bytes() == SHARED_PAPER_SCORES.read_bytes()


def test_disagreeing_sources_are_shown_each_with_its_source(capsys):
    card = find_card("TinyLLaVA-share-Sig-TL")
    assert card.checkpoint == "bczhou/TinyLLaVA-1.5B"
    assert card.disagreements() == {
        "scienceqa_img": [
            (60.1, "paper Table A1"),
            (60.3, "legacy README (DLCV-BUAA/TinyLLaVABench, Model Details)"),
        ]
    }
    # only that card's sources disagree
    assert [c.name for c in list_cards() if c.disagreements()] == ["TinyLLaVA-share-Sig-TL"]
    assert main(["zoo", "--format", "csv"]) == 0
    rows = {row["name"]: row for row in csv.DictReader(capsys.readouterr().out.splitlines())}
    assert rows["TinyLLaVA-share-Sig-TL"]["scienceqa_img"] == "60.1"
    assert rows["TinyLLaVA-share-Sig-TL"]["also_reported"] == (
        "scienceqa_img 60.3 (legacy README (DLCV-BUAA/TinyLLaVABench, Model Details))"
    )
    assert rows["TinyLLaVA-share-Sig-Phi"]["also_reported"] == ""


def test_a_card_score_for_an_unknown_benchmark_is_named(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "name: bad\nllm: x\nllm_family: llama\nvision: v\ntemplate: v1\nimage_aspect: pad\nimage_tokens: 1\n"
        "paper_scores: {sqa: 60.1}\n"
    )
    with pytest.raises(UserError, match="unknown benchmark"):
        _read_card(path)
