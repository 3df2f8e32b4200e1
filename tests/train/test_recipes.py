"""Recipes as data (the paper's and Factory's numbers), tune-setting parsing, and plans resolved from model cards."""

from __future__ import annotations

import pytest

from tinyllava_bench.errors import UserError
from tinyllava_bench.train.init import UNTUNED_TOWERS, vision_select_for
from tinyllava_bench.train.plan import RunOptions, build_plan
from tinyllava_bench.train.recipes import (
    RECIPES,
    Tune,
    customise_recipe,
    default_max_length,
    get_recipe,
    override_stage,
    parse_tune,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("frozen", Tune("frozen")),
        ("full", Tune("full")),
        ("partial(12)", Tune("partial", from_layer=12)),
        ("partial(from_layer=3)", Tune("partial", from_layer=3)),
        ("lora", Tune("lora", r=64, alpha=16, dropout=0.05)),
        ("lora(r=128, alpha=256)", Tune("lora", r=128, alpha=256, dropout=0.05)),
        ("lora(r=8, alpha=16, dropout=0.1)", Tune("lora", r=8, alpha=16, dropout=0.1)),
        ({"kind": "partial", "from_layer": 1}, Tune("partial", from_layer=1)),
    ],
)
def test_parse_tune(text, expected):
    assert parse_tune(text) == expected


@pytest.mark.parametrize(
    "text", ["half", "partial", "partial(x)", "lora(rank=4)", "partial(-1)", {"kind": "x"}]
)
def test_parse_tune_rejects(text):
    with pytest.raises(UserError):
        parse_tune(text)


def test_describe_round_trips():
    for text in ("frozen", "full", "partial(12)", "lora(r=128, alpha=256, dropout=0.05)"):
        assert parse_tune(text).describe() == text
        assert parse_tune(parse_tune(text).describe()) == parse_tune(text)


def test_base_recipe_is_the_papers():
    pretrain, finetune = get_recipe("base").stages
    assert (pretrain.name, pretrain.template, pretrain.data) == ("pretrain", "pretrain", "pretrain")
    assert (pretrain.vision.kind, pretrain.connector.kind, pretrain.llm.kind) == ("frozen", "full", "frozen")
    assert (pretrain.learning_rate, pretrain.global_batch_size) == (1e-3, 256)
    assert (finetune.vision.kind, finetune.connector.kind, finetune.llm.kind) == ("frozen", "full", "full")
    assert (finetune.learning_rate, finetune.global_batch_size, finetune.template) == (2e-5, 128, "model")
    assert finetune.group_by_modality and not pretrain.group_by_modality
    for stage in (pretrain, finetune):
        assert (stage.lr_scheduler, stage.warmup_ratio, stage.weight_decay, stage.epochs) == (
            "cosine",
            0.03,
            0.0,
            1.0,
        )
    assert get_recipe("base").model_max_length == 3072


def test_share_recipes():
    share = get_recipe("share")
    assert share.stage_names == ["pretrain", "share-pretrain", "finetune"]
    assert share.stages[0] == get_recipe("base").stages[0]  # starts from the base-pretrained connector
    second = share.stage("share-pretrain")
    assert second.vision == Tune("partial", from_layer=12)
    assert (second.connector.kind, second.llm.kind, second.learning_rate, second.global_batch_size) == (
        "full",
        "full",
        2e-5,
        256,
    )
    assert second.template == "pretrain"
    assert share.stage("finetune") == get_recipe("base").stage("finetune")
    factory = get_recipe("share-factory")
    assert factory.stage("share-pretrain").vision.kind == "frozen"
    assert factory.stage("share-pretrain").llm.kind == "full"


def test_lora_recipe_follows_factory_script():
    finetune = get_recipe("base-lora").stage("finetune")
    assert finetune.llm == Tune("lora", r=128, alpha=256, dropout=0.05)
    assert finetune.learning_rate == 2e-4 and finetune.connector.kind == "full"


def test_overrides():
    stage = override_stage(
        get_recipe("share").stage("share-pretrain"),
        {
            "vision": "partial(1)",
            "learning_rate": "1e-4",
            "module_lr": {"connector": 1e-3},
            "global_batch_size": 8,
        },
    )
    assert stage.vision == Tune("partial", from_layer=1)
    assert (
        stage.lr_for("connector") == 1e-3 and stage.lr_for("llm") == 1e-4 and stage.lr_for("vision") == 1e-4
    )
    assert stage.global_batch_size == 8
    for bad in (
        {"lerning_rate": 1},
        {"module_lr": {"head": 1}},
        {"learning_rate": "fast"},
        {"template": "chat"},
    ):
        with pytest.raises(UserError):
            override_stage(stage, bad)
    with pytest.raises(UserError, match="no stage"):
        customise_recipe(get_recipe("base"), {"share-pretrain": {}})
    assert customise_recipe(get_recipe("base"), None, 512).model_max_length == 512


def test_unknown_recipe():
    with pytest.raises(UserError, match="share-factory"):
        get_recipe("sharing")
    assert set(RECIPES) == {"base", "share", "share-factory", "base-lora"}


def test_default_max_length():
    assert default_max_length("TinyLLaVA-base-Sig-Phi", "base") == 3072
    assert default_max_length("Factory-Phi2-Sig-base", "base") == 2048
    assert default_max_length("Factory-Phi2-Sig-share", "share-factory") == 3072
    assert default_max_length("Factory-Phi2-Sig-base-lora", "base-lora") == 3072


def _plan(tmp_path, variant=None, config=None, **options):
    return build_plan(variant, config, RunOptions(output=tmp_path / "out", data_root=tmp_path, **options))


def test_plan_from_legacy_variant(tmp_path):
    plan = _plan(tmp_path, "TinyLLaVA-share-Sig-Phi")
    assert plan.recipe.name == "share" and plan.stages == ["pretrain", "share-pretrain", "finetune"]
    assert plan.model.llm == "microsoft/phi-2" and plan.model.template == "phi"
    assert plan.model.image_aspect == "pad" and plan.model.image_tokens == 729
    assert plan.recipe.model_max_length == 3072 and not plan.model.strip_question
    # the card names the released *tuned* tower; training starts from the one it was tuned from
    assert UNTUNED_TOWERS[plan.model.vision] == "google/siglip-so400m-patch14-384"
    assert plan.options.seed == 42


def test_plan_from_factory_variants(tmp_path):
    base = _plan(tmp_path, "Factory-Phi2-Sig-base")
    assert base.recipe.name == "base" and base.recipe.model_max_length == 2048
    assert (
        base.model.image_aspect == "square" and base.model.image_tokens == 728 and base.model.strip_question
    )
    share = _plan(tmp_path, "Factory-Phi2-Sig-share")
    assert share.recipe.name == "share-factory" and share.recipe.model_max_length == 3072
    tinyllama = _plan(tmp_path, "TinyLLaVA-base-C-TL")
    assert tinyllama.model.template == "v1" and tinyllama.model.image_tokens == 576


def test_vision_select_from_image_tokens():
    from transformers import CLIPVisionConfig, SiglipVisionConfig

    siglip = SiglipVisionConfig(image_size=384, patch_size=14)
    assert vision_select_for(siglip, 729) == "full"
    assert vision_select_for(siglip, 728) == "patch"
    assert vision_select_for(CLIPVisionConfig(image_size=336, patch_size=14), 576) == "patch"


def test_plan_config_overrides_variant(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(
        "variant: TinyLLaVA-share-Sig-Phi\nllm: ./llm\nmodel_max_length: 512\nseed: 7\n"
        "stage_overrides:\n  share-pretrain: {vision: partial(1)}\n"
        "data:\n  finetune: {json: ft.json, images: imgs}\n"
    )
    (tmp_path / "llm").mkdir()  # a local model path must exist (it would be taken for a malformed hub id)
    plan = _plan(tmp_path, config=config, stages=["share-pretrain", "finetune"])
    assert plan.model.llm == str((tmp_path / "llm").resolve())  # relative to the config file
    assert plan.model.template == "phi" and plan.recipe.model_max_length == 512
    assert plan.recipe.stage("share-pretrain").vision == Tune("partial", from_layer=1)
    assert plan.options.seed == 7
    assert plan.data_paths("finetune", "finetune") == (tmp_path / "ft.json", tmp_path / "imgs")
    assert plan.data_paths("share-pretrain", "share-pretrain") == (
        tmp_path / "share-pretrain.json",
        tmp_path / "images",
    )
    assert _plan(tmp_path, config=config, seed=3).options.seed == 3  # the command line wins
    assert _plan(tmp_path, config=config, model_max_length=99).recipe.stage("finetune").model_max_length == 99


@pytest.mark.parametrize(
    ("variant", "options", "message"),
    [
        ("No-Such-Variant", {}, "unknown variant"),
        ("TinyLLaVA-base-Sig-Phi", {"stages": ["share-pretrain"]}, "has stages"),
        ("TinyLLaVA-share-Sig-Phi", {"stages": ["finetune", "pretrain"]}, "recipe order"),
        ("TinyLLaVA-base-Sig-Phi", {"precision": "fp8"}, "precision"),
        ("TinyLLaVA-base-Sig-Phi", {"max_steps": 0}, "--max-steps"),
    ],
)
def test_plan_errors(tmp_path, variant, options, message):
    with pytest.raises(UserError, match=message):
        _plan(tmp_path, variant, **options)


def test_config_errors(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("llm: x\nvision: y\n")
    with pytest.raises(UserError, match="template"):
        _plan(tmp_path, config=config)
    config.write_text("llm: x\nvision: y\ntemplate: phi\nlearning_rate: 1\n")
    with pytest.raises(UserError, match="unknown key"):
        _plan(tmp_path, config=config)
    with pytest.raises(UserError, match="no such config"):
        _plan(tmp_path, config=tmp_path / "missing.yaml")


def test_stage_image_aspect_and_deepspeed_follow_each_recipes_scripts(tmp_path):
    # the paper's scripts: pretrain.sh sets no aspect (square) on ZeRO-2, finetune.sh pad on ZeRO-3
    paper = _plan(tmp_path, "TinyLLaVA-share-Sig-Phi").recipe
    assert [s.image_aspect for s in paper.stages] == ["square", "square", None]  # None: the card's pad
    assert [s.deepspeed for s in paper.stages] == ["zero2", "zero3", "zero3"] and paper.source == "paper"
    # TinyLLaVA_Factory's scripts: square throughout (the card's), ZeRO-3 for every full-tuning stage
    for variant in ("Factory-Phi2-Sig-base", "Factory-Phi2-Sig-share", "Factory-Qwen2-0.5B-Sig-base"):
        factory = _plan(tmp_path, variant)
        assert factory.recipe.source == "factory" and factory.model.image_aspect == "square"
        assert all(s.deepspeed == "zero3" for s in factory.recipe.stages)
        assert factory.recipe.stage("pretrain").image_aspect == "square"
    lora = _plan(tmp_path, "Factory-Phi2-Sig-base-lora").recipe
    assert [s.deepspeed for s in lora.stages] == ["zero3", "zero2"]
    assert override_stage(paper.stage("pretrain"), {"image_aspect": "pad"}).image_aspect == "pad"
    with pytest.raises(UserError, match="image_aspect"):
        override_stage(paper.stage("pretrain"), {"image_aspect": "stretch"})


def test_precision_and_checkpointing_default_to_the_originals_on_a_gpu(tmp_path, monkeypatch):
    import torch

    from tinyllava_bench.train.plan import ModelSpec, default_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert _plan(tmp_path, "TinyLLaVA-base-Sig-Phi").options.precision == "fp32"  # CPU: full precision
    assert _plan(tmp_path, "TinyLLaVA-base-Sig-Phi").options.gradient_checkpointing is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    phi = _plan(tmp_path, "TinyLLaVA-base-Sig-Phi").options
    assert (phi.precision, phi.gradient_checkpointing) == ("fp16", True)
    assert _plan(tmp_path, "Factory-Qwen2-0.5B-Sig-base").options.precision == "bf16"
    assert _plan(tmp_path, "Factory-Phi2-Sig-base-lora").options.precision == "fp16"
    explicit = build_plan(
        "TinyLLaVA-base-Sig-Phi",
        None,
        RunOptions(output=tmp_path / "o", precision="fp32", gradient_checkpointing=False),
    ).options
    assert (explicit.precision, explicit.gradient_checkpointing) == ("fp32", False)
    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.json").write_text('{"model_type": "qwen2"}')
    assert (
        default_precision(ModelSpec(llm=str(tmp_path / "qwen"), vision="v", template="qwen2_base")) == "bf16"
    )
    assert default_precision(ModelSpec(llm="microsoft/phi-2", vision="v", template="phi")) == "fp16"


def test_a_plan_never_turns_remote_code_on_by_itself(tmp_path):
    # OpenELM's code lives in its hub repository: the card alone must not run it
    with pytest.raises(UserError, match="trust_remote_code: true"):
        _plan(tmp_path, "Factory-OpenELM-450M-Sig-base")
    config = tmp_path / "c.yaml"
    config.write_text('variant: Factory-OpenELM-450M-Sig-base\ntrust_remote_code: "false"\n')
    with pytest.raises(UserError, match="must be the boolean true or false"):
        _plan(tmp_path, config=config)
    config.write_text("variant: Factory-OpenELM-450M-Sig-base\ntrust_remote_code: true\n")
    assert _plan(tmp_path, config=config).model.trust_remote_code is True
