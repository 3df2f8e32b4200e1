"""The training loop: stage after stage, each from the previous stage's output, checked up front.

The pieces it joins: train/hf_trainer.py (what transformers' Trainer drives), train/callbacks.py, train/run_settings.py
(batch, DeepSpeed, processes) and train/stage_folder.py (the stage's output folder: training.json, checkpoints,
the saved model).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback, TrainingArguments
from transformers.trainer_callback import PrinterCallback, ProgressCallback

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tinyllava import TinyLlava
from tinyllava_bench.train.callbacks import DivergenceStop, LogAtCheckpoints, LossLog, ProgressBar
from tinyllava_bench.train.collator import ConversationCollator
from tinyllava_bench.train.data import build_dataset
from tinyllava_bench.train.encoding import SKIP_IMAGE_FAILED_IN_TRAINING
from tinyllava_bench.train.freezing import apply_tuning, trainable_counts
from tinyllava_bench.train.hf_trainer import TinyLlavaTrainer, TrainingModel
from tinyllava_bench.train.loss_curve import write_loss_curve
from tinyllava_bench.train.plan import TrainingPlan
from tinyllava_bench.train.recipes import MODULES, StageRecipe
from tinyllava_bench.train.resume import (
    check_same_run,
    stage_fingerprint,
)
from tinyllava_bench.train.run_settings import (
    batch_settings,
    deepspeed_config,
    enable_activation_checkpointing,
    is_main_process,
    uses_zero3,
    world_size,
)
from tinyllava_bench.train.stage_folder import (
    CHECKPOINTS,
    RECORD_VERSION,
    TOKENIZED,
    TRAINING_RECORD,
    holds_progress,
    is_complete,
    last_checkpoint,
    read_record,
    save_stage,
    training_record,
    write_record,
)

logger = logging.getLogger("tinyllava_bench.train")


def fingerprint_of(plan: TrainingPlan, stage: StageRecipe, source: str | None) -> dict[str, Any]:
    """The stage's fingerprint for this command (see train/resume.py)."""
    options = plan.options
    batch = batch_settings(stage, options.per_device_batch_size, options.grad_accum, world_size(), quiet=True)
    json_path, images = plan.data_paths(stage.name, stage.data)
    return stage_fingerprint(plan, stage, source, batch, json_path, images)


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
        seed=plan.seed,
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
        if not plan.options.resume and holds_progress(stage_dir):
            raise UserError(
                f"{stage_dir} already holds a run; pass --resume to continue it, or another --output"
            )
        json_path, _ = plan.data_paths(stage_name, stage.data)
        if not json_path.is_file():
            raise UserError(
                f"stage {stage_name!r}: no data file {json_path}; see docs/training.md for the layout"
            )
        config = deepspeed_config(plan.options.deepspeed, stage)
        if stage.llm.kind == "lora" and uses_zero3(config):
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
    if is_main_process() and not last_checkpoint(stage_dir):
        # the start record: what this stage is trained with, for a later --resume to compare
        start = {"record_version": RECORD_VERSION, "status": "running", "stage": stage.name}
        write_record(stage_dir, {**start, "fingerprint": fingerprint})
    max_length = plan.recipe.max_length_of(stage)
    model.settings.max_length = max_length
    model.tokenizer.model_max_length = max_length
    batch = batch_settings(stage, options.per_device_batch_size, options.grad_accum, world_size())
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
        seed=plan.seed,
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
            progress=options.progress and is_main_process(),
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
        sampler_seed=plan.seed,
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
    record = training_record(
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
        trainer, model, stage_dir, record, uses_zero3(ds_config), keep_checkpoints=options.keep_checkpoints
    )
    return record


def _pad_id(model: TinyLlava) -> int:
    tokenizer = model.tokenizer
    for candidate in (tokenizer.pad_token_id, tokenizer.unk_token_id, tokenizer.eos_token_id):
        if candidate is not None:
            return int(candidate)
    return 0
