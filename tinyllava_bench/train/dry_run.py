"""`train --dry-run`: what a run would train, on which tokens, before any GPU hour is paid.

It resolves the plan exactly as `train` does, loads the starting model on CPU (for its tokenizer, template, image
token count and parameter counts), and for each stage encodes the first records of the stage's data file through
the same code the trainer uses (`data.encode_record`). Nothing trains and no weights are written: each stage folder
gets `examples.jsonl` (ids and labels as the trainer uses them, the image position as -200, ignored labels as -100)
and `examples.txt` (the same as text, trained spans marked), files a later real run in the same folder keeps.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import jsonl_line, write_atomic
from tinyllava_bench.models.templates import get_template
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX
from tinyllava_bench.train.encoding import EncodedRecord, EncodeSettings, encode_record
from tinyllava_bench.train.freezing import apply_tuning, trainable_counts
from tinyllava_bench.train.plan import TrainingPlan
from tinyllava_bench.train.recipes import MODULES, StageRecipe
from tinyllava_bench.train.records import read_records
from tinyllava_bench.train.run_settings import DEEPSPEED_DIR, batch_settings, world_size
from tinyllava_bench.train.trainer import initial_model, load_stage_start, stage_sources

EXAMPLES_JSONL = "examples.jsonl"
EXAMPLES_TXT = "examples.txt"
# Around the text the loss trains on in examples.txt: characters that plain conversation data hardly holds.
TRAINED_OPEN, TRAINED_CLOSE = "⟦", "⟧"


def dry_run(plan: TrainingPlan, examples: int = 16, out: Any = None) -> list[Path]:
    """Print the resolved plan to `out` (stdout) and write each stage's examples; returns the example files."""
    import sys

    out = out or sys.stdout
    if examples < 1:
        raise UserError(f"--examples must be positive, got {examples}")
    sources = stage_sources(plan)
    first_source = sources[plan.stages[0]]
    model = initial_model(plan) if first_source is None else load_stage_start(first_source, plan)
    for line in plan_header(plan, model, first_source):
        print(line, file=out)
    written = []
    for position, name in enumerate(plan.stages, 1):
        stage = plan.recipe.stage(name)
        apply_tuning(model, {module: stage.tune(module) for module in MODULES})
        counts = trainable_counts(model)
        stage_dir = Path(plan.options.output) / name
        encoded, lines = stage_examples(plan, stage, model, examples)
        for line in stage_lines(plan, stage, position, counts, lines, stage_dir):
            print(line, file=out)
        write_atomic(stage_dir / EXAMPLES_JSONL, "".join(jsonl_line(e) for e in encoded["jsonl"]))
        write_atomic(stage_dir / EXAMPLES_TXT, encoded["txt"])
        written += [stage_dir / EXAMPLES_JSONL, stage_dir / EXAMPLES_TXT]
    print("dry run: nothing trained, no weights written", file=out)
    return written


def plan_header(plan: TrainingPlan, model: Any, source: str | None) -> list[str]:
    spec, options, recipe = plan.model, plan.options, plan.recipe
    start = source or f"a new model: llm {spec.llm}, vision {spec.vision}, connector {spec.connector}"
    return [
        f"recipe: {recipe.name} ({recipe.source} launch scripts); stages: {', '.join(plan.stages)}",
        f"variant: {spec.variant or '-'}; starts from {start}",
        f"model: template {model.template.name}, image aspect {model.settings.image_aspect} (eval), "
        f"{model.num_image_tokens} image tokens",
        f"precision: {options.precision}; gradient checkpointing: {'on' if options.gradient_checkpointing else 'off'}"
        f"; seed: {options.seed}; processes: {world_size()}",
    ]


def stage_lines(
    plan: TrainingPlan,
    stage: StageRecipe,
    position: int,
    counts: dict[str, dict[str, int]],
    example_summary: list[str],
    stage_dir: Path,
) -> list[str]:
    options = plan.options
    json_path, image_folder = plan.data_paths(stage.name, stage.data)
    batch = batch_settings(stage, options.per_device_batch_size, options.grad_accum, world_size())
    trains = ", ".join(
        f"{m} {stage.tune(m).describe()} ({counts[m]['trainable']:,}/{counts[m]['total']:,})" for m in MODULES
    )
    rates = ", ".join(f"{m} {stage.lr_for(m):g}" for m in MODULES if stage.tune(m).trains)
    steps = f"max steps {options.max_steps}" if options.max_steps else f"epochs {stage.epochs:g}"
    return [
        f"stage {stage.name} ({position}/{len(plan.stages)}) -> {stage_dir}",
        f"  data: {json_path} ({len(read_records(json_path))} records), images {image_folder}",
        f"  template: {stage.template}; image aspect: {stage.image_aspect or 'model (' + plan.model.image_aspect + ')'}"
        f"; model_max_length: {plan.recipe.max_length_of(stage)}",
        f"  trains: {trains}",
        f"  learning rate: {rates}; {steps}; warmup ratio {stage.warmup_ratio:g}; scheduler {stage.lr_scheduler}; "
        f"weight decay {stage.weight_decay:g}; max grad norm {stage.max_grad_norm:g}",
        f"  batch: {batch.per_device} per device x {batch.grad_accum} accumulation x {batch.world_size} process(es) = "
        f"{batch.global_batch} (recipe {stage.global_batch_size}); grouped by modality and length: "
        f"{'yes' if stage.group_by_modality else 'no'}",
        f"  deepspeed: {deepspeed_choice(options.deepspeed, stage)}",
        *example_summary,
    ]


def deepspeed_choice(choice: str | None, stage: StageRecipe) -> str:
    """What `--deepspeed` resolves to for `stage`, said without needing DeepSpeed installed here."""
    if choice is None:
        return f"none (--deepspeed auto would use {stage.deepspeed})"
    name = stage.deepspeed if choice == "auto" else choice
    if name in ("zero2", "zero3"):
        return f"{name} ({DEEPSPEED_DIR / (name + '.json')})"
    return name


def stage_examples(
    plan: TrainingPlan, stage: StageRecipe, model: Any, examples: int
) -> tuple[dict[str, Any], list[str]]:
    """The first `examples` records of the stage's data file as the trainer encodes them, as JSON lines and text."""
    json_path, image_folder = plan.data_paths(stage.name, stage.data)
    template = get_template("pretrain") if stage.template == "pretrain" else model.template
    settings = EncodeSettings(
        template,
        model.tokenizer,
        image_folder,
        model.num_image_tokens,
        plan.recipe.max_length_of(stage),
        stage.template == "pretrain",
        plan.options.keep_eos_text,
    )
    lines, texts, kept, truncated, untrained = [], [example_key()], 0, 0, 0
    for index, record in enumerate(read_records(json_path)[:examples]):
        result = encode_record(record, index, settings)
        if isinstance(result, EncodedRecord):
            ids, labels = result.ids.tolist(), result.labels.tolist()
            lines.append({"id": result.record_id, "input_ids": ids, "labels": labels})
            texts.append(render_example(result, model.tokenizer))
            kept += 1
            truncated += result.truncated
            untrained += all(label == IGNORE_INDEX for label in labels[1:])
        else:
            lines.append({"id": result[0], "skipped": result[1]})
            texts.append(f"=== {result[0]}: set aside ({result[1]})\n")
    summary = [
        f"  examples: {len(lines)} records -> {kept} encoded ({truncated} cut to model_max_length, {untrained} train "
        f"on nothing), {len(lines) - kept} set aside; see {EXAMPLES_JSONL} and {EXAMPLES_TXT}"
    ]
    return {"jsonl": lines, "txt": "\n".join(texts)}, summary


def example_key() -> str:
    return (
        f"# input_ids as text; the loss trains on what stands between {TRAINED_OPEN} and {TRAINED_CLOSE}; <image> is "
        "where the image features go\n"
    )


def render_example(result: EncodedRecord, tokenizer: Any) -> str:
    """The sample's tokens as text, runs of trained tokens between the markers, the image as `<image>`."""
    ids, labels = result.ids.tolist(), result.labels.tolist()
    pieces: list[str] = []
    run: list[int] = []
    trained = False

    def flush() -> None:
        if run:
            text = tokenizer.decode(run, skip_special_tokens=False, clean_up_tokenization_spaces=False)
            pieces.append(f"{TRAINED_OPEN}{text}{TRAINED_CLOSE}" if trained else text)
            run.clear()

    for token, label in zip(ids, labels):
        if token == IMAGE_TOKEN_INDEX:
            flush()
            pieces.append("<image>")
            continue
        learned = label != IGNORE_INDEX
        if learned != trained:
            flush()
            trained = learned
        run.append(token)
    flush()
    notes = [f"{len(ids)} tokens"] + (["cut to model_max_length"] if result.truncated else [])
    if result.eos_text_masked:
        notes.append("every label ignored: a turn holds the end-of-answer text")
    return f"=== {result.record_id} ({', '.join(notes)})\n{''.join(pieces)}\n"
