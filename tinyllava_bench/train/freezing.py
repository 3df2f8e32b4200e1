"""Which parameters train in a stage: frozen / full / partial(from_layer) / LoRA per module, and the optimizer's
parameter groups with a learning rate per module.

Tensors that are never on the path from pixels to loss (the vision tower's post-layernorm, past the feature layer)
always stay frozen: they would get no gradient, and under DDP an unused trainable parameter is an error.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from torch import nn

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.train.recipes import MODULES, Tune

MODULE_ATTRIBUTES = {"vision": "vision_tower", "connector": "connector", "llm": "language_model"}
_VISION_OFF_PATH = re.compile(r"(^|\.)(post_layernorm|head)\.")
_LAYER = re.compile(r"(?:^|\.)layers\.(\d+)\.")


def module_of(name: str) -> str | None:
    """The module (vision, connector, llm) a TinyLlava parameter name belongs to; wrapper prefixes allowed."""
    for module, attribute in MODULE_ATTRIBUTES.items():
        if name.startswith(attribute + ".") or f".{attribute}." in name:
            return module
    return None


def layer_index(name: str) -> int | None:
    match = _LAYER.search(name)
    return int(match.group(1)) if match else None


def count_layers(module: nn.Module) -> int:
    indices = {layer_index(name) for name, _ in module.named_parameters()}
    return max((i for i in indices if i is not None), default=-1) + 1


def apply_tuning(model: TinyLlava, tunes: dict[str, Tune]) -> None:
    """Set `requires_grad` on every parameter of `model` as `tunes` says; LoRA adapters are added to the LLM."""
    model.requires_grad_(False)
    for module in MODULES:
        tune = tunes[module]
        target = getattr(model, MODULE_ATTRIBUTES[module])
        if tune.kind == "lora":
            if module != "llm":
                raise UserError(f"LoRA is supported for the llm only, not the {module}; use full or partial")
            model.language_model = add_lora(model.language_model, tune)
            continue
        if tune.kind == "partial":
            if module == "connector":
                raise UserError("the connector has no layers to tune partially; use full or frozen")
            layers = count_layers(target)
            if tune.first_layer >= layers:
                raise UserError(
                    f"partial({tune.from_layer}) for the {module}: it has only {layers} layers"
                    + (" up to its feature layer" if module == "vision" else "")
                )
        for name, parameter in target.named_parameters():
            parameter.requires_grad_(_trains(module, name, tune))


def _trains(module: str, name: str, tune: Tune) -> bool:
    if tune.kind == "frozen":
        return False
    if module == "vision" and _VISION_OFF_PATH.search(name):
        return False
    if tune.kind == "partial":
        index = layer_index(name)
        if module == "vision":
            return index is not None and index >= tune.first_layer
        # LLM: decoder layers >= from_layer, plus the final norm and the output head
        return index >= tune.first_layer if index is not None else not _is_input_embedding(name)
    return True


def _is_input_embedding(name: str) -> bool:
    return "embed_tokens" in name or name.endswith("wte.weight")


def add_lora(language_model: Any, tune: Tune) -> Any:
    """The LLM with LoRA adapters on every linear layer but the output head (TinyLLaVA_Factory's targets)."""
    try:
        from peft import LoraConfig, get_peft_model
    except ImportError:
        raise UserError("LoRA tuning needs the peft package: pip install peft") from None
    head = language_model.get_output_embeddings()
    targets = sorted(
        {
            name.rsplit(".", 1)[-1]
            for name, layer in language_model.named_modules()
            if isinstance(layer, nn.Linear) and layer is not head
        }
    )
    config = LoraConfig(
        r=tune.r,
        lora_alpha=tune.alpha,
        lora_dropout=tune.dropout,
        target_modules=targets,
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(language_model, config)


def merge_lora(model: TinyLlava) -> None:
    """Fold LoRA adapters into the LLM's weights, so the saved model is a plain one that evaluates as is."""
    if hasattr(model.language_model, "merge_and_unload"):
        model.language_model = model.language_model.merge_and_unload()


def trainable_counts(model: nn.Module) -> dict[str, dict[str, int]]:
    """Per module: trainable and total parameter counts (tied tensors counted once)."""
    counts = {m: {"trainable": 0, "total": 0} for m in MODULES}
    seen: set[int] = set()
    for name, parameter in model.named_parameters(remove_duplicate=False):
        module = module_of(name)
        if module is None or id(parameter) in seen:
            continue
        seen.add(id(parameter))
        counts[module]["total"] += parameter.numel()
        if parameter.requires_grad:
            counts[module]["trainable"] += parameter.numel()
    return counts


def parameter_groups(
    named_parameters: Iterable[tuple[str, nn.Parameter]],
    learning_rates: dict[str, float],
    weight_decay: float,
    decay_names: set[str],
) -> list[dict[str, Any]]:
    """Optimizer groups: per module, with and without weight decay (biases and norms never decay)."""
    groups: dict[tuple[str, bool], list[nn.Parameter]] = {}
    for name, parameter in named_parameters:
        if not parameter.requires_grad:
            continue
        module = module_of(name)
        if module is None:
            raise UserError(f"parameter {name} belongs to no known module; cannot choose its learning rate")
        groups.setdefault((module, name in decay_names), []).append(parameter)
    return [
        {
            "params": params,
            "lr": learning_rates[module],
            "weight_decay": weight_decay if decays else 0.0,
            "name": f"{module}{'' if decays else '_no_decay'}",
        }
        for (module, decays), params in sorted(groups.items())
    ]
