"""Every flag an error message names exists on the verb the user is running (or on the verb the message names).

The messages are read from the package source with `ast` (every `UserError(...)`/`RunError(...)` call's text, with
`{}` where a value is filled in), the flags from the real argparse parsers of `tinyllava_bench.cli.build_parser`.
A message can be raised under every verb whose code imports its module, so a flag it names without naming a verb
must exist on all of them; one meant for another verb names it (`tinyllava-bench eval ... --output`, `report
--paper`).
"""

from __future__ import annotations

import argparse
import ast
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import tinyllava_bench
from tinyllava_bench.cli import build_parser

PACKAGE = Path(tinyllava_bench.__file__).parent
ERROR_CLASSES = ("UserError", "RunError")
FLAG = re.compile(r"--[a-z][a-z0-9-]*")
# The demo drives the eval and train code with settings it makes itself (a new folder, its own data, the CPU), so
# what it can raise to its user are its own modules' messages; the rest of its reach is another verb's code. So with
# the demo's README tool: it reads finished demo runs with regress's defaults.
OWN_CODE_ONLY = {
    "demo": ("tinyllava_bench.demo", "tinyllava_bench.testing"),
    "demo.readme": ("tinyllava_bench.demo",),
}


def verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """The CLI's verbs, and the package's own `python -m` tools under their module's name."""
    from tinyllava_bench.demo import readme

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {**subparsers.choices, "demo.readme": readme.build_parser()}


def verb_flags(parser: argparse.ArgumentParser) -> set[str]:
    return {flag for action in parser._actions for flag in action.option_strings if flag.startswith("--")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text(encoding="utf-8")) for p in sorted(PACKAGE.rglob("*.py"))}


Unit = tuple[
    str, str
]  # (module, top-level function, class or variable): the grain at which code is said to run


@cache
def _units() -> dict[Unit, ast.AST]:
    units: dict[Unit, ast.AST] = {}
    for module, tree in _modules().items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                units[(module, node.name)] = node
            elif isinstance(node, (ast.Assign, ast.AnnAssign)):  # e.g. a table of reader functions by name
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if isinstance(target, ast.Name):
                        units[(module, target.id)] = node
    return units


def _find(module: str, name: str) -> Unit | None:
    """`name` in `module`, or in a submodule a package re-exports it from (the packages load names lazily)."""
    if (module, name) in _units():
        return (module, name)
    # a package that re-exports it (`from .sub import name`): follow the import
    if module in _modules() and ":" in _imported(module).get(name, ""):
        return _find(*_imported(module)[name].split(":"))
    found = [unit for unit in _units() if unit[1] == name and unit[0].startswith(f"{module}.")]
    return found[0] if len(found) == 1 else None


@cache
def _imported(module: str) -> dict[str, str]:
    """Local name -> what it stands for: `module` for `import x as m`/`from pkg import module`, `module:name`
    for `from module import name` (imports inside functions included)."""
    names: dict[str, str] = {}
    package = (
        module
        if module in _modules() and (PACKAGE / Path(*module.split(".")[1:]) / "__init__.py").exists()
        else module.rpartition(".")[0]
    )
    for node in ast.walk(_modules()[module]):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names[alias.asname or alias.name.split(".")[0]] = (
                    alias.name if alias.asname else alias.name.split(".")[0]
                )
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], base]).strip(".")
            for alias in node.names:
                full = f"{base}.{alias.name}"
                names[alias.asname or alias.name] = full if full in _modules() else f"{base}:{alias.name}"
    return names


@cache
def _edges(unit: Unit) -> frozenset[Unit]:
    """The units a unit names: the functions it calls or passes on and the classes it uses (a class counts as a
    whole, so the methods called on its objects are in it)."""
    module = unit[0]
    imported = _imported(module)
    found: set[Unit] = set()
    for node in ast.walk(_units()[unit]):
        target: Unit | None = None
        if isinstance(node, ast.Name):
            meaning = imported.get(node.id)
            if meaning and ":" in meaning:
                target = _find(*meaning.split(":"))
            elif (module, node.id) in _units():
                target = (module, node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = imported.get(node.value.id)  # `module.function`
            if owner and ":" not in owner:
                target = _find(owner, node.attr)
        if target is not None:
            found.add(target)
    return frozenset(found - {unit})


def verb_reach(parser: argparse.ArgumentParser, verb: str) -> set[Unit]:
    """The code that can run under `verb`: its handler and every function and class reachable from it."""
    func = parser.get_default("func")
    seen: set[Unit] = set()
    todo = [(func.__module__, func.__name__)]
    while todo:
        unit = todo.pop()
        if unit not in seen:
            seen.add(unit)
            todo.extend(_edges(unit))
    if verb in OWN_CODE_ONLY:
        seen = {u for u in seen if u[0].startswith(OWN_CODE_ONLY[verb])}
    return seen


def _text(node: ast.AST) -> str:
    """A message expression's text: literal parts as written, `{}` where a value is filled in (both arms of a
    conditional, joined by ` | `, as either can be the one shown)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_text(v) if isinstance(v, ast.Constant) else "{}" for v in node.values)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _text(node.left) + _text(node.right)
    if isinstance(node, ast.IfExp):
        return f"{_text(node.body)} | {_text(node.orelse)}"
    return "{}"


@dataclass(frozen=True)
class Message:
    unit: Unit | None  # the top-level function or class that raises it (None: module level)
    where: str  # path:line
    text: str


def error_messages() -> list[Message]:
    messages = []
    for module, tree in _modules().items():
        path = Path(*module.split(".")).with_suffix(".py")
        if not (PACKAGE.parent / path).exists():
            path = Path(*module.split("."), "__init__.py")
        for top in tree.body:
            unit = (module, top.name) if (module, getattr(top, "name", "")) in _units() else None
            for node in ast.walk(top):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                name = node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", "")
                if name in ERROR_CLASSES:
                    messages.append(Message(unit, f"{path}:{node.lineno}", _text(node.args[0])))
    return messages


def named_verb(text: str, position: int, verbs: set[str]) -> str | None:
    """The verb a flag at `position` is given to: the verb of the backtick-quoted command it is part of, or the
    verb written just before it ("eval --data-root", "`report --paper`")."""
    opened = text.rfind("`", 0, position)
    if opened != -1 and text.count("`", 0, position) % 2 == 1:
        words = re.findall(r"[a-z-]+", text[opened + 1 : position])
        words = words[1:] if words[:1] == ["tinyllava-bench"] else words
        if words and words[0] in verbs:
            return words[0]
    before = re.search(r"(?:tinyllava-bench )?([a-z]+) $", text[:position])
    return before.group(1) if before and before.group(1) in verbs else None


def wrong_flags() -> list[str]:
    parsers = verb_parsers()
    flags = {verb: verb_flags(parser) for verb, parser in parsers.items()}
    reach = {verb: verb_reach(parser, verb) for verb, parser in parsers.items()}
    problems = []
    for message in error_messages():
        for match in FLAG.finditer(message.text):
            flag = match.group()
            verb = named_verb(message.text, match.start(), set(parsers))
            if verb is not None:
                if flag not in flags[verb]:
                    problems.append(f"{message.where}: {flag} is no flag of `{verb}`: {message.text!r}")
                continue
            users = sorted(v for v, units in reach.items() if message.unit in units)
            lacking = [v for v in users if flag not in flags[v]]
            if not users and not any(flag in f for f in flags.values()):
                problems.append(f"{message.where}: {flag} is no flag of any verb: {message.text!r}")
            elif lacking:
                problems.append(
                    f"{message.where}: {flag} is no flag of {', '.join(lacking)} (which can raise it; name the "
                    f"verb it belongs to): {message.text!r}"
                )
    return problems


def test_every_flag_named_in_an_error_message_exists_on_the_verbs_that_raise_it():
    assert wrong_flags() == []


def test_the_message_scan_sees_the_messages_and_the_verbs():
    # the scan must not pass by finding nothing: known messages, verbs and their reach are seen
    texts = {m.text for m in error_messages()}
    assert "--group-by {}: choose one of {}" in texts
    parsers = verb_parsers()
    assert {"eval", "score", "train", "report", "zoo", "demo", "demo.readme"} <= set(parsers)
    assert ("tinyllava_bench.demo.readme", "rounding_reruns") in verb_reach(
        parsers["demo.readme"], "demo.readme"
    )
    assert "--data-root" in verb_flags(parsers["eval"]) and "--data" not in verb_flags(parsers["eval"])
    loads_data = ("tinyllava_bench.tasks.data", "load_task_data")
    assert loads_data in verb_reach(parsers["eval"], "eval") and loads_data in verb_reach(
        parsers["score"], "score"
    )
    assert ("tinyllava_bench.report.tables", "results_table") in verb_reach(parsers["report"], "report")
    assert ("tinyllava_bench.report.tables", "results_table") not in verb_reach(parsers["regress"], "regress")


def test_a_flag_of_another_verb_counts_only_where_the_message_names_that_verb():
    verbs = {"eval", "report", "score"}
    text = "finish it with `tinyllava-bench eval ... --output {}`, or use `report --paper`; pass --data"
    assert named_verb(text, text.index("--output"), verbs) == "eval"
    assert named_verb(text, text.index("--paper"), verbs) == "report"
    assert named_verb(text, text.index("--data"), verbs) is None
    assert named_verb("use eval --data-root", len("use eval "), verbs) == "eval"
