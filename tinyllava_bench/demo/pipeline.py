"""The offline demo, end to end: build the demo world, train two tiny variants that differ in one axis with the
real trainer, evaluate both with the real engine and scorers, and write the ablation table, leaderboard and plots.

Everything runs on CPU from nothing (no download): the "pretrained" LLM is a tiny random model that first learns
the demo world's language from text (`language_pretraining`), the vision tower a tiny random one; both are written
to disk, so the trainer starts from folders exactly as it would from hub downloads.
"""

from __future__ import annotations

import concurrent.futures
import json
import logging
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.store import write_atomic
from tinyllava_bench.errors import UserError

# Tasks whose demo questions the training data teaches (MM-Vet and LLaVA-W need a GPT judge: left out).
DEMO_EVAL_TASKS = ("gqa", "pope", "mme", "scienceqa_img", "vqav2", "textvqa")
# The paper's training-recipe ablation (base vs share, Table A1's "Recipe" column): the axis the demo varies.
ABLATION_AXIS = "recipe"
LLM_FAMILY = "phi"
TEMPLATE = "phi"
# what the demo measured and printed, in its output folder
DEMO_RECORD = "demo.json"
# Tokens of the phi family's tokenizer (Phi-2: bos = eos = unk = <|endoftext|>).
ENDOFTEXT = "<|endoftext|>"


@dataclass(frozen=True)
class Variant:
    """One trained model of the ablation: its run name and training recipe."""

    name: str
    recipe: str


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of everything the demo builds; the defaults are the full demo (about 5 minutes on 2 CPU cores)."""

    seed: int = 0
    n_pretrain: int = 1500
    n_share_pretrain: int = 1500
    n_finetune: int = 4000
    n_eval: int = 400  # rows per eval task (MME: rounded up to pairs)
    tasks: tuple[str, ...] = DEMO_EVAL_TASKS
    variants: tuple[Variant, ...] = (Variant("demo-base", "base"), Variant("demo-share", "share"))
    # the model: a Phi-style LLM pretrained on the world's text, and a random SigLIP-style tower
    llm_hidden: int = 96
    llm_layers: int = 3
    vocab_size: int = 800
    image_size: int = 48
    patch_size: int = 16  # a 3x3 grid: each of the four shape slots falls in one patch
    vision_hidden: int = 128
    vision_layers: int = 2
    vision_init_std: float = 0.02
    model_max_length: int = 384
    # the LLM's language pretraining (text only, pictures spelled as words): the stand-in for Phi-2's
    llm_text_samples: int = 6000
    llm_text_steps: int = 1200
    llm_text_lr: float = 3e-3
    # the recipes' stages at demo scale: rates and epochs for tiny models instead of the paper's 1-3B LLMs; which
    # modules train in which stage stays the recipe's
    pretrain_lr: float = 3e-3
    # share's caption stage trains the LLM: a lower rate keeps what it learnt from text
    share_pretrain_lr: float = 5e-4
    finetune_lr: float = 1e-3
    pretrain_epochs: float = 1.0
    share_pretrain_epochs: float = 2.0
    finetune_epochs: float = 3.0
    batch: int = 16
    eval_batch: int = 32
    workers: int = 2  # variants trained and evaluated side by side, one process each
    # torch threads of every demo process: 1 makes the numbers the same whatever the machine's core count (the
    # order of a float sum depends on the thread count) and keeps a busy neighbour from costing more than its share
    threads: int = 1


QUICK = DemoSettings(
    n_pretrain=48,
    n_share_pretrain=48,
    n_finetune=96,
    n_eval=12,
    llm_hidden=32,
    llm_layers=1,
    vocab_size=500,
    image_size=32,
    vision_hidden=24,
    vision_layers=1,
    llm_text_samples=64,
    llm_text_steps=4,
    share_pretrain_epochs=1.0,
    finetune_epochs=1.0,
)


@dataclass
class DemoResult:
    """Where the demo wrote everything, and what it measured."""

    output: Path
    runs: dict[str, Path]  # variant name -> run folder
    checkpoints: dict[str, Path]  # variant name -> finetuned model
    table: Path
    table_markdown: str
    leaderboard: Path
    plots: list[Path]
    seconds: dict[str, float]  # wall time per step, and "total"
    scores: dict[str, dict[str, float | None]]  # variant name -> task -> headline value
    blind: dict[str, float | None]  # task -> headline value of answering without the picture (demo.blind)
    regress: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> regress_summary's entry

    def blind_line(self) -> str:
        """The scores of answering without the picture, in the table's order, labelled as the table."""
        return blind_line(self.blind)

    def regress_line(self) -> str:
        return regress_line(self.regress, *list(self.runs)[:2])

    def printed(self) -> str:
        """What the demo prints at its end: the table, the blind scale, what regress finds, and the summary."""
        return "\n".join(
            [
                self.table_markdown.rstrip("\n"),
                f"- {self.blind_line()}",
                f"- {self.regress_line()}",
                "",
                self.summary(),
            ]
        )

    def summary(self) -> str:
        """What was trained, what was written where, how long it took, and the commands that take it further."""
        base, other = (self.runs[name] for name in list(self.runs)[:2])
        trained = ", ".join(f"{name} ({path})" for name, path in self.checkpoints.items())
        lines = [
            f"demo finished in {self.seconds['total']:.0f} s; everything is in {self.output}/",
            f"  trained         {trained}",
            f"  data            {self.output / 'data'} (training data, benchmark copies)",
            f"  base models     {self.output / 'base'} (the demo LLM and vision tower)",
            f"  ablation table  {self.table}",
            f"  leaderboard     {self.leaderboard}",
            *(f"  plot            {path}" for path in self.plots),
            *(f"  run folder      {path}" for path in self.runs.values()),
            f"  record          {self.output / DEMO_RECORD} (what was printed and measured)",
            "next:",
            f"  tinyllava-bench report {' '.join(str(p) for p in self.runs.values())} --group-by {ABLATION_AXIS}",
            f"  tinyllava-bench regress --baseline {base} --current {other}",
            f"  tinyllava-bench view {other}",
        ]
        return "\n".join(lines)


def _label(task: str) -> str:
    from tinyllava_bench.report.runs import PAPER_BENCHMARKS

    return next((b.label for b in PAPER_BENCHMARKS if b.paper_column == task), task)


def blind_line(blind: dict[str, float | None]) -> str:
    """The blind answerer's scores in the table's order, labelled as the table."""
    from tinyllava_bench.report.runs import PAPER_BENCHMARKS

    values = [
        f"{b.label} {blind[b.paper_column]:.1f}"
        for b in PAPER_BENCHMARKS
        if b.paper_column in blind and blind[b.paper_column] is not None
    ]
    return (
        "Without the picture (the best answer for each question opening, fitted on these questions): "
        + ", ".join(values)
    )


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.0e}"


def regress_line(regress: dict[str, dict[str, Any]], baseline: str, current: str) -> str:
    """regress's paired tests in one line, in the table's order: each headline's change, the questions it lost and
    gained, and the p-value (the verdicts are the reader's: a line whose words change with them could not be
    compared with another machine's run)."""
    from tinyllava_bench.report.runs import PAPER_BENCHMARKS

    order = [b.paper_column for b in PAPER_BENCHMARKS if b.paper_column in regress]

    def item(task: str) -> str:
        entry = regress[task]
        change = (entry["current"] or 0.0) - (entry["baseline"] or 0.0)
        counts = f"{entry['lost']} lost / {entry['gained']} gained, " if entry.get("lost") is not None else ""
        return f"{_label(task)} {change:+.1f} ({counts}p = {_p(entry['p_value'])})"

    return (
        f"regress {current} against {baseline} (paired tests per question; p < 0.05 is significant): "
        + "; ".join(item(t) for t in order)
    )


def run_demo(
    output: Path,
    settings: DemoSettings | None = None,
    log: Callable[[str], None] | None = None,
    progress: bool = True,
) -> DemoResult:
    """Build the world, train the variants, evaluate them and write table, leaderboard and plots into `output`.

    `progress=False` prints nothing (--quiet); otherwise a line per stage, and bars on a terminal."""
    from tinyllava_bench.demo.progress import DemoProgress
    from tinyllava_bench.threads import apply_threads

    settings = settings or DemoSettings()
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise UserError(f"{output} already exists and is not empty; pass another --output or delete it")
    output.mkdir(parents=True, exist_ok=True)
    shown = DemoProgress(progress, log)
    threads = apply_threads(settings.threads)
    started = time.time()
    seconds: dict[str, float] = {}

    def step(name: str, since: float) -> None:
        seconds[name] = round(time.time() - since, 1)
        shown.log(f"      {name}: {seconds[name]:.1f} s")

    shown.log(
        f"[1/5] demo world: {settings.n_pretrain} + {settings.n_share_pretrain} captions, "
        f"{settings.n_finetune} conversations, {settings.n_eval} questions each of {', '.join(settings.tasks)}"
    )
    t = time.time()
    world = build_world(output / "data", settings)
    step("world", t)

    shown.log(f"[2/5] the demo LLM learns the world's text ({settings.llm_text_steps} steps)")
    t = time.time()
    parts = write_base_models(output / "base", world["pretrain"], world["finetune"], settings, shown)
    step("base models", t)

    for variant in settings.variants:
        stages = " -> ".join(_recipe_stages(variant.recipe))
        shown.log(f"[3/5] training {variant.name}: recipe {variant.recipe} ({stages})")
    t = time.time()
    checkpoints = train_all(parts, world["train_root"], output / "train", settings, shown)
    step("training", t)

    shown.log(
        f"[4/5] evaluating {', '.join(v.name for v in settings.variants)} on {', '.join(settings.tasks)}"
    )
    t = time.time()
    runs = evaluate_all(checkpoints, world["eval_root"], output / "runs", settings, shown)
    step("evaluation", t)

    shown.log("[5/5] report: ablation table, leaderboard, plots, the scores of answering blind, regress")
    t = time.time()
    from tinyllava_bench.demo.blind import blind_scores

    blind = blind_scores(world["eval_root"], settings.tasks)
    table_path, markdown, leaderboard, plots, scores = write_reports(output, list(runs.values()), blind)
    base_run, other_run = list(runs.values())[:2]
    regress = regress_summary(base_run, other_run)
    step("report", t)
    seconds["total"] = round(time.time() - started, 1)
    result = DemoResult(
        output=output,
        runs=runs,
        checkpoints=checkpoints,
        table=table_path,
        table_markdown=markdown,
        leaderboard=leaderboard,
        plots=plots,
        seconds=seconds,
        scores=scores,
        blind=blind,
        regress=regress,
    )
    # what the demo measured and printed, for `python -m tinyllava_bench.demo.readme` (the README's demo block)
    write_atomic(
        output / DEMO_RECORD,
        json.dumps(
            {
                "record_version": 2,
                "settings": _settings_dict(settings),
                "threads": threads,
                "seconds": seconds,
                "runs": {k: str(v) for k, v in runs.items()},
                "scores": scores,
                "blind": blind,
                "regress": regress,
                "table_markdown": markdown,
                "printed": result.printed(),
                "provenance": _provenance(),
            },
            indent=2,
            allow_nan=False,
        )
        + "\n",
    )
    return result


def _provenance() -> dict[str, Any]:
    """The software and machine the numbers came from (floating point differs between them)."""
    import platform

    from tinyllava_bench.engine.provenance import tool_provenance
    from tinyllava_bench.threads import available_cpus

    record = tool_provenance()
    return {
        **{k: record[k] for k in ("tool_version", "git_commit", "python", "platform")},
        "torch": record["packages"].get("torch"),
        "transformers": record["packages"].get("transformers"),
        "machine": platform.machine(),
        "cpus": available_cpus(),
    }


def regress_summary(baseline: Path, current: Path) -> dict[str, dict[str, Any]]:
    """`regress --baseline baseline --current current` per task: the headline's change and its paired test."""
    from tinyllava_bench.report.regress import compare_runs
    from tinyllava_bench.report.runs import load_runs

    base_run, current_run = load_runs([baseline, current])
    report = compare_runs(base_run, current_run)
    out: dict[str, dict[str, Any]] = {}
    for comparison in report.comparisons:
        if not comparison.is_headline:
            continue
        test = comparison.test
        out[comparison.task] = {
            "metric": comparison.metric,
            "baseline": comparison.baseline,
            "current": comparison.current,
            "method": test.method if test else None,
            "p_value": test.p_value if test else None,
            "lost": test.lost if test else None,
            "gained": test.gained if test else None,
            "significant": bool(test and test.p_value is not None and test.p_value < test.alpha),
            "status": comparison.status,
        }
    return out


def _settings_dict(settings: DemoSettings) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(settings)


def build_world(root: Path, settings: DemoSettings) -> dict[str, Path]:
    """Training data (LLaVA format) under root/train and the eval tasks (hub columns) under root/eval."""
    from tinyllava_bench.demo import write_all_tasks, write_training_data

    train_root, eval_root = root / "train", root / "eval"
    paths = write_training_data(
        train_root, settings.n_pretrain, settings.n_finetune, settings.seed, settings.n_share_pretrain
    )
    write_all_tasks(eval_root, n=settings.n_eval, seed=settings.seed, tasks=settings.tasks)
    return {**paths, "train_root": train_root, "eval_root": eval_root}


def _training_texts(pretrain: Path, finetune: Path) -> list[str]:
    """The training strings exactly as the trainer will see them (caption and chat templates applied)."""
    from tinyllava_bench.models.templates import get_template

    texts = []
    for path, template in ((pretrain, get_template("pretrain")), (finetune, get_template(TEMPLATE))):
        for record in json.loads(Path(path).read_text()):
            values = [turn["value"] for turn in record["conversations"]]
            turns = list(zip(values[0::2], values[1::2]))
            text, _ = template.render_conversation(turns)
            texts.extend(chunk for chunk in text.split("<image>") if chunk)
    return texts


def boilerplate_phrases() -> list[str]:
    """Text every training string repeats (system prompt, roles, answer-format suffixes): one token each."""
    from tinyllava_bench.demo.training_data import (
        MME_SUFFIX,
        MULTIPLE_CHOICE_SUFFIX,
        OCR_PREFIX,
        SHORT_ANSWER_SUFFIX,
    )
    from tinyllava_bench.models.templates import SYSTEM_PROMPT

    return [
        SYSTEM_PROMPT,
        "USER:",
        "ASSISTANT:",
        SHORT_ANSWER_SUFFIX,
        MULTIPLE_CHOICE_SUFFIX,
        MME_SUFFIX,
        OCR_PREFIX,
    ]


def build_demo_tokenizer(texts: Sequence[str], vocab_size: int) -> Any:
    """A byte-level BPE tokenizer of the phi family trained on the demo's training strings.

    The boilerplate phrases are added as whole tokens, so a sequence is mostly image, question and answer: short
    sequences are what lets a model trained from scratch on 2 CPU cores learn in minutes.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE(unk_token=ENDOFTEXT))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[ENDOFTEXT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    tokenizer.add_tokens([AddedToken(p, normalized=False, special=False) for p in boilerplate_phrases()])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=ENDOFTEXT,
        eos_token=ENDOFTEXT,
        unk_token=ENDOFTEXT,
        model_max_length=2048,
    )


def write_base_models(
    root: Path, pretrain: Path, finetune: Path, settings: DemoSettings, shown: Any = None
) -> dict[str, str]:
    """root/llm (a Phi-style LLM pretrained on the demo world's text, + its tokenizer) and root/vision (a random
    SigLIP-style tower), as a hub download would hold them."""
    import torch
    from transformers import SiglipVisionModel

    from tinyllava_bench.demo.language_pretraining import pretrain_language_model, spell_samples
    from tinyllava_bench.demo.progress import DemoProgress
    from tinyllava_bench.demo.training_data import spelled_conversations
    from tinyllava_bench.models.llm import build_language_model
    from tinyllava_bench.models.tiny import tiny_text_config, tiny_vision_config

    torch.manual_seed(settings.seed)
    tokenizer = build_demo_tokenizer(_training_texts(pretrain, finetune), settings.vocab_size)
    text_config = tiny_text_config(
        LLM_FAMILY, tokenizer, hidden=settings.llm_hidden, layers=settings.llm_layers
    )
    text_config.max_position_embeddings = settings.model_max_length
    language_model = build_language_model(text_config)
    samples = spelled_conversations(settings.llm_text_samples, settings.seed)
    grid = settings.image_size // settings.patch_size
    bar = (shown or DemoProgress(enabled=False)).bars({"demo LLM": settings.llm_text_steps}, unit="step")
    try:
        text = pretrain_language_model(
            language_model,
            spell_samples(samples, tokenizer, TEMPLATE, grid),
            steps=settings.llm_text_steps,
            batch=settings.batch,
            learning_rate=settings.llm_text_lr,
            seed=settings.seed,
            on_step=lambda: bar["demo LLM"].update(),
        )
    finally:
        bar["demo LLM"].close()
    if shown is not None:
        shown.log(f"      LLM loss {text.first_loss:.2f} -> {text.last_loss:.2f} in {text.seconds:.0f} s")
    _save_quietly(language_model, root / "llm")
    tokenizer.save_pretrained(root / "llm")
    vision_config = tiny_vision_config(
        "siglip",
        image_size=settings.image_size,
        patch_size=settings.patch_size,
        hidden=settings.vision_hidden,
        layers=settings.vision_layers + 1,  # features come from the penultimate layer, as SigLIP's
    )
    tower = SiglipVisionModel(vision_config)
    with torch.no_grad():
        for parameter in tower.parameters():
            if parameter.dim() >= 2:
                parameter.normal_(0.0, settings.vision_init_std)
    _save_quietly(tower, root / "vision")
    return {"llm": str(root / "llm"), "vision": str(root / "vision")}


def _save_quietly(model: Any, folder: Path) -> None:
    """save_pretrained without transformers' "Writing model shards" progress bar in the demo's output."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
    finally:
        transformers_logging.enable_progress_bar()


def training_config(variant: Variant, parts: dict[str, str], settings: DemoSettings) -> dict[str, Any]:
    """The `train --config` YAML content of one variant: the recipe's stages, at the demo's scale."""
    scale = {
        "pretrain": (settings.pretrain_lr, settings.pretrain_epochs, {}),
        # the upper half of the tower trains, as the paper's layers >= 12 of SigLIP's 27
        "share-pretrain": (
            settings.share_pretrain_lr,
            settings.share_pretrain_epochs,
            {"vision": f"partial({settings.vision_layers // 2})"},
        ),
        "finetune": (settings.finetune_lr, settings.finetune_epochs, {}),
    }
    return {
        "name": variant.name,
        "llm": parts["llm"],
        "vision": parts["vision"],
        "template": TEMPLATE,
        "connector": "mlp2x_gelu",
        "image_aspect": "pad",
        "vision_select": "full",
        "strip_question": False,
        "recipe": variant.recipe,
        "model_max_length": settings.model_max_length,
        "seed": settings.seed,
        "stage_overrides": {
            stage: {"learning_rate": lr, "epochs": epochs, "global_batch_size": settings.batch, **extra}
            for stage, (lr, epochs, extra) in scale.items()
            if stage in _recipe_stages(variant.recipe)
        },
    }


def _recipe_stages(recipe: str) -> list[str]:
    from tinyllava_bench.train.recipes import get_recipe

    return [stage.name for stage in get_recipe(recipe).stages]


def train_variant(
    variant: Variant,
    parts: dict[str, str],
    data_root: Path,
    root: Path,
    settings: DemoSettings,
    steps_queue: Any = None,
) -> Path:
    """Write the variant's config and run the trainer through the recipe's stages; returns the finetuned model.
    With `steps_queue`, each optimizer step is reported there (the main process draws the bars)."""
    import yaml

    from tinyllava_bench.threads import apply_threads
    from tinyllava_bench.train.plan import RunOptions, build_plan
    from tinyllava_bench.train.trainer import run_training

    apply_threads(settings.threads)
    folder = root / variant.name
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "config.yaml"
    config_path.write_text(yaml.safe_dump(training_config(variant, parts, settings), sort_keys=False))
    options = RunOptions(
        output=folder,
        data_root=data_root,
        save_steps=100_000,  # nothing to resume in a demo: no intermediate checkpoints
        logging_steps=25,
        dataloader_workers=0,
        preprocess_workers=1,
        progress=False,
    )
    callbacks = []
    if steps_queue is not None:
        from tinyllava_bench.demo.progress import QueueSteps

        callbacks.append(QueueSteps(steps_queue, variant.name))
    with _quiet("tinyllava_bench.train", "transformers"):
        stages = run_training(build_plan(None, config_path, options), callbacks=callbacks)
    return stages[-1]


def planned_steps(variant: Variant, settings: DemoSettings) -> dict[str, int]:
    """Each stage of the variant's recipe and its expected optimizer steps (for the bars' first totals)."""
    from tinyllava_bench.demo.progress import expected_steps

    sizes = {
        "pretrain": (settings.n_pretrain, settings.pretrain_epochs),
        "share-pretrain": (settings.n_share_pretrain, settings.share_pretrain_epochs),
        "finetune": (settings.n_finetune, settings.finetune_epochs),
    }
    return {
        stage: expected_steps(*sizes[stage], settings.batch) if stage in sizes else 1
        for stage in _recipe_stages(variant.recipe)
    }


def _side_by_side(settings: DemoSettings) -> int:
    """Worker processes for the variants: tiny models leave a core idle when one process works alone."""
    from tinyllava_bench.threads import available_cpus

    return min(settings.workers, len(settings.variants), max(1, available_cpus() // settings.threads))


def train_all(
    parts: dict[str, str],
    data_root: Path,
    root: Path,
    settings: DemoSettings,
    shown: Any = None,
) -> dict[str, Path]:
    """Train every variant; side by side in spawned processes (`settings.threads` torch threads each), else one
    after the other in this process. Spawned processes re-import the calling script: a script that calls this
    needs the `if __name__ == "__main__":` guard (the CLI has it)."""
    from tinyllava_bench.demo.progress import DemoProgress, follow_training, wait_with_progress

    shown = shown or DemoProgress(enabled=False)
    variants = settings.variants
    planned = {v.name: planned_steps(v, settings) for v in variants}
    bars = shown.bars({name: sum(stages.values()) for name, stages in planned.items()}, unit="step")
    try:
        workers = _side_by_side(settings)
        if workers <= 1:
            import queue

            steps: Any = queue.Queue()
            poll = follow_training(bars, steps, planned)
            out = {}
            for v in variants:
                out[v.name] = train_variant(v, parts, data_root, root, settings, steps)
                poll()
            return out
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch thread pools
        with (
            context.Manager() as manager,
            concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool,
        ):
            steps = manager.Queue()
            futures = {
                v.name: pool.submit(train_variant, v, parts, data_root, root, settings, steps)
                for v in variants
            }
            wait_with_progress(futures.values(), follow_training(bars, steps, planned))
            return {name: future.result() for name, future in futures.items()}
    finally:
        for bar in bars.values():
            bar.close()


def evaluate_variant(checkpoint: Path, data_root: Path, output: Path, settings: DemoSettings) -> Path:
    from tinyllava_bench.engine.runner import EvalConfig, evaluate
    from tinyllava_bench.threads import apply_threads

    apply_threads(settings.threads)
    evaluate(
        EvalConfig(
            model=str(checkpoint),
            tasks=list(settings.tasks),
            output=output,
            data_root=data_root,
            device="cpu",
            batch_size=settings.eval_batch,
            num_workers=0,
            seed=settings.seed,
            show_progress=False,
        )
    )
    return output


def eval_rows(data_root: Path, tasks: Sequence[str]) -> int:
    """How many questions the tasks' demo copies hold (the evaluation bars' totals)."""
    import pyarrow.parquet as pq

    total = 0
    for task in tasks:
        path = data_root / f"{task}.parquet"
        total += pq.ParquetFile(path).metadata.num_rows if path.exists() else 0
    return total


def evaluate_all(
    checkpoints: dict[str, Path], data_root: Path, root: Path, settings: DemoSettings, shown: Any = None
) -> dict[str, Path]:
    """Evaluate every variant into root/<variant>; side by side in spawned processes as `train_all` trains."""
    from tinyllava_bench.demo.progress import DemoProgress, follow_samples, wait_with_progress

    shown = shown or DemoProgress(enabled=False)
    folders = {name: root / name for name in checkpoints}
    rows = eval_rows(data_root, settings.tasks)
    bars = shown.bars(dict.fromkeys(checkpoints, rows), unit="sample")
    poll = follow_samples(bars, folders)
    try:
        workers = _side_by_side(settings)
        if workers <= 1:
            for name, checkpoint in checkpoints.items():
                evaluate_variant(checkpoint, data_root, folders[name], settings)
                poll()
            return folders
        context = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
            futures = [
                pool.submit(evaluate_variant, checkpoint, data_root, folders[name], settings)
                for name, checkpoint in checkpoints.items()
            ]
            wait_with_progress(futures, poll)
        return folders
    finally:
        for bar in bars.values():
            bar.close()


def write_reports(
    output: Path, run_folders: list[Path], blind: dict[str, float | None] | None = None
) -> tuple[Path, str, Path, list[Path], dict[str, dict[str, float | None]]]:
    """The ablation table (markdown), the leaderboard CSV and the plots (with the blind scores drawn on the
    benchmark panels), from the run folders."""
    from tinyllava_bench.report.leaderboard import write_leaderboard
    from tinyllava_bench.report.plots import write_plots
    from tinyllava_bench.report.runs import load_runs
    from tinyllava_bench.report.table_render import render_table
    from tinyllava_bench.report.tables import results_table

    runs = load_runs(run_folders)
    table = results_table(runs, group_by=ABLATION_AXIS)
    markdown = render_table(table, "md")
    table_path = output / "ablation.md"
    table_path.write_text(markdown, encoding="utf-8")
    leaderboard = write_leaderboard(runs, output / "leaderboard.csv").path
    plots = write_plots(table, output / "plots", blind)
    # run folders are named after their variants
    scores = {run.path.name: {name: task.headline_value for name, task in run.tasks.items()} for run in runs}
    return table_path, markdown, Path(leaderboard), plots, scores


class _quiet:
    """Raise the named loggers to WARNING for a block (the trainer logs every few steps at INFO)."""

    def __init__(self, *names: str) -> None:
        self.loggers = [logging.getLogger(name) for name in names]
        self.levels: list[int] = []

    def __enter__(self) -> None:
        self.levels = [log.level for log in self.loggers]
        for log in self.loggers:
            log.setLevel(logging.WARNING)

    def __exit__(self, *exc: object) -> None:
        for log, level in zip(self.loggers, self.levels):
            log.setLevel(level)


__all__ = [
    "ABLATION_AXIS",
    "DEMO_EVAL_TASKS",
    "QUICK",
    "DemoResult",
    "DemoSettings",
    "Variant",
    "run_demo",
]
