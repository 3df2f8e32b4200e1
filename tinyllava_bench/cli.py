"""Command line: parse arguments, call the library, print. Each area registers its own verbs."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tinyllava_bench import __version__
from tinyllava_bench.errors import UserError

# Each module has `register(subparsers)`, which adds its verbs and sets `func(args) -> int` on them.
# Modules are imported at start-up, so they must stay light (no torch at import time).
COMMAND_MODULES = (
    "tinyllava_bench.models.commands",  # zoo
    "tinyllava_bench.tasks.commands",  # tasks, score
    "tinyllava_bench.engine.commands",  # eval
    "tinyllava_bench.train.commands",  # train
    "tinyllava_bench.report.commands",  # report, leaderboard, regress
    "tinyllava_bench.demo.commands",  # demo
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinyllava-bench",
        description="Evaluate, train and report on TinyLLaVA-family vision-language models.",
    )
    parser.add_argument("--version", action="version", version=f"tinyllava-bench {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="VERB")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if name == exc.name or name.startswith(f"{exc.name}."):  # an area not built yet
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print("error: " + " ".join(str(exc).split()), file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # output piped into `head` and closed early
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("interrupted: finished samples are saved; rerun the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
