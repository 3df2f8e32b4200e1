"""How a stage runs on the machine: batch size and accumulation, the DeepSpeed config, the process rank, and
activation checkpointing."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.train.recipes import StageRecipe

logger = logging.getLogger("tinyllava_bench.train")

DEEPSPEED_DIR = Path(__file__).resolve().parent / "deepspeed"


@dataclass
class BatchSettings:
    per_device: int
    grad_accum: int
    world_size: int

    @property
    def global_batch(self) -> int:
        return self.per_device * self.grad_accum * self.world_size


def batch_settings(
    stage: StageRecipe, per_device: int | None, grad_accum: int | None, world_size: int, quiet: bool = False
) -> BatchSettings:
    """Per-device batch and accumulation that reach the recipe's global batch (or what the user set)."""
    per_device = per_device or max(1, min(stage.per_device_batch_size, stage.global_batch_size // world_size))
    grad_accum = grad_accum or max(1, round(stage.global_batch_size / (per_device * world_size)))
    settings = BatchSettings(per_device, grad_accum, world_size)
    if settings.global_batch != stage.global_batch_size and not quiet:
        logger.warning(
            "stage %s: global batch %d (%d per device x %d accumulation x %d processes) differs from the recipe's %d",
            stage.name,
            settings.global_batch,
            per_device,
            grad_accum,
            world_size,
            stage.global_batch_size,
        )
    return settings


def deepspeed_config(choice: str | None, stage: StageRecipe) -> str | None:
    """The DeepSpeed JSON for `choice` (zero2 | zero3 | auto = the stage's | a file); checks DeepSpeed is there."""
    if choice is None:
        return None
    if importlib.util.find_spec("deepspeed") is None:
        raise UserError(
            f"--deepspeed {choice} needs DeepSpeed, which is not installed: `DS_BUILD_OPS=0 pip install deepspeed`, "
            "or train without --deepspeed"
        )
    name = stage.deepspeed if choice == "auto" else choice
    if name in ("zero2", "zero3"):
        return str(DEEPSPEED_DIR / f"{name}.json")
    path = Path(name).expanduser()
    if not path.is_file():
        raise UserError(
            f"--deepspeed {choice}: use zero2, zero3, auto or the path of a DeepSpeed JSON config"
        )
    return str(path)


def uses_zero3(config_path: str | None) -> bool:
    if not config_path:
        return False
    try:
        return json.loads(Path(config_path).read_text()).get("zero_optimization", {}).get("stage") == 3
    except ValueError as exc:
        raise UserError(f"{config_path}: not valid JSON ({exc})") from None


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def enable_activation_checkpointing(model: TinyLlava, stage: StageRecipe) -> None:
    """Recompute activations in the backward pass of the LLM (and of the vision tower when it trains)."""
    kwargs = {"use_reentrant": False}
    targets = [model.language_model] + ([model.vision_tower.model] if stage.vision.trains else [])
    for target in targets:
        enable = getattr(target, "activation_checkpointing_enable", None)
        if enable is not None:
            enable(activation_checkpointing_kwargs=kwargs)
        else:
            target.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
