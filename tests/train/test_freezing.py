"""Which parameters a tune setting trains, and the optimizer's per-module groups."""

from __future__ import annotations

import pytest
import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.testing.models import build_tiny_model
from tinyllava_bench.train.freezing import apply_tuning, module_of, parameter_groups, trainable_counts
from tinyllava_bench.train.recipes import Tune

FROZEN, FULL = Tune("frozen"), Tune("full")


def _trainable(model):
    return {name for name, p in model.named_parameters() if p.requires_grad}


def _model(vision="siglip"):
    # 4-layer tower, feature layer -2: the model keeps 3 encoder layers
    model = build_tiny_model("phi", vision)
    assert len(model.vision_tower.model.encoder.layers) >= 2
    return model


def test_connector_only():
    model = _model()
    apply_tuning(model, {"vision": FROZEN, "connector": FULL, "llm": FROZEN})
    assert _trainable(model) == {n for n, _ in model.connector.named_parameters(prefix="connector")}


def test_llm_and_connector():
    model = _model()
    apply_tuning(model, {"vision": FROZEN, "connector": FULL, "llm": FULL})
    names = _trainable(model)
    assert all(n.startswith(("connector.", "language_model.")) for n in names)
    assert {n for n, _ in model.language_model.named_parameters(prefix="language_model")} <= names


@pytest.mark.parametrize("vision", ["siglip", "clip"])
def test_partial_vision_trains_upper_layers_only(vision):
    model = _model(vision)
    layers = len(model.vision_tower.model.encoder.layers)
    apply_tuning(model, {"vision": Tune("partial", from_layer=1), "connector": FULL, "llm": FULL})
    vision_names = {n for n in _trainable(model) if n.startswith("vision_tower.")}
    expected = {
        n
        for n, _ in model.vision_tower.named_parameters(prefix="vision_tower")
        if any(f"encoder.layers.{i}." in n for i in range(1, layers))
    }
    assert vision_names == expected and expected


def test_full_vision_leaves_off_path_tensors_frozen():
    model = _model("clip")
    apply_tuning(model, {"vision": FULL, "connector": FROZEN, "llm": FROZEN})
    names = _trainable(model)
    assert not any("post_layernorm" in n for n in names)  # never on the feature path
    assert any("pre_layrnorm" in n for n in names) and any("embeddings" in n for n in names)


def test_partial_llm():
    model = _model()
    apply_tuning(model, {"vision": FROZEN, "connector": FROZEN, "llm": Tune("partial", from_layer=1)})
    names = _trainable(model)
    assert any(".layers.1." in n for n in names) and not any(".layers.0." in n for n in names)
    assert "language_model.lm_head.weight" in names
    assert not any("embed_tokens" in n for n in names)


def test_bad_tunes():
    with pytest.raises(UserError, match="only"):
        apply_tuning(_model(), {"vision": Tune("partial", from_layer=9), "connector": FULL, "llm": FULL})
    with pytest.raises(UserError, match="connector"):
        apply_tuning(_model(), {"vision": FROZEN, "connector": Tune("partial", from_layer=0), "llm": FULL})
    with pytest.raises(UserError, match="llm only"):
        apply_tuning(_model(), {"vision": Tune("lora"), "connector": FULL, "llm": FULL})


def test_lora_trains_adapters_only():
    pytest.importorskip("peft")
    model = _model()
    apply_tuning(model, {"vision": FROZEN, "connector": FULL, "llm": Tune("lora", r=4, alpha=8)})
    llm_names = {n for n in _trainable(model) if n.startswith("language_model.")}
    assert llm_names and all("lora_" in n for n in llm_names)
    assert not any("lm_head" in n for n in llm_names)
    counts = trainable_counts(model)
    assert 0 < counts["llm"]["trainable"] < counts["llm"]["total"]


def test_parameter_groups_carry_module_learning_rates():
    model = _model()
    apply_tuning(model, {"vision": Tune("partial", from_layer=1), "connector": FULL, "llm": FULL})
    decay = {n for n, p in model.named_parameters() if p.dim() >= 2}
    groups = parameter_groups(
        model.named_parameters(), {"vision": 1e-5, "connector": 1e-3, "llm": 2e-5}, 0.1, decay
    )
    by_name = {g["name"]: g for g in groups}
    assert set(by_name) == {
        "connector",
        "connector_no_decay",
        "llm",
        "llm_no_decay",
        "vision",
        "vision_no_decay",
    }
    assert by_name["connector"]["lr"] == 1e-3 and by_name["vision_no_decay"]["lr"] == 1e-5
    assert by_name["llm"]["weight_decay"] == 0.1 and by_name["llm_no_decay"]["weight_decay"] == 0.0
    grouped = sum(len(g["params"]) for g in groups)
    assert grouped == sum(1 for p in model.parameters() if p.requires_grad)
    torch.optim.AdamW(groups)  # a valid optimizer spec


def test_module_of():
    assert module_of("model.vision_tower.model.encoder.layers.0.mlp.fc1.weight") == "vision"
    assert module_of("connector.0.weight") == "connector"
    assert (
        module_of("model.language_model.base_model.model.model.layers.0.q_proj.lora_A.default.weight")
        == "llm"
    )
    assert module_of("other.weight") is None
