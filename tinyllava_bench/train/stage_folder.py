"""A stage's output folder: training.json (the start record, then the full record that marks the stage complete),
the checkpoints to resume from, and the saving of the stage's model in the native layout.

Layout: `OUTPUT/<stage>/` holds the model (`load_model` reads it), `training.json` (written last), and while the
stage runs `checkpoints/checkpoint-N/` and the tokenised data cache `tokenized/`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from torch import nn
from transformers import Trainer

from tinyllava_bench import __version__
from tinyllava_bench.json_files import write_json_atomic
from tinyllava_bench.models.layouts.native import save_native
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.threads import threads_record
from tinyllava_bench.train.dataset import ConversationDataset
from tinyllava_bench.train.freezing import merge_lora
from tinyllava_bench.train.plan import TrainingPlan
from tinyllava_bench.train.recipes import StageRecipe
from tinyllava_bench.train.resume import (
    checkpoint_step,
    usable_checkpoint,
    whole_stage_loss,
)
from tinyllava_bench.train.run_settings import BatchSettings

logger = logging.getLogger("tinyllava_bench.train")

TRAINING_RECORD = "training.json"


CHECKPOINTS = "checkpoints"


TOKENIZED = "tokenized"


TRAINABLE_WEIGHTS = "trainable.safetensors"


RECORD_VERSION = 1


# what `train --dry-run` leaves in a stage folder: not a run, so the real run may start there
DRY_RUN_FILES = ("examples.jsonl", "examples.txt")


def read_record(stage_dir: Path) -> dict[str, Any] | None:
    path = Path(stage_dir) / TRAINING_RECORD
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError:
        return None


def is_complete(stage_dir: Path) -> bool:
    record = read_record(stage_dir)
    return bool(record and record.get("status") == "complete")


def holds_progress(stage_dir: Path) -> bool:
    """Whether a stage folder holds something a fresh start would lose: a finished stage, a checkpoint, or files
    this trainer does not write before training begins (its start record and tokenised data are safe to redo)."""
    if not stage_dir.is_dir():
        return False
    if is_complete(stage_dir):
        return True
    return any(
        entry.name not in (TRAINING_RECORD, TOKENIZED, *DRY_RUN_FILES) for entry in stage_dir.iterdir()
    )


def write_record(stage_dir: Path, record: dict[str, Any]) -> None:
    """training.json, atomically, without NaN or infinities (JSON has neither)."""
    write_json_atomic(Path(stage_dir) / TRAINING_RECORD, record)


def last_checkpoint(stage_dir: Path) -> str | None:
    """The newest checkpoint of the stage that reads back whole (an older one when the newest was cut short)."""
    return usable_checkpoint(Path(stage_dir) / CHECKPOINTS, TRAINABLE_WEIGHTS)


def training_record(
    plan: TrainingPlan,
    stage: StageRecipe,
    model: TinyLlava,
    dataset: ConversationDataset,
    batch: BatchSettings,
    ds_config: str | None,
    source: str | None,
    resumed_from: str | None,
    result: Any,
    trainer: Trainer,
    counts: dict[str, dict[str, int]],
) -> dict[str, Any]:
    metrics = dict(result.metrics)
    resumed_at = (checkpoint_step(Path(resumed_from)) or 0) if resumed_from else 0
    # transformers averages only the steps this session ran; the stage's loss is over all of them
    train_loss = whole_stage_loss(
        metrics.get("train_loss"), trainer.state.log_history, resumed_at, trainer.state.global_step
    )
    losses = [
        {k: entry[k] for k in ("step", "loss", "learning_rate", "grad_norm") if k in entry}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]
    return {
        "record_version": RECORD_VERSION,
        "status": "complete",
        "tinyllava_bench_version": __version__,
        "recipe": plan.recipe.name,
        "stage": stage.name,
        "stage_recipe": stage.to_dict(),
        "model_max_length": plan.recipe.max_length_of(stage),
        "image_aspect": stage.image_aspect or model.settings.image_aspect,
        "variant": plan.model.variant,
        "paper_data": plan.model.paper_data,
        "started_from": source or {"llm": plan.model.llm, "vision": plan.model.vision},
        "resumed_from": resumed_from,
        "seed": plan.options.seed,
        "data": dataset.report.to_dict(),
        "image_tokens": model.num_image_tokens,
        "trainable_parameters": counts,
        "batch": {
            "per_device": batch.per_device,
            "grad_accum": batch.grad_accum,
            "world_size": batch.world_size,
            "global": batch.global_batch,
            "recipe_global": stage.global_batch_size,
        },
        "steps": trainer.state.global_step,
        "max_steps": plan.options.max_steps,
        "precision": plan.options.precision,
        "gradient_checkpointing": plan.options.gradient_checkpointing,
        "deepspeed": ds_config,
        "device": str(trainer.args.device),
        **threads_record(),
        "final_loss": losses[-1]["loss"] if losses else None,
        "train_loss": train_loss,
        "train_runtime_s": metrics.get("train_runtime"),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "train_steps_per_second": metrics.get("train_steps_per_second"),
        "loss_history": losses,
    }


@contextlib.contextmanager
def _full_parameters(model: nn.Module, zero3: bool) -> Iterator[None]:
    """Under ZeRO-3 each process holds a shard of every weight: gather them for saving."""
    if not zero3:
        yield
        return
    import deepspeed

    with deepspeed.zero.GatheredParameters(list(model.parameters()), modifier_rank=None):
        yield


def save_stage(
    trainer: Trainer,
    model: TinyLlava,
    stage_dir: Path,
    record: dict[str, Any],
    zero3: bool,
    keep_checkpoints: bool = False,
) -> None:
    """Merge LoRA, write the native checkpoint and training.json (last: it marks the stage complete)."""
    merge_lora(model)
    model.requires_grad_(False)
    summary = {
        k: record[k]
        for k in (
            "recipe",
            "stage",
            "variant",
            "paper_data",
            "seed",
            "steps",
            "model_max_length",
            "record_version",
        )
    }
    summary["data_fingerprint"] = record["data"]["fingerprint"]
    with _full_parameters(model, zero3):
        if trainer.is_world_process_zero():
            save_native(model, stage_dir, extra={"training": summary})
    if trainer.is_world_process_zero():
        if not keep_checkpoints:
            shutil.rmtree(stage_dir / CHECKPOINTS, ignore_errors=True)
            shutil.rmtree(stage_dir / TOKENIZED, ignore_errors=True)
        write_record(stage_dir, record)
        logger.info(
            "stage %s: done in %.1fs (%s steps, final loss %s) -> %s",
            record["stage"],
            record["wall_seconds"],
            record["steps"],
            record["final_loss"],
            stage_dir,
        )
    trainer.accelerator.wait_for_everyone()
