"""Evaluating the demo's trained variants with the real engine, side by side as they were trained."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.settings import DemoSettings
from tinyllava_bench.demo.training import side_by_side


def evaluate_variant(checkpoint: Path, data_root: Path, output: Path, settings: DemoSettings) -> Path:
    from tinyllava_bench.engine.runner import EvalConfig, evaluate
    from tinyllava_bench.threads import apply_threads

    apply_threads(settings.threads)
    evaluate(
        EvalConfig(
            model=str(checkpoint),
            tasks=list(settings.tasks),
            output=output,
            data_root=data_root,
            device="cpu",
            batch_size=settings.eval_batch,
            num_workers=0,
            seed=settings.seed,
            show_progress=False,
        )
    )
    return output


def eval_rows(data_root: Path, tasks: Sequence[str]) -> int:
    """How many questions the tasks' demo copies hold (the evaluation bars' totals)."""
    import pyarrow.parquet as pq

    total = 0
    for task in tasks:
        path = data_root / f"{task}.parquet"
        total += pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
    return total


def evaluate_all(
    checkpoints: dict[str, Path], data_root: Path, root: Path, settings: DemoSettings, shown: Any = None
) -> dict[str, Path]:
    """Evaluate every variant into root/<variant>; side by side in spawned processes as `train_all` trains."""
    from tinyllava_bench.demo.progress import DemoProgress, follow_samples, wait_with_progress

    shown = shown or DemoProgress(enabled=False)
    folders = {name: root / name for name in checkpoints}
    rows = eval_rows(data_root, settings.tasks)
    bars = shown.bars(dict.fromkeys(checkpoints, rows), unit="sample")
    poll = follow_samples(bars, folders)
    try:
        workers = side_by_side(settings)
        if workers <= 1:
            for name, checkpoint in checkpoints.items():
                evaluate_variant(checkpoint, data_root, folders[name], settings)
                poll()
            return folders
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(evaluate_variant, checkpoint, data_root, folders[name], settings)
                for name, checkpoint in checkpoints.items()
            ]
            wait_with_progress(futures, poll)
        return folders
    finally:
        for bar in bars.values():
            bar.close()
