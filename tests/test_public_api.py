"""The public API (docs/api.md): its names are the documented list, importing it is light, and each function runs
on tiny data through the doc's own examples, whose results are checked here (so the doc cannot drift)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import tinyllava_bench
from tests.reliability.conftest import checkpoint, data_root  # noqa: F401  (fixtures)
from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE

REPO = Path(__file__).resolve().parents[1]
API_DOC = REPO / "docs" / "api.md"
CODE_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def doc_examples() -> list[str]:
    return CODE_BLOCK.findall(API_DOC.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def examples(tmp_path_factory, checkpoint, data_root) -> dict[str, Any]:  # noqa: F811
    """docs/api.md's examples run in order, in one namespace, in a folder laid out as the doc says; their names."""
    from tests.train.conftest import write_colour_data, write_config, write_model_parts

    folder = tmp_path_factory.mktemp("api-examples")
    (folder / "checkpoints").mkdir()
    (folder / "checkpoints" / "tiny").symlink_to(checkpoint)
    (folder / "data").symlink_to(data_root)
    parts = write_model_parts(folder / "parts")
    write_config(folder / "train.yaml", parts)
    write_colour_data(folder / "train_data", counts={"pretrain": 8})
    namespace: dict[str, Any] = {"__name__": "api_examples"}
    before = Path.cwd()
    os.chdir(folder)
    try:
        for code in doc_examples():
            exec(compile(code, str(API_DOC), "exec"), namespace)
    finally:
        os.chdir(before)
    namespace["folder"] = folder
    return namespace


def test_all_is_exactly_the_documented_list():
    table = API_DOC.read_text(encoding="utf-8").split("## The names", 1)[1].split("\n## ", 1)[0]
    documented = re.findall(r"^\| `(\w+)` \|", table, re.M)
    assert len(documented) == len(set(documented))
    assert sorted(documented) == sorted(tinyllava_bench.__all__)
    for name in tinyllava_bench.__all__:
        assert getattr(tinyllava_bench, name) is not None


def test_every_exported_function_is_documented_with_an_example():
    text = API_DOC.read_text(encoding="utf-8")
    for name in ("load_model", "evaluate", "score", "train", "report", "regress"):
        section = text.split(f"### `{name}`", 1)[1].split("\n### ", 1)[0]
        assert re.search(rf"\b{name}\(", "".join(CODE_BLOCK.findall(section))), name
        assert getattr(tinyllava_bench, name).__doc__


def test_the_functions_stay_when_their_namesake_subpackages_load():
    """`tinyllava_bench.train` and `.report` are also subpackages; loading them must not replace the functions."""
    import importlib

    from tinyllava_bench import api

    for name in ("train", "report"):
        importlib.import_module(f"tinyllava_bench.{name}.commands")
        assert getattr(tinyllava_bench, name) is getattr(api, name)
    from tinyllava_bench.train import plan  # the subpackages stay importable by name

    assert plan.RunOptions.__name__ == "RunOptions"


def _loaded_after(statements: str, modules: tuple[str, ...]) -> list[str]:
    """Which of `modules` a fresh interpreter has imported after running `statements`."""
    code = f"import sys; {statements}; print(','.join(m for m in {modules!r} if m in sys.modules))"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO, env=os.environ
    )
    return [m for m in done.stdout.strip().split(",") if m]


def test_importing_the_package_loads_no_torch():
    heavy = ("torch", "transformers", "pandas", "numpy", "datasets")
    assert _loaded_after("import tinyllava_bench, tinyllava_bench.cli", heavy) == []


def test_the_cli_builds_its_parser_without_loading_readers_or_the_judge():
    """Every verb's start-up builds the whole parser: it must not load the run-folder models (pydantic), the task
    YAMLs, the judge client or the scorers."""
    heavy = (
        "pydantic",
        "yaml",
        "openai",
        "tinyllava_bench.schema",
        "tinyllava_bench.judge.client",
        "tinyllava_bench.judge.tasks",
        "tinyllava_bench.tasks.registry",
        "numpy",
    )
    assert _loaded_after("import tinyllava_bench.cli as cli; cli.build_parser()", heavy) == []


def test_load_model(examples):
    model = examples["model"]
    assert type(model).__name__ == "TinyLlava"
    assert "What is in the picture?" in model.render_prompt("What is in the picture?")


def test_evaluate_writes_the_run_folder_it_returns(examples):
    run = examples["run"]
    assert isinstance(run, tinyllava_bench.EvalResult)
    assert run.exit_status == EXIT_OK and run.message is None
    output = examples["folder"] / run.output
    on_disk = json.loads((output / "results.json").read_text())
    assert on_disk["tasks"] == run.results["tasks"]
    assert sorted(run.results["tasks"]) == ["gqa", "pope"]
    for entry in run.results["tasks"].values():
        assert entry["n_samples"] == 4 and entry["n_errors"] == 0
    assert (output / "samples_pope.jsonl").exists()


def test_evaluate_runs_an_adapter_with_hooks(examples):
    faked, log = examples["faked"], examples["log"]
    assert faked.exit_status == EXIT_OK
    entry = faked.results["tasks"]["pope"]
    assert entry["n_samples"] == 4 and entry["n_errors"] == 0
    assert faked.results["model"]["source"] == "fake"
    assert "load_model" not in log.phases  # the adapter was handed in, not loaded
    assert (
        log.phases.index("run_task")
        < log.phases.index("model_generate")
        < log.phases.index("score_and_write")
    )


def test_score_rescores_the_runs_samples(examples):
    scored, run = examples["scored"], examples["run"]
    assert isinstance(scored, tinyllava_bench.ScoreResult)
    assert scored.exit_status == EXIT_OK  # the rows without a prediction were counted as wrong, as asked
    assert scored.result["task"] == "pope" and scored.result["protocol"] == "lmms-eval"
    assert scored.result["n"] == 6 and scored.result["n_rows"] == 6
    assert json.loads((examples["folder"] / scored.output).read_text())["metrics"] == scored.result["metrics"]
    assert run.results["tasks"]["pope"]["n_samples"] == 4


def test_score_without_missing_as_wrong_reports_the_unscored_rows(examples):
    folder = examples["folder"]
    scored = tinyllava_bench.score(
        "pope",
        predictions=folder / "results/tiny/samples_pope.jsonl",
        data_root=folder / "data",
        output=folder / "results/pope-official.json",
    )
    assert scored.exit_status == EXIT_INCOMPLETE
    assert scored.result["n_missing"] == 2
    assert scored.message and scored.message.startswith("incomplete: 2 row(s) without a prediction")
    # the paper's scorer on the rows that have a prediction gives the eval's own number
    assert scored.result["metrics"] == examples["run"].results["tasks"]["pope"]["metrics"]


def test_train_returns_the_stage_model_it_wrote(examples):
    trained = examples["trained"]
    assert isinstance(trained, tinyllava_bench.TrainResult)
    stage = examples["folder"] / "runs" / "tiny" / "pretrain"
    assert [folder.resolve() for folder in trained.folders] == [stage.resolve()]
    assert trained.exit_status == EXIT_OK
    model = tinyllava_bench.load_model(str(stage))
    assert type(model).__name__ == "TinyLlava"


def test_report_renders_and_writes_the_table(examples):
    table = examples["table"]
    assert isinstance(table, tinyllava_bench.ReportResult)
    assert table.out == Path("results/table.md")
    assert (examples["folder"] / table.out).read_text() == table.table
    assert "POPE" in table.table and "GQA" in table.table and table.plots == []


def test_regress_passes_a_run_against_its_copy(examples):
    verdict = examples["verdict"]
    assert isinstance(verdict, tinyllava_bench.RegressResult)
    assert not verdict.failed and verdict.exit_status == EXIT_OK
    assert "PASS" in verdict.summary


def test_regress_fails_on_runs_of_other_data(examples, tmp_path):
    folder = examples["folder"]
    changed = tmp_path / "changed"
    import shutil

    shutil.copytree(folder / "results/tiny", changed)
    results = json.loads((changed / "results.json").read_text())
    for entry in results["tasks"].values():
        entry["dataset"]["fingerprint"] = "0" * 16
    (changed / "results.json").write_text(json.dumps(results))
    verdict = tinyllava_bench.regress(baseline=folder / "results/tiny", current=changed)
    assert verdict.failed and verdict.exit_status == 1 and "REFUSED" in verdict.summary


def test_the_error_example_raises_a_usage_error():
    with pytest.raises(tinyllava_bench.UserError, match="--limit must be a positive number") as raised:
        tinyllava_bench.evaluate("checkpoints/tiny", "pope", limit=0)
    assert raised.value.exit_code == EXIT_USAGE


def test_user_errors_are_raised_before_anything_loads(tmp_path):
    with pytest.raises(tinyllava_bench.UserError, match="--max-error-rate is a share between 0 and 1"):
        tinyllava_bench.evaluate("no/such/model", "pope", max_error_rate=2.0, output=tmp_path / "run")
    with pytest.raises(tinyllava_bench.UserError, match="task pope has no judge: drop --judge-model"):
        tinyllava_bench.score("pope", predictions=tmp_path / "p.jsonl", judge_model="gpt-4")
    with pytest.raises(tinyllava_bench.UserError, match="say which model to train"):
        tinyllava_bench.train(output=tmp_path / "train")
    with pytest.raises(tinyllava_bench.UserError, match="give at least one run folder"):
        tinyllava_bench.report()
    assert not (tmp_path / "run").exists()


def test_score_of_a_judged_task_asks_the_judge(tmp_path, monkeypatch, data_root):  # noqa: F811
    """MM-Vet through the real openai client against the local judge server: every row judged, the mean of the
    judge's scores (0.5 each) is the total, and the judge's settings are the task file's."""
    from tests.judge_server import JudgeServer
    from tinyllava_bench.tasks import load_task
    from tinyllava_bench.tasks.data import load_task_data

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-public-api")
    rows = load_task_data(load_task("mmvet"), None, data_root, need_images=False, protocol="official")
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        "".join(json.dumps({"question_id": qid, "prediction": "a cat"}) + "\n" for qid in rows.question_ids())
    )
    with JudgeServer(reply="0.5") as server:
        scored = tinyllava_bench.score(
            "mmvet", predictions=predictions, data_root=data_root, judge_base_url=server.base_url
        )
        n_requests = server.request_count
    assert scored.exit_status == EXIT_OK and scored.message is None
    assert scored.output == tmp_path / "predictions.mmvet.score.json"
    assert scored.result["n"] == len(rows) and scored.result["n_judge_failures"] == 0
    assert scored.result["metrics"]["total"] == pytest.approx(50.0)
    assert scored.result["judge"]["model"] == load_task("mmvet").judge.model
    assert n_requests == len(rows)
    assert scored.submission == tmp_path / "predictions.mmvet.score.submission.json"
    assert (tmp_path / "judge_cache").is_dir()


@pytest.mark.parametrize(
    ("module", "handler", "function"),
    [
        ("tinyllava_bench.engine.commands", "run_eval", "evaluate"),
        ("tinyllava_bench.tasks.commands", "run_score", "score"),
        ("tinyllava_bench.train.commands", "run_train", "train"),
        ("tinyllava_bench.report.commands", "run_report", "report"),
        ("tinyllava_bench.report.commands", "run_regress", "regress"),
    ],
)
def test_each_verb_is_a_thin_layer_over_one_api_call(module, handler, function):
    """The verb's handler imports nothing of the package but its API function, and calls it once."""
    import ast
    import importlib
    import inspect

    source = inspect.getsource(getattr(importlib.import_module(module), handler))
    tree = ast.parse(source)
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tinyllava_bench")
        for alias in node.names
    ]
    assert imported == [("tinyllava_bench.api", function)]
    calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == function
    ]
    assert len(calls) == 1
