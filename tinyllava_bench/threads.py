"""CPU thread counts for torch: one default that degrades gracefully on a shared machine, one flag, one record.

torch's default is one OpenMP thread per core. Beside another CPU-heavy process the cores are oversubscribed, and
OpenMP threads that wait for each other at every operation's barrier spin instead of working: the demo ran 22-33x
slower that way on a 2-core machine (benchmarks/README.md, "The demo beside a busy process"). Half the cores this
process may run on leaves room for a neighbour, and is 1 on a 2-core machine, where a tiny model gains nothing from
a second thread. OMP_NUM_THREADS, when set, is the user's choice and wins over the default (never over --threads).
"""

from __future__ import annotations

import argparse
import contextlib
import os
from typing import Any

THREADS_HELP = (
    "CPU threads torch uses for its operations (and for inter-op parallelism), set before any work starts and "
    "recorded in the output's provenance (default: OMP_NUM_THREADS when set, else half the CPU cores this process "
    "may use, at least 1: a busy neighbour then slows the run about in proportion instead of 20x; "
    "benchmarks/README.md)"
)


def available_cpus() -> int:
    """The cores this process may run on (its affinity mask: a container's or taskset's limit), else all."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """OMP_NUM_THREADS when it is a positive number, else half the available cores, at least 1."""
    given = os.environ.get("OMP_NUM_THREADS", "").strip()
    if given.isdigit() and int(given) > 0:
        return int(given)
    return max(1, available_cpus() // 2)


def positive_threads(text: str) -> int:
    """argparse type of --threads: a whole number of at least 1 (a usage error otherwise)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--threads takes a whole number of threads, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"--threads must be at least 1, got {value}")
    return value


def add_threads_argument(parser: argparse.ArgumentParser, help: str = THREADS_HELP) -> None:
    parser.add_argument("--threads", type=positive_threads, default=None, metavar="N", help=help)


def apply_threads(threads: int | None) -> dict[str, int]:
    """Set torch's intra-op and inter-op thread counts (None: the default) and return what is in force.

    The inter-op count can be set once per process, before any parallel work: where that has passed (a second
    command in one Python process, as tests run them) it stays as it is, and the record says what it is."""
    import torch

    threads = threads or default_threads()
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(threads)
    return threads_record()


def threads_record() -> dict[str, Any]:
    """The thread counts in force, as results.json and training.json record them."""
    import torch

    return {"threads": torch.get_num_threads(), "interop_threads": torch.get_num_interop_threads()}


__all__ = [
    "THREADS_HELP",
    "add_threads_argument",
    "apply_threads",
    "available_cpus",
    "default_threads",
    "positive_threads",
    "threads_record",
]
