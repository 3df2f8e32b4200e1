"""Training the demo's variants with the real trainer: each variant's config at demo scale, run side by side."""

from __future__ import annotations

import concurrent.futures
import logging
import multiprocessing
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.settings import TEMPLATE, DemoSettings, Variant


def training_config(variant: Variant, parts: dict[str, str], settings: DemoSettings) -> dict[str, Any]:
    """The `train --config` YAML content of one variant: the recipe's stages, at the demo's scale."""
    scale = {
        "pretrain": (settings.pretrain_lr, settings.pretrain_epochs, {}),
        # the upper half of the tower trains, as the paper's layers >= 12 of SigLIP's 27
        "share-pretrain": (
            settings.share_pretrain_lr,
            settings.share_pretrain_epochs,
            {"vision": f"partial({settings.vision_layers // 2})"},
        ),
        "finetune": (settings.finetune_lr, settings.finetune_epochs, {}),
    }
    return {
        "name": variant.name,
        "llm": parts["llm"],
        "vision": parts["vision"],
        "template": TEMPLATE,
        "connector": "mlp2x_gelu",
        "image_aspect": "pad",
        "vision_select": "full",
        "strip_question": False,
        "recipe": variant.recipe,
        "model_max_length": settings.model_max_length,
        "seed": settings.seed,
        "stage_overrides": {
            stage: {"learning_rate": lr, "epochs": epochs, "global_batch_size": settings.batch, **extra}
            for stage, (lr, epochs, extra) in scale.items()
            if stage in recipe_stages(variant.recipe)
        },
    }


def recipe_stages(recipe: str) -> list[str]:
    from tinyllava_bench.train.recipes import get_recipe

    return [stage.name for stage in get_recipe(recipe).stages]


def train_variant(
    variant: Variant,
    parts: dict[str, str],
    data_root: Path,
    root: Path,
    settings: DemoSettings,
    steps_queue: Any = None,
) -> Path:
    """Write the variant's config and run the trainer through the recipe's stages; returns the finetuned model.
    With `steps_queue`, each optimizer step is reported there (the main process draws the bars)."""
    import yaml

    from tinyllava_bench.threads import apply_threads
    from tinyllava_bench.train.plan import RunOptions, build_plan
    from tinyllava_bench.train.trainer import run_training

    apply_threads(settings.threads)
    folder = root / variant.name
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(training_config(variant, parts, settings), sort_keys=False))
    options = RunOptions(
        output=folder,
        data_root=data_root,
        save_steps=100_000,  # nothing to resume in a demo: no intermediate checkpoints
        logging_steps=25,
        dataloader_workers=0,
        preprocess_workers=1,
        progress=False,
    )
    callbacks = []
    if steps_queue is not None:
        from tinyllava_bench.demo.progress import QueueSteps

        callbacks.append(QueueSteps(steps_queue, variant.name))
    with _quiet("tinyllava_bench.train", "transformers"):
        stages = run_training(build_plan(None, config_path, options), callbacks=callbacks)
    return stages[-1]


def planned_steps(variant: Variant, settings: DemoSettings) -> dict[str, int]:
    """Each stage of the variant's recipe and its expected optimizer steps (for the bars' first totals)."""
    from tinyllava_bench.demo.progress import expected_steps

    sizes = {
        "pretrain": (settings.n_pretrain, settings.pretrain_epochs),
        "share-pretrain": (settings.n_share_pretrain, settings.share_pretrain_epochs),
        "finetune": (settings.n_finetune, settings.finetune_epochs),
    }
    return {
        stage: expected_steps(*sizes[stage], settings.batch) if stage in sizes else 1
        for stage in recipe_stages(variant.recipe)
    }


def side_by_side(settings: DemoSettings) -> int:
    """Worker processes for the variants: tiny models leave a core idle when one process works alone."""
    from tinyllava_bench.threads import available_cpus

    return min(settings.workers, len(settings.variants), max(1, available_cpus() // settings.threads))


def train_all(
    parts: dict[str, str],
    data_root: Path,
    root: Path,
    settings: DemoSettings,
    shown: Any = None,
) -> dict[str, Path]:
    """Train every variant; side by side in spawned processes (`settings.threads` torch threads each), else one
    after the other in this process. Spawned processes re-import the calling script: a script that calls this
    needs the `if __name__ == "__main__":` guard (the CLI has it)."""
    from tinyllava_bench.demo.progress import DemoProgress, follow_training, wait_with_progress

    shown = shown or DemoProgress(enabled=False)
    variants = settings.variants
    planned = {v.name: planned_steps(v, settings) for v in variants}
    bars = shown.bars({name: sum(stages.values()) for name, stages in planned.items()}, unit="step")
    try:
        workers = side_by_side(settings)
        if workers <= 1:
            import queue

            steps: Any = queue.Queue()
            poll = follow_training(bars, steps, planned)
            out = {}
            for v in variants:
                out[v.name] = train_variant(v, parts, data_root, root, settings, steps)
                poll()
            return out
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with (
            context.Manager() as manager,
            concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool,
        ):
            steps = manager.Queue()
            futures = {
                v.name: pool.submit(train_variant, v, parts, data_root, root, settings, steps)
                for v in variants
            }
            wait_with_progress(futures.values(), follow_training(bars, steps, planned))
            return {name: future.result() for name, future in futures.items()}
    finally:
        for bar in bars.values():
            bar.close()


class _quiet:
    """Raise the named loggers to WARNING for a block (the trainer logs every few steps at INFO)."""

    def __init__(self, *names: str) -> None:
        self.loggers = [logging.getLogger(name) for name in names]
        self.levels: list[int] = []

    def __enter__(self) -> None:
        self.levels = [log.level for log in self.loggers]
        for log in self.loggers:
            log.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        for log, level in zip(self.loggers, self.levels):
            log.setLevel(level)
