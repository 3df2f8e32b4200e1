"""The `eval` verb: evaluate a model on tasks and write a run folder (results.json + samples_<task>.jsonl)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_STATUS_HELP, UserError, run_phase


def _key_values(text: str | None, flag: str) -> dict[str, Any]:
    """`a=1,b=x` → {"a": 1, "b": "x"} with YAML scalars (numbers, booleans, null)."""
    import yaml

    out: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UserError(f"{flag} takes key=value pairs separated by commas, got {item!r}")
        key, value = item.split("=", 1)
        try:  # safe_load: a python/... tag is refused, never run
            out[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise UserError(f"{flag} {item!r}: the value is not a plain YAML value ({problem})") from None
    return out


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
        "--batch-size", default="auto", help="samples per batch, or auto (halves on out-of-memory)"
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
    import torch

    from tinyllava_bench.engine.runner import EvalConfig, evaluate, expand_tasks
    from tinyllava_bench.judge.settings import judge_overrides, resolve_judge_settings
    from tinyllava_bench.models.loading import check_overrides
    from tinyllava_bench.tasks import apply_overrides, load_task

    # the command line first: what is wrong there is a usage error (2), found before anything loads
    if args.limit is not None and args.limit < 1:
        raise UserError("--limit must be a positive number of rows")
    if not 0.0 <= args.max_error_rate <= 1.0:
        raise UserError(f"--max-error-rate is a share between 0 and 1, got {args.max_error_rate}")
    tasks = expand_tasks(args.tasks)
    model_args = _key_values(args.model_args, "--model-args")
    task_options = _key_values(args.task_options, "--task-options")
    check_overrides(model_args)
    for name in tasks:
        task = apply_overrides(load_task(name), task_options)  # an unknown task or option key
        if task.judged:  # a judge flag out of range
            resolve_judge_settings(task, args.protocol, **judge_overrides(args))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    from tinyllava_bench.threads import apply_threads

    apply_threads(args.threads)  # before the model loads; results.json's provenance records it
    output = Path(args.output) if args.output else Path("results") / Path(args.model.rstrip("/")).name
    config = EvalConfig(
        model=args.model,
        tasks=tasks,
        output=output,
        limit=args.limit,
        batch_size=args.batch_size,
        protocol=args.protocol,
        device=device,
        dtype=args.dtype,
        num_workers=max(0, args.num_workers)
        if args.num_workers is not None
        else (2 if device.startswith("cuda") else 0),
        judge_model=args.judge_model,
        judge_temperature=args.judge_temperature,
        judge_max_tokens=args.judge_max_tokens,
        judge_retries=args.judge_retries,
        judge_base_url=args.judge_base_url,
        judge_cache=Path(args.judge_cache) if args.judge_cache else None,
        data_root=Path(args.data_root) if args.data_root else None,
        seed=args.seed,
        model_args=model_args,
        task_options=task_options,
        max_error_rate=args.max_error_rate,
        prefix_sharing=args.prefix_sharing,
        show_progress=True,
    )
    with run_phase():
        results = evaluate(config)
    if not results:
        return EXIT_OK
    print(summary_table(results))
    print(f"\nrun folder: {output}")
    return _exit_status(results, tasks, args.max_error_rate)


def _exit_status(results: dict[str, Any], tasks: list[str], max_error_rate: float) -> int:
    """0, or 3 with one line of counts when samples of this run's tasks errored or went unjudged."""
    from tinyllava_bench.engine.runner import run_summary

    summary = run_summary(
        (results["tasks"][name] for name in tasks if name in results["tasks"]), max_error_rate
    )
    failed = summary["n_errors"] + summary["n_judge_failures"]
    if not failed:
        return EXIT_OK
    counts = f"{summary['n_errors']} sample(s) errored and {summary['n_judge_failures']} got no judge score, of {summary['n_samples']}"
    if summary["exit_status"] == EXIT_OK:
        print(f"note: {counts} (within --max-error-rate {max_error_rate:g})", file=sys.stderr)
        return EXIT_OK
    print(
        f"incomplete: {counts}; they are recorded with their error in samples_<task>.jsonl and are retried on "
        "the next run into this folder (exit status 3; --max-error-rate accepts a share of them)",
        file=sys.stderr,
    )
    return EXIT_INCOMPLETE


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
