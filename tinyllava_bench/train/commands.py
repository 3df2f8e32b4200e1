"""The `train` verb: train a TinyLLaVA variant with the paper's recipes (pretrain → [share-pretrain] → finetune)."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a variant with the paper's recipes (see docs/training.md)",
        description="Train a TinyLLaVA model stage by stage; each stage starts from the previous stage's output "
        "and writes a native checkpoint to OUTPUT/<stage>/ that `eval` reads as is.",
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--variant", help="model-zoo name: LLM, vision tower, connector, template and recipe")
    model.add_argument("--config", type=Path, help="training config YAML (model, recipe, overrides, data)")
    parser.add_argument("--data-root", type=Path, help="folder with <stage>.json files and images/")
    parser.add_argument("--output", type=Path, required=True, help="run folder; one subfolder per stage")
    parser.add_argument("--stages", help="comma-separated stages to run, in recipe order (default: all)")
    parser.add_argument("--init-from", help="checkpoint (any layout) the first selected stage starts from")
    parser.add_argument("--max-steps", type=int, help="stop each stage after this many optimizer steps")
    parser.add_argument("--per-device-batch-size", type=int)
    parser.add_argument(
        "--grad-accum",
        type=int,
        help="gradient accumulation steps (default: reach the recipe's global batch)",
    )
    precision = parser.add_mutually_exclusive_group()
    precision.add_argument("--bf16", dest="precision", action="store_const", const="bf16")
    precision.add_argument("--fp16", dest="precision", action="store_const", const="fp16")
    precision.add_argument(
        "--fp32",
        dest="precision",
        action="store_const",
        const="fp32",
        help="precision (default: the original's on a GPU, fp16 or bf16 for Qwen2; fp32 on CPU)",
    )
    parser.add_argument(
        "--gradient-checkpointing",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="recompute activations in the backward pass (default: on with a GPU, as the original)",
    )
    parser.add_argument(
        "--deepspeed",
        help="zero2 | zero3 | auto (the recipe's launch scripts: ZeRO-2 for the paper's pretrain, ZeRO-3 for "
        "Factory's; ZeRO-3 when the LLM trains in full, ZeRO-2 for LoRA) | FILE",
    )
    parser.add_argument(
        "--keep-eos-text",
        action="store_true",
        help="train on samples whose turns hold the end-of-answer text itself (the original masks them whole)",
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="train nothing: print the resolved plan, write OUTPUT/<stage>/examples.jsonl and examples.txt",
    )
    parser.add_argument(
        "--examples",
        type=int,
        default=16,
        help="with --dry-run: how many records of each stage's data file to encode (default 16)",
    )
    parser.add_argument("--model-max-length", type=int, help="sequence limit, image tokens included")
    parser.add_argument("--seed", type=int, help="seed of the connector init and the data order (default 42)")
    parser.add_argument(
        "--resume", action="store_true", help="skip finished stages, resume the last checkpoint"
    )
    parser.add_argument("--save-steps", type=int, default=500, help="checkpoint every N steps (default 500)")
    parser.add_argument("--save-total-limit", type=int, default=1)
    parser.add_argument("--keep-checkpoints", action="store_true", help="keep checkpoints of finished stages")
    parser.add_argument("--logging-steps", type=int, default=10)
    parser.add_argument("--dataloader-workers", type=int, default=2)
    parser.add_argument(
        "--preprocess-workers",
        type=int,
        help="processes tokenising large data files (default: up to 8 cores)",
    )
    parser.add_argument("--report-to", default="none", help="tensorboard, wandb, ... (default none)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars and no progress log lines (warnings and errors still print); bars are shown only "
        "on a terminal in any case",
    )
    from tinyllava_bench.threads import add_threads_argument

    add_threads_argument(parser)
    parser.set_defaults(func=run_train, precision=None)
    parser.epilog = (
        "exit status (docs/exit_status.md): 0 every stage trained; 1 the run could not proceed (data, model, disk, "
        "a diverged stage); 2 usage error (a flag or a config value); 130 interrupted (the message names the "
        "command that resumes)"
    )


def _configure_logging(quiet: bool) -> None:
    log = logging.getLogger("tinyllava_bench.train")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[%(asctime)s %(levelname)s] %(message)s", "%H:%M:%S"))
        log.addHandler(handler)
    # other processes of a distributed run only report problems
    log.setLevel(logging.WARNING if quiet or int(os.environ.get("RANK", "0")) else logging.INFO)


def resume_command(argv: list[str] | None = None) -> str:
    """This command line with --resume: what continues an interrupted run from its last checkpoint."""
    import shlex

    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["train"]:  # called from Python (cli.main), not from a command line
        return "the same train command with --resume"
    if "--resume" not in argv:
        argv.append("--resume")
    return shlex.join(["tinyllava-bench", *argv])


def run_train(args: argparse.Namespace) -> int:
    from tinyllava_bench.api import train

    _configure_logging(quiet=args.quiet)
    try:
        result = train(
            variant=args.variant,
            config=args.config,
            output=args.output,
            data_root=args.data_root,
            stages=args.stages,
            init_from=args.init_from,
            max_steps=args.max_steps,
            per_device_batch_size=args.per_device_batch_size,
            grad_accum=args.grad_accum,
            precision=args.precision,
            gradient_checkpointing=args.gradient_checkpointing,
            deepspeed=args.deepspeed,
            keep_eos_text=args.keep_eos_text,
            dry_run=args.dry_run,
            examples=args.examples,
            model_max_length=args.model_max_length,
            seed=args.seed,
            resume=args.resume,
            save_steps=args.save_steps,
            save_total_limit=args.save_total_limit,
            keep_checkpoints=args.keep_checkpoints,
            logging_steps=args.logging_steps,
            dataloader_workers=args.dataloader_workers,
            preprocess_workers=args.preprocess_workers,
            report_to=args.report_to,
            # bars only on a terminal: in a log file their redraws are noise (the log lines carry the progress)
            progress=not (args.no_progress or args.quiet) and sys.stderr.isatty(),
            threads=args.threads,
        )
    except KeyboardInterrupt:
        # the generic message says "rerun the same command", which a started stage refuses without --resume
        print(f"interrupted: continue with {resume_command()}", file=sys.stderr)
        return 130
    if int(os.environ.get("RANK", "0")) == 0:
        for folder in result.folders:
            print(folder)
    return result.exit_status
