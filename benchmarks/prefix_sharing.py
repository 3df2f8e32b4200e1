"""Image-prefix sharing on CPU: `evaluate()` with sharing (the default) vs `--no-prefix-sharing` vs a bare
`generate_ids` loop, on a GQA-shaped set (30 questions per image), a POPE-shaped one (18 per image) and one question
per image, for the tiny model and common.MID (729 image tokens, prefill-dominated).

Each runner is a fresh process (`OMP_NUM_THREADS=1`); the table gives the whole process's wall and CPU seconds
(interpreter start, imports and model load included) and the in-process evaluate() / loop time. Predictions are
compared across runners, and the largest logit difference between the shared and the unshared computation is
measured on each shape (float32; the same token sequences scored both ways).

The `llava_hf` runner is lmms-eval 0.7.3's `llava_hf` (batch size 1, its only choice) on the hf_llava export of the
same weights, through eval_throughput.py's lmms-eval runner on a local lmms-eval task written from the same rows (question =
build_question's output, same pixels; every rendered prompt is checked against ours). It runs in $LMMS_PYTHON, which
needs lmms-eval 0.7.3 and decord; it is batch 1 and slow, so fewer rows may be given with --rows (every runner gets
the same rows):

    LMMS_PYTHON=/work/main/.venv/bin/python python benchmarks/prefix_sharing.py --models mid \
        --shapes gqa30,pope18 --rows gqa30=60,pope18=54 --out benchmarks/results/prefix_sharing_llava_hf.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import common  # noqa: E402

SHAPES = {  # name -> (task, questions per image)
    "gqa30": ("gqa", 30),
    "pope18": ("pope", 18),
    "single": ("gqa", 1),
}
# mid: 5 and 6 images, so that prefill (what sharing saves) outweighs the process's fixed start-up costs as in a
# real run (GQA testdev: 12,578 questions); the unshared runs take ~0.5 CPU-s per question
DEFAULT_ROWS = {
    "tiny": {"gqa30": 240, "pope18": 216, "single": 96},
    "mid": {"gqa30": 150, "pope18": 108, "single": 24},
}
RUNNERS = ("shared", "unshared", "bare", "llava_hf")
DEFAULT_RUNNERS = "shared,unshared,bare"


# ----- data ----------------------------------------------------------------------------------------------------


def write_shape(shape: str, rows: int, root: Path) -> Path:
    """A local copy of the shape's task under root/<shape>/ whose rows ask `per_image` questions per image."""
    from tinyllava_bench.testing.datasets import write_task_data

    task, per_image = SHAPES[shape]
    folder = root / shape
    path = write_task_data(task, folder, n=rows, seed=5, image_mode="files")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    if task == "gqa":
        images = sorted({r["imageId"] for r in records})
        if per_image == 1:  # one image per row: the demo's images repeat, so give each row its own copy
            source = {name: folder / "images" / f"{name}.png" for name in images}
            for i, record in enumerate(records):
                name = f"u{i:06d}"
                (folder / "images" / f"{name}.png").write_bytes(source[record["imageId"]].read_bytes())
                record["imageId"] = name
        else:
            for i, record in enumerate(records):
                record["imageId"] = images[(i // per_image) % len(images)]
    else:
        images = sorted({r["image"] for r in records})
        for i, record in enumerate(records):
            record["image"] = images[(i // per_image) % len(images)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return folder


# ----- workers (each in its own process) -----------------------------------------------------------------------


def worker_eval(args: argparse.Namespace) -> dict[str, Any]:
    from tinyllava_bench.engine.eval_config import EvalConfig
    from tinyllava_bench.engine.runner import evaluate

    started, started_cpu = time.perf_counter(), time.process_time()
    evaluate(
        EvalConfig(
            model=args.checkpoint,
            tasks=[args.task],
            output=Path(args.output),
            batch_size=args.batch_size,
            device="cpu",
            num_workers=0,
            data_root=Path(args.data_root),
            task_options={"generation.max_new_tokens": args.max_new_tokens},
            prefix_sharing=args.worker == "shared",
            show_progress=False,
        )
    )
    timed, timed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
    samples = [json.loads(line) for line in (Path(args.output) / f"samples_{args.task}.jsonl").open()]
    return {
        "timed_s": timed,
        "timed_cpu_s": timed_cpu,
        "predictions": {str(s["index"]): s["prediction"] for s in samples},
    }


def worker_bare(args: argparse.Namespace) -> dict[str, Any]:
    """The model's own generate_ids, one question at a time over prepared tensors (each image decoded once); only
    the loop is timed."""
    import torch

    from tinyllava_bench import load_model
    from tinyllava_bench.tasks import apply_overrides, build_question, load_task, load_task_data

    model = load_model(args.checkpoint, device="cpu")
    task = apply_overrides(load_task(args.task), {"generation.max_new_tokens": args.max_new_tokens})
    data = load_task_data(task, data_root=args.data_root)
    rows = (
        data.rows.remove_columns(task.columns.image)
        if task.columns.image in data.rows.column_names
        else data.rows
    )
    pixels: dict[str, Any] = {}
    prepared = []
    for index, row in enumerate(rows.to_list()):
        key = data.image_key(index)
        if key not in pixels:
            pixels[key] = model.pixel_values(data.image(index))
        question = build_question(task, row)
        prepared.append((index, question, model.prompt_ids(question), pixels[key]))
    predictions = {}
    started, started_cpu = time.perf_counter(), time.process_time()
    with torch.inference_mode():
        for index, question, ids, image in prepared:
            answer = model.generate_ids(
                [image], [question], max_new_tokens=args.max_new_tokens, prompt_ids=[ids]
            )
            predictions[str(index)] = model.decode(answer)[0]
    return {
        "timed_s": time.perf_counter() - started,
        "timed_cpu_s": time.process_time() - started_cpu,
        "predictions": predictions,
    }


def worker_logits(args: argparse.Namespace) -> dict[str, Any]:
    """The largest |logit difference| between the unshared computation (the whole prompt and answer in one pass, as
    generate's prefill) and the shared one (the prefix prefilled alone, the rest on its cache), over every answer
    position of the first `args.logit_rows` questions."""
    import torch

    from tinyllava_bench import load_model
    from tinyllava_bench.models.prefix_sharing import PrefixStore, split_prompt, suffix_inputs
    from tinyllava_bench.tasks import build_question, load_task, load_task_data

    model = load_model(args.checkpoint, device="cpu")
    task = load_task(args.task)
    data = load_task_data(task, data_root=args.data_root)
    rows = (
        data.rows.remove_columns(task.columns.image)
        if task.columns.image in data.rows.column_names
        else data.rows
    )
    lm, store, largest = model.language_model, PrefixStore(), 0.0
    with torch.inference_mode():
        for index, row in enumerate(rows.to_list()[: args.logit_rows]):
            question = build_question(task, row)
            ids = model.prompt_ids(question)
            image = model.pixel_values(data.image(index))
            answer = model.generate_ids(
                [image], [question], max_new_tokens=args.max_new_tokens, prompt_ids=[ids]
            )[0]
            full = model.splice([ids + answer], model.encode_images(image[None]))
            unshared = lm(inputs_embeds=full["inputs_embeds"], use_cache=False).logits[0]
            split = split_prompt(ids, model.num_image_tokens, model.settings.max_length)
            key = (data.image_key(index), split.prefix)
            model._prefill_prefixes(store, [key], [image])
            rest = lm.get_input_embeddings()(torch.tensor(split.suffix + answer))
            embeds, mask = suffix_inputs([rest], store.length(key))
            shared = lm(
                inputs_embeds=embeds[:, store.length(key) :],
                attention_mask=mask,
                position_ids=torch.arange(store.length(key), mask.shape[1])[None],
                **{_cache_name(lm): store.expanded([key], lm.config)},
            ).logits[0]
            n = len(split.suffix) + len(answer)
            largest = max(largest, float((unshared[-n:] - shared[-n:]).abs().max()))
    return {"max_abs_logit_diff": largest, "rows": args.logit_rows}


def _cache_name(lm: Any) -> str:
    from tinyllava_bench.models.prefix_sharing import cache_argument

    return cache_argument(lm)


WORKERS = {"shared": worker_eval, "unshared": worker_eval, "bare": worker_bare, "logits": worker_logits}


# ----- orchestration -------------------------------------------------------------------------------------------


def _checkpoint(which: str, root: Path) -> tuple[dict[str, Path], Any]:
    """The native and hf_llava checkpoints of `which`, and its prompt renderer (to check llava_hf's prompts)."""
    from benchmarks.eval_inputs import build_checkpoints

    paths, _, model = build_checkpoints(
        which, root / which, argparse.Namespace(dtype=None, device="cpu", shrink=False)
    )
    render = functools.partial(model.template.render_prompt, strip_question=model.settings.strip_question)
    return paths, render


def _run_llava_hf(
    args: argparse.Namespace, paths: dict[str, Path], shape: str, data: Path, rows: int, work: Path
) -> dict:
    """lmms-eval's llava_hf on the hf_llava export, with eval_inputs.py's task writer and eval_throughput.py's
    runner; float32, one thread, batch 1. Adds the questions it was asked (to check its rendered prompts)."""
    from benchmarks import eval_inputs, eval_throughput

    folder = work / f"{paths['native'].parent.name}-{shape}-llava_hf-{time.monotonic_ns()}"
    folder.mkdir(parents=True)
    (folder / "data").symlink_to(data.resolve())  # run_variant reads <folder>/data and <folder>/lmms_task
    questions = eval_inputs.write_lmms_task(
        folder / "data", folder / "lmms_task", rows, args.max_new_tokens, source_task=SHAPES[shape][0]
    )
    settings = argparse.Namespace(
        threads=1, batch_size=1, max_new_tokens=args.max_new_tokens, device="cpu", num_workers=0
    )
    run = eval_throughput.run_variant(
        "llava_hf", settings, paths, folder, "llava_hf", common.thread_env(1), rows, "float32"
    )
    run["predictions"] = {str(k): v for k, v in run["predictions"].items()}
    run["timed_cpu_s"] = run["phases"].get("generate_until_cpu")  # lmms-eval's own total has no CPU figure
    return {**run, "questions": questions}


def _run(worker: str, args: argparse.Namespace, checkpoint: Path, shape: str, data: Path, work: Path) -> dict:
    task = SHAPES[shape][0]
    tag = f"{checkpoint.parent.name}-{shape}-{worker}-{time.monotonic_ns()}"
    result = work / f"{tag}.json"
    command = [
        sys.executable, __file__, "--worker", worker, "--checkpoint", str(checkpoint), "--task", task,
        "--data-root", str(data), "--output", str(work / tag), "--result", str(result),
        "--batch-size", args.batch_size, "--max-new-tokens", str(args.max_new_tokens),
        "--logit-rows", str(args.logit_rows),
    ]  # fmt: skip
    measured = common.run_measured(command, work / f"{tag}.log", env=common.thread_env(1))
    if measured["returncode"] != 0:
        raise SystemExit(f"{worker} failed; see {measured['log']}")
    return {**measured, **json.loads(result.read_text())}


def orchestrate(args: argparse.Namespace) -> int:
    work = Path(args.workdir or tempfile.mkdtemp(prefix="prefix-sharing-"))
    machine = common.machine_info()
    runners = args.runners.split(",")
    report: dict[str, Any] = {
        "command": " ".join(["python", "benchmarks/prefix_sharing.py", *sys.argv[1:]]),
        "machine": machine,
        "settings": vars(args).copy(),
        "results": [],
    }
    if "llava_hf" in runners:
        report["settings"]["lmms_python"] = common.python_for_lmms()
    table = []
    for which in args.models.split(","):
        paths, render = _checkpoint(which, work / "checkpoints")
        checkpoint = paths["native"]
        for shape in args.shapes.split(","):
            rows = args.rows.get(shape, DEFAULT_ROWS[which][shape])
            data = write_shape(shape, rows, work / "data" / which)
            best: dict[str, dict] = {}
            for _ in range(args.repeats):  # interleaved; the fastest whole-process run of each is kept
                for runner in runners:
                    if runner == "llava_hf":
                        run = _run_llava_hf(args, paths, shape, data, rows, work / "runs")
                    else:
                        run = _run(runner, args, checkpoint, shape, data, work / "runs")
                    if runner not in best or run["wall_s"] < best[runner]["wall_s"]:
                        best[runner] = run
            logits = _run("logits", args, checkpoint, shape, data, work / "runs")
            reference = best["unshared"]["predictions"]
            lmms = best.get("llava_hf")
            for runner, run in best.items():
                same = sum(run["predictions"].get(k) == v for k, v in reference.items())
                row = {
                    "model": which,
                    "shape": shape,
                    "rows": rows,
                    "runner": runner,
                    "wall_s": run["wall_s"],
                    "cpu_s": run["cpu_s"],
                    "timed_s": round(run["timed_s"], 3),
                    "timed_cpu_s": None if run["timed_cpu_s"] is None else round(run["timed_cpu_s"], 3),
                    "samples_per_s": round(rows / run["wall_s"], 3),
                    "speedup_wall": round(best["unshared"]["wall_s"] / run["wall_s"], 2),
                    "speedup_cpu": round(best["unshared"]["cpu_s"] / run["cpu_s"], 2),
                    "speedup_vs_llava_hf_wall": round(lmms["wall_s"] / run["wall_s"], 2) if lmms else None,
                    "speedup_vs_llava_hf_cpu": round(lmms["cpu_s"] / run["cpu_s"], 2) if lmms else None,
                    "same_as_unshared": f"{same}/{len(reference)}",
                    "max_abs_logit_diff": logits["max_abs_logit_diff"] if runner == "shared" else None,
                    "peak_rss_mib": run["peak_rss_mib"],
                }
                if runner == "llava_hf":  # its prompts, rendered by its own chat template, against ours
                    rendered = run["rendered_prompts"]
                    matching = sum(rendered.get(q) == render(q) for q in run["questions"])
                    row["prompts_equal_ours"] = f"{matching}/{len(run['questions'])}"
                    row["differing_predictions"] = {
                        k: [v, run["predictions"].get(k)]
                        for k, v in reference.items()
                        if run["predictions"].get(k) != v
                    }
                table.append(row)
                report["results"].append(row)
    report["load_average_after"] = common.load_average()
    print(
        common.format_table(
            table,
            [
                ("model", "model"),
                ("shape", "shape"),
                ("rows", "rows"),
                ("runner", "runner"),
                ("wall_s", "process wall s"),
                ("cpu_s", "process cpu s"),
                ("timed_s", "eval/loop s"),
                ("speedup_wall", "x unshared (wall)"),
                ("speedup_cpu", "x unshared (cpu)"),
                *(
                    [
                        ("speedup_vs_llava_hf_wall", "x llava_hf (wall)"),
                        ("speedup_vs_llava_hf_cpu", "x llava_hf (cpu)"),
                    ]
                    if "llava_hf" in runners
                    else []
                ),
                ("same_as_unshared", "same answers"),
                ("max_abs_logit_diff", "max |dlogit|"),
            ],
        )
    )
    print(f"load average before {machine['load_average_1_5_15']}, after {report['load_average_after']}")
    out = common.write_result(Path(args.out), report)
    print(f"wrote {out}")
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="tiny,mid", help="tiny, mid or both")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument(
        "--runners",
        default=DEFAULT_RUNNERS,
        help=f"comma list of {', '.join(RUNNERS)}; unshared is needed (llava_hf: lmms-eval via $LMMS_PYTHON)",
    )
    parser.add_argument(
        "--rows",
        type=_rows_option,
        default={},
        help="rows per shape for every model and runner, e.g. gqa30=60,pope18=54 (default: DEFAULT_ROWS)",
    )
    parser.add_argument(
        "--batch-size",
        default="auto",
        help="eval's --batch-size (auto on CPU: 8 questions of one image at a time with sharing, else 1)",
    )
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--logit-rows", type=int, default=8, help="questions scored both ways for the logit check"
    )
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--out", default=str(common.RESULTS_DIR / "prefix_sharing.json"))
    parser.add_argument("--worker", choices=sorted(WORKERS), default=None, help=argparse.SUPPRESS)
    for name in ("--checkpoint", "--task", "--data-root", "--output", "--result"):
        parser.add_argument(name, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    chosen = args.runners.split(",")
    if set(chosen) - set(RUNNERS) or "unshared" not in chosen:
        parser.error(f"--runners {args.runners}: use unshared and any of {', '.join(RUNNERS)}")
    return args


def _rows_option(text: str) -> dict[str, int]:
    rows = {}
    for item in filter(None, text.split(",")):
        shape, _, count = item.partition("=")
        if shape not in SHAPES or not count.isdigit():
            raise argparse.ArgumentTypeError(
                f"{item!r}: use SHAPE=ROWS with SHAPE one of {', '.join(SHAPES)}"
            )
        rows[shape] = int(count)
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker is None:
        return orchestrate(args)
    result = WORKERS[args.worker](args)
    Path(args.result).write_text(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
