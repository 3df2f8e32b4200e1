"""The `eval` verb: evaluate a model on tasks and write a run folder (results.json + samples_<task>.jsonl)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from tinyllava_bench.errors import EXIT_STATUS_HELP


def register(subparsers: argparse._SubParsersAction) -> None:
    from tinyllava_bench.judge.settings import add_judge_arguments
    from tinyllava_bench.threads import add_threads_argument

    p = subparsers.add_parser(
        "eval", help="evaluate a model on benchmark tasks (batched, resumable, data-parallel)"
    )
    p.add_argument("--model", required=True, help="zoo name, hub id or local checkpoint folder")
    p.add_argument(
        "--tasks",
        required=True,
        help="comma-separated task names or aliases (see `tinyllava-bench tasks`), or all",
    )
    p.add_argument("--output", default=None, help="run folder (default: results/<model>)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N rows of each task")
    p.add_argument(
        "--batch-size",
        default="auto",
        help="samples per batch, or auto (GPU: 64, halving on out-of-memory; CPU: 1, or with prefix sharing 8 "
        "questions of one image)",
    )
    p.add_argument("--protocol", choices=("official", "lmms-eval"), default="official")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument(
        "--dtype",
        choices=("float32", "bfloat16", "float16"),
        default=None,
        help="default: float32 on CPU, float16 on GPU (the original scripts)",
    )
    p.add_argument(
        "--num-workers",
        type=int,
        default=None,
        help="DataLoader workers decoding images (default: 2 on GPU; 0 on CPU, where workers would "
        "take cores from the model — benchmarks/README.md)",
    )
    add_judge_arguments(p, cache_default="OUT/judge_cache")
    p.add_argument(
        "--data-root",
        default=None,
        help="local copies: task T reads DIR/T.parquet, DIR/T.jsonl or DIR/T/ (hub column names)",
    )
    p.add_argument(
        "--model-args",
        default=None,
        help="load_model overrides, e.g. template=v1,image_aspect=square,vision_select=patch",
    )
    p.add_argument("--task-options", default=None, help="task overrides, e.g. prompt.ocr_tokens=false")
    p.add_argument("--seed", type=int, default=0)
    add_threads_argument(p)
    p.add_argument(
        "--no-prefix-sharing",
        dest="prefix_sharing",
        action="store_false",
        help="prefill each question's image prefix on its own (default: once per image; same answers)",
    )
    p.add_argument(
        "--max-error-rate",
        type=float,
        default=0.0,
        metavar="R",
        help="share of samples (0-1) that may error or go unjudged with exit status 0 (default 0: any such "
        "sample makes the exit status 3)",
    )
    p.set_defaults(func=run_eval)
    p.epilog = EXIT_STATUS_HELP
    p.formatter_class = argparse.RawDescriptionHelpFormatter


def run_eval(args: argparse.Namespace) -> int:
    from tinyllava_bench.api import evaluate

    result = evaluate(
        args.model,
        args.tasks,
        output=args.output,
        limit=args.limit,
        batch_size=args.batch_size,
        protocol=args.protocol,
        device=args.device,
        dtype=args.dtype,
        num_workers=args.num_workers,
        judge_model=args.judge_model,
        judge_temperature=args.judge_temperature,
        judge_max_tokens=args.judge_max_tokens,
        judge_retries=args.judge_retries,
        judge_base_url=args.judge_base_url,
        judge_cache=args.judge_cache,
        data_root=args.data_root,
        model_args=args.model_args,
        task_options=args.task_options,
        seed=args.seed,
        threads=args.threads,
        prefix_sharing=args.prefix_sharing,
        max_error_rate=args.max_error_rate,
        show_progress=True,
    )
    if not result.results:
        return result.exit_status
    print(summary_table(result.results))
    print(f"\nrun folder: {result.output}")
    if result.message:
        print(result.message, file=sys.stderr)
    return result.exit_status


def summary_table(results: dict[str, Any]) -> str:
    """One line per task: headline metric, value, samples, errors, protocol."""
    header = ("task", "metric", "value", "samples", "errors", "unjudged", "protocol")
    rows = []
    for name, entry in results.get("tasks", {}).items():
        headline = entry.get("headline")
        value = entry.get("metrics", {}).get(headline)
        rows.append(
            (
                name,
                headline or "",
                "" if value is None else f"{value:.2f}",
                str(entry.get("n_samples", "")),
                str(entry.get("n_errors", "")),
                str(entry.get("n_judge_failures", 0)),
                entry.get("protocol", ""),
            )
        )
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths)) for row in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    title = f"model: {results.get('model', {}).get('name')}"
    return "\n".join([title, *lines])
