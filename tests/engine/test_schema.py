"""The run folder's typed schema (tinyllava_bench/schema.py): what the engine writes reads back through the models unchanged,
docs/run_folder.md lists exactly the models' fields and types, a run folder of the previous release still loads, and
a value of the wrong type is one line naming the file and the field."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from tests.judge_server import JudgeServer
from tinyllava_bench.cli import main
from tinyllava_bench.engine.store import read_samples
from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import json_text, jsonl_line
from tinyllava_bench.report.runs import load_run, load_samples
from tinyllava_bench.schema import (
    MODELS,
    Results,
    SampleRecord,
    ScoreOutput,
    field_types,
    load_results,
    parse,
    read_results,
)

REPO = Path(__file__).resolve().parents[2]
OLD_RUN = (
    REPO / "tests" / "data" / "run_v1"
)  # written by the release before the typed models (gqa, pope, mmvet)
TASKS = ("gqa", "pope", "mmvet")


def _results_text(results: Results) -> str:
    """results.json's text as the engine writes it."""
    return json_text(results.dump(), indent=2) + "\n"


def _assert_round_trips(folder: Path) -> Results:
    """Every file of the run folder, read through its model and written again, is the same bytes."""
    path = folder / "results.json"
    text = path.read_text(encoding="utf-8")
    results = load_results(path)
    assert results is not None and _results_text(results) == text
    assert read_results(path) == json.loads(text)
    for task in results.tasks:
        samples = folder / f"samples_{task}.jsonl"
        lines = samples.read_text(encoding="utf-8")
        records = [parse(SampleRecord, json.loads(line), samples) for line in lines.splitlines()]
        assert "".join(jsonl_line(record.dump()) for record in records) == lines
        assert (
            read_samples(samples)
            == load_samples(samples)
            == [json.loads(line) for line in lines.splitlines()]
        )
    return results


@pytest.fixture(scope="module")
def run_folder(tmp_path_factory, tiny_checkpoints) -> Path:
    """A tiny eval of a generated task, a yes/no task and a judged one, through the CLI."""
    from tinyllava_bench.testing.datasets import write_task_data

    root = tmp_path_factory.mktemp("schema-run")
    for task in TASKS:
        write_task_data(task, root / "data", n=3, seed=1)
    checkpoint = tiny_checkpoints("llama", "siglip")["native"]
    with pytest.MonkeyPatch.context() as patch, JudgeServer(reply=lambda body, call: "0.5") as server:
        patch.setenv("OPENAI_API_KEY", "sk-test-secret-key-123456")
        argv = ["eval", "--model", str(checkpoint), "--tasks", ",".join(TASKS), "--output", str(root / "run")]
        argv += ["--data-root", str(root / "data"), "--judge-model", "judge-test", "--judge-base-url"]
        argv += [server.base_url, "--task-options", "generation.max_new_tokens=4", "--num-workers", "0"]
        assert main(argv) == 0
    return root / "run"


def test_what_eval_writes_reads_back_through_the_models(run_folder):
    results = _assert_round_trips(run_folder)
    assert results.schema_version == 1 and list(results.tasks) == list(TASKS)
    assert results.summary is not None and results.summary.n_samples == 9 and results.summary.exit_status == 0
    mmvet = results.tasks["mmvet"]
    assert mmvet.judge is not None and mmvet.judge.model == "judge-test" and mmvet.judge_model == "judge-test"
    assert mmvet.dataset is not None and mmvet.dataset.question_set is not None
    assert mmvet.dataset.question_set.rows == 3
    assert results.tasks["gqa"].generation is not None and results.tasks["gqa"].generation.do_sample is False
    assert results.provenance.model_key and results.provenance.samples_generated == 9
    run = load_run(run_folder)  # the report's reader sees the same values
    assert run.tasks["mmvet"].judge == mmvet.judge.dump()
    assert run.tasks["gqa"].n_samples == 3 and run.provenance == results.provenance.dump()


def test_score_output_reads_back_through_its_model(tmp_path):
    rows = [
        {"id": str(i), "imageId": "n", "question": "q", "answer": "yes", "isBalanced": True} for i in range(3)
    ]
    data = tmp_path / "gqa.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text(
        '{"question_id": "0", "prediction": "yes"}\n{"question_id": "1", "prediction": "no"}\n'
    )
    out = tmp_path / "score.json"
    argv = ["score", "gqa", "--data", str(data), "--predictions", str(predictions), "--output", str(out)]
    assert main(argv) == 3  # a row without a prediction
    text = out.read_text(encoding="utf-8")
    document = parse(ScoreOutput, json.loads(text), out)
    assert json.dumps(document.dump(), indent=2, ensure_ascii=False) + "\n" == text
    assert [s.score for s in document.samples] == [1.0, 0.0] and [m.index for m in document.missing] == [2]
    assert document.predictions_file == str(predictions) and document.dataset is not None


def _doc_tables() -> dict[str, dict[str, str]]:
    """docs/run_folder.md's field tables: model name -> {field: type}."""
    tables: dict[str, dict[str, str]] = {}
    current = None
    for line in (REPO / "docs" / "run_folder.md").read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)`", line)
        if heading:
            current = tables.setdefault(heading.group(1), {})
            continue
        row = re.fullmatch(r"\| `(\w+)` \| `(.+?)` \|.*", line)
        if row and current is not None:
            current[row.group(1)] = row.group(2).replace("\\|", "|")
    return tables


def test_the_doc_lists_exactly_the_models_fields_and_types():
    tables = _doc_tables()
    assert list(tables) == [model.__name__ for model in MODELS]
    for model in MODELS:
        assert tables[model.__name__] == field_types(model), model.__name__


def test_a_run_folder_of_the_previous_release_loads(tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(OLD_RUN, folder)
    results = _assert_round_trips(folder)
    assert list(results.tasks) == list(TASKS) and results.tasks["pope"].headline == "f1"
    run = load_run(folder)
    assert run.tasks["mmvet"].headline_value == 50.0 and run.card["llm"] == "llama"
    assert main(["report", str(folder)]) == 0


def test_unknown_keys_are_kept(tmp_path):
    data = json.loads((OLD_RUN / "results.json").read_text())
    data["added_later"] = {"x": 1}
    data["tasks"]["gqa"]["dataset"]["question_set"]["new"] = [1, 2]
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    assert read_results(path) == data


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (lambda d: d["tasks"]["gqa"].update(n_samples="3"), "tasks.gqa.n_samples"),
        (lambda d: d["provenance"].update(seed=True), "provenance.seed"),
        (lambda d: d["tasks"]["mmvet"]["judge"].update(retries=5.0), "tasks.mmvet.judge.retries"),
        (lambda d: d["model"]["card"].update(image_tokens="729"), "model.card.image_tokens"),
    ],
)
def test_a_wrong_type_is_one_line_naming_file_and_field(tmp_path, capsys, edit, field):
    folder = tmp_path / "run"
    shutil.copytree(OLD_RUN, folder)
    data = json.loads((folder / "results.json").read_text())
    edit(data)
    (folder / "results.json").write_text(json.dumps(data))
    with pytest.raises(UserError, match=re.escape(f"{folder / 'results.json'}: field {field}:")):
        load_run(folder)
    with pytest.raises(UserError, match=re.escape(f"field {field}:")):
        load_results(folder / "results.json")
    assert main(["report", str(folder)]) == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and field in error and "Traceback" not in error


def test_a_sample_line_of_the_wrong_type_names_file_line_and_field(tmp_path):
    path = tmp_path / "samples_gqa.jsonl"
    lines = (OLD_RUN / "samples_gqa.jsonl").read_text().splitlines(keepends=True)
    record = json.loads(lines[1])
    record["score"] = "1.0"
    path.write_text(lines[0] + json.dumps(record) + "\n")
    for read in (read_samples, load_samples):
        with pytest.raises(UserError, match=re.escape(f"{path}:2: field score:")):
            read(path)


@pytest.mark.parametrize(
    ("version", "says"), [(None, "no schema_version"), (2, "newer than this tool reads")]
)
def test_before_or_after_the_schema_version_is_one_line_how_to_migrate(tmp_path, version, says):
    data = json.loads((OLD_RUN / "results.json").read_text())
    data.pop("schema_version") if version is None else data.update(schema_version=version)
    path = tmp_path / "results.json"
    path.write_text(json.dumps(data))
    with pytest.raises(UserError, match=says) as error:
        load_results(path)
    assert "\n" not in str(error.value) and (
        "move it away" in str(error.value) or "upgrade" in str(error.value)
    )
