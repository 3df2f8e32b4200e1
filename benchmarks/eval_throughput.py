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

Each runner is a script of its own (eval_worker_bare.py, eval_worker_ours.py, eval_worker_lmms.py) started in a
fresh process; eval_inputs.py builds the checkpoints and the lmms-eval task, eval_summary.py compares the results.
Per-row set-up costs at full scale: eval_fixed_costs.py.

    python benchmarks/eval_throughput.py                      # tiny 128 rows, mid 48 rows, batch 8, 4 new tokens
    python benchmarks/eval_throughput.py --models tiny --rows 128 --skip-lmms
"""

from __future__ import annotations

import argparse
import functools
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
from eval_inputs import TASK, build_checkpoints, write_lmms_task  # noqa: E402
from eval_summary import OURS, print_summary, summarize  # noqa: E402

VARIANTS = ("bare", "ours", "ours_w0", "ours_bs1", "lmms_plugin", "llava_hf")
DEFAULT_VARIANTS = "bare,ours,ours_w0,lmms_plugin,llava_hf"
# Rows per model unless given; `realistic` is TinyLLaVA-3.1B's shape (a GPU run: ~3 batches of 64).
DEFAULT_ROWS = {"tiny": 128, "mid": 48, "realistic": 192}


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
    here = Path(__file__).resolve().parent
    run_env = dict(env)
    if variant == "bare":
        command = [sys.executable, str(here / "eval_worker_bare.py"), "--checkpoint", str(paths["native"])]
    elif variant in OURS:
        workers = 0 if variant == "ours_w0" else args.num_workers
        command = [sys.executable, str(here / "eval_worker_ours.py"), "--checkpoint", str(paths["native"])]
        command += ["--output", str(out / "run"), "--num-workers", str(workers)]
    else:
        lmms_model = "tinyllava_bench" if variant == "lmms_plugin" else "llava_hf"
        checkpoint = paths["native"] if variant == "lmms_plugin" else paths["hf_llava"]
        command = [common.python_for_lmms(), str(here / "eval_worker_lmms.py"), "--lmms-model", lmms_model]
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
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "eval_throughput.json"))
    args = parser.parse_args(argv)
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
    return orchestrate(parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
