"""The `demo` verb: train two tiny variants offline on CPU, evaluate them and report the ablation, in minutes."""

from __future__ import annotations

import argparse
from pathlib import Path

DEFAULT_OUTPUT = Path("results") / "demo"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the demo verb."""
    parser = subparsers.add_parser(
        "demo",
        help="offline demo: train two tiny variants on CPU, evaluate them, write the ablation table and plots",
        description=(
            "Builds a synthetic world (training data and benchmark copies in the real column names), pretrains a "
            "tiny LLM on the world's text, trains two tiny TinyLLaVA variants from it with the real trainer that "
            "differ only in their recipe (the paper's base vs share), evaluates both with the official scorers "
            "into two run folders, and writes the ablation table, a leaderboard CSV and plots. Needs no network "
            "and no GPU; minutes on 2 CPU cores (benchmarks/README.md has measured times; --quick: a smoke test)."
        ),
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_OUTPUT,
        help=f"folder to write everything into; must be new or empty (default: {DEFAULT_OUTPUT})",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a shortened demo (tiny data, few steps): checks the whole pipeline, scores stay near chance",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the world, the models and training (default 0)"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no stage lines and no progress bars; only the table and the summary at the end "
        "(bars are drawn only on a terminal in any case)",
    )
    from tinyllava_bench.threads import add_threads_argument

    add_threads_argument(
        parser,
        help="torch threads of each demo process (two work side by side; default 1: the numbers are then the same "
        "whatever the machine's core count, and a busy neighbour slows the demo about in proportion; "
        "benchmarks/README.md)",
    )
    parser.set_defaults(func=run_demo_command)


def run_demo_command(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from tinyllava_bench.demo.pipeline import run_demo
    from tinyllava_bench.demo.settings import QUICK, DemoSettings

    settings = replace(QUICK if args.quick else DemoSettings(), seed=args.seed)
    if args.threads:
        settings = replace(settings, threads=args.threads)
    result = run_demo(args.output, settings, progress=not args.quiet)
    print()
    print(result.printed())
    return 0
