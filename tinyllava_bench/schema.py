"""The run folder's schema, defined once (docs/run_folder.md describes it; a test holds the two together).

Typed models of results.json (with its task entries, summary, provenance, dataset and question set, generation and
judge settings), of one samples_<task>.jsonl record and of the `score --output` document. Every writer builds its
JSON through them (`dump`) and every reader validates through them (`parse`), so a field's name and type live here
only. Extra keys are kept (a newer minor writer may add some; removing or renaming a key bumps SCHEMA_VERSION); a
value of the wrong type is refused in one line naming the file and the field.
"""

from __future__ import annotations

import json
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tinyllava_bench.errors import UserError

SCHEMA_VERSION = 1
SCORE_OUTPUT_VERSION = 1  # `score --output`'s own version
RESULTS_FILE = "results.json"

# A JSON number that keeps its spelling: an int stays an int (0), a float a float (0.0), so a file read and written
# again is the same bytes. Strict validation refuses a bool or a numeric string in its place.
Number = Union[int, float]  # noqa: UP007 - the doc check reads this alias by name
# the dataset's own id: text or a number, whatever type its id column has
QuestionId = Union[str, int, float]  # noqa: UP007


def samples_file_name(task: str, rank: int | None = None) -> str:
    """`samples_<task>.jsonl`; while a multi-process run is generating, each rank appends to its own part."""
    return f"samples_{task}.jsonl" if rank is None else f"samples_{task}.rank{rank}.jsonl"


class Record(BaseModel):
    """A JSON object of the run folder: typed fields in the order they are written, extra keys kept after them."""

    # protected_namespaces: `model_key` is a field of results.json, not pydantic's
    model_config = ConfigDict(extra="allow", strict=True, protected_namespaces=())

    def dump(self) -> dict[str, Any]:
        """The JSON object: exactly the keys that were given (a key absent on disk stays absent), fields first."""
        return self.model_dump(mode="python", exclude_unset=True)


R = TypeVar("R", bound=Record)


def parse(model: type[R], data: Any, where: str | Path) -> R:
    """`data` validated as `model`; a wrong type is one line naming the file (`where`) and the field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        # one line: the first field at fault, with every type it could have been (a union tries each)
        by_field: dict[str, list[Any]] = {}
        for error in exc.errors():
            by_field.setdefault(".".join(_field_path(data, error["loc"])), []).append(error)
        field, errors = next(iter(by_field.items()))
        wanted = " or ".join(dict.fromkeys(error["msg"].lower() for error in errors))
        got = errors[0].get("input")
        if errors[0]["type"] != "missing":
            shown = repr(got) if not isinstance(got, (dict, list)) else f"a JSON {type(got).__name__}"
            wanted += f", got {shown[:60]}"
        more = f" (and {len(by_field) - 1} more field(s))" if len(by_field) > 1 else ""
        raise UserError(
            f"{where}: field {field or '(the top level)'}: {wanted}{more} (docs/run_folder.md); "
            "fix the file, or move it away and rerun"
        ) from None


def _field_path(data: Any, loc: tuple[Any, ...]) -> list[str]:
    """The keys of `loc` that are in `data` (pydantic adds the union member it tried, e.g. `score.int`)."""
    path = []
    for part in loc:
        in_dict = isinstance(data, dict) and part in data
        in_list = isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data)
        if not (in_dict or in_list):
            if isinstance(data, dict):  # a required key that is missing
                path.append(str(part))
            break
        data = data[part]
        path.append(str(part))
    return path


# ----- results.json ----------------------------------------------------------------------------------------------


class ModelCard(Record):
    """model.card: the model's description, from its zoo card or else its checkpoint config; any key may be null."""

    llm: str | None = None
    vision: str | None = None
    connector: str | None = None
    recipe: str | None = None
    data: str | None = None
    template: str | None = None
    image_aspect: str | None = None
    image_tokens: int | None = None
    params_b: Number | None = None
    paper_variant: str | None = None


class ModelInfo(Record):
    """results.json `model`: who was evaluated."""

    name: str | None = None
    source: str | None = None
    layout: str | None = None
    card: ModelCard | None = None


class QuestionSet(Record):
    """dataset.question_set: which questions the rows are; two runs compare only when these agree."""

    source: str | None = None
    rows: int | None = None
    fingerprint: str | None = None
    counts: dict[str, Any] | None = None


class DatasetInfo(Record):
    """A task's `dataset`: where its rows came from, and their fingerprint."""

    id: str | None = None
    config: str | None = None
    split: str | None = None
    revision: str | None = None
    local_path: str | None = None
    fingerprint: str | None = None
    rows: int | None = None
    question_set: QuestionSet | None = None


class GenerationRecord(Record):
    """A task's `generation`: the decoding settings it ran with."""

    max_new_tokens: int | None = None
    temperature: Number | None = None
    num_beams: int | None = None
    top_p: Number | None = None
    top_k: int | None = None
    do_sample: bool | None = None
    seed: int | None = None


class JudgeRecord(Record):
    """How the judge was asked (task file per protocol, then the --judge-* flags); credentials in the URL masked."""

    model: str | None = None
    temperature: Number | None = None
    max_tokens: int | None = None
    retries: int | None = None
    base_url: str | None = None


class TaskEntry(Record):
    """One entry of results.json `tasks`."""

    # numbers (or objects of numbers) by metric name; readers report a value that is not a finite number
    metrics: dict[str, Any] = Field(default_factory=dict)
    headline: str | None = None
    n_samples: int | None = None
    n_errors: int | None = None
    protocol: str | None = None
    scorer: str | None = None
    judge_model: str | None = None
    judge: JudgeRecord | None = None
    n_judge_failures: int | None = None
    dataset: DatasetInfo | None = None
    generation: GenerationRecord | None = None
    limit: int | None = None


class Summary(Record):
    """results.json `summary`: counts over every task in the file and the exit status they call for."""

    n_samples: int
    n_errors: int
    n_judge_failures: int
    error_rate: Number
    max_error_rate: Number
    exit_status: int


class Provenance(Record):
    """results.json `provenance`: what produced the numbers."""

    tool_version: str | None = None
    git_commit: str | None = None
    packages: dict[str, str] | None = None
    python: str | None = None
    platform: str | None = None
    device: str | None = None
    dtype: str | None = None
    checkpoint_dir: str | None = None
    checkpoint_fingerprint: str | None = None
    read_from: dict[str, str] | None = None
    model_key: str | None = None
    seed: int | None = None
    threads: int | None = None
    interop_threads: int | None = None
    started_at: str | None = None
    wall_time_s: Number | None = None
    samples_generated: int | None = None
    samples_per_s: Number | None = None


class Results(Record):
    """results.json."""

    schema_version: int
    model: ModelInfo = Field(default_factory=ModelInfo)
    tasks: dict[str, TaskEntry] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)  # the resolved run configuration (EvalConfig.public)
    provenance: Provenance = Field(default_factory=Provenance)
    summary: Summary | None = None


# ----- samples_<task>.jsonl ----------------------------------------------------------------------------------------


class SampleRecord(Record):
    """One line of samples_<task>.jsonl: one finished sample."""

    schema_version: int | None = None
    key: str | None = None
    index: int | None = None
    question_id: QuestionId | None = None
    prompt: str | None = None
    prediction: str | None = None
    parsed: Any = None  # the scorer's reading of the prediction (text, a number, a list)
    score: Number | None = None
    error: str | None = None
    judge_error: str | None = None
    fields: dict[str, Any] | None = None


# ----- score --output ----------------------------------------------------------------------------------------------


class ScoredSample(Record):
    """One entry of the score document's `samples`."""

    index: int
    question_id: QuestionId | None = None
    prediction: str
    parsed: Any = None
    score: Number | None = None
    error: str | None = None
    judge_error: str | None = None


class MissingRow(Record):
    """One entry of the score document's `missing`: a row without a prediction."""

    index: int
    question_id: QuestionId | None = None


class ScoreOutput(Record):
    """What `score --output` writes (and `score_predictions` returns)."""

    schema_version: int
    task: str
    protocol: str
    headline: str | None = None
    n: int
    n_rows: int
    n_missing: int
    n_judge_failures: int
    judge_model: str | None = None
    judge: JudgeRecord | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    note: str | None = None
    missing: list[MissingRow] = Field(default_factory=list)
    samples: list[ScoredSample] = Field(default_factory=list)
    # `score` (the verb) adds where the rows and the predictions came from
    dataset: DatasetInfo | None = None
    predictions_file: str | None = None


# Every model of the run folder, in the order docs/run_folder.md describes them
MODELS: tuple[type[Record], ...] = (
    Results,
    ModelInfo,
    ModelCard,
    TaskEntry,
    DatasetInfo,
    QuestionSet,
    GenerationRecord,
    JudgeRecord,
    Summary,
    Provenance,
    SampleRecord,
    ScoreOutput,
    ScoredSample,
    MissingRow,
)


def type_label(annotation: Any) -> str:
    """A field's type as docs/run_folder.md writes it: `int`, `str | null`, `object of str`, `TaskEntry` …"""
    if annotation is Any:
        return "any"
    if annotation is type(None):
        return "null"
    if isinstance(annotation, type) and issubclass(annotation, Record):
        return annotation.__name__
    simple = {int: "int", float: "float", str: "str", bool: "bool"}
    if annotation in simple:
        return simple[annotation]
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin in (Union, types.UnionType):
        if set(args) >= {int, float}:  # Number
            rest = [a for a in args if a not in (int, float)]
            return " | ".join(["number", *(type_label(a) for a in rest)])
        return " | ".join(type_label(a) for a in args)
    if origin is dict:
        return f"object of {type_label(args[1])}"
    if origin is list:
        return f"list of {type_label(args[0])}"
    raise TypeError(f"no doc label for {annotation!r}")


def field_types(model: type[Record]) -> dict[str, str]:
    """Each field of `model` with its doc label, in order."""
    return {name: type_label(info.annotation) for name, info in model.model_fields.items()}


# --- reading results.json --------------------------------------------------------------------------------------


def _read_json(path: Path) -> dict[str, Any]:
    """A JSON file's content, or {} when it does not exist."""
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise UserError(f"{path}: not valid JSON; move it away and rerun (samples files are kept)") from None


def read_results(path: Path) -> dict[str, Any]:
    """results.json's content as JSON ({} when there is none), checked as `load_results` checks it."""
    results = load_results(path)
    return results.dump() if results is not None else {}


def load_results(path: Path) -> Results | None:
    """results.json as a `Results` (None when there is none), refused in one line when it is not one this tool can use:
    no schema_version (older than the schema), a newer one, or a field of the wrong type."""
    data = _read_json(path)
    if not data and not path.is_file():
        return None
    if not isinstance(data, dict) or not isinstance(data.get("tasks", {}), dict):
        raise UserError(
            f'{path}: not a results file of this tool (it needs an object with a "tasks" object); move it away '
            "and rerun (samples files are kept)"
        )
    version = data.get("schema_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UserError(
            f"{path}: no schema_version; not a results file of this tool — move it away and rerun"
        )
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{path}: schema_version {version} is newer than this tool reads ({SCHEMA_VERSION}); upgrade "
            "tinyllava-bench to read it (an eval into it needs another run folder)"
        )
    return parse(Results, data, path)
