"""The model zoo: every card valid, the paper's Table A1 and released checkpoints present, `zoo` lists them."""

from __future__ import annotations

import csv
import json

from tinyllava_bench.cli import main
from tinyllava_bench.models.zoo import BENCHMARKS, card_for_checkpoint, find_card, list_cards
from tinyllava_bench.paths import PAPER_SCORES_CSV

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
