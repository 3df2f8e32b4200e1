"""What `--resume` may continue: the settings that decide a stage's result, fingerprinted in its training.json.

A stage writes its fingerprint when it starts (training.json with `status: running`) and again when it finishes.
`--resume` compares the fingerprint of the command at hand with the recorded one and refuses a mismatch, naming what
changed: a stage resumed with another learning rate, data file, seed or base model would otherwise end with weights
of one setting recorded under another.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError

logger = logging.getLogger("tinyllava_bench.train")

TRAINER_STATE = "trainer_state.json"


def _file_digest(path: Path) -> str:
    stat = path.stat()
    return _cached_digest(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _cached_digest(path: str, size: int, mtime_ns: int) -> str:
    from tinyllava_bench.train.records import file_fingerprint

    return file_fingerprint(Path(path))


def start_fingerprint(source: str | None, plan: Any) -> dict[str, Any]:
    """What the stage starts from: the base LLM and tower (fresh model), or a checkpoint folder's identity."""
    if source is None:
        return {"llm": _model_identity(plan.model.llm), "vision": _model_identity(plan.model.vision)}
    return {"checkpoint": _model_identity(source)}


def _model_identity(name: str) -> str:
    """A hub id as written; a local folder as its path plus its training fingerprint (a stage of this project) or
    the digest of its config and the sizes of its weight files."""
    folder = Path(name).expanduser()
    if not folder.is_dir():
        return name
    record = folder / "training.json"
    if record.is_file():
        try:
            digest = json.loads(record.read_text()).get("fingerprint", {}).get("digest")
        except (ValueError, AttributeError):
            digest = None
        if digest:
            return f"{folder.absolute()} ({digest})"
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.name == "config.json":
            digest.update(path.read_bytes())
        elif path.suffix in (".safetensors", ".bin") and path.is_file():
            digest.update(f"{path.name}:{path.stat().st_size};".encode())
    return f"{folder.absolute()} (sha256:{digest.hexdigest()[:16]})"


def stage_fingerprint(
    plan: Any, stage: Any, source: str | None, batch: Any, json_path: Path, images: Path
) -> dict[str, Any]:
    """`{digest, settings}`: the flat settings that decide the stage's weights, and their sha256."""
    settings: dict[str, Any] = {}
    for key, value in asdict(plan.model).items():
        if key != "paper_data":
            settings[f"model.{key}"] = value
    for key, value in stage.to_dict().items():
        settings[f"stage.{key}"] = value
    settings["stage.model_max_length"] = plan.recipe.max_length_of(stage)
    settings["seed"] = plan.options.seed
    settings["max_steps"] = plan.options.max_steps
    settings["precision"] = plan.options.precision
    settings["batch.per_device"] = batch.per_device
    settings["batch.grad_accum"] = batch.grad_accum
    settings["batch.world_size"] = batch.world_size
    settings["data.json"] = str(Path(json_path).absolute())
    settings["data.fingerprint"] = _file_digest(Path(json_path)) if Path(json_path).is_file() else None
    settings["data.images"] = str(Path(images).absolute())
    for key, value in start_fingerprint(source, plan).items():
        settings[f"start.{key}"] = value
    settings = json.loads(json.dumps(settings, sort_keys=True, default=str))  # the form training.json holds
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return {"digest": f"sha256:{digest}", "settings": settings}


def check_same_run(stage_dir: Path, record: dict[str, Any] | None, fingerprint: dict[str, Any]) -> None:
    """Refuse to resume (or skip as finished) a stage recorded with other settings than `fingerprint`'s."""
    recorded = (record or {}).get("fingerprint")
    if not isinstance(recorded, dict) or recorded.get("digest") == fingerprint["digest"]:
        return
    old, new = recorded.get("settings") or {}, fingerprint["settings"]
    changed = [key for key in sorted(set(old) | set(new)) if old.get(key) != new.get(key)]
    described = "; ".join(f"{key} {old.get(key)!r} -> {new.get(key)!r}" for key in changed[:3])
    if len(changed) > 3:
        described += f" (and {len(changed) - 3} more)"
    status = (record or {}).get("status", "running")
    raise UserError(
        f"{stage_dir} was trained ({status}) with other settings than this command's: {described or 'the run'}; "
        "rerun with the settings it was started with, or train into a new --output"
    )


def checkpoint_step(checkpoint: Path) -> int | None:
    """The step of a checkpoint whose trainer state reads back whole, else None (a save cut short)."""
    try:
        state = json.loads((Path(checkpoint) / TRAINER_STATE).read_text())
    except (OSError, ValueError):
        return None
    step = state.get("global_step") if isinstance(state, dict) else None
    return step if isinstance(step, int) else None


def usable_checkpoint(folder: Path, weights_name: str) -> str | None:
    """The newest checkpoint under `folder` with a readable trainer state and its weights; older ones stand in for
    a newest one whose save was cut short."""
    candidates = sorted(
        (int(p.name.split("-")[-1]), p)
        for p in Path(folder).glob("checkpoint-*")
        if p.name.split("-")[-1].isdigit()
    )
    for _, path in reversed(candidates):
        if checkpoint_step(path) is not None and (path / weights_name).is_file():
            return str(path)
        logger.warning(
            "%s is incomplete (unreadable %s or no weights); trying an older one", path, TRAINER_STATE
        )
    return None


def whole_stage_loss(
    session_loss: float | None, log_history: list[dict[str, Any]], resumed_at: int, global_step: int
) -> float | None:
    """The mean loss over all of a stage's steps when this session trained only those after `resumed_at`.

    transformers' `train_loss` averages the session's steps only. The steps before the resume point come from the
    logged losses (each the mean over the steps since the previous log); the trainer logs at every checkpoint, so
    they cover the steps up to the checkpoint exactly.
    """
    if session_loss is None or not resumed_at:
        return session_loss
    before, previous = 0.0, 0
    for entry in log_history:
        step = entry.get("step", 0)
        if "loss" in entry and previous < step <= resumed_at:
            before += entry["loss"] * (step - previous)
            previous = step
    return (before + session_loss * (global_step - resumed_at)) / max(global_step, 1)
