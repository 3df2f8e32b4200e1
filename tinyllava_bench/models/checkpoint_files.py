"""Reading and writing weight files: safetensors or `.bin` (loaded with weights_only), single or sharded."""

from __future__ import annotations

import json
import pickle
import re
from pathlib import Path

import torch

from tinyllava_bench.errors import UserError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
INDEX_FILES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")


def has_weights(folder: Path) -> bool:
    return any((folder / name).is_file() for name in WEIGHT_FILES + INDEX_FILES)


def read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    """All tensors of the checkpoint in `folder` (on CPU)."""
    for name in INDEX_FILES:
        index = folder / name
        if index.is_file():
            try:
                shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            except (ValueError, KeyError) as exc:
                raise UserError(
                    f"{index}: not a valid shard index ({exc}); re-download the checkpoint"
                ) from None
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(read_weight_file(folder / shard))
            return state
    for name in WEIGHT_FILES:
        if (folder / name).is_file():
            return read_weight_file(folder / name)
    raise UserError(f"{folder}: no weights found (expected one of {', '.join(WEIGHT_FILES + INDEX_FILES)})")


def read_weight_file(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise UserError(f"{path}: weight file missing; the checkpoint is incomplete")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path))
        # weights_only: a .bin file is a pickle, and a pickle can run code; allow tensors only
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:  # a pickle holding more than tensors: possibly code
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(exc))
        raise UserError(
            f"{path}: cannot read weights: the file holds more than tensors"
            f"{f' (it calls {found.group(1)})' if found else ''}, which could run code when loaded; refused — "
            "use a safetensors copy or re-download the file"
        ) from None
    except Exception as exc:  # corrupt or truncated file
        raise UserError(
            f"{path}: cannot read weights ({type(exc).__name__}: {_one_line(exc)}); re-download the file"
        ) from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


def write_state_dict(state: dict[str, torch.Tensor], folder: Path, fmt: str = "safetensors") -> Path:
    """Write `state` as one file; tied (shared-storage) tensors are written as independent copies."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    contiguous = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
    if fmt == "bin":
        path = folder / "pytorch_model.bin"
        torch.save(contiguous, path)
    else:
        path = folder / "model.safetensors"
        save_file(contiguous, str(path), metadata={"format": "pt"})
    return path
