"""The layers of docs/architecture.md hold: a lower layer never imports a higher one (at module level or inside a
function), so the data flows one way. The CLI modules (`*/commands.py`) are the top layer wherever they sit."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "tinyllava_bench"
BOTTOM = ("schema", "json_files", "errors", "paths", "threads", "doc_blocks")

# layer -> the layers of ours it may not import
FORBIDDEN = {
    "bottom": {
        "api",
        "engine",
        "models",
        "tasks",
        "metrics",
        "judge",
        "train",
        "report",
        "demo",
        "testing",
        "lmms",
    },
    "models": {"api", "engine", "train", "report", "demo", "testing", "lmms", "judge", "metrics", "tasks"},
    "tasks": {"api", "engine", "train", "report", "demo", "testing", "lmms", "models"},
    "judge": {"api", "engine", "train", "report", "demo", "testing", "lmms", "models"},
    "engine": {"api", "train", "report", "demo", "testing", "lmms"},
    "train": {"api", "engine", "report", "demo", "testing", "lmms", "judge"},
    "report": {"api", "train", "demo", "testing", "lmms", "models"},
    "testing": {"api", "train", "report", "demo", "lmms"},
}
# the exceptions, each with its reason
ALLOWED = {
    # a model card's score keys are the registry's paper columns (read lazily, when a card is validated)
    "models/zoo.py": {"tasks"},
}


def layer_of(path: Path) -> str | None:
    relative = path.relative_to(PACKAGE)
    if path.name == "commands.py":
        return None  # the CLI layer
    if len(relative.parts) == 1:
        return "bottom" if path.stem in BOTTOM else None
    return relative.parts[0] if relative.parts[0] in FORBIDDEN else None


def imported_areas(path: Path) -> set[str]:
    areas = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "tinyllava_bench" and len(parts) > 1:
                areas.add(parts[1])
    return areas


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if layer_of(p))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_imports_a_layer_above_its_own(path):
    layer = layer_of(path)
    assert layer is not None
    wrong = imported_areas(path) & FORBIDDEN[layer] - ALLOWED.get(str(path.relative_to(PACKAGE)), set())
    assert not wrong, f"{path.relative_to(PACKAGE)} ({layer}) imports {sorted(wrong)}"


def test_the_check_sees_a_planted_upward_import(tmp_path):
    planted = tmp_path / "planted.py"
    planted.write_text("def f():\n    from tinyllava_bench.engine.runner import evaluate\n")
    assert "engine" in imported_areas(planted) & FORBIDDEN["tasks"]
