"""The trainer: transformers' `Trainer` around a TinyLlava, stage after stage, each from the previous stage's output.

Output layout: `OUTPUT/<stage>/` holds the stage's model in this project's native layout (`load_model` reads it),
`training.json` (what was trained, on what, how; written last, its `status` marks the stage complete) and, while
the stage runs, `checkpoints/checkpoint-N/` to resume from.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import logging
import math
import os
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.modeling_outputs import CausalLMOutput
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tinyllava_bench import __version__
from tinyllava_bench.engine.store import write_json_atomic
from tinyllava_bench.errors import UserError
from tinyllava_bench.models.save import save_native
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.threads import threads_record
from tinyllava_bench.train.data import (
    SKIP_IMAGE_FAILED_IN_TRAINING,
    ConversationCollator,
    ConversationDataset,
    build_dataset,
)
from tinyllava_bench.train.freezing import apply_tuning, merge_lora, parameter_groups, trainable_counts
from tinyllava_bench.train.loss_curve import write_loss_curve
from tinyllava_bench.train.plan import TrainingPlan
from tinyllava_bench.train.recipes import MODULES, StageRecipe
from tinyllava_bench.train.resume import (
    check_same_run,
    checkpoint_step,
    stage_fingerprint,
    usable_checkpoint,
    whole_stage_loss,
)
from tinyllava_bench.train.sampler import ModalityGroupedSampler, ShuffleSampler

logger = logging.getLogger("tinyllava_bench.train")

DEEPSPEED_DIR = Path(__file__).resolve().parent / "deepspeed"
TRAINING_RECORD = "training.json"
CHECKPOINTS = "checkpoints"
TOKENIZED = "tokenized"
TRAINABLE_WEIGHTS = "trainable.safetensors"
RECORD_VERSION = 1
# what `train --dry-run` leaves in a stage folder: not a run, so the real run may start there
DRY_RUN_FILES = ("examples.jsonl", "examples.txt")


class TrainingModel(nn.Module):
    """What the Trainer drives: cuts each padded row back to its length for `TinyLlava.forward`.

    A batch without images still runs the vision tower and connector on a blank image (weight 0 in the loss), as
    LLaVA does: every process then uses the same parameters each step, which DDP and ZeRO-3 require.
    """

    def __init__(self, model: TinyLlava) -> None:
        super().__init__()
        self.model = model
        self.skipped: list[str] = []  # samples whose image could not be read while training

    def forward(
        self,
        input_ids: torch.Tensor,
        labels: torch.Tensor,
        lengths: torch.Tensor,
        pixel_values: torch.Tensor | None = None,
        skipped: list[str] | None = None,
    ) -> Any:
        self.skipped.extend(skipped or [])
        if not len(input_ids):
            # every sample of the batch was dropped: a zero loss that still reaches every trainable parameter
            zero = sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0
            return CausalLMOutput(loss=zero)
        sizes = lengths.tolist()
        ids = [row[:n] for row, n in zip(input_ids.tolist(), sizes)]
        targets = [row[:n] for row, n in zip(labels.tolist(), sizes)]
        untouched = None
        if pixel_values is None:
            size = self.model.vision_tower.config.image_size
            blank = torch.zeros(1, 3, size, size, device=input_ids.device)
            untouched = self.model.encode_images(blank).sum() * 0.0
        output = self.model(ids, labels=targets, pixel_values=pixel_values)
        if untouched is not None:
            output.loss = output.loss + untouched
        return output


class TinyLlavaTrainer(Trainer):
    """Trainer with per-module learning rates, this project's samplers, and checkpoints of trainable weights only."""

    def __init__(self, *args: Any, stage: StageRecipe, sampler_seed: int, **kwargs: Any) -> None:
        self.stage = stage
        self.sampler_seed = sampler_seed
        super().__init__(*args, **kwargs)

    def _get_train_sampler(self, train_dataset: Any = None) -> torch.utils.data.Sampler:
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        if self.stage.group_by_modality:
            return ModalityGroupedSampler(
                dataset.modality_lengths,
                self.args.per_device_train_batch_size,
                self.args.world_size,
                self.sampler_seed,
            )
        return ShuffleSampler(len(dataset), self.sampler_seed)

    def create_optimizer(self, model: nn.Module | None = None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            target = model if model is not None else self.model
            decay = set(self.get_decay_parameter_names(target))
            rates = {module: self.stage.lr_for(module) for module in MODULES}
            groups = parameter_groups(target.named_parameters(), rates, self.args.weight_decay, decay)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, target)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def _trainable_names(self) -> set[str]:
        model = self.accelerator.unwrap_model(self.model)
        return {name for name, p in model.named_parameters() if p.requires_grad}

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        # Frozen weights equal the stage's starting model, so a checkpoint holds the trained ones only
        # (a connector-only pretrain checkpoint is megabytes, not gigabytes).
        from safetensors.torch import save_file

        if not self.args.should_save:
            return
        output_dir = output_dir or self.args.output_dir
        os.makedirs(output_dir, exist_ok=True)
        state = (
            state_dict if state_dict is not None else self.accelerator.unwrap_model(self.model).state_dict()
        )
        names = self._trainable_names()
        tensors = {k: v.detach().cpu().contiguous().clone() for k, v in state.items() if k in names}
        save_file(tensors, os.path.join(output_dir, TRAINABLE_WEIGHTS), metadata={"format": "pt"})

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: nn.Module | None = None) -> None:
        from safetensors.torch import load_file

        path = Path(resume_from_checkpoint) / TRAINABLE_WEIGHTS
        if not path.is_file():
            raise UserError(
                f"{resume_from_checkpoint}: no {TRAINABLE_WEIGHTS}; not a checkpoint this trainer wrote"
            )
        state = load_file(str(path))
        names = self._trainable_names()
        if set(state) != names:
            raise UserError(
                f"{resume_from_checkpoint}: its trained weights do not match this stage's trainable parameters "
                f"({len(set(state) ^ names)} differ); the recipe changed since it was written: resume with the same "
                "settings or start the stage again in a new --output"
            )
        self.accelerator.unwrap_model(model or self.model).load_state_dict(state, strict=False)


class LossLog(TrainerCallback):
    """Loss, learning rate and gradient norm to the `tinyllava_bench.train` log (stderr), not to stdout."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            extras = " ".join(f"{k} {logs[k]:.4g}" for k in ("learning_rate", "grad_norm") if k in logs)
            logger.info(
                "stage %s step %d/%d: loss %.4f %s",
                self.stage,
                state.global_step,
                state.max_steps,
                logs["loss"],
                extras,
            )
        elif "train_runtime" in logs:
            logger.info(
                "stage %s: %.1fs, %.3g samples/s, %.3g steps/s, mean loss %.4f",
                self.stage,
                logs["train_runtime"],
                logs.get("train_samples_per_second", 0.0),
                logs.get("train_steps_per_second", 0.0),
                logs.get("train_loss", float("nan")),
            )


class LogAtCheckpoints(TrainerCallback):
    """Log the loss at every checkpoint, so a resumed stage can average the loss over all of its steps."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if control.should_save:
            control.should_log = True
        return control


class DivergenceStop(TrainerCallback):
    """Stops the stage at the first logged non-finite loss or gradient norm (and saves no checkpoint of it).

    The logged loss is the mean over all processes, so every process stops at the same step.
    """

    def __init__(self) -> None:
        self.step: int | None = None
        self.what = ""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, float) and not math.isfinite(value) and self.step is None:
                self.step, self.what = state.global_step, f"{key} {value}"
        if self.step is not None:
            control.should_training_stop = True
            control.should_save = False
        return control


class ProgressBar(ProgressCallback):
    """transformers' progress bar without its printing of every log dict (LossLog reports those)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None


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


def _uses_zero3(config_path: str | None) -> bool:
    if not config_path:
        return False
    try:
        return json.loads(Path(config_path).read_text()).get("zero_optimization", {}).get("stage") == 3
    except ValueError as exc:
        raise UserError(f"{config_path}: not valid JSON ({exc})") from None


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


def _holds_progress(stage_dir: Path) -> bool:
    """Whether a stage folder holds something a fresh start would lose: a finished stage, a checkpoint, or files
    this trainer does not write before training begins (its start record and tokenised data are safe to redo)."""
    if not stage_dir.is_dir():
        return False
    if is_complete(stage_dir):
        return True
    return any(
        entry.name not in (TRAINING_RECORD, TOKENIZED, *DRY_RUN_FILES) for entry in stage_dir.iterdir()
    )


def fingerprint_of(plan: TrainingPlan, stage: StageRecipe, source: str | None) -> dict[str, Any]:
    """The stage's fingerprint for this command (see train/resume.py)."""
    options = plan.options
    batch = batch_settings(
        stage, options.per_device_batch_size, options.grad_accum, _world_size(), quiet=True
    )
    json_path, images = plan.data_paths(stage.name, stage.data)
    return stage_fingerprint(plan, stage, source, batch, json_path, images)


def write_record(stage_dir: Path, record: dict[str, Any]) -> None:
    """training.json, atomically, without NaN or infinities (JSON has neither)."""
    write_json_atomic(Path(stage_dir) / TRAINING_RECORD, record)


def last_checkpoint(stage_dir: Path) -> str | None:
    """The newest checkpoint of the stage that reads back whole (an older one when the newest was cut short)."""
    return usable_checkpoint(Path(stage_dir) / CHECKPOINTS, TRAINABLE_WEIGHTS)


def _world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def _is_main_process() -> bool:
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


def initial_model(plan: TrainingPlan) -> TinyLlava:
    from tinyllava_bench.train.init import build_initial_model

    spec = plan.model
    if not (spec.llm and spec.vision and spec.template):
        raise UserError(
            "a fresh model needs llm, vision and template (config) or --variant; or pass --init-from"
        )
    return build_initial_model(
        spec.llm,
        spec.vision,
        connector=spec.connector,
        template=spec.template,
        image_aspect=spec.image_aspect,
        vision_select=spec.vision_select,
        image_tokens=spec.image_tokens,
        vision_layer=spec.vision_layer,
        max_length=plan.recipe.model_max_length,
        strip_question=spec.strip_question,
        connector_kwargs=spec.connector_kwargs,
        seed=plan.options.seed,
        name=spec.name,
        trust_remote_code=spec.trust_remote_code,
    )


def stage_preprocessor(model: TinyLlava, stage: StageRecipe) -> Any:
    """The model's image preprocessor with the stage's aspect (the paper's caption stages run `square` while its
    finetune runs `pad`); the model keeps its own setting, the one eval uses."""
    aspect = stage.image_aspect or model.settings.image_aspect
    if aspect == model.preprocessor.aspect:
        return model.preprocessor
    return dataclasses.replace(model.preprocessor, aspect=aspect)


def load_stage_start(source: str, plan: TrainingPlan) -> TinyLlava:
    from tinyllava_bench.models.loading import load_model

    return load_model(source, device="cpu", dtype="float32", trust_remote_code=plan.model.trust_remote_code)


def stage_sources(plan: TrainingPlan) -> dict[str, str | None]:
    """Where each selected stage starts: None = a fresh model, else a checkpoint folder (checked up front)."""
    output = Path(plan.options.output)
    names = plan.recipe.stage_names
    sources: dict[str, str | None] = {}
    previous: str | None = None
    for position, stage in enumerate(plan.stages):
        if position == 0:
            if plan.options.init_from:
                previous = plan.options.init_from
            elif names.index(stage) == 0:
                previous = None
            else:
                before = output / names[names.index(stage) - 1]
                if not is_complete(before):
                    raise UserError(
                        f"stage {stage!r} starts from stage {names[names.index(stage) - 1]!r}, which has no "
                        f"finished output in {before}; run that stage first or pass --init-from CHECKPOINT"
                    )
                previous = str(before)
        sources[stage] = previous
        previous = str(output / stage)
    return sources


def preflight(plan: TrainingPlan) -> None:
    """Every check that needs no model: stage folders, data files, DeepSpeed, precision."""
    output = Path(plan.options.output)
    for stage_name in plan.stages:
        stage = plan.recipe.stage(stage_name)
        stage_dir = output / stage_name
        if not plan.options.resume and _holds_progress(stage_dir):
            raise UserError(
                f"{stage_dir} already holds a run; pass --resume to continue it, or another --output"
            )
        json_path, _ = plan.data_paths(stage_name, stage.data)
        if not json_path.is_file():
            raise UserError(
                f"stage {stage_name!r}: no data file {json_path}; see docs/training.md for the layout"
            )
        config = deepspeed_config(plan.options.deepspeed, stage)
        if stage.llm.kind == "lora" and _uses_zero3(config):
            raise UserError(f"stage {stage_name!r}: LoRA with ZeRO-3 is not supported; use --deepspeed zero2")
    if plan.options.precision == "fp16" and not torch.cuda.is_available():
        raise UserError("--fp16 needs a CUDA GPU; use --bf16 or full precision on CPU")


def run_training(plan: TrainingPlan, callbacks: Sequence[TrainerCallback] = ()) -> list[Path]:
    """Run the plan's stages in order; returns the folders of the stage models."""
    preflight(plan)
    sources = stage_sources(plan)
    output = Path(plan.options.output)
    done = []
    for stage_name in plan.stages:
        stage_dir = output / stage_name
        stage, source = plan.recipe.stage(stage_name), sources[stage_name]
        fingerprint = fingerprint_of(plan, stage, source)
        if is_complete(stage_dir) or last_checkpoint(stage_dir):
            check_same_run(stage_dir, read_record(stage_dir), fingerprint)
        if is_complete(stage_dir):
            logger.info("stage %s: already complete in %s, skipping", stage_name, stage_dir)
            done.append(stage_dir)
            continue
        model = initial_model(plan) if source is None else load_stage_start(source, plan)
        run_stage(plan, stage, model, stage_dir, source, callbacks, fingerprint)
        done.append(stage_dir)
        del model
    return done


def run_stage(
    plan: TrainingPlan,
    stage: StageRecipe,
    model: TinyLlava,
    stage_dir: Path,
    source: str | None,
    callbacks: Sequence[TrainerCallback] = (),
    fingerprint: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train `model` for one stage and write it (native layout) + training.json to `stage_dir`."""
    options = plan.options
    started = time.time()
    fingerprint = fingerprint or fingerprint_of(plan, stage, source)
    if _is_main_process() and not last_checkpoint(stage_dir):
        # the start record: what this stage is trained with, for a later --resume to compare
        start = {"record_version": RECORD_VERSION, "status": "running", "stage": stage.name}
        write_record(stage_dir, {**start, "fingerprint": fingerprint})
    max_length = plan.recipe.max_length_of(stage)
    model.settings.max_length = max_length
    model.tokenizer.model_max_length = max_length
    batch = batch_settings(stage, options.per_device_batch_size, options.grad_accum, _world_size())
    ds_config = deepspeed_config(options.deepspeed, stage)
    args = TrainingArguments(
        output_dir=str(stage_dir / CHECKPOINTS),
        per_device_train_batch_size=batch.per_device,
        gradient_accumulation_steps=batch.grad_accum,
        num_train_epochs=stage.epochs,
        max_steps=options.max_steps or -1,
        learning_rate=stage.learning_rate,
        lr_scheduler_type=stage.lr_scheduler,
        warmup_steps=stage.warmup_ratio,  # below 1: a fraction of the steps
        weight_decay=stage.weight_decay,
        max_grad_norm=stage.max_grad_norm,
        bf16=options.precision == "bf16",
        fp16=options.precision == "fp16",
        logging_steps=options.logging_steps,
        logging_first_step=True,
        save_strategy="steps",
        save_steps=options.save_steps,
        save_total_limit=options.save_total_limit,
        seed=options.seed,
        report_to=options.report_to,
        remove_unused_columns=False,
        dataloader_num_workers=options.dataloader_workers,
        ddp_find_unused_parameters=False,
        deepspeed=ds_config,
        disable_tqdm=not options.progress,
        logging_nan_inf_filter=False,  # a non-finite loss must show, not be replaced by the running mean
        use_cpu=not torch.cuda.is_available(),
    )
    template = get_template("pretrain") if stage.template == "pretrain" else model.template
    json_path, image_folder = plan.data_paths(stage.name, stage.data)
    # the first process of each machine tokenises and caches; the others then read its cache
    with args.main_process_first(local=True, desc="tokenising"):
        dataset = build_dataset(
            json_path,
            image_folder,
            template,
            model.tokenizer,
            stage_preprocessor(model, stage),
            image_tokens=model.num_image_tokens,
            max_length=max_length,
            caption_stage=stage.template == "pretrain",
            progress=options.progress and _is_main_process(),
            workers=options.preprocess_workers,
            cache_dir=stage_dir / TOKENIZED,
            keep_eos_text=options.keep_eos_text,
        )
    apply_tuning(model, {module: stage.tune(module) for module in MODULES})
    if options.gradient_checkpointing:
        enable_activation_checkpointing(model, stage)
    counts = trainable_counts(model)
    logger.info(
        "stage %s: %d samples, batch %d x %d x %d, lr %s, trainable %s",
        stage.name,
        len(dataset),
        batch.per_device,
        batch.grad_accum,
        batch.world_size,
        {m: stage.lr_for(m) for m in MODULES if stage.tune(m).trains},
        {m: f"{c['trainable']:,}/{c['total']:,} ({stage.tune(m).describe()})" for m, c in counts.items()},
    )
    divergence = DivergenceStop()
    training_model = TrainingModel(model)
    trainer = TinyLlavaTrainer(
        model=training_model,
        args=args,
        train_dataset=dataset,
        data_collator=ConversationCollator(_pad_id(model)),
        callbacks=[LossLog(stage.name), LogAtCheckpoints(), divergence, *callbacks],
        stage=stage,
        sampler_seed=options.seed,
    )
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    if options.progress:
        trainer.add_callback(ProgressBar())
    resume_from = last_checkpoint(stage_dir) if options.resume else None
    if resume_from:
        logger.info("stage %s: resuming from %s", stage.name, resume_from)
    result = trainer.train(resume_from_checkpoint=resume_from)
    for sample_id in training_model.skipped:
        dataset.report.skip(SKIP_IMAGE_FAILED_IN_TRAINING, sample_id)
    record = _record(
        plan, stage, model, dataset, batch, ds_config, source, resume_from, result, trainer, counts
    )
    record["fingerprint"] = fingerprint
    record["wall_seconds"] = round(time.time() - started, 3)
    loss = record["train_loss"]
    if divergence.step is not None or (loss is not None and not math.isfinite(loss)):
        step = divergence.step or trainer.state.global_step
        what = divergence.what or f"mean loss {loss}"
        record.update(status="diverged", diverged_at_step=step, diverged_on=what)
        if trainer.is_world_process_zero():
            record["loss_curve"] = write_loss_curve(stage_dir, record)  # what it has, up to the divergence
            write_record(stage_dir, record)
        trainer.accelerator.wait_for_everyone()
        raise UserError(
            f"stage {stage.name!r} diverged: {what} by step {step} (logged every {options.logging_steps} steps); "
            f"nothing was saved past the last checkpoint. Lower the learning rate and train into a new --output "
            f"(see {stage_dir / TRAINING_RECORD})"
        )
    if trainer.is_world_process_zero():
        record["loss_curve"] = write_loss_curve(stage_dir, record)
    save_stage(
        trainer, model, stage_dir, record, _uses_zero3(ds_config), keep_checkpoints=options.keep_checkpoints
    )
    return record


def _pad_id(model: TinyLlava) -> int:
    tokenizer = model.tokenizer
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0


def _record(
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
