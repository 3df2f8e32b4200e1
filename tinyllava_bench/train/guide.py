"""The reproduction guide of docs/training.md: per zoo variant with a recipe, the 8-GPU command, the data files,
the expected wall time per stage and the scores the card reports.

    python -m tinyllava_bench.train.guide            # print the guide block
    python -m tinyllava_bench.train.guide --write    # replace the block between the markers in docs/training.md
    python -m tinyllava_bench.train.guide --check    # exit 1 when docs/training.md's block differs
    python -m tinyllava_bench.train.guide --data-root DIR   # also count the records of the data files in DIR

Every number of the block is computed here from the recipes, the model cards and the sourced facts below (each
printed with its source); nothing in the doc block is typed by hand. Wall times are no guess: no TinyLLaVA source
states one, so they are scaled from the times LLaVA's README states for LLaVA-1.5-7B on 8 A100s (same data, same
two stages) under the assumptions printed with them; a stage no source covers gets no figure.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tinyllava_bench import doc_blocks
from tinyllava_bench.errors import UserError

BEGIN = "<!-- reproduction-guide:begin (generated: python -m tinyllava_bench.train.guide --write) -->"
END = "<!-- reproduction-guide:end -->"
DOC = Path(__file__).resolve().parents[2] / "docs" / "training.md"
GPUS = 8

LLAVA_README = "haotian-liu/LLaVA README (commit c121f04)"
TINYLLAVA_README = "DLCV-BUAA/TinyLLaVABench README (commit 2d2105f)"


@dataclass(frozen=True)
class Sourced:
    """A number as its source states it, and where it is stated."""

    text: str
    source: str


@dataclass(frozen=True)
class DataFile:
    name: str
    records: Sourced
    records_approx: int  # the stated count as a number, for the step estimate
    download: Sourced
    images: Sourced


# SPEC.md section 3's files. Record counts are the sources' rounded figures (the files' names carry them too);
# `--data-root` counts the real files. Download sizes are the Hugging Face dataset file listings'.
DATA_FILES = {
    "blip_laion_cc_sbu_558k.json": DataFile(
        "blip_laion_cc_sbu_558k.json",
        Sourced("558K", f"{LLAVA_README}: 'our 558K subset of the LAION-CC-SBU dataset'"),
        558_000,
        Sourced("181 MB", "hf.co/datasets/liuhaotian/LLaVA-Pretrain file list; LLaVA docs/Data.md"),
        Sourced("images.zip, 27.4 GB", "hf.co/datasets/liuhaotian/LLaVA-Pretrain file list"),
    ),
    "llava_v1_5_mix665k.json": DataFile(
        "llava_v1_5_mix665k.json",
        Sourced("665K", f"{LLAVA_README}: '150K GPT-generated ... plus around 515K VQA data'; the file name"),
        665_000,
        Sourced("1.03 GB", "hf.co/datasets/liuhaotian/LLaVA-Instruct-150K file list"),
        Sourced(
            "COCO train2017, GQA, OCR-VQA, TextVQA, Visual Genome (sizes not stated)",
            f"{LLAVA_README}, 'Visual Instruction Tuning'",
        ),
    ),
    "share-captioner_coco_lcs_sam_1246k_1107.json": DataFile(
        "share-captioner_coco_lcs_sam_1246k_1107.json",
        Sourced("1246K", "the file name (ShareGPT4V's release)"),
        1_246_000,
        Sourced("1.49 GB", "hf.co/datasets/Lin-Chen/ShareGPT4V file list"),
        Sourced(
            "LAION-CC-SBU 558K, SAM tars 000000-000050, COCO (sizes not stated)",
            f"{TINYLLAVA_README}, data preparation",
        ),
    ),
    "sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k.json": DataFile(
        "sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k.json",
        Sourced("665K", f"the file name; {TINYLLAVA_README}: LLaVA-1.5's SFT mix with 23K answers replaced"),
        665_000,
        Sourced("1.23 GB", "hf.co/datasets/Lin-Chen/ShareGPT4V file list"),
        Sourced(
            "as llava_v1_5_mix665k.json, plus SAM, WebData and ShareGPT4V's COCO/LLaVA images (sizes not stated)",
            TINYLLAVA_README,
        ),
    ),
}
# which file each stage's data key means, per the card's `data`
STAGE_FILES = {
    "llava-1.5": {"pretrain": "blip_laion_cc_sbu_558k.json", "finetune": "llava_v1_5_mix665k.json"},
    "sharegpt4v": {
        "pretrain": "blip_laion_cc_sbu_558k.json",
        "share-pretrain": "share-captioner_coco_lcs_sam_1246k_1107.json",
        "finetune": "sharegpt4v_mix665k_cap23k_coco-ap9k_lcs3k_sam9k_div2k.json",
    },
}


@dataclass(frozen=True)
class Anchor:
    """A stated wall time of a LLaVA-1.5-7B stage on 8 GPUs."""

    hours: float
    gpus: str
    source: str


# LLaVA-1.5-7B: Vicuna-7B + CLIP ViT-L/336 (576 image tokens), the same 558K pretrain and 665K finetune data.
ANCHOR_PARAMS_B = 7.0  # "7B" in its name; the same rounding as the cards' params_b
ANCHOR_IMAGE_TOKENS = 576
ANCHORS = {
    "pretrain": Anchor(3.5, "8x A100 (80G)", f"{LLAVA_README}: 'around 3.5 hours for LLaVA-v1.5-7B'"),
    "finetune": Anchor(
        10.0, "8x A100 (40G)", f"{LLAVA_README}: 'around 10 hours for LLaVA-v1.5-7B on 8x A100 (40G)'"
    ),
}
# With the LLM under LoRA its weight gradients are not computed: 4 of the 6 FLOPs per parameter and token remain
# (forward 2, backward to the activations 2; the weight-gradient 2 only for the adapters).
LORA_COMPUTE = 4 / 6

ASSUMPTIONS = (
    f"wall time grows in proportion to the model's parameter count (the card's `params_b`, or that of the card with "
    f"the same LLM and tower kind) against LLaVA-1.5-7B's {ANCHOR_PARAMS_B:g}B, at the same GPU efficiency",
    "the text of a sample is as long as in LLaVA-1.5's data (the same files for `base`; ShareGPT4V's finetune mix "
    "replaces 23K of the 665K answers with longer captions, so its figure is a lower bound)",
    f"SigLIP's 729 (Factory: 728) image tokens against CLIP's {ANCHOR_IMAGE_TOKENS} lengthen a sample by up to "
    f"729/{ANCHOR_IMAGE_TOKENS}: SigLIP variants get a range, from text-dominated (x1) to image-dominated samples",
    f"a LoRA finetune does {LORA_COMPUTE * 6:g}/6 of a full finetune's compute (no weight gradients for the LLM)",
    "the ShareGPT4V caption stage (`share-pretrain`) has no estimate: no source states its time or its captions' "
    "length",
)


@dataclass(frozen=True)
class StageGuide:
    name: str
    data_key: str
    file: DataFile | None
    batch: str
    steps: int | None
    deepspeed: str
    hours: tuple[float, float] | None
    basis: str


@dataclass(frozen=True)
class VariantGuide:
    name: str
    recipe: str
    command: str
    config: str | None
    params_b: float | None
    params_source: str
    image_tokens: int
    max_length: int
    stages: tuple[StageGuide, ...]
    scores: dict[str, float]
    scores_source: str


def _tower_kind(vision: str) -> str:
    return "siglip" if "siglip" in vision.lower() else "clip"


def _parameter_count(card, cards) -> tuple[float | None, str]:
    if card.params_b is not None:
        return card.params_b, f"the card, from {card.source}"
    for other in cards:
        same = other.llm == card.llm and _tower_kind(other.vision) == _tower_kind(card.vision)
        if same and other.params_b is not None:
            return other.params_b, f"card {other.name} (same LLM and tower kind; {other.source})"
    return None, "no card with this LLM and tower states a parameter count"


def estimate_hours(
    stage: str, params_b: float | None, image_tokens: int, lora: bool
) -> tuple[tuple[float, float] | None, str]:
    """(low, high) hours of `stage` on 8 GPUs scaled from LLaVA-1.5-7B, and how; None when nothing supports it."""
    anchor = ANCHORS.get(stage)
    if anchor is None:
        return None, "no sourced time"
    if params_b is None:
        return None, "no parameter count"
    low = anchor.hours * params_b / ANCHOR_PARAMS_B * (LORA_COMPUTE if lora else 1.0)
    high = low * max(1.0, image_tokens / ANCHOR_IMAGE_TOKENS)
    lora_note = f" x {LORA_COMPUTE * 6:g}/6 (LoRA)" if lora else ""
    tokens_note = f" x 1..{image_tokens}/{ANCHOR_IMAGE_TOKENS}" if image_tokens > ANCHOR_IMAGE_TOKENS else ""
    basis = f"{anchor.hours:g} h x {params_b:g}/{ANCHOR_PARAMS_B:g}{lora_note}{tokens_note} ({anchor.gpus})"
    return (low, high), basis


def _command(name: str, needs_remote_code: bool) -> tuple[str, str | None]:
    config = None
    model = f"--variant {name}"
    if needs_remote_code:
        config = f"variant: {name}\ntrust_remote_code: true   # the LLM's code runs from its hub repository"
        model = f"--config {name}.yaml"
    command = (
        f"torchrun --nproc_per_node={GPUS} -m tinyllava_bench train {model} \\\n"
        f"    --data-root /data/tinyllava --output runs/{name} --deepspeed auto"
    )
    return command, config


def variant_guides() -> list[VariantGuide]:
    """The guide of every zoo card that names a recipe, in the zoo's order."""
    from tinyllava_bench.models.llm import REMOTE_CODE_FAMILIES
    from tinyllava_bench.models.zoo import list_cards
    from tinyllava_bench.train.plan import spec_from_card
    from tinyllava_bench.train.recipes import get_recipe
    from tinyllava_bench.train.run_settings import batch_settings

    cards = list_cards()
    guides = []
    for card in cards:
        if not card.recipe:
            continue
        spec, recipe_name, max_length = spec_from_card(card.name)
        recipe = get_recipe(recipe_name, spec.recipe_source)
        params_b, params_source = _parameter_count(card, cards)
        stages = []
        for stage in recipe.stages:
            file = DATA_FILES.get(STAGE_FILES.get(card.data or "", {}).get(stage.data, ""))
            batch = batch_settings(stage, None, None, GPUS, quiet=True)
            hours, basis = estimate_hours(stage.name, params_b, card.image_tokens, stage.llm.kind == "lora")
            stages.append(
                StageGuide(
                    name=stage.name,
                    data_key=stage.data,
                    file=file,
                    batch=f"{batch.per_device} x {batch.grad_accum} x {GPUS} = {batch.global_batch}",
                    steps=math.ceil(file.records_approx * stage.epochs / batch.global_batch)
                    if file
                    else None,
                    deepspeed=stage.deepspeed,
                    hours=hours,
                    basis=basis,
                )
            )
        command, config = _command(card.name, card.llm_family in REMOTE_CODE_FAMILIES)
        guides.append(
            VariantGuide(
                name=card.name,
                recipe=recipe.name,
                command=command,
                config=config,
                params_b=params_b,
                params_source=params_source,
                image_tokens=card.image_tokens,
                max_length=max_length,
                stages=tuple(stages),
                scores=dict(card.paper_scores),
                scores_source=card.source or "the card",
            )
        )
    return guides


def _hours_text(hours: tuple[float, float] | None) -> str:
    if hours is None:
        return "—"
    low, high = hours
    return f"≈{low:.1f} h" if round(low, 1) == round(high, 1) else f"≈{low:.1f}–{high:.1f} h"


def _data_table() -> list[str]:
    lines = [
        "| file | records | download | images |",
        "|---|---|---|---|",
    ]
    notes = []
    for file in DATA_FILES.values():
        lines.append(
            f"| `{file.name}` | {file.records.text} [a] | {file.download.text} [b] | {file.images.text} [c] |"
        )
        notes.append(
            f"- `{file.name}`: records: {file.records.source}; download: {file.download.source}; "
            f"images: {file.images.source}."
        )
    return [*lines, "", "Sources ([a] records, [b] download, [c] images):", "", *notes]


def _variant_section(guide: VariantGuide) -> list[str]:
    lines = [f"#### {guide.name}", ""]
    params = (
        f"{guide.params_b:g}B parameters ({guide.params_source})" if guide.params_b else guide.params_source
    )
    lines.append(
        f"Recipe `{guide.recipe}`, `model_max_length` {guide.max_length}, {guide.image_tokens} image tokens, {params}."
    )
    lines += ["", "```bash"]
    if guide.config:
        lines += [f"cat > {guide.name}.yaml <<'EOF'", guide.config, "EOF"]
    lines += [guide.command, "```", ""]
    lines += [
        "| stage | data-root file | is | records | steps | batch (per GPU x accum x GPUs) | `--deepspeed auto` | wall time, 8x A100 | how |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for stage in guide.stages:
        file = stage.file
        lines.append(
            f"| `{stage.name}` | `{stage.data_key}.json` | `{file.name if file else '?'}` | "
            f"{file.records.text if file else '—'} | {f'≈{stage.steps:,}' if stage.steps else '—'} | {stage.batch} | "
            f"{stage.deepspeed} | {_hours_text(stage.hours)} | {stage.basis} |"
        )
    scores = ", ".join(f"{bench} {value:.1f}" for bench, value in guide.scores.items()) or "none reported"
    lines += ["", f"Scores it should reach ({guide.scores_source}): {scores}.", ""]
    return lines


def render_guide(guides: Sequence[VariantGuide] | None = None) -> str:
    """The block between the markers (markers excluded), ending with a newline."""
    guides = variant_guides() if guides is None else guides
    lines = [
        "Generated by `python -m tinyllava_bench.train.guide --write` from the recipes, the model cards and the "
        "sourced figures in `tinyllava_bench/train/guide.py`; `tests/train/test_guide.py` fails when this block "
        "differs from what the command prints.",
        "",
        "### Data files",
        "",
        *_data_table(),
        "",
        "Link each stage's file into the data root under the stage's name (`ln -s .../llava_v1_5_mix665k.json "
        "DATA/finetune.json`), images under `DATA/images/`. `python -m tinyllava_bench.train.guide --data-root "
        "DATA` counts the records of the files you have. Steps below are the stated record counts over the global "
        "batch, before records are set aside.",
        "",
        "### Wall time",
        "",
        "No TinyLLaVA source states a training time. The figures below scale the times LLaVA's README states for "
        "LLaVA-1.5-7B, which trains the same two stages on the same data:",
        "",
    ]
    for name, anchor in ANCHORS.items():
        lines.append(f"- `{name}`: {anchor.hours:g} h on {anchor.gpus}; {anchor.source}.")
    lines += ["", "Assumptions:", ""]
    lines += [f"- {assumption}." for assumption in ASSUMPTIONS]
    lines += ["", "### Variants", ""]
    for guide in guides:
        lines += _variant_section(guide)
    return "\n".join(lines).rstrip("\n") + "\n"


def replace_block(doc_text: str, block: str) -> str:
    """`doc_text` with the text between the markers replaced by `block`."""
    return doc_blocks.replace_block(doc_text, BEGIN, END, block, "the doc")


def count_records(data_root: Path) -> list[tuple[str, int | None]]:
    """(file, records) of each guide data file in `data_root` (None: not there)."""
    from tinyllava_bench.train.records import read_records

    counts = []
    for name in DATA_FILES:
        path = Path(data_root) / name
        counts.append((name, len(read_records(path)) if path.is_file() else None))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tinyllava_bench.train.guide", description=__doc__.split("\n")[0]
    )
    action = parser.add_mutually_exclusive_group()
    action.add_argument("--write", action="store_true", help="replace the guide block in the doc")
    action.add_argument("--check", action="store_true", help="exit 1 when the doc's guide block differs")
    action.add_argument("--data-root", type=Path, help="count the records of the data files in this folder")
    parser.add_argument("--doc", type=Path, default=DOC, help=f"the doc holding the markers (default {DOC})")
    args = parser.parse_args(argv)
    try:
        if args.data_root:
            for name, count in count_records(args.data_root):
                print(f"{name}\t{'absent' if count is None else f'{count:,} records'}")
            return 0
        block = render_guide()
        if not (args.write or args.check):
            sys.stdout.write(block)
            return 0
        if not args.doc.is_file():
            raise UserError(
                f"{args.doc}: no such file; run `python -m tinyllava_bench.train.guide` from the repository root "
                "or name the doc holding the guide's markers"
            )
        text = args.doc.read_text(encoding="utf-8")
        updated = replace_block(text, block)
        if args.check:
            if updated != text:
                print(
                    f"{args.doc}: the reproduction guide differs from what the command prints; run "
                    "`python -m tinyllava_bench.train.guide --write`",
                    file=sys.stderr,
                )
                return 1
            return 0
        if updated != text:
            from tinyllava_bench.json_files import write_atomic

            write_atomic(args.doc, updated, kept="the doc is unchanged")
        return 0
    except UserError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
