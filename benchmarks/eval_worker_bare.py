"""eval_throughput.py's `bare` runner, in its own process: the model's own batched `generate_ids` over prepared
tensors (pixels and prompt ids computed first, the engine's order, batch size and max_new_tokens); only the loop is
timed. The limit the harness can approach.

    python benchmarks/eval_worker_bare.py --checkpoint CKPT --data-root DATA --rows 8 --result out.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from eval_inputs import TASK  # noqa: E402


def worker_bare(args: Any) -> dict[str, Any]:
    """The model's batched generate over prepared tensors, in the engine's order; only the loop is timed."""
    import torch

    from tinyllava_bench import load_model
    from tinyllava_bench.tasks import apply_overrides, build_question, load_task, load_task_data

    started = time.perf_counter()
    model = load_model(args.checkpoint, device=args.device, dtype=args.dtype)
    load_s = time.perf_counter() - started
    task = apply_overrides(load_task(TASK), {"generation.max_new_tokens": args.max_new_tokens})
    data = load_task_data(task, data_root=args.data_root)
    rows = (
        data.rows.remove_columns(task.columns.image)
        if task.columns.image in data.rows.column_names
        else data.rows
    )
    rows = rows.to_list()[: args.rows]
    prepared = []
    for index, row in enumerate(rows):
        question = build_question(task, row)
        prepared.append((index, question, model.prompt_ids(question), model.pixel_values(data.image(index))))
    prepared.sort(key=lambda item: -len(item[2]))  # the engine's order: longest prompt first, stable
    predictions: dict[int, str] = {}
    started, started_cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for start in range(0, len(prepared), args.batch_size):
            batch = prepared[start : start + args.batch_size]
            ids = model.generate_ids(
                [p[3] for p in batch],
                [p[1] for p in batch],
                max_new_tokens=args.max_new_tokens,
                prompt_ids=[p[2] for p in batch],
            )
            for item, text in zip(batch, model.decode(ids)):
                predictions[item[0]] = text
    loop_s, loop_cpu_s = time.perf_counter() - started, time.process_time() - started_cpu
    return {
        "timed_s": loop_s,
        "phases": {"load_model": load_s, "generate_loop": loop_s, "generate_loop_cpu": loop_cpu_s},
        "predictions": predictions,
    }


if __name__ == "__main__":
    sys.exit(common.run_worker(worker_bare, __doc__))
