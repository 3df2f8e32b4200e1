"""Where a stage's data comes from: the config's `data:` entry, else --data-root; neither is one clear error."""

from __future__ import annotations

import pytest

from tinyllava_bench.errors import UserError
from tinyllava_bench.train.plan import RunOptions, build_plan


def test_a_stage_without_data_root_needs_both_files_in_the_config(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "variant: TinyLLaVA-base-Sig-Phi\n"
        "data:\n  finetune: {json: ft.json, images: imgs}\n  pretrain: {json: pt.json}\n"
    )
    plan = build_plan(None, config, RunOptions(output=tmp_path / "out"))
    assert plan.data_paths("finetune", "finetune") == (tmp_path / "ft.json", tmp_path / "imgs")
    with pytest.raises(UserError, match="stage 'pretrain' has no data: pass --data-root DIR"):
        plan.data_paths("pretrain", "pretrain")


def test_a_built_plan_always_has_a_seed(tmp_path):
    assert build_plan("TinyLLaVA-base-Sig-Phi", None, RunOptions(output=tmp_path / "o")).seed == 42
    assert build_plan("TinyLLaVA-base-Sig-Phi", None, RunOptions(output=tmp_path / "o", seed=5)).seed == 5
