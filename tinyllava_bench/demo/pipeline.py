"""The offline demo, end to end: build the demo world, train two tiny variants that differ in one axis with the
real trainer, evaluate both with the real engine and scorers, and write the ablation table, leaderboard and plots.

Everything runs on CPU from nothing (no download): the "pretrained" LLM is a tiny random model that first learns
the demo world's language from text (`language_pretraining`), the vision tower a tiny random one; both are written
to disk, so the trainer starts from folders exactly as it would from hub downloads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.base_models import write_base_models
from tinyllava_bench.demo.evaluation import evaluate_all
from tinyllava_bench.demo.reports import regress_summary, write_reports
from tinyllava_bench.demo.result import DemoResult
from tinyllava_bench.demo.settings import (
    ABLATION_AXIS,
    DEMO_EVAL_TASKS,
    DEMO_RECORD,
    QUICK,
    DemoSettings,
    Variant,
)
from tinyllava_bench.demo.training import recipe_stages, train_all
from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_atomic


def run_demo(
    output: Path,
    settings: DemoSettings | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> DemoResult:
    """Build the world, train the variants, evaluate them and write table, leaderboard and plots into `output`.

    `progress=False` prints nothing (--quiet); otherwise a line per stage, and bars on a terminal."""
    from tinyllava_bench.demo.progress import DemoProgress
    from tinyllava_bench.threads import apply_threads

    settings = settings or DemoSettings()
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output} already exists and is not empty; pass another --output or delete it")
    output.mkdir(parents=True, exist_ok=True)
    shown = DemoProgress(progress, log)
    threads = apply_threads(settings.threads)
    started = time.time()
    seconds: dict[str, float] = {}

    def step(name: str, since: float) -> None:
        seconds[name] = round(time.time() - since, 1)
        shown.log(f"      {name}: {seconds[name]:.1f} s")

    shown.log(
        f"[1/5] demo world: {settings.n_pretrain} + {settings.n_share_pretrain} captions, "
        f"{settings.n_finetune} conversations, {settings.n_eval} questions each of {', '.join(settings.tasks)}"
    )
    t = time.time()
    world = build_world(output / "data", settings)
    step("world", t)

    shown.log(f"[2/5] the demo LLM learns the world's text ({settings.llm_text_steps} steps)")
    t = time.time()
    parts = write_base_models(output / "base", world["pretrain"], world["finetune"], settings, shown)
    step("base models", t)

    for variant in settings.variants:
        stages = " -> ".join(recipe_stages(variant.recipe))
        shown.log(f"[3/5] training {variant.name}: recipe {variant.recipe} ({stages})")
    t = time.time()
    checkpoints = train_all(parts, world["train_root"], output / "train", settings, shown)
    step("training", t)

    shown.log(
        f"[4/5] evaluating {', '.join(v.name for v in settings.variants)} on {', '.join(settings.tasks)}"
    )
    t = time.time()
    runs = evaluate_all(checkpoints, world["eval_root"], output / "runs", settings, shown)
    step("evaluation", t)

    shown.log("[5/5] report: ablation table, leaderboard, plots, the scores of answering blind, regress")
    t = time.time()
    from tinyllava_bench.demo.blind import blind_scores

    blind = blind_scores(world["eval_root"], settings.tasks)
    table_path, markdown, leaderboard, plots, scores = write_reports(output, list(runs.values()), blind)
    base_run, other_run = list(runs.values())[:2]
    regress = regress_summary(base_run, other_run)
    step("report", t)
    seconds["total"] = round(time.time() - started, 1)
    result = DemoResult(
        output=output,
        runs=runs,
        checkpoints=checkpoints,
        table=table_path,
        table_markdown=markdown,
        leaderboard=leaderboard,
        plots=plots,
        seconds=seconds,
        scores=scores,
        blind=blind,
        regress=regress,
    )
    # what the demo measured and printed, for `python -m tinyllava_bench.demo.readme` (the README's demo block)
    write_atomic(
        output / DEMO_RECORD,
        json.dumps(
            {
                "record_version": 2,
                "settings": _settings_dict(settings),
                "threads": threads,
                "seconds": seconds,
                "runs": {k: str(v) for k, v in runs.items()},
                "scores": scores,
                "blind": blind,
                "regress": regress,
                "table_markdown": markdown,
                "printed": result.printed(),
                "provenance": _provenance(),
            },
            indent=2,
            allow_nan=False,
        )
        + "\n",
    )
    return result


def _provenance() -> dict[str, Any]:
    """The software and machine the numbers came from (floating point differs between them)."""
    import platform

    import torch

    from tinyllava_bench.engine.provenance import tool_provenance
    from tinyllava_bench.threads import available_cpus

    record = tool_provenance()
    return {
        **{k: record[k] for k in ("tool_version", "git_commit", "python", "platform")},
        "torch": record["packages"].get("torch"),
        "transformers": record["packages"].get("transformers"),
        "machine": platform.machine(),
        "cpus": available_cpus(),
        # the vector kernels torch's CPU ops ran (AVX512, AVX2, ...): another set rounds differently
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
    }


def _settings_dict(settings: DemoSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(settings)


def build_world(root: Path, settings: DemoSettings) -> dict[str, Path]:
    """Training data (LLaVA format) under root/train and the eval tasks (hub columns) under root/eval."""
    from tinyllava_bench.testing.datasets import write_all_tasks
    from tinyllava_bench.testing.training_data import write_training_data

    train_root, eval_root = root / "train", root / "eval"
    paths = write_training_data(
        train_root, settings.n_pretrain, settings.n_finetune, settings.seed, settings.n_share_pretrain
    )
    write_all_tasks(eval_root, n=settings.n_eval, seed=settings.seed, tasks=settings.tasks)
    return {**paths, "train_root": train_root, "eval_root": eval_root}


__all__ = [
    "ABLATION_AXIS",
    "DEMO_EVAL_TASKS",
    "QUICK",
    "DemoResult",
    "DemoSettings",
    "Variant",
    "run_demo",
]
