"""What every runner of eval_throughput.py (and prefix_sharing.py's llava_hf run) is given: a random model written as
native and hf_llava checkpoints, and a local lmms-eval task made from our own loaded rows (question =
build_question's output, the same image pixels), so prompts are identical by construction."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

TASK = "gqa"
LMMS_TASK = "tlb_bench_gqa"
NEVER_STOP = "<never-emitted-stop>"


def build_checkpoints(which: str, root: Path, args: Any) -> tuple[dict[str, Path], dict, Any]:
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


LMMS_TASK_PY = '''"""Document functions of the benchmark's copy of GQA (written by benchmarks/eval_inputs.py)."""


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
