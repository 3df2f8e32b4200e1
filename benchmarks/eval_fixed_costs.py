"""Per-row set-up costs of one `eval` task at full scale, projected onto VQAv2 val's 214,354 rows: building the
requests (question, prompt, prompt ids, sample key) and deciding what is pending from the samples log.

    python benchmarks/eval_fixed_costs.py            # writes results/eval_fixed_costs.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402


def measure_fixed_costs(args: argparse.Namespace) -> int:
    """What the engine does for a task before the first batch, per row, projected onto VQAv2 val's 214,354 rows: building the
    requests (question, prompt, prompt ids, sample key) one row at a time and as the engine now does it (prompt ids
    of all rows in one batched tokenizer call), and deciding what is pending (`finished_records` read once, then a
    set lookup per row; the per-row re-read that an earlier engine did is projected for comparison)."""
    from tinyllava_bench.engine import runner
    from tinyllava_bench.engine.generation import rows_without_images
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
        rows = rows_without_images(data)
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "eval_fixed_costs.json"))
    parser.add_argument("--fixed-cost-rows", type=int, default=214_354, help="the rows projected onto")
    parser.add_argument("--fixed-cost-sample", type=int, default=4000, help="the rows measured")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(measure_fixed_costs(parse_args(None)))
