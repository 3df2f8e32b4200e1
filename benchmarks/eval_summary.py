"""eval_throughput.py's comparison of its runners' results: samples/s per runner, where `evaluate()` spent its time
against the bare loop, ratios to lmms-eval (also projected onto the full task), and prompt and prediction checks."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402
from eval_inputs import TASK  # noqa: E402

# Full GQA testdev-balanced, for projecting the fixed costs of one run onto a real one.
FULL_TASK_ROWS = 12578
OURS = ("ours", "ours_w0", "ours_bs1")  # the variants that run `evaluate()`


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
