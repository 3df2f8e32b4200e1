"""`train`: a TinyLLaVA variant trained stage by stage with the paper's recipes."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from tinyllava_bench.api.results import PathLike, TrainResult
from tinyllava_bench.errors import UserError, run_phase


def train(
    *,
    output: PathLike,
    variant: str | None = None,
    config: PathLike | None = None,
    data_root: PathLike | None = None,
    stages: str | Sequence[str] | None = None,
    init_from: str | None = None,
    max_steps: int | None = None,
    per_device_batch_size: int | None = None,
    grad_accum: int | None = None,
    precision: str | None = None,
    gradient_checkpointing: bool | None = None,
    deepspeed: str | None = None,
    keep_eos_text: bool = False,
    dry_run: bool = False,
    examples: int = 16,
    model_max_length: int | None = None,
    seed: int | None = None,
    resume: bool = False,
    save_steps: int = 500,
    save_total_limit: int = 1,
    keep_checkpoints: bool = False,
    logging_steps: int = 10,
    dataloader_workers: int = 2,
    preprocess_workers: int | None = None,
    report_to: str = "none",
    progress: bool = True,
    threads: int | None = None,
) -> TrainResult:
    """Train `variant` (a model-zoo name) or the model a `config` YAML describes, stage by stage.

    The keywords are `tinyllava-bench train`'s flags (`precision`: "bf16", "fp16" or "fp32"; `progress`: the
    progress bars). Each stage writes a native checkpoint to OUTPUT/<stage>/ that `evaluate` reads as is. With
    `dry_run` nothing is trained: the resolved plan is printed to stdout and each stage's encoded examples are
    written. An interruption leaves as KeyboardInterrupt; `resume=True` continues from the last checkpoint.
    """
    if not variant and not config:
        raise UserError("say which model to train: --variant NAME or --config FILE (see docs/training.md)")
    from tinyllava_bench.threads import apply_threads
    from tinyllava_bench.train.plan import RunOptions, build_plan
    from tinyllava_bench.train.trainer import run_training

    apply_threads(threads)  # before any torch work; training.json records it
    if isinstance(stages, str):
        stages = [s.strip() for s in stages.split(",") if s.strip()] or None
    options = RunOptions(
        output=Path(output),
        data_root=Path(data_root) if data_root else None,
        stages=list(stages) if stages else None,
        max_steps=max_steps,
        per_device_batch_size=per_device_batch_size,
        grad_accum=grad_accum,
        precision=precision,
        gradient_checkpointing=gradient_checkpointing,
        deepspeed=deepspeed,
        seed=seed,
        resume=resume,
        init_from=init_from,
        model_max_length=model_max_length,
        save_steps=save_steps,
        save_total_limit=save_total_limit,
        keep_checkpoints=keep_checkpoints,
        logging_steps=logging_steps,
        dataloader_workers=dataloader_workers,
        **({"preprocess_workers": preprocess_workers} if preprocess_workers else {}),
        report_to=report_to,
        progress=progress,
        keep_eos_text=keep_eos_text,
    )
    plan = build_plan(variant, Path(config) if config else None, options)
    from transformers.utils import logging as transformers_logging

    if not progress:  # transformers' own bars too ("Writing model shards" at every save)
        transformers_logging.disable_progress_bar()
    try:
        with run_phase():  # the plan is valid: what fails from here on means the run could not proceed
            if dry_run:
                from tinyllava_bench.train.dry_run import dry_run as encode_examples

                return TrainResult(examples=encode_examples(plan, examples=examples))
            return TrainResult(folders=[Path(folder) for folder in run_training(plan)])
    finally:
        transformers_logging.enable_progress_bar()  # a process's later work (tests, notebooks) keeps its bars
