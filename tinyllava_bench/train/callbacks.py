"""The trainer's callbacks: loss logging, a log entry at each checkpoint, the stop on divergence, a quiet bar."""

from __future__ import annotations

import logging
import math
from typing import Any

from transformers import TrainerCallback
from transformers.trainer_callback import ProgressCallback

logger = logging.getLogger("tinyllava_bench.train")


class LossLog(TrainerCallback):
    """Loss, learning rate and gradient norm to the `tinyllava_bench.train` log (stderr), not to stdout."""

    def __init__(self, stage: str) -> None:
        self.stage = stage

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        if not state.is_world_process_zero or not logs:
            return
        if "loss" in logs:
            extras = " ".join(f"{k} {logs[k]:.4g}" for k in ("learning_rate", "grad_norm") if k in logs)
            logger.info(
                "stage %s step %d/%d: loss %.4f %s",
                self.stage,
                state.global_step,
                state.max_steps,
                logs["loss"],
                extras,
            )
        elif "train_runtime" in logs:
            logger.info(
                "stage %s: %.1fs, %.3g samples/s, %.3g steps/s, mean loss %.4f",
                self.stage,
                logs["train_runtime"],
                logs.get("train_samples_per_second", 0.0),
                logs.get("train_steps_per_second", 0.0),
                logs.get("train_loss", float("nan")),
            )


class LogAtCheckpoints(TrainerCallback):
    """Log the loss at every checkpoint, so a resumed stage can average the loss over all of its steps."""

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if control.should_save:
            control.should_log = True
        return control


class DivergenceStop(TrainerCallback):
    """Stops the stage at the first logged non-finite loss or gradient norm (and saves no checkpoint of it).

    The logged loss is the mean over all processes, so every process stops at the same step.
    """

    def __init__(self) -> None:
        self.step: int | None = None
        self.what = ""

    def on_log(
        self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any
    ) -> Any:
        for key in ("loss", "grad_norm"):
            value = (logs or {}).get(key)
            if isinstance(value, float) and not math.isfinite(value) and self.step is None:
                self.step, self.what = state.global_step, f"{key} {value}"
        if self.step is not None:
            control.should_training_stop = True
            control.should_save = False
        return control


class ProgressBar(ProgressCallback):
    """transformers' progress bar without its printing of every log dict (LossLog reports those)."""

    def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
        return None
