"""eval_throughput.py's `ours` runners, in their own process: `tinyllava_bench`'s `evaluate()` into a fresh output
folder, its phases (model load, checkpoint fingerprint, waiting for images, generation, decoding, the samples log,
scoring) timed through the engine's public hooks (tinyllava_bench/engine/hooks.py).

    python benchmarks/eval_worker_ours.py --checkpoint CKPT --data-root DATA --rows 8 --output RUN --result out.json
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from eval_inputs import TASK  # noqa: E402

from tinyllava_bench.engine.hooks import EvalHooks  # noqa: E402


class PhaseTimer(EvalHooks):
    """Wall and CPU seconds (this process) per engine phase, summed; a phase may repeat (one per batch)."""

    # the engine's phase names as eval_throughput's results have always called them
    NAMES = {"model_generate": "model_generate_ids"}

    def __init__(self) -> None:
        self.totals: dict[str, float] = defaultdict(float)
        self._open: dict[str, tuple[float, float]] = {}

    def on_phase_start(self, name: str) -> None:
        self._open[name] = (time.perf_counter(), time.process_time())

    def on_phase_end(self, name: str) -> None:
        wall, cpu = self._open.pop(name)
        key = self.NAMES.get(name, name)
        self.totals[key] += time.perf_counter() - wall
        self.totals[key + "_cpu"] += time.process_time() - cpu


class TimedPreprocess:
    """The model's image preprocessor, timed as the phase `preprocess_in_main`: counted only where the engine
    preprocesses in this process (num_workers 0); DataLoader workers time their own copies, which are lost."""

    def __init__(self, preprocess: Any, timer: PhaseTimer) -> None:
        self.preprocess = preprocess
        self.timer = timer

    def __call__(self, image: Any) -> Any:
        with self.timer.phase("preprocess_in_main"):
            return self.preprocess(image)


def worker_ours(args: Any) -> dict[str, Any]:
    """`evaluate(EvalConfig(...))` on the model this worker loads (so its preprocessor can be timed), with the
    engine's phases timed through its hooks."""
    from tinyllava_bench import load_model
    from tinyllava_bench.engine.model_protocol import TinyLlavaModel
    from tinyllava_bench.engine.runner import EvalConfig, evaluate

    timer = PhaseTimer()
    output = Path(args.output)
    shutil.rmtree(output, ignore_errors=True)
    config = EvalConfig(
        model=args.checkpoint,
        tasks=[TASK],
        output=output,
        limit=args.rows,
        batch_size=args.batch_size,
        device=args.device,
        dtype=args.dtype,
        num_workers=args.num_workers,
        data_root=Path(args.data_root),
        show_progress=False,
        task_options={"generation.max_new_tokens": args.max_new_tokens},
    )
    started = time.perf_counter()  # the load counts, as when evaluate() loads the model itself
    with timer.phase("load_model"):
        model = load_model(args.checkpoint, device=args.device, dtype=args.dtype)
    model.preprocessor = TimedPreprocess(model.preprocessor, timer)
    evaluate(config, model=TinyLlavaModel(model), hooks=timer)
    total = time.perf_counter() - started
    predictions, prompts = {}, {}
    for line in (output / f"samples_{TASK}.jsonl").read_text().splitlines():
        record = json.loads(line)
        predictions[record["index"]] = record["prediction"]
        prompts[record["index"]] = record["prompt"]
    phases = dict(timer.totals)
    phases["evaluate_total"] = total
    return {"timed_s": total, "phases": phases, "predictions": predictions, "prompts": prompts}


if __name__ == "__main__":
    sys.exit(common.run_worker(worker_ours, __doc__))
