"""Build a TinyLlava from a layout's parts and load its weights strictly, accounting for every key."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

import torch

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.connectors import build_connector
from tinyllava_bench.models.llm import build_language_model
from tinyllava_bench.models.preprocess import ImagePreprocessor
from tinyllava_bench.models.tinyllava import ModelSettings, TinyLlava
from tinyllava_bench.models.vision import VisionTower, layers_needed

VISION_PREFIX = "vision_tower.model."
LLM_PREFIX = "language_model."
CONNECTOR_PREFIX = "connector."

# Checkpoint tensors the model does not use, by design: layers past the feature layer, the SigLIP pooling head,
# and buffers that transformers recomputes.
_UNUSED = (
    re.compile(r"^vision_tower\.model\.head\."),
    re.compile(r"\.rotary_emb\.inv_freq$"),
    re.compile(r"^vision_tower\.model\.embeddings\.position_ids$"),
)
_VISION_LAYER = re.compile(r"^vision_tower\.model\.encoder\.layers\.(\d+)\.")
# Model tensors a checkpoint may lack: the vision post-layernorm, never on the feature path.
_OPTIONAL = (re.compile(r"^vision_tower\.model\.post_layernorm\."),)
LM_HEAD_BIAS = (
    r"^language_model\.lm_head\.bias$"  # legacy Phi and Llava heads have none: zero is what they computed
)


@dataclass
class CheckpointParts:
    """Everything a layout reader found, in this project's naming (see the *_PREFIX constants)."""

    layout: str
    source: str
    name: str
    text_config: Any
    vision_config: Any  # of the full tower; the model keeps only the layers up to the feature layer
    settings: ModelSettings
    state: dict[str, torch.Tensor]
    tokenizer: Any
    preprocessor: ImagePreprocessor
    connector_kwargs: dict[str, Any] = field(default_factory=dict)
    vocab_limit: int | None = None  # legacy code resized the LM to len(tokenizer)
    optional_keys: tuple[str, ...] = ()  # regexes of model tensors this layout may lack (filled with 0 / 1)


def build_model(parts: CheckpointParts, device: str = "cpu", dtype: torch.dtype | None = None) -> TinyLlava:
    """The model of `parts` with its weights, on `device` in `dtype` (float32 when None)."""
    from accelerate import init_empty_weights

    dtype = dtype or torch.float32
    settings = parts.settings
    vision_config = copy.deepcopy(parts.vision_config)
    keep = layers_needed(vision_config.num_hidden_layers, settings.vision_layer)
    vision_config.num_hidden_layers = keep
    with init_empty_weights(include_buffers=False):
        tower = VisionTower(vision_config, select=settings.vision_select)
        llm = build_language_model(parts.text_config)
        connector = build_connector(
            settings.connector, vision_config.hidden_size, llm.config.hidden_size, **parts.connector_kwargs
        )
    settings = copy.deepcopy(settings)
    settings.vision_layer = -1  # the kept tower ends at the feature layer
    settings.extra.setdefault("vision_layers_total", parts.vision_config.num_hidden_layers)
    model = TinyLlava(
        tower, connector, llm, parts.tokenizer, parts.preprocessor, settings, parts.name, parts.source
    )
    optional = _OPTIONAL + tuple(re.compile(p) for p in parts.optional_keys)
    _load_strict(model, parts.state, keep, dtype, parts.source, optional)
    tied = bool(getattr(parts.text_config, "tie_word_embeddings", False))
    if tied:
        llm.tie_weights()
    if parts.vocab_limit and parts.vocab_limit < llm.get_input_embeddings().weight.shape[0]:
        llm.resize_token_embeddings(parts.vocab_limit, mean_resizing=False)
    # Rotary frequencies stay float32, as transformers' from_pretrained and the original TinyLLaVA code leave
    # them: cast to bf16, cos/sin of position ~800 (729 image tokens + text) were off by up to 0.14.
    rotary = {name: buffer for name, buffer in model.named_buffers() if name.endswith("inv_freq")}
    model.to(device=device, dtype=dtype)
    for name, buffer in rotary.items():
        owner, _, attribute = name.rpartition(".")
        setattr(model.get_submodule(owner), attribute, buffer.to(device=device))  # still float32
    model.eval()
    return model


def _load_strict(
    model: TinyLlava,
    state: dict[str, torch.Tensor],
    keep: int,
    dtype: torch.dtype,
    source: str,
    optional: tuple[re.Pattern, ...],
) -> None:
    expected = model.state_dict()
    tied = bool(getattr(model.language_model.config, "tie_word_embeddings", False))
    unexpected = [k for k in state if k not in expected and not _unused(k, keep)]
    missing = [
        k
        for k in expected
        if k not in state
        and not any(p.search(k) for p in optional)
        and not (tied and k == "language_model.lm_head.weight")
    ]
    if missing:
        raise UserError(
            f"{source}: the checkpoint lacks {len(missing)} weight(s) the model needs, e.g. {_sample(missing)}; "
            "the weight files are incomplete or do not match config.json"
        )
    if unexpected:
        raise UserError(
            f"{source}: the checkpoint has {len(unexpected)} weight(s) this model has no place for, e.g. "
            f"{_sample(unexpected)}; config.json does not describe these weights"
        )
    shapes = [(k, tuple(state[k].shape), tuple(v.shape)) for k, v in expected.items() if k in state]
    wrong = [f"{k} {got} vs {want}" for k, got, want in shapes if got != want]
    if wrong:
        raise UserError(f"{source}: weight shapes do not match config.json: {_sample(wrong)}")
    to_load = {k: state[k].to(dtype) for k in expected if k in state}
    for key, tensor in expected.items():
        if key not in to_load and any(p.search(key) for p in optional):
            fill = torch.ones if key.endswith("weight") else torch.zeros
            to_load[key] = fill(tensor.shape, dtype=dtype)
    model.load_state_dict(to_load, strict=False, assign=True)


def _unused(key: str, keep: int) -> bool:
    layer = _VISION_LAYER.match(key)
    if layer:
        return int(layer.group(1)) >= keep
    return any(p.search(key) for p in _UNUSED)


def _sample(keys: list[str], n: int = 3) -> str:
    more = f" (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def export_state(model: TinyLlava) -> dict[str, torch.Tensor]:
    """The model's tensors in this project's naming (tied lm_head left out)."""
    state = dict(model.state_dict())
    if getattr(model.language_model.config, "tie_word_embeddings", False):
        state.pop("language_model.lm_head.weight", None)
    return state
