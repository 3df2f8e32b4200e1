"""Callbacks the engine calls while it evaluates, for timing and progress without touching its internals.

Phases, each opened and closed in this nesting (names are stable; benchmarks/ time them):

    load_model                  evaluate() loading the model (only when it was not handed one)
    checkpoint_fingerprint      hashing the checkpoint's files
    run_task                    one task, from loading its data to its scored samples file
      generate_loop             generating what is not done yet
        wait_for_images         waiting for the next prepared batch (image decoding, preprocessing)
        model_generate          the model generating one chunk of a batch
        decode                  token ids to text
        samples_log_write       appending a batch's records to the write-ahead samples log
      score_and_write           scoring and writing samples_<task>.jsonl and any submission file

`on_batch` follows each batch's log write with its records.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


class EvalHooks:
    """The do-nothing hooks; subclass and override what you need."""

    def on_phase_start(self, name: str) -> None:
        """Phase `name` begins."""

    def on_phase_end(self, name: str) -> None:
        """Phase `name` ends (also when it raised)."""

    def on_batch(self, task: str, records: list[dict[str, Any]]) -> None:
        """A batch of `task` is generated and logged; `records` are its samples as written."""

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        self.on_phase_start(name)
        try:
            yield
        finally:
            self.on_phase_end(name)


NO_HOOKS = EvalHooks()
