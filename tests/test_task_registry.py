"""The task registry: every benchmark fact comes from tasks/*.yaml, through tinyllava_bench/tasks/registry.py."""

from __future__ import annotations

import ast
import re
import shutil
from pathlib import Path

import pytest
import yaml

from tinyllava_bench.errors import UserError
from tinyllava_bench.paths import PACKAGE_DIR, REPO_ROOT
from tinyllava_bench.report.runs import TaskResult, task_full_scale
from tinyllava_bench.report.view import outcome
from tinyllava_bench.tasks import registry
from tinyllava_bench.tasks.config import read_task_file
from tinyllava_bench.tasks.registry import expand_tasks

TASKS = REPO_ROOT / "tasks"
DOC = REPO_ROOT / "docs" / "adding_a_task.md"

# The TinyLLaVA paper's Table A1 columns, left to right, with the reference CSV column each fills.
PAPER_COLUMNS = [
    ("VQAv2", "vqav2"),
    ("GQA", "gqa"),
    ("SQA-I", "scienceqa_img"),
    ("TextVQA", "textvqa"),
    ("MM-Vet", "mmvet"),
    ("POPE", "pope"),
    ("LLaVA-W", "llava_wild"),
    ("MME", "mme"),
]


def _copy_tasks(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for path in TASKS.glob("*.yaml"):
        shutil.copy(path, folder / path.name)
    return folder


def _edit(path: Path, **changes: object) -> None:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    data.update(changes)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


@pytest.mark.parametrize("path", sorted(TASKS.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_yaml_validates(path: Path) -> None:
    assert read_task_file(path).name == path.stem


def test_shipped_tasks_validate_together() -> None:
    names = registry.task_names(TASKS)
    assert names == sorted(p.stem for p in TASKS.glob("*.yaml"))


def test_paper_columns_are_the_papers_in_its_order() -> None:
    columns = registry.benchmark_columns(TASKS)
    assert [(b.label, b.paper_column) for b in columns] == PAPER_COLUMNS
    # the paper's VQAv2 number is test-dev, so a test-dev result fills the column before a val one
    assert columns[0].tasks == ("vqav2_testdev", "vqav2")
    assert all(b.tasks == (b.paper_column,) for b in columns[1:])
    assert registry.paper_columns(TASKS) == [column for _, column in PAPER_COLUMNS]


def test_paper_columns_match_the_reference_csv_header() -> None:
    header = (PACKAGE_DIR / "reference" / "paper_scores.csv").read_text(encoding="utf-8").splitlines()[0]
    csv_columns = header.split(",")
    assert all(column in csv_columns for column in registry.paper_columns(TASKS))


def test_tasks_all_is_the_papers_eight_with_vqav2_on_val() -> None:
    expected = ["vqav2", "gqa", "scienceqa_img", "textvqa", "mmvet", "pope", "llava_wild", "mme"]
    assert registry.all_tasks(TASKS) == expected
    assert expand_tasks("all") == expected


def test_headlines_are_the_papers_metrics() -> None:
    expected = {
        "vqav2": "accuracy",
        "vqav2_testdev": "accuracy",
        "gqa": "accuracy",
        "scienceqa_img": "accuracy",
        "textvqa": "accuracy",
        "pope": "f1",
        "mme": "perception",
        "mmvet": "total",
        "llava_wild": "relative_score",
    }
    assert {name: registry.headline(name, TASKS) for name in expected} == expected
    assert registry.headline("not_a_task", TASKS) is None


def test_metric_maxima() -> None:
    # MME's sums of 0-200 subtask scores: 10 perception subtasks, 4 cognition ones
    assert registry.metric_max("mme", "perception", TASKS) == 2000.0
    assert registry.metric_max("mme", "cognition", TASKS) == 800.0
    assert registry.metric_max("mme", "total", TASKS) == 2800.0
    assert registry.metric_max("mme", "existence", TASKS) == 100.0
    assert registry.metric_max("gqa", "accuracy", TASKS) == 100.0
    assert registry.metric_max("not_a_task", "perception", TASKS) == 100.0
    assert registry.sum_part_max("mme", TASKS) == 200.0
    assert registry.sum_part_max("pope", TASKS) is None


def test_a_partial_mme_run_tops_out_at_200_per_subtask_it_scored() -> None:
    metrics = {"perception": 300.0, "existence": 150.0, "count": 150.0, "commonsense_reasoning": 80.0}
    assert task_full_scale(TaskResult("mme", metrics, "perception")) == 400.0
    assert task_full_scale(TaskResult("mme", metrics, "total")) == 600.0
    assert task_full_scale(TaskResult("mme", {"perception": 1.0}, "perception")) == 2000.0
    assert task_full_scale(TaskResult("pope", {"f1": 80.0}, "f1")) == 100.0


def test_judged_columns_and_sample_score_ranges() -> None:
    assert registry.judged_columns(TASKS) == ["mmvet", "llava_wild"]
    assert registry.sample_score_range("llava_wild", TASKS) == (1.0, 10.0)
    assert registry.sample_score_range("mmvet", TASKS) == (0.0, 1.0)
    assert registry.sample_score_range("not_a_task", TASKS) == (0.0, 1.0)
    assert (outcome("llava_wild", 10), outcome("llava_wild", 1), outcome("llava_wild", 0.5)) == (
        "right",
        "wrong",
        "wrong",
    )
    assert outcome("gqa", 1.0) == "right" and outcome("vqav2", 0.3) == "partial"


def test_column_of_task_and_notes() -> None:
    assert registry.column_of_task(TASKS)["vqav2_testdev"] == "vqav2"
    assert registry.benchmark_note("vqav2", TASKS) == (
        "VQAv2 is the val split scored locally (the paper reports test-dev)."
    )
    assert registry.benchmark_note("vqav2_testdev", TASKS) == ""
    assert registry.submission_tasks(TASKS) == ["gqa", "mmvet", "vqav2_testdev"]


@pytest.mark.parametrize(
    ("alias", "task"),
    [
        ("sqa", "scienceqa_img"),
        ("textvqa_val", "textvqa"),
        ("llava_in_the_wild", "llava_wild"),
        ("llava_bench", "llava_wild"),
        ("vqav2_val", "vqav2"),
        ("gqa", "gqa"),
    ],
)
def test_aliases_resolve(alias: str, task: str) -> None:
    assert registry.resolve_alias(alias, TASKS) == task
    assert registry.load_task(alias, TASKS).name == task


def test_eval_tasks_accept_aliases_and_keep_order() -> None:
    assert expand_tasks("sqa,llava_in_the_wild,scienceqa_img") == ["scienceqa_img", "llava_wild"]


def test_score_accepts_an_alias(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tinyllava_bench.cli import main

    data = tmp_path / "scienceqa_img.jsonl"
    data.write_text('{"question": "q", "hint": "", "choices": ["a", "b"], "answer": 1}\n', encoding="utf-8")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text('{"index": 0, "prediction": "B"}\n', encoding="utf-8")
    code = main(["score", "sqa", "--data", str(data), "--predictions", str(predictions)])
    assert code == 0, capsys.readouterr().err
    assert (tmp_path / "predictions.scienceqa_img.score.json").is_file()


def test_an_unknown_name_lists_the_known_names_and_aliases() -> None:
    with pytest.raises(UserError) as error:
        registry.resolve_alias("sciqa", TASKS)
    message = str(error.value)
    assert "unknown task 'sciqa'" in message
    assert "scienceqa_img (or sqa, sqa_img)" in message and "llava_wild (or llava_in_the_wild" in message


def test_an_alias_taken_twice_is_refused(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    _edit(folder / "gqa.yaml", aliases=["sqa"])
    with pytest.raises(UserError, match="alias 'sqa' is already the name or an alias of task"):
        registry.list_tasks(folder)


def test_an_alias_equal_to_a_task_name_is_refused(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    _edit(folder / "gqa.yaml", aliases=["pope"])
    with pytest.raises(UserError, match="alias 'pope' is already the name"):
        registry.list_tasks(folder)


def test_tasks_of_one_column_must_agree(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    testdev = yaml.safe_load((folder / "vqav2_testdev.yaml").read_text(encoding="utf-8"))
    _edit(folder / "vqav2_testdev.yaml", benchmark={**testdev["benchmark"], "order": 9})
    with pytest.raises(UserError, match="fill column 'VQAv2' but disagree"):
        registry.list_tasks(folder)
    _edit(folder / "vqav2_testdev.yaml", benchmark={**testdev["benchmark"], "priority": 2})
    with pytest.raises(UserError, match="same benchmark.priority"):
        registry.list_tasks(folder)


def test_two_columns_in_one_place_are_refused(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    gqa = yaml.safe_load((folder / "gqa.yaml").read_text(encoding="utf-8"))
    _edit(folder / "gqa.yaml", benchmark={**gqa["benchmark"], "order": 3})
    with pytest.raises(UserError, match="same benchmark.order 3"):
        registry.list_tasks(folder)


def test_metric_sums_must_name_the_scorers_groups(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    _edit(folder / "mme.yaml", metric_sums={"part_max": 200, "sums": {"perception": ["percepton"]}})
    with pytest.raises(
        UserError, match="no subtask group\\(s\\) percepton; its groups: perception, cognition"
    ):
        registry.list_tasks(folder)


def test_an_edited_yaml_is_read_again(tmp_path: Path) -> None:
    folder = _copy_tasks(tmp_path / "tasks")
    assert registry.headline("pope", folder) == "f1"
    _edit(folder / "pope.yaml", headline="accuracy")
    assert registry.headline("pope", folder) == "accuracy"


# ------------------------------------------------------------------------------------- the worked example


def _doc_example() -> tuple[str, str]:
    text = DOC.read_text(encoding="utf-8")
    found = re.search(r"<!-- example: tasks/(\w+)\.yaml -->\n```yaml\n(.*?)```", text, re.S)
    assert found, f"{DOC} lost its worked example block"
    return found.group(1), found.group(2)


def test_the_docs_worked_example_validates_through_the_registry(tmp_path: Path) -> None:
    name, text = _doc_example()
    folder = _copy_tasks(tmp_path / "tasks")
    (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    task = registry.load_task("pope_adv", folder)
    assert task.name == name == "pope_adversarial" and task.scorer == "pope" and task.size == 3000
    columns = registry.benchmark_columns(folder)
    assert [(b.label, b.paper_column, b.tasks) for b in columns][-2:] == [
        ("MME", "mme", ("mme",)),
        ("POPE-adv", None, ("pope_adversarial",)),
    ]
    # no paper number: the zoo and the leaderboard keep the paper's eight columns, `all` its eight tasks
    assert registry.paper_columns(folder) == [column for _, column in PAPER_COLUMNS]
    assert name not in registry.all_tasks(folder)


# ------------------------------------------------------------------------------- no benchmark list elsewhere

# Where a string equal to a task name may appear in tinyllava_bench/ outside tasks/. Each entry says why.
ALLOWED = {
    # data builders of the demo and the testing kit: they write each benchmark's rows (moved to a testing kit)
    "tinyllava_bench/demo/": None,
    "tinyllava_bench/testing/": None,
    # scorer name -> module: scorer names, which the task YAMLs' `scorer` key names (not task names)
    "tinyllava_bench/metrics/__init__.py": None,
    # the judge rules of the mmvet and llava_wild scorers; with no settings given they read their own task's
    # judge block (judge_mmvet, judge_llava_wild)
    "tinyllava_bench/judge/tasks.py": {"mmvet", "llava_wild"},
}


def _string_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                docstrings.add(id(body[0].value))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings
    ]


def _offending_literals(package: Path, names: set[str]) -> list[str]:
    found = []
    for path in sorted(package.rglob("*.py")):
        relative = path.relative_to(package.parent).as_posix()
        if relative.startswith("tinyllava_bench/tasks/"):
            continue
        allowed: set[str] | None = set()
        for prefix, literals in ALLOWED.items():
            if relative.startswith(prefix):
                allowed = literals
        if allowed is None:
            continue
        found += [
            f"{relative}:{line}: {value!r}"
            for line, value in _string_literals(path)
            if value in names and value not in allowed
        ]
    return found


def test_no_task_name_is_written_outside_the_registry() -> None:
    names = {name for task in registry.list_tasks(TASKS) for name in (task.name, *task.aliases)}
    found = _offending_literals(PACKAGE_DIR, names)
    assert not found, (
        "task names outside tasks/ (read them from tinyllava_bench.tasks.registry):\n" + "\n".join(found)
    )


def test_the_grep_finds_a_planted_constant(tmp_path: Path) -> None:
    package = tmp_path / "tinyllava_bench"
    (package / "report").mkdir(parents=True)
    (package / "report" / "scale.py").write_text(
        '"""Docstrings may say mme."""\nFULL = {("mme", "perception"): 2000.0}\n', encoding="utf-8"
    )
    (package / "demo").mkdir()
    (package / "demo" / "world.py").write_text('TASKS = ("mme",)\n', encoding="utf-8")
    assert _offending_literals(package, {"mme"}) == ["tinyllava_bench/report/scale.py:2: 'mme'"]
