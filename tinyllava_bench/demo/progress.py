"""The demo's progress: one line per stage, and tqdm bars with ETAs for the long stages (training, evaluation).

Training and evaluation run in worker processes; the bars live in the main process, fed by a queue (training steps,
from a trainer callback) and by the engine's sample logs (evaluation: each finished sample is a line of
`samples_<task>.partial.jsonl`, written before the next batch starts). Bars are drawn only on a terminal (tqdm's
`disable=None`); piped or logged output gets the stage lines alone, and `--quiet` turns both off.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

# a bar polls its sources this often (seconds): the samples logs are small, a poll costs microseconds
POLL_SECONDS = 1.0


class QueueSteps(TrainerCallback):
    """In a training worker: report (variant, stage, step, steps in the stage) to the main process's queue."""

    def __init__(self, queue: Any, variant: str) -> None:
        self.queue = queue
        self.variant = variant

    def _stage(self, args: Any) -> str:
        return Path(args.output_dir).parent.name  # the trainer's output_dir is <stage>/checkpoints

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.queue.put((self.variant, self._stage(args), state.global_step, state.max_steps))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.queue.put((self.variant, self._stage(args), state.global_step, state.max_steps))


def expected_steps(n_samples: int, epochs: float, batch: int) -> int:
    """Optimizer steps of a stage before it starts (the trainer's count replaces it once the stage begins)."""
    return max(1, math.ceil(math.ceil(n_samples / batch) * epochs))


class DemoProgress:
    """Stage lines and bars; `enabled=False` (--quiet) prints nothing at all."""

    def __init__(self, enabled: bool = True, log: Callable[[str], None] | None = None) -> None:
        self.enabled = enabled
        self._log = log or (lambda text: print(text, flush=True))

    def log(self, text: str) -> None:
        if self.enabled:
            self._log(text)

    def bars(self, totals: dict[str, int], unit: str) -> dict[str, Any]:
        """One bar per name (variant), each with its total; drawn only on a terminal."""
        from tqdm.auto import tqdm

        width = max(len(name) for name in totals)
        return {
            name: tqdm(
                total=total,
                desc=name.ljust(width),
                unit=unit,
                position=i,
                leave=True,
                dynamic_ncols=True,
                file=sys.stderr,
                # None: off when stderr is not a terminal (a log file would get every redraw)
                disable=None if self.enabled else True,
            )
            for i, (name, total) in enumerate(totals.items())
        }


def follow_training(
    bars: dict[str, Any],
    queue: Any,
    planned: dict[str, dict[str, int]],
    drain: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """A poll function that moves each variant's bar to the steps its worker reported.

    `planned` holds each variant's stages and their expected steps; a stage's own count replaces it when the
    stage starts, so the bar's total (and its ETA) is right from the first step of each stage on."""
    import queue as queue_module

    steps = {name: dict(stages) for name, stages in planned.items()}
    done = {name: dict.fromkeys(stages, 0) for name, stages in planned.items()}

    def poll() -> None:
        while True:
            try:
                variant, stage, step, max_steps = queue.get_nowait()
            except queue_module.Empty:
                break
            if stage not in steps[variant]:
                continue
            steps[variant][stage] = max(1, max_steps)
            done[variant][stage] = step
            bar = bars[variant]
            bar.total = sum(steps[variant].values())
            bar.set_postfix_str(stage, refresh=False)
            bar.n = sum(done[variant].values())
            bar.refresh()

    return poll


def follow_samples(bars: dict[str, Any], run_folders: dict[str, Path]) -> Callable[[], None]:
    """A poll function that moves each variant's bar to the samples its run folder's logs hold."""

    def poll() -> None:
        for name, folder in run_folders.items():
            count = sum(_lines(path) for path in folder.glob("samples_*.partial*.jsonl"))
            bar = bars[name]
            if count != bar.n:
                bar.n = min(count, bar.total or count)
                bar.refresh()

    return poll


def _lines(path: Path) -> int:
    try:
        with open(path, "rb") as handle:
            return handle.read().count(b"\n")
    except OSError:  # written or replaced under our feet: counted at the next poll
        return 0


def wait_with_progress(futures: Iterable[Any], poll: Callable[[], None]) -> None:
    """Wait for every future, polling the bars in between; the first worker error is raised as it comes."""
    import concurrent.futures

    pending = set(futures)
    while pending:
        done, pending = concurrent.futures.wait(
            pending, timeout=POLL_SECONDS, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        poll()
        for future in done:
            future.result()


__all__ = [
    "DemoProgress",
    "QueueSteps",
    "expected_steps",
    "follow_samples",
    "follow_training",
    "wait_with_progress",
]
