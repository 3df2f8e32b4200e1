"""`--task-options`: a copy of a task with dotted-key changes (`prompt.ocr_tokens=false`), validated like its YAML;
the user's change wins over every protocol's own change to the same key."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import yaml

from tinyllava_bench.errors import UserError
from tinyllava_bench.tasks.config import TaskConfig, parse_task


def _option_names(node: Mapping[str, Any], prefix: list[str]) -> str:
    """The settable dotted keys at `node` (its scalar and list fields), for an unknown-option message."""
    names = [".".join([*prefix, name]) for name, value in node.items() if not isinstance(value, dict)]
    nested = [".".join([*prefix, name]) + ".*" for name, value in node.items() if isinstance(value, dict)]
    return ", ".join(sorted(names) + sorted(nested))


def apply_overrides(task: TaskConfig, overrides: Mapping[str, Any]) -> TaskConfig:
    """A copy of `task` with dotted-key changes, e.g. {"prompt.ocr_tokens": False}; they win over protocols.

    String values are read as YAML scalars, so "false" and "128" from a command line become False and 128.
    """
    if not overrides:
        return task
    data = task.model_dump()
    for key, raw in overrides.items():
        value = yaml.safe_load(raw) if isinstance(raw, str) else raw
        parts = key.split(".")
        if not all(parts):
            raise UserError(f"task option {key!r} is not a dotted field name like prompt.ocr_tokens")
        node = data
        for depth, part in enumerate(parts[:-1]):
            if not isinstance(node.get(part), dict):
                raise UserError(
                    f"task {task.name}: no option {key!r} (unknown field {part!r}); the options are: "
                    + _option_names(node, parts[:depth])
                )
            node = node[part]
        if parts[-1] not in node:
            raise UserError(
                f"task {task.name}: no option {key!r}; the options are: " + _option_names(node, parts[:-1])
            )
        node[parts[-1]] = value
        # the user's choice must win over every protocol's own change to the same key
        if parts[0] in ("prompt", "generation") and len(parts) == 2:
            for override in data["protocols"].values():
                override[parts[0]].pop(parts[1], None)
    source = task.source or f"<task {task.name}>"
    changed = parse_task(copy.deepcopy(data), source)
    changed._source = task.source
    return changed
