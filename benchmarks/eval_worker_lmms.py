"""eval_throughput.py's lmms-eval runners, in their own process (run it with lmms-eval's interpreter,
$LMMS_PYTHON): lmms-eval 0.7.3's CLI with `--model tinyllava_bench` (our plugin) or `--model llava_hf` on the local
task eval_inputs.write_lmms_task wrote; the model's load and generate_until are timed by wrapping lmms-eval's model
class, and llava_hf's rendered prompts and generate calls are recorded.

    $LMMS_PYTHON benchmarks/eval_worker_lmms.py --lmms-model llava_hf --checkpoint HF_CKPT --task-dir TASK \\
        --data-root DATA --rows 8 --output OUT --result out.json
"""

from __future__ import annotations

import glob
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from eval_inputs import LMMS_TASK  # noqa: E402


def _timed(timers: dict[str, float], name: str, function: Any) -> Any:
    """Wraps `function` so its wall time adds to timers[name] and its CPU time (this process) to name + "_cpu"."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            timers[name] += time.perf_counter() - wall
            timers[name + "_cpu"] += time.process_time() - cpu

    wrapper.__wrapped__ = function
    return wrapper


def worker_lmms(args: Any) -> dict[str, Any]:
    """lmms-eval's CLI in this process, with the model's load and generate_until timed (runs in the lmms venv)."""
    timers: dict[str, float] = defaultdict(float)
    rendered: dict[str, str] = {}
    generate_calls: list[tuple[list[int], float]] = []
    from lmms_eval.cli.dispatch import main as lmms_main

    if args.lmms_model == "llava_hf":
        # lmms-eval 0.7.3 resolves `llava_hf` to its chat class (a subclass of the simple one) unless forced
        from lmms_eval.models.chat import llava_hf as chat_llava_hf
        from lmms_eval.models.simple import llava_hf as simple_llava_hf

        simple_init = simple_llava_hf.LlavaHf.__init__

        def init_and_record_prompts(self: Any, *a: Any, **k: Any) -> None:
            simple_init(self, *a, **k)
            for owner in (self.tokenizer, self._image_processor):  # simple class: tokenizer; chat: processor
                owner.apply_chat_template = _recording(owner.apply_chat_template, rendered)
            self._model.generate = _shape_timed(self._model.generate, generate_calls)

        simple_llava_hf.LlavaHf.__init__ = init_and_record_prompts
        for llava in (simple_llava_hf.LlavaHf, chat_llava_hf.LlavaHf):
            llava.generate_until = _timed(
                timers, f"generate_until_{llava.__module__.split('.')[-2]}", llava.generate_until
            )
        cls = simple_llava_hf.LlavaHf
    else:
        from tinyllava_bench.lmms.adapter import TinyLlavaBench as cls

        cls.generate_until = _timed(timers, "generate_until", cls.generate_until)
    cls.__init__ = _timed(timers, "load_model", cls.__init__)

    device = args.device
    if args.lmms_model == "llava_hf":
        model_args = f"pretrained={args.checkpoint},device={device},device_map={device},dtype={args.dtype}"
        batch_size = 1
    else:
        model_args = (
            f"pretrained={args.checkpoint},device={device},dtype={args.dtype},batch_size={args.batch_size}"
        )
        batch_size = args.batch_size
    sys.argv = [
        "lmms_eval",
        "eval",
        "--model",
        args.lmms_model,
        "--model_args",
        model_args,
        "--tasks",
        LMMS_TASK,
        "--include_path",
        args.task_dir,
        "--batch_size",
        str(batch_size),
        "--output_path",
        args.output,
        "--log_samples",
    ]
    started = time.perf_counter()
    try:
        lmms_main()
    except SystemExit as exc:  # its dispatcher may exit on its own
        if exc.code not in (None, 0):
            raise
    total = time.perf_counter() - started
    [samples_file] = glob.glob(str(Path(args.output) / "*" / f"*_samples_{LMMS_TASK}.jsonl"))
    predictions, inputs = {}, {}
    for line in Path(samples_file).read_text().splitlines():
        sample = json.loads(line)
        response = sample["filtered_resps"]
        response = response[0] if isinstance(response, list) else response
        # llava_hf returns the decoded continuation unstripped; ours and the plugin strip it
        predictions[sample["doc_id"]] = str(response).strip()
        inputs[sample["doc_id"]] = sample["input"]
    phases = dict(timers)
    for key in [k for k in phases if k.startswith("generate_until_") and not k.endswith("_cpu")]:
        phases["generate_until"] = phases[key]
        phases["generate_until_cpu"] = phases[key + "_cpu"]
        phases["llava_hf_class"] = key.removeprefix("generate_until_")
    phases["lmms_eval_total"] = total
    if generate_calls:
        phases["model_generate_calls"] = _first_shape_split(generate_calls)
    results = glob.glob(str(Path(args.output) / "*" / "*_results.json"))
    if results:
        own = json.loads(Path(results[0]).read_text()).get("total_evaluation_time_seconds")
        phases["lmms_eval_own_total_evaluation_time"] = float(own) if own else None
    return {
        "timed_s": total,
        "phases": phases,
        "predictions": predictions,
        "inputs": inputs,
        "rendered_prompts": rendered,
    }


def _recording(apply_chat_template: Any, rendered: dict[str, str]) -> Any:
    """Wraps apply_chat_template to keep each rendered prompt under its question text."""

    def recording(messages: Any, *args: Any, **kwargs: Any) -> Any:
        text = apply_chat_template(messages, *args, **kwargs)
        content = messages[0]["content"]
        if isinstance(content, str):
            question = content.replace("<image>\n", "", 1)
        else:
            question = "".join(part.get("text", "") for part in content if part.get("type") == "text")
        rendered[question] = text
        return text

    return recording


def _shape_timed(generate: Any, calls: list[tuple[list[int], float]]) -> Any:
    """Wraps a model's `generate` to record each call's input shape and seconds (GPU work finished)."""
    import torch

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        ids = kwargs.get("input_ids", args[0] if args else None)
        started = time.perf_counter()
        output = generate(*args, **kwargs)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        calls.append((list(ids.shape) if ids is not None else [], time.perf_counter() - started))
        return output

    return wrapper


def _first_shape_split(calls: list[tuple[list[int], float]]) -> dict[str, Any]:
    """Seconds of `generate` calls whose input shape was new to the process against those seen before: on a GPU a
    new shape pays for kernel selection (cuDNN attention plans), which a full-size task amortises."""
    seen: set[tuple[int, ...]] = set()
    first, repeat = [], []
    for shape, seconds in calls:
        (repeat if tuple(shape) in seen else first).append(seconds)
        seen.add(tuple(shape))
    return {
        "calls": len(calls),
        "distinct_shapes": len(seen),
        "first_shape_s": round(sum(first), 3),
        "repeat_shape_calls": len(repeat),
        "repeat_shape_s": round(sum(repeat), 3),
        "repeat_shape_mean_s": round(sum(repeat) / len(repeat), 5) if repeat else None,
        "first_shape_mean_s": round(sum(first) / len(first), 5) if first else None,
    }


if __name__ == "__main__":
    sys.exit(common.run_worker(worker_lmms, __doc__))
