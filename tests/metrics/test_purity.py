"""metrics/ is pure: no file I/O and nothing of ours outside metrics/ (judge prompts are read by judge/prompts.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tinyllava_bench.metrics

METRICS_DIR = Path(tinyllava_bench.metrics.__file__).parent
MODULES = sorted(METRICS_DIR.glob("*.py"))
# what a scorer may import: arithmetic and text handling, nothing that reaches a file, the network or a process
ALLOWED_MODULES = {
    "__future__",
    "collections",
    "dataclasses",
    "decimal",
    "enum",
    "fractions",
    "functools",
    "importlib",
    "itertools",
    "math",
    "numpy",
    "re",
    "statistics",
    "string",
    "typing",
}
FILE_CALLS = {"open", "read_text", "read_bytes", "write_text", "write_bytes", "load", "dump"}


def _imports(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):  # nested imports too: a function-level import is still an import
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names.append("." * node.level + (node.module or ""))
    return names


def _called_names(tree: ast.AST) -> set[str]:
    called: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name):
                called.add(node.func.id)
            elif isinstance(node.func, ast.Attribute):
                called.add(node.func.attr)
    return called


def test_the_package_has_scorer_modules():
    assert {path.stem for path in MODULES} >= {"mmvet", "llava_wild", "vqa", "__init__"}


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_a_metrics_module_imports_nothing_that_does_io(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for name in _imports(tree):
        if name.startswith("tinyllava_bench"):
            assert name == "tinyllava_bench.metrics" or name.startswith("tinyllava_bench.metrics."), (
                f"{path.name} imports {name}: metrics take text and values, not other layers"
            )
        else:
            assert not name.startswith("."), f"{path.name}: use absolute imports ({name})"
            assert name.split(".")[0] in ALLOWED_MODULES, f"{path.name} imports {name}, which metrics may not"


@pytest.mark.parametrize("path", MODULES, ids=lambda path: path.name)
def test_a_metrics_module_calls_no_file_function(path):
    called = _called_names(ast.parse(path.read_text(encoding="utf-8")))
    assert not called & FILE_CALLS, f"{path.name} calls {sorted(called & FILE_CALLS)}: metrics read no file"
