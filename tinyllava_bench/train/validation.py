"""Checks of a training config and the command line, run before anything is written.

Each fault is one UserError naming the key and what it accepts, so a corrected rerun is never refused because a
failed run left files behind, and no value that cannot train (NaN, infinity, zero epochs) reaches the Trainer.
"""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError

DATA_KEYS = ("json", "images")
STAGE_NUMBERS = {
    # key: (smallest allowed, whether the smallest is allowed itself)
    "learning_rate": (0.0, False),
    "epochs": (0.0, False),
    "warmup_ratio": (0.0, True),
    "weight_decay": (0.0, True),
    "max_grad_norm": (0.0, True),
}
STAGE_COUNTS = ("global_batch_size", "per_device_batch_size", "model_max_length")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite_number(value: Any) -> float | None:
    """`value` as a finite float, or None when it is not a number (YAML's .nan/.inf included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def check_config(data: Mapping[str, Any], path: Path) -> None:
    """The value types of a config YAML's top-level keys and of its stage overrides."""
    for key in ("seed", "model_max_length", "image_tokens", "vision_layer"):
        value = data.get(key)
        if value is not None and not _is_int(value):
            raise UserError(f"{path}: {key} must be a whole number, got {value!r}")
    for key in ("model_max_length", "image_tokens"):
        if _is_int(data.get(key)) and data[key] <= 0:
            raise UserError(f"{path}: {key} must be positive, got {data[key]!r}")
    for key in ("llm", "vision", "template", "connector", "variant", "recipe", "image_aspect", "name"):
        value = data.get(key)
        if value is not None and not isinstance(value, str):
            raise UserError(f"{path}: {key} must be a name or path (a string), got {value!r}")
    data_entries = data.get("data")
    if data_entries is not None:
        if not isinstance(data_entries, Mapping):
            raise UserError(
                f"{path}: data must map stage names to {{json: FILE, images: FOLDER}}, got {data_entries!r}"
            )
        for stage, entry in data_entries.items():
            if not isinstance(entry, Mapping) or set(entry) - set(DATA_KEYS):
                raise UserError(f"{path}: data.{stage} must be {{json: FILE, images: FOLDER}}, got {entry!r}")
            for key, value in entry.items():
                if not isinstance(value, str) or not value:
                    raise UserError(f"{path}: data.{stage}.{key} must be a path, got {value!r}")
    overrides = data.get("stage_overrides")
    if overrides is not None:
        if not isinstance(overrides, Mapping):
            raise UserError(
                f"{path}: stage_overrides must map stage names to settings, e.g. "
                f"{{finetune: {{learning_rate: 2.0e-5}}}}; got {overrides!r}"
            )
        for stage, changes in overrides.items():
            if changes is not None and not isinstance(changes, Mapping):
                raise UserError(
                    f"{path}: stage_overrides.{stage} must be a mapping of settings, got {changes!r}"
                )
            check_stage_settings(str(stage), dict(changes or {}), f"{path}: stage_overrides.{stage}")


def check_stage_settings(stage: str, changes: Mapping[str, Any], where: str | None = None) -> None:
    """Numbers finite and in range, known scheduler, per-module rates numbers: before `override_stage` runs."""
    where = where or f"stage {stage!r}"
    for key, (low, inclusive) in STAGE_NUMBERS.items():
        if key not in changes:
            continue
        number = _finite_number(changes[key])
        if number is None or number < low or (number == low and not inclusive):
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            raise UserError(f"{where}: {key} must be a finite number {bound}, got {changes[key]!r}")
    for key in STAGE_COUNTS:
        value = changes.get(key)
        if value is None:
            continue
        number = _finite_number(value)
        if number is None or not number.is_integer() or number <= 0:
            raise UserError(f"{where}: {key} must be a positive whole number, got {value!r}")
    if "lr_scheduler" in changes:
        from transformers import SchedulerType

        schedulers = [s.value for s in SchedulerType]
        if changes["lr_scheduler"] not in schedulers:
            raise UserError(
                f"{where}: unknown lr_scheduler {changes['lr_scheduler']!r}; use one of {', '.join(schedulers)}"
            )
    module_lr = changes.get("module_lr")
    if module_lr is not None:
        if not isinstance(module_lr, Mapping):
            raise UserError(f"{where}: module_lr must map modules to rates, e.g. {{vision: 2.0e-6}}")
        for module, rate in module_lr.items():
            number = _finite_number(rate)
            if number is None or number <= 0:
                raise UserError(f"{where}: module_lr.{module} must be a finite number > 0, got {rate!r}")


def check_stage(stage: Any) -> None:
    """The resolved stage (defaults and overrides together) as the Trainer will get it."""
    values = {key: getattr(stage, key) for key in (*STAGE_NUMBERS, "lr_scheduler", "module_lr")}
    check_stage_settings(stage.name, values)
    if stage.warmup_ratio >= 1:
        raise UserError(f"stage {stage.name!r}: warmup_ratio is a fraction of the steps, below 1")


def check_options(options: Any) -> None:
    """Command-line values the Trainer would otherwise reject only after the data was tokenised."""
    for name, low in (("dataloader_workers", 0), ("save_total_limit", 1), ("preprocess_workers", 1)):
        value = getattr(options, name)
        if value is not None and value < low:
            raise UserError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
    if options.seed is not None and not 0 <= options.seed < 2**32:
        raise UserError(f"--seed must be between 0 and 2**32 - 1, got {options.seed}")
    if options.model_max_length is not None and options.model_max_length <= 0:
        raise UserError(f"--model-max-length must be positive, got {options.model_max_length}")
    output = Path(options.output)
    if output.exists() and not output.is_dir():
        raise UserError(f"--output {output} is a file; name a folder (new or a run folder to --resume)")
    check_report_to(options.report_to)


def check_report_to(report_to: str) -> None:
    """Every `--report-to` backend is one transformers knows and is installed."""
    names = [n.strip() for n in str(report_to).split(",") if n.strip()]
    if not names or names in (["none"], ["all"]):
        return
    from transformers.integrations.integration_utils import INTEGRATION_TO_CALLBACK

    for name in names:
        if name not in INTEGRATION_TO_CALLBACK:
            raise UserError(
                f"--report-to {name}: unknown backend; use none or one of {', '.join(sorted(INTEGRATION_TO_CALLBACK))}"
            )
        module = {"tensorboard": "tensorboard", "azure_ml": "azureml"}.get(name, name)
        if importlib.util.find_spec(module) is None and not (
            name == "tensorboard" and importlib.util.find_spec("tensorboardX") is not None
        ):
            raise UserError(
                f"--report-to {name}: {module} is not installed; `pip install {module}` or --report-to none"
            )


def looks_like_path(name: str) -> bool:
    """A hub id is `name` or `owner/name`; anything else (absolute, `./x`, `~/x`, `a/b/c`) is a local path."""
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def check_model_paths(*names: str) -> None:
    """A model named by a path must exist (the hub client would otherwise call it a malformed repo id)."""
    for name in names:
        if name and looks_like_path(name) and not Path(name).expanduser().exists():
            raise UserError(f"{name}: no such model folder; give an existing folder or a hub id (owner/name)")
