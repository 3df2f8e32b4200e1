"""Samples/s and peak memory of `tinyllava-bench eval` against a bare generate loop and lmms-eval, same data.

For each model (a tiny random one and a mid-size random one with SigLIP's 729 image tokens) on the demo world's
GQA rows, five runs, each in a fresh process with the same thread count:

  bare         the model's own batched `generate_ids` over prepared tensors (pixels and prompt ids computed first,
               same order, batch size and max_new_tokens): the limit the harness can approach
  ours         `tinyllava_bench.engine.runner.evaluate` (fresh output folder, 2 DataLoader workers), phases timed
  ours_w0      the same with num_workers=0
  lmms_plugin  lmms-eval 0.7.3 with our plugin (`--model tinyllava_bench`, same batch size) on a local task YAML
  llava_hf     lmms-eval's `llava_hf` (batch size 1, its only choice) on the HF-llava export of the same weights

The lmms-eval task is written from our own loaded rows: its question text is `build_question`'s output and its
images are the same pixels (PNG), so prompts are identical by construction (checked on every sample). Predictions
are compared across all five. lmms-eval runs through $LMMS_PYTHON (default /work/lmms-venv/bin/python).

    python benchmarks/eval_throughput.py                      # tiny 128 rows, mid 48 rows, batch 8, 4 new tokens
    python benchmarks/eval_throughput.py --models tiny --rows 128 --skip-lmms
    python benchmarks/eval_throughput.py --fixed-costs        # per-row set-up costs, projected onto VQAv2 val
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import glob
import json
import shutil
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

TASK = "gqa"
LMMS_TASK = "tlb_bench_gqa"
NEVER_STOP = "<never-emitted-stop>"
# Full GQA testdev-balanced, for projecting the fixed costs of one run onto a real one.
FULL_TASK_ROWS = 12578
VARIANTS = ("bare", "ours", "ours_w0", "ours_bs1", "lmms_plugin", "llava_hf")
OURS = ("ours", "ours_w0", "ours_bs1")  # the variants that run `evaluate()`
DEFAULT_VARIANTS = "bare,ours,ours_w0,lmms_plugin,llava_hf"
# Rows per model unless given; `realistic` is TinyLLaVA-3.1B's shape (a GPU run: ~3 batches of 64).
DEFAULT_ROWS = {"tiny": 128, "mid": 48, "realistic": 192}


# ===== workers: each runs in its own process ===================================================================


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


def _timed_iterator(timers: dict[str, float], name: str, function: Any) -> Any:
    """Wraps a generator function so the time spent waiting for each item is counted under `name`."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        iterator = iter(function(*args, **kwargs))
        while True:
            wall, cpu = time.perf_counter(), time.process_time()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                timers[name] += time.perf_counter() - wall
                timers[name + "_cpu"] += time.process_time() - cpu
            yield item

    return wrapper


def worker_bare(args: argparse.Namespace) -> dict[str, Any]:
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


def worker_ours(args: argparse.Namespace) -> dict[str, Any]:
    """`evaluate(EvalConfig(...))` with its phases timed by wrapping the engine's own functions."""
    import tinyllava_bench
    from tinyllava_bench.engine import runner, store
    from tinyllava_bench.engine.runner import EvalConfig, evaluate
    from tinyllava_bench.models import preprocess, tinyllava

    timers: dict[str, float] = defaultdict(float)
    tinyllava_bench.load_model = _timed(timers, "load_model", tinyllava_bench.load_model)
    runner.checkpoint_fingerprint = _timed(timers, "checkpoint_fingerprint", runner.checkpoint_fingerprint)
    runner._run_task = _timed(timers, "run_task", runner._run_task)
    runner._generate = _timed(timers, "generate_loop", runner._generate)
    runner.prepared_batches = _timed_iterator(timers, "wait_for_images", runner.prepared_batches)
    # with prefix sharing (the default) the engine calls these instead
    runner.shared_batches = _timed_iterator(timers, "wait_for_images", runner.shared_batches)
    runner._score_task = _timed(timers, "score_and_write", runner._score_task)
    tinyllava.TinyLlava.generate_ids = _timed(timers, "model_generate_ids", tinyllava.TinyLlava.generate_ids)
    tinyllava.TinyLlava.generate_ids_shared = _timed(
        timers, "model_generate_ids", tinyllava.TinyLlava.generate_ids_shared
    )
    tinyllava.TinyLlava.decode = _timed(timers, "decode", tinyllava.TinyLlava.decode)
    store.SampleWriter.write = _timed(timers, "samples_log_write", store.SampleWriter.write)
    preprocess.ImagePreprocessor.__call__ = _timed(
        timers, "preprocess_in_main", preprocess.ImagePreprocessor.__call__
    )

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
    started = time.perf_counter()
    evaluate(config)
    total = time.perf_counter() - started
    predictions, prompts = {}, {}
    for line in (output / f"samples_{TASK}.jsonl").read_text().splitlines():
        record = json.loads(line)
        predictions[record["index"]] = record["prediction"]
        prompts[record["index"]] = record["prompt"]
    phases = dict(timers)
    phases["evaluate_total"] = total
    return {"timed_s": total, "phases": phases, "predictions": predictions, "prompts": prompts}


def worker_lmms(args: argparse.Namespace) -> dict[str, Any]:
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


WORKERS = {"bare": worker_bare, "ours": worker_ours, "lmms": worker_lmms}


# Modules every runner needs sooner or later; imported before any timer starts so that in-process times compare
# work, not which runner happens to import transformers' processing stack first (that import alone takes seconds).
PREIMPORTS = (
    "torch",
    "datasets",
    "transformers.processing_utils",
    "transformers.models.siglip.modeling_siglip",
    "transformers.models.phi.modeling_phi",
    "transformers.models.llava.modeling_llava",
    "transformers.models.siglip.image_processing_pil_siglip",
    "transformers.models.llava.image_processing_pil_llava",
    "transformers.generation.utils",
    "tinyllava_bench.models.loading",
    "tinyllava_bench.tasks.data",
)


def run_worker(args: argparse.Namespace) -> int:
    import importlib

    started = time.perf_counter()
    for name in PREIMPORTS:
        with contextlib.suppress(ImportError):  # a module another transformers version names differently
            importlib.import_module(name)
    import torch

    imports_s = time.perf_counter() - started
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = WORKERS[args.worker](args)
    result["phases"]["preimports"] = imports_s
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mib_self"] = common.peak_rss_mib()
    if args.device.startswith("cuda"):
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0


# ===== preparing a model, its data and the lmms-eval task ======================================================


def build_checkpoints(which: str, root: Path, args: argparse.Namespace) -> tuple[dict[str, Path], dict, Any]:
    """The random model `which` (tiny | mid | realistic) written as native and hf_llava checkpoints under `root`;
    returns the paths, a description, and the model itself (for rendering prompts)."""
    import dataclasses

    import torch

    from tinyllava_bench.models.loading import resolve_dtype
    from tinyllava_bench.testing.models import build_random_model, build_tiny_model, write_tiny_checkpoints

    if which == "tiny":
        model = build_tiny_model("phi", "siglip")
        description = {
            "name": "tiny (build_tiny_model phi+siglip)",
            "llm": "phi hidden 32, 2 layers",
            "vision": "siglip hidden 24, 2 layers, 28px / patch 14 = 4 tokens",
        }
    else:
        spec = common.MID if which == "mid" else common.PHI2_SIGLIP
        if args.shrink:  # a smoke check of the code path: the same shapes with 2 layers each
            spec = dataclasses.replace(spec, name=spec.name + "-2layers", layers=2, vision_layers=2)
        dtype = resolve_dtype(args.dtype, args.device)
        model = build_random_model(spec, device=args.device, dtype=dtype)
        description = {"name": spec.name, **spec.to_dict(), "dtype": str(dtype).replace("torch.", "")}
    # Random weights rarely choose EOS, and when they do it is at once for every prompt; a zero EOS row makes
    # every answer exactly max_new_tokens long (as short answers are: a few tokens), the same for every runner.
    eos = model.tokenizer.eos_token_id
    lm_head = model.language_model.get_output_embeddings()
    with torch.no_grad():
        lm_head.weight[eos].zero_()
        # The realistic model pads the small random tokenizer's vocabulary to Phi-2's 51,200 rows; ids past the
        # tokenizer decode to nothing, so answers made of them are all "" and comparing them proves nothing.
        # Zero rows give those ids a logit of exactly 0, below the best of 320 wide random logits, so every
        # answer is made of real tokens. (Not a bias: transformers' Llava class has no lm_head bias.)
        lm_head.weight[len(model.tokenizer) :].zero_()
    description["parameters_m"] = round(common.parameter_count(model) / 1e6, 2)
    description["image_tokens"] = model.num_image_tokens
    model.to("cpu")  # written from the CPU; the runners load it where they run
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    paths = write_tiny_checkpoints(model, root, layouts=["native", "hf_llava"])
    return paths, description, model


LMMS_TASK_PY = '''"""Document functions of the benchmark's copy of GQA (written by benchmarks/eval_throughput.py)."""


def doc_to_visual(doc):
    return [doc["image"].convert("RGB")]


def doc_to_text(doc, lmms_eval_specific_kwargs=None):
    return doc["question"]  # already the full question: build_question's output, suffix included


def process_results(doc, results):
    return {"exact_match": float(results[0].strip().lower() == doc["answer"].lower())}
'''


def write_lmms_task(
    data_root: Path, task_dir: Path, rows: int, max_new_tokens: int, source_task: str = TASK
) -> list[str]:
    """A local lmms-eval task over our loaded rows of `source_task` (any task with an `answer` column; the lmms-eval
    task keeps the name LMMS_TASK): question = build_question(row), the same image pixels."""
    import datasets

    from tinyllava_bench.tasks import build_question, load_task, load_task_data

    task = load_task(source_task)
    data = load_task_data(task, data_root=data_root)
    text_rows = (
        data.rows.remove_columns(task.columns.image)
        if task.columns.image in data.rows.column_names
        else data.rows
    )
    records = []
    for index, row in enumerate(text_rows.to_list()[:rows]):
        records.append(
            {
                "index": index,
                "question": build_question(task, row),
                "image": data.image(index),
                "answer": str(row["answer"]),
            }
        )
    features = datasets.Features(
        {
            "index": datasets.Value("int64"),
            "question": datasets.Value("string"),
            "image": datasets.Image(),
            "answer": datasets.Value("string"),
        }
    )
    task_dir.mkdir(parents=True, exist_ok=True)
    parquet = task_dir / "data" / "test.parquet"
    parquet.parent.mkdir(exist_ok=True)
    datasets.Dataset.from_list(records, features=features).to_parquet(str(parquet))
    (task_dir / "tlb_bench.py").write_text(LMMS_TASK_PY)
    (task_dir / f"{LMMS_TASK}.yaml").write_text(
        f"""task: {LMMS_TASK}
dataset_path: parquet
dataset_kwargs:
  data_files:
    test: {parquet}
test_split: test
output_type: generate_until
doc_to_visual: !function tlb_bench.doc_to_visual
doc_to_text: !function tlb_bench.doc_to_text
doc_to_target: answer
generation_kwargs:
  max_new_tokens: {max_new_tokens}
  temperature: 0
  do_sample: false
  until: ["{NEVER_STOP}"]
process_results: !function tlb_bench.process_results
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
metadata:
  version: 0.0
"""
    )
    return [r["question"] for r in records]


# ===== the orchestrator ========================================================================================


def run_variant(
    variant: str,
    args: argparse.Namespace,
    paths: dict[str, Path],
    work: Path,
    label: str,
    env: dict[str, str],
    rows: int,
    dtype: str,
) -> dict[str, Any]:
    out = work / f"{label}_{variant}"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    result_file = out / "worker.json"
    common_args = [
        "--threads",
        str(args.threads),
        "--rows",
        str(rows),
        "--batch-size",
        "1" if variant == "ours_bs1" else str(args.batch_size),  # ours_bs1: one at a time, as llava_hf
        "--max-new-tokens",
        str(args.max_new_tokens),
        "--device",
        args.device,
        "--dtype",
        dtype,
        "--result",
        str(result_file),
        "--data-root",
        str(work / "data"),
    ]
    script = str(Path(__file__).resolve())
    run_env = dict(env)
    if variant == "bare":
        command = [sys.executable, script, "--worker", "bare", "--checkpoint", str(paths["native"])]
    elif variant in OURS:
        workers = 0 if variant == "ours_w0" else args.num_workers
        command = [sys.executable, script, "--worker", "ours", "--checkpoint", str(paths["native"])]
        command += ["--output", str(out / "run"), "--num-workers", str(workers)]
    else:
        lmms_model = "tinyllava_bench" if variant == "lmms_plugin" else "llava_hf"
        checkpoint = paths["native"] if variant == "lmms_plugin" else paths["hf_llava"]
        command = [common.python_for_lmms(), script, "--worker", "lmms", "--lmms-model", lmms_model]
        command += ["--checkpoint", str(checkpoint), "--task-dir", str(work / "lmms_task")]
        command += ["--output", str(out / "lmms_out")]
        # a cold datasets cache per run, as a first run on a new dataset; nothing reaches the network
        run_env.update(
            {
                "HF_HUB_OFFLINE": "1",
                "HF_DATASETS_OFFLINE": "1",
                "HF_HOME": str(out / "hf_home"),
                "HF_DATASETS_CACHE": str(out / "hf_datasets"),
            }
        )
    measured = common.run_measured(command + common_args, out / "log.txt", env=run_env, cwd=out)
    if measured["returncode"] != 0 or not result_file.exists():
        tail = (out / "log.txt").read_text()[-3000:]
        raise RuntimeError(f"{label}/{variant} failed (exit {measured['returncode']}):\n{tail}")
    worker = json.loads(result_file.read_text())
    worker["predictions"] = {int(k): v for k, v in worker["predictions"].items()}
    return {**measured, **worker}


def harness_breakdown(p: dict[str, float], bare: float, bare_cpu: float, rows: int) -> dict[str, Any]:
    """Where one `evaluate` call spent its time, against the bare loop's generation time."""
    loop = p["generate_loop"]
    fixed = p["evaluate_total"] - loop
    in_loop = {
        "model_generate_ids": p.get("model_generate_ids", 0.0),
        "wait_for_images": p.get("wait_for_images", 0.0),
        "samples_log_write": p.get("samples_log_write", 0.0),
        "decode": p.get("decode", 0.0),
    }
    in_loop["other"] = loop - sum(in_loop.values())
    per_sample_ours, per_sample_bare = loop / rows, bare / rows
    return {
        "bare_generate_loop_s": round(bare, 3),
        "ours_generate_loop_s": round(loop, 3),
        "ours_generate_loop_breakdown_s": {k: round(v, 3) for k, v in in_loop.items()},
        "loop_overhead_vs_bare_pct": round(100 * (loop / bare - 1), 1),
        "loop_overhead_vs_bare_cpu_pct": round(100 * (p["generate_loop_cpu"] / bare_cpu - 1), 1),
        "ours_fixed_s": round(fixed, 3),
        "ours_fixed_breakdown_s": {
            "load_model": round(p.get("load_model", 0.0), 3),
            "checkpoint_fingerprint": round(p.get("checkpoint_fingerprint", 0.0), 3),
            "data_and_requests": round(p["run_task"] - loop - p.get("score_and_write", 0.0), 3),
            "score_and_write": round(p.get("score_and_write", 0.0), 3),
        },
        "evaluate_vs_bare_pct": round(100 * (p["evaluate_total"] / bare - 1), 1),
        "evaluate_excl_model_load_vs_bare_pct": round(
            100 * ((p["evaluate_total"] - p.get("load_model", 0.0)) / bare - 1), 1
        ),
        f"projected_full_{TASK}_overhead_pct": round(
            100 * ((fixed + per_sample_ours * FULL_TASK_ROWS) / (per_sample_bare * FULL_TASK_ROWS) - 1), 1
        ),
    }


def _projected_wall(entry: dict[str, Any], rows: int) -> float:
    generation = rows / entry["generation_samples_per_s"]
    fixed = entry["end_to_end_wall_s"] - generation
    return fixed + generation / rows * FULL_TASK_ROWS


def summarize(
    label: str, runs: dict[str, dict[str, Any]], rows: int, questions: list[str], expected_prompts: list[str]
) -> dict:
    """Samples/s per variant, harness overhead vs the bare loop, ratios to lmms-eval, prediction and prompt checks."""
    summary: dict[str, Any] = {"variants": {}}
    for variant, run in runs.items():
        phases = run["phases"]
        entry = {
            "end_to_end_wall_s": run["wall_s"],
            "end_to_end_samples_per_s": rows / run["wall_s"],
            "timed_s": run["timed_s"],
            "timed_samples_per_s": rows / run["timed_s"],
            # the runner's main process (VmHWM); DataLoader workers are not in it
            "peak_rss_mib": run["peak_rss_mib_self"],
            "peak_gpu_mib": run.get("peak_gpu_mib"),
            "phases_s": {k: round(v, 3) if isinstance(v, float) else v for k, v in phases.items()},
        }
        generation = "generate_loop" if variant == "bare" or variant in OURS else "generate_until"
        entry["generation_samples_per_s"] = rows / phases[generation]
        # CPU seconds of the main process: steadier than wall time on a loaded machine (DataLoader workers'
        # CPU is not in it, so `ours` with workers looks cheaper here than it is)
        entry["generation_samples_per_cpu_s"] = rows / phases[generation + "_cpu"]
        entry["end_to_end_cpu_s"] = run["cpu_s"]
        summary["variants"][variant] = entry

    bare = runs["bare"]["phases"]["generate_loop"]
    bare_cpu = runs["bare"]["phases"]["generate_loop_cpu"]
    summary["harness"] = {
        variant: harness_breakdown(runs[variant]["phases"], bare, bare_cpu, rows)
        for variant in ("ours", "ours_w0")
        if variant in runs
    }
    ratios = {}
    for mine in OURS:
        for other in ("lmms_plugin", "llava_hf"):
            if other not in runs or mine not in runs:
                continue
            ours, them = summary["variants"][mine], summary["variants"][other]
            ratios[f"{mine}_vs_{other}"] = {
                "end_to_end": round(ours["end_to_end_samples_per_s"] / them["end_to_end_samples_per_s"], 2),
                "in_process_timed": round(ours["timed_samples_per_s"] / them["timed_samples_per_s"], 2),
                "generation_phase": round(
                    ours["generation_samples_per_s"] / them["generation_samples_per_s"], 2
                ),
                "generation_phase_cpu": round(
                    ours["generation_samples_per_cpu_s"] / them["generation_samples_per_cpu_s"], 2
                ),
                # end-to-end with the fixed part (wall minus generation phase) paid once on 12,578 rows
                f"projected_full_{TASK}": round(_projected_wall(them, rows) / _projected_wall(ours, rows), 2),
            }
    summary["ratios"] = ratios

    reference = runs["bare"]["predictions"]
    identical = {}
    for variant, run in runs.items():
        predictions = run["predictions"]
        same = sum(1 for i in range(rows) if predictions.get(i) == reference.get(i))
        identical[variant] = {"identical_to_bare": same, "of": rows}
    summary["predictions"] = identical
    summary["distinct_predictions"] = len(set(reference.values()))
    summary["predictions_all_identical"] = all(v["identical_to_bare"] == rows for v in identical.values())
    # the same batch size on both sides: on a GPU in bf16, padding a batch changes sums, so batched answers can
    # differ from one-at-a-time ones on near-ties; these pairs compare like with like
    pairs = {}
    for mine, other in (("ours_bs1", "llava_hf"), ("ours", "lmms_plugin"), ("bare", "ours")):
        if mine in runs and other in runs:
            a, b = runs[mine]["predictions"], runs[other]["predictions"]
            pairs[f"{mine}={other}"] = sum(1 for i in range(rows) if a.get(i) == b.get(i))
    summary["predictions_same_batch_size"] = {**pairs, "of": rows}

    prompts: dict[str, Any] = {}
    if "ours" in runs:
        ours_prompts = {int(k): v for k, v in runs["ours"]["prompts"].items()}
        prompts["ours_equals_rendered_lmms_question"] = sum(
            ours_prompts[i] == expected_prompts[i] for i in range(rows)
        )
        if "lmms_plugin" in runs:
            inputs = {int(k): v for k, v in runs["lmms_plugin"]["inputs"].items()}
            prompts["lmms_plugin_context_equals_question"] = sum(
                inputs.get(i) == questions[i] for i in range(rows)
            )
        if "llava_hf" in runs:
            rendered = runs["llava_hf"]["rendered_prompts"]
            prompts["llava_hf_prompt_equals_ours"] = sum(
                rendered.get(questions[i]) == ours_prompts[i] for i in range(rows)
            )
        prompts["of"] = rows
    summary["prompts"] = prompts
    return summary


def print_summary(label: str, summary: dict[str, Any]) -> None:
    rows = []
    for variant, entry in summary["variants"].items():
        check = summary["predictions"][variant]
        rows.append(
            {
                "variant": variant,
                "e2e": entry["end_to_end_samples_per_s"],
                "timed": entry["timed_samples_per_s"],
                "gen": entry["generation_samples_per_s"],
                "gencpu": entry["generation_samples_per_cpu_s"],
                "wall": entry["end_to_end_wall_s"],
                "rss": entry["peak_rss_mib"],
                "gpu": entry["peak_gpu_mib"],
                "same": f"{check['identical_to_bare']}/{check['of']}",
            }
        )
    print(f"\n== {label}")
    columns = [
        ("variant", "variant"),
        ("e2e", "samples/s end-to-end"),
        ("timed", "samples/s in-process"),
        ("gen", "samples/s generation"),
        ("gencpu", "samples/cpu-s generation"),
        ("wall", "wall s"),
        ("rss", "peak RSS MiB"),
        ("gpu", "peak GPU MiB"),
        ("same", "preds = bare"),
    ]
    print(common.format_table(rows, columns))
    for variant, h in summary["harness"].items():
        print(
            f"{variant}: generate loop {h['ours_generate_loop_s']}s vs bare {h['bare_generate_loop_s']}s "
            f"({h['loop_overhead_vs_bare_pct']:+}% wall, {h['loop_overhead_vs_bare_cpu_pct']:+}% cpu), in the loop {h['ours_generate_loop_breakdown_s']}; "
            f"fixed {h['ours_fixed_s']}s {h['ours_fixed_breakdown_s']}; "
            f"projected on full {TASK}: {h[f'projected_full_{TASK}_overhead_pct']:+}%"
        )
    for name, ratio in summary["ratios"].items():
        print(f"{name}: {ratio}")
    calls = summary["variants"].get("llava_hf", {}).get("phases_s", {}).get("model_generate_calls")
    if calls:
        print(f"llava_hf model.generate calls, new input shape vs seen before: {calls}")
    print(f"predictions at the same batch size: {summary['predictions_same_batch_size']}")
    print(f"prompts: {summary['prompts']}; all predictions identical: {summary['predictions_all_identical']}")


def orchestrate(args: argparse.Namespace) -> int:
    import torch

    from tinyllava_bench.testing.datasets import write_task_data

    machine = common.machine_info()
    if args.device.startswith("cuda"):
        machine["device"] = torch.cuda.get_device_name()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="tlb-eval-bench-"))
    env = common.thread_env(args.threads)
    variants = [v for v in args.variants if not (args.skip_lmms and v in ("lmms_plugin", "llava_hf"))]
    rows_of = {"tiny": args.rows, "mid": args.mid_rows, "realistic": args.realistic_rows}
    report: dict[str, Any] = {
        "benchmark": "eval_throughput",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": machine,
        "settings": {
            "task": TASK,
            "rows": {which: rows_of[which] for which in args.models},
            "device": args.device,
            "dtype": args.dtype,
            "variants": variants,
            "batch_size": args.batch_size,
            "llava_hf_batch_size": 1,
            "max_new_tokens": args.max_new_tokens,
            "num_workers": args.num_workers,
            "threads": args.threads,
            "repeats": args.repeats,
            "lmms_python": common.python_for_lmms(),
        },
        "models": {},
    }
    out = Path(args.out)

    def compare(
        label: str, built: tuple[dict[str, Path], dict, Any], runners: list[str], rows: int, dtype: str
    ) -> dict[str, Any]:
        paths, description, render = built
        model_dir = paths["native"].parent.parent
        questions = write_lmms_task(model_dir / "data", model_dir / "lmms_task", rows, args.max_new_tokens)
        all_runs: dict[str, list[dict[str, Any]]] = defaultdict(list)
        failed: dict[str, str] = {}
        for repeat in range(args.repeats):
            # interleaved, so a burst of load on the machine hits every variant alike
            for variant in runners:
                print(f"[{label}] repeat {repeat + 1}/{args.repeats}: {variant} ...", flush=True)
                try:
                    all_runs[variant].append(
                        run_variant(variant, args, paths, model_dir, label, env, rows, dtype)
                    )
                except RuntimeError as exc:  # one runner failing must not lose the others' numbers
                    if variant == "bare":
                        raise
                    failed[variant] = str(exc)[-3000:]
                    print(f"[{label}] {variant} FAILED: {failed[variant]}", flush=True)
        best = {v: min(runs, key=lambda r: r["wall_s"]) for v, runs in all_runs.items()}
        summary = summarize(label, best, rows, questions, [render(q) for q in questions])
        summary.update(rows=rows, dtype=dtype, model=description, failed=failed)
        summary["all_walls_s"] = {v: [r["wall_s"] for r in runs] for v, runs in all_runs.items()}
        summary["sample_predictions"] = {i: best["bare"]["predictions"][i] for i in range(min(3, rows))}
        print_summary(label, summary)
        return summary

    for which in args.models:
        rows = rows_of[which]
        model_dir = work / which
        shutil.rmtree(model_dir, ignore_errors=True)
        started = time.perf_counter()
        paths, description, model = build_checkpoints(which, model_dir / "ckpt", args)
        description["build_and_write_s"] = round(time.perf_counter() - started, 1)
        # the prompt renderer without the weights: the runners load their own copies
        render = functools.partial(model.template.render_prompt, strip_question=model.settings.strip_question)
        built = (paths, description, render)
        del model
        data_rows = max(rows, args.identity_rows) if args.identity_dtype else rows
        write_task_data(TASK, model_dir / "data", n=data_rows, seed=0)
        report["models"][which] = compare(which, built, variants, rows, args.dtype)
        common.write_result(out, report)  # what is done so far survives a later failure
        if args.identity_dtype:
            label = f"{which}_{args.identity_dtype}"
            report["models"][label] = compare(
                label, built, args.identity_variants, args.identity_rows, args.identity_dtype
            )
            common.write_result(out, report)
    report["machine"]["load_average_at_end"] = common.load_average()
    common.write_result(out, report)
    print(f"\nwrote {out} (work folder {work})")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


# ===== fixed costs at full scale ================================================================================


def measure_fixed_costs(args: argparse.Namespace) -> int:
    """What `_run_task` does before the first batch, per row, projected onto VQAv2 val's 214,354 rows: building the
    requests (question, prompt, prompt ids, sample key) one row at a time and as the engine now does it (prompt ids
    of all rows in one batched tokenizer call), and deciding what is pending (`finished_records` read once, then a
    set lookup per row; the per-row re-read that an earlier engine did is projected for comparison)."""
    from tinyllava_bench.engine import runner
    from tinyllava_bench.engine.provenance import fingerprint
    from tinyllava_bench.engine.store import SampleWriter
    from tinyllava_bench.tasks import build_question, load_task, load_task_data
    from tinyllava_bench.testing.datasets import write_task_data
    from tinyllava_bench.testing.models import build_tiny_model

    full = args.fixed_cost_rows
    work = Path(tempfile.mkdtemp(prefix="tlb-fixed-costs-"))
    try:
        write_task_data("vqav2", work / "data", n=args.fixed_cost_sample, seed=0)
        task = load_task("vqav2")
        data = load_task_data(task, data_root=work / "data")
        started = time.perf_counter()
        rows = runner._text_rows(data)
        to_list_s = time.perf_counter() - started
        model = build_tiny_model("phi", "siglip")
        question_ids = data.question_ids()

        def build(index: int, row: dict[str, Any]) -> tuple[str, str, list[int], str]:
            question = build_question(task, row)
            key = fingerprint(["model", "task", index, str(question_ids[index])])
            return question, model.render_prompt(question), model.prompt_ids(question), key

        for index, row in enumerate(rows[:50]):  # warm the tokenizer
            build(index, row)
        started = time.perf_counter()
        built = [build(index, row) for index, row in enumerate(rows)]
        build_per_row = (time.perf_counter() - started) / len(rows)
        # the engine's way: questions and keys per row, prompt ids for all rows in one batched call
        started = time.perf_counter()
        questions = [build_question(task, row) for row in rows]
        batch_keys = [fingerprint(["model", "task", i, str(question_ids[i])]) for i in range(len(rows))]
        batch_prompts = [model.render_prompt(question) for question in questions]
        batch_ids = model.prompt_ids_many(questions)
        batched_per_row = (time.perf_counter() - started) / len(rows)
        assert batch_ids == [ids for _, _, ids, _ in built] and len(batch_keys) == len(batch_prompts) == len(
            rows
        )

        output = work / "run"
        output.mkdir()
        calls = 200
        started = time.perf_counter()
        for _ in range(calls):
            runner.finished_records(output, "vqav2")
        empty_call = (time.perf_counter() - started) / calls
        finished = len(built)
        with SampleWriter(runner.samples_path(output, "vqav2").with_suffix(".partial.jsonl")) as writer:
            writer.write(
                {
                    "schema_version": 1,
                    "key": key,
                    "index": index,
                    "question_id": question_ids[index],
                    "prompt": prompt,
                    "prediction": "yes",
                    "parsed": None,
                    "score": None,
                    "error": None,
                    "fields": {"answer_type": "yes/no"},
                }
                for index, (_, prompt, _, key) in enumerate(built)
            )
        calls = 20
        started = time.perf_counter()
        for _ in range(calls):
            runner.finished_records(output, "vqav2")
        loaded_call = (time.perf_counter() - started) / calls
        # the engine's own lines, on these rows: finished_records read once, then a lookup per row
        keys = {index: key for index, (_, _, _, key) in enumerate(built)}
        indices = list(range(len(built)))
        started = time.perf_counter()
        done = runner.finished_records(output, "vqav2")
        pending = [i for i in indices if keys[i] not in done]
        pending_s = time.perf_counter() - started
        assert not pending
    finally:
        shutil.rmtree(work, ignore_errors=True)
    per_record = loaded_call / finished
    result = {
        "benchmark": "eval_fixed_costs",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": common.machine_info(),
        "measured_rows": len(rows),
        "projected_rows": full,
        "tokenizer": "the tiny model's byte-level BPE (real Phi-2/Llama tokenizers are also Rust BPE; similar cost)",
        "to_list_s": round(to_list_s, 4),
        "build_request_per_row_ms": round(1000 * build_per_row, 4),
        "build_requests_projected_s": round(build_per_row * full, 1),
        "build_requests_batched_per_row_ms": round(1000 * batched_per_row, 4),
        "build_requests_batched_projected_s": round(batched_per_row * full, 1),
        "finished_records_call_empty_ms": round(1000 * empty_call, 4),
        "finished_records_call_ms_with_records": {str(finished): round(1000 * loaded_call, 2)},
        "finished_records_ms_per_logged_record": round(1000 * per_record, 5),
        "engine_pending_list_measured": {
            "rows": len(indices),
            "logged_records": finished,
            "seconds": round(pending_s, 2),
        },
        "pending_list_projected_resume_half_done_s": round(
            per_record * (full // 2) + max(0.0, pending_s - loaded_call) / len(indices) * full, 1
        ),
        "per_row_reread_projected_resume_half_done_s": round(full * per_record * (full // 2), 0),
    }
    for key, value in result.items():
        if key != "machine":
            print(f"{key}: {value}")
    common.write_result(Path(args.out), result)
    print(f"wrote {args.out}")
    return 0


def _comma_list(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--models",
        default="tiny,mid",
        help="comma list of tiny, mid, realistic (TinyLLaVA-3.1B's shape: GPU)",
    )
    parser.add_argument("--rows", type=int, default=DEFAULT_ROWS["tiny"], help="GQA rows for the tiny model")
    parser.add_argument(
        "--mid-rows", type=int, default=DEFAULT_ROWS["mid"], help="GQA rows for the mid model"
    )
    parser.add_argument(
        "--realistic-rows", type=int, default=DEFAULT_ROWS["realistic"], help="GQA rows, realistic model"
    )
    parser.add_argument(
        "--variants",
        default=DEFAULT_VARIANTS,
        help=f"comma list of runners, of {', '.join(VARIANTS)} (ours_bs1: ours at batch size 1); bare is needed",
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda, for every runner")
    parser.add_argument(
        "--identity-dtype",
        default=None,
        help="then run --identity-variants again in this dtype (float32: batched bf16 sums differ from batch-1 "
        "ones, so identical predictions are checked where rounding cannot flip them)",
    )
    parser.add_argument("--identity-rows", type=int, default=64)
    parser.add_argument("--identity-variants", default="bare,ours,llava_hf")
    parser.add_argument("--dtype", default=None, help="default float32 on cpu, bfloat16 on cuda")
    parser.add_argument(
        "--shrink",
        action="store_true",
        help="mid/realistic with 2 layers each: a smoke check of the code path",
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument(
        "--num-workers", type=int, default=2, help="the engine's DataLoader workers (its default)"
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch/OpenMP threads in every process (0: torch's default)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats; the fastest run is kept")
    parser.add_argument("--skip-lmms", action="store_true", help="bare loop and ours only")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument(
        "--out", default=None, help="default results/eval_throughput.json (eval_fixed_costs.json)"
    )
    parser.add_argument(
        "--fixed-costs",
        action="store_true",
        help="instead: time request building and the pending-list check per row, projected onto VQAv2 val",
    )
    parser.add_argument("--fixed-cost-rows", type=int, default=214_354, help=argparse.SUPPRESS)
    parser.add_argument("--fixed-cost-sample", type=int, default=4000, help=argparse.SUPPRESS)
    # worker mode (internal)
    parser.add_argument("--worker", choices=sorted(WORKERS), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--lmms-model", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--checkpoint", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--data-root", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--task-dir", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--output", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.out is None:
        name = "eval_fixed_costs.json" if args.fixed_costs else "eval_throughput.json"
        args.out = str(common.RESULTS_DIR / name)
    args.models = _comma_list(args.models)
    unknown = set(args.models) - set(DEFAULT_ROWS)
    if unknown:
        parser.error(f"unknown models {sorted(unknown)}; use {', '.join(DEFAULT_ROWS)}")
    for option in ("variants", "identity_variants"):
        chosen = _comma_list(getattr(args, option))
        unknown = set(chosen) - set(VARIANTS)
        if unknown or "bare" not in chosen:
            flag = "--" + option.replace("_", "-")
            parser.error(
                f"{flag}: {sorted(unknown) or 'bare missing'}; use bare and any of {', '.join(VARIANTS)}"
            )
        setattr(args, option, chosen)
    if args.dtype is None:
        args.dtype = "float32" if args.device == "cpu" else "bfloat16"
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        return run_worker(args)
    return measure_fixed_costs(args) if args.fixed_costs else orchestrate(args)


if __name__ == "__main__":
    sys.exit(main())
