"""The schema of a task YAML (tasks/*.yaml), validated on load so a typo names its field and its file."""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from tinyllava_bench.errors import UserError
from tinyllava_bench.metrics import PROTOCOLS, SCORER_MODULES
from tinyllava_bench.tasks.encoding import not_utf8_error

SUBMISSION_FORMATS = ("vqav2_evalai", "gqa", "mmvet")
# scorers whose per-sample scores come from an LLM judge (judge/tasks.py JUDGES_BY_SCORER has one each; a test checks)
JUDGED_SCORERS = ("mmvet", "llava_wild")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ImageJoinConfig(_Strict):
    """Images kept in a second config of the hub dataset (GQA), joined to the questions on a key."""

    name: str  # config of the images, e.g. testdev_balanced_images
    split: str
    path: str | None = None  # hub id of the images; default: the questions' dataset
    row_key: str  # column of the question rows, e.g. imageId
    image_key: str = "id"  # column of the image rows that row_key matches
    image_column: str = "image"


class LlavaEvalConfig(_Strict):
    """Where the task lives in LLaVA's playground/data/eval folder (paths relative to it), and how to join labels."""

    reader: Literal["pope", "scienceqa", "gqa", "textvqa", "mmvet", "llava_wild", "questions_only", "mme"]
    folder: str = Field(min_length=1)  # e.g. pope
    questions: str = Field(min_length=1)  # question file in `folder`, e.g. llava_pope_test.jsonl
    images: str = Field(min_length=1)  # images folder in `folder`, e.g. val2014
    annotations: str | None = None  # labels/answers in `folder`, e.g. coco (POPE's label folder)


class DatasetConfig(_Strict):
    """Where the rows come from: a hub dataset (pinned by revision) or a local copy."""

    path: str = Field(min_length=1)  # hub id
    name: str | None = None  # hub config
    split: str = Field(min_length=1)
    revision: str = Field(default="main", min_length=1)
    local_path: str | None = None  # overrides the hub when set; a relative path is from the current directory
    images: ImageJoinConfig | None = None
    llava_eval: LlavaEvalConfig | None = None  # the task in LLaVA's eval folder, read with --data-root


class ColumnsConfig(_Strict):
    """Column names, as the hub dataset spells them."""

    question_id: str | None  # None: the dataset has no id column (ScienceQA); the 0-based row index is the id
    question: str
    image: str | None = "image"
    required: tuple[str, ...] = ()  # needed to score (images never are)
    fields: tuple[str, ...] = ()  # per-sample values recorded with each sample (categories, gold answers)


class PromptConfig(_Strict):
    """How a row becomes the question text (before `<image>\\n` and the chat template).

    Plain questions: pre_prompt + question + [OCR line] + suffix, with the question first optionally stripped,
    cleaned of `remove` strings, stripped again and capitalised, in that order. Multiple choice (lmms-eval's
    form): pre_prompt + [context_prefix + hint + "\\n"] + question + "\\n" + options + suffix. CQM (LLaVA's
    ScienceQA converter, "CQM-A"): pre_prompt + `cqm_template` filled with the context (the hint, stripped, or
    `empty_context`), the question and the options, then every double space made one (a single pass, as
    str.replace) and stripped, then "<image>" removed and stripped again (model_vqa_science.py) + suffix.
    Options are `option_format` per choice joined by `option_separator`.
    """

    format: Literal["question", "multiple_choice", "cqm"] = "question"
    pre_prompt: str = ""
    suffix: str = ""
    strip_before: bool = False
    remove: tuple[str, ...] = ()
    strip_after: bool = False
    capitalize: bool = False  # str.capitalize: first letter upper, the rest lower
    ocr_tokens: bool = False
    ocr_column: str = "ocr_tokens"
    ocr_prefix: str = "\nReference OCR token: "
    ocr_separator: str = ", "
    ocr_skip_empty: bool = True  # no OCR line at all when a row has no tokens
    hint_column: str = "hint"
    choices_column: str = "choices"
    context_prefix: str = "Context: "
    strip_body: bool = False  # multiple choice: strip the text before the suffix is added
    option_format: str = "{letter}. {choice}"
    option_separator: str = "\n"
    cqm_template: str = "Context: {context}\nQuestion: {question}\nOptions: {options}\n"
    empty_context: str = "N/A"  # cqm: the context when the hint is empty

    @model_validator(mode="after")
    def _templates_fill(self) -> PromptConfig:
        # a misspelt placeholder must fail when the task is read, not on the first row of a long run
        for name, template, keys in (
            ("option_format", self.option_format, ("letter", "choice")),
            ("cqm_template", self.cqm_template, ("context", "question", "options")),
        ):
            try:
                template.format(**dict.fromkeys(keys, ""))
            except (KeyError, IndexError, ValueError) as exc:
                raise ValueError(
                    f"{name} {template!r} has a bad placeholder ({exc}); it may use {', '.join(keys)}"
                ) from None
        return self


class GenerationConfig(_Strict):
    """Decoding settings. Sampling happens exactly when temperature > 0, the rule of LLaVA's eval scripts and of
    lmms-eval's `tinyllava` (which ignores a task's `do_sample: false`); temperature 0 is greedy decoding."""

    max_new_tokens: int = Field(gt=0)
    temperature: float = Field(default=0.0, ge=0)
    num_beams: int = Field(default=1, ge=1)
    top_p: float | None = Field(default=None, gt=0, le=1)  # sampling only; None: no nucleus cut
    top_k: int | None = Field(default=None, ge=0)  # sampling only; None or 0: no top-k cut

    @model_validator(mode="after")
    def _one_beam(self) -> GenerationConfig:
        if self.num_beams != 1:
            raise ValueError("num_beams: beam search is not implemented; use 1 (every protocol here does)")
        return self

    @property
    def sampling(self) -> bool:
        return self.temperature > 0

    def record(self, seed: int) -> dict[str, Any]:
        """The settings as results.json records them: the YAML fields, whether it sampled, and the seed if so."""
        return {
            **self.model_dump(mode="json"),
            "do_sample": self.sampling,
            "seed": seed if self.sampling else None,
        }


class JudgeSettingsOverride(_Strict):
    """A protocol's changes to the judge (only the keys given change)."""

    model: str | None = Field(default=None, min_length=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    max_tokens: int | None = Field(default=None, gt=0)
    retries: int | None = Field(default=None, ge=0)


class JudgeConfig(_Strict):
    """The judge the paper's numbers used, and per protocol what differs; the --judge-* flags override each key.

    `retries`: re-asks of an answer that is not a valid score, before the sample counts as a judge failure
    (failed HTTP requests are retried apart from these, see TINYLLAVA_BENCH_JUDGE_RETRIES).
    """

    model: str = Field(min_length=1)
    temperature: float = Field(ge=0, le=2)
    max_tokens: int = Field(gt=0)
    retries: int = Field(ge=0)
    protocols: dict[str, JudgeSettingsOverride] = Field(default_factory=dict)

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, value: dict[str, JudgeSettingsOverride]) -> dict[str, JudgeSettingsOverride]:
        unknown = sorted(set(value) - set(PROTOCOLS))
        if unknown:
            raise ValueError(f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
        return value

    def for_protocol(self, protocol: str) -> JudgeConfig:
        """These settings with `protocol`'s changes applied (no per-protocol block left)."""
        _check_protocol(protocol)
        override = self.protocols.get(protocol)
        changes = override.model_dump(exclude_none=True) if override else {}
        return JudgeConfig.model_validate({**self.model_dump(exclude={"protocols"}), **changes})


class BenchmarkColumn(_Strict):
    """The column of the paper's tables a task fills. Tasks that fill one column share its label, paper_column
    and order; the one with the lowest `priority` and a headline value fills it (VQAv2: test-dev, then val)."""

    label: str = Field(min_length=1)  # the column's title in tables and plots, e.g. "SQA-I"
    # its column in reference/paper_scores.csv (and the model cards' score key); None: the paper has none
    paper_column: str | None = Field(default=None, min_length=1)
    order: int = Field(ge=1)  # the column's place in the paper's tables, 1 first
    priority: int = Field(default=1, ge=1)
    note: str = ""  # a table footnote wherever this task's numbers are shown


class MetricSums(_Strict):
    """Headline metrics that add up subtask scores (MME): a run that scored only some subtasks tops out at
    `part_max` per subtask it scored. `sums` names, per metric, the scorer's subtask groups (its SUBTASK_GROUPS)."""

    part_max: float = Field(gt=0)
    sums: dict[str, tuple[str, ...]]


class ProtocolOverride(_Strict):
    """Per-protocol changes to the prompt and generation settings (only the keys given change)."""

    prompt: dict[str, Any] = Field(default_factory=dict)
    generation: dict[str, Any] = Field(default_factory=dict)
    notes: str = ""


class TaskConfig(_Strict):
    """One benchmark task: data, prompt, generation settings and scorer."""

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    description: str
    dataset: DatasetConfig
    columns: ColumnsConfig
    prompt: PromptConfig
    generation: GenerationConfig
    scorer: str | None  # None: no local answers (test-dev), only a submission file
    headline: str = Field(min_length=1)
    judge: JudgeConfig | None = None
    submission: Literal["vqav2_evalai", "gqa", "mmvet"] | None = None
    size: int = Field(gt=0)  # rows of the full split
    aliases: tuple[str, ...] = ()  # other names `eval --tasks` and `score` accept (lmms-eval's, short forms)
    # the paper column it fills; None: a column of its own in reports
    benchmark: BenchmarkColumn | None = None
    in_all: bool = True  # part of `--tasks all`
    # highest value of each metric that is not a percentage (metrics not listed top out at 100)
    metric_max: dict[str, float] = Field(default_factory=dict)
    metric_sums: MetricSums | None = None
    protocols: dict[str, ProtocolOverride] = Field(default_factory=dict)
    notes: str = ""

    _source: Path | None = PrivateAttr(default=None)

    @field_validator("scorer")
    @classmethod
    def _known_scorer(cls, value: str | None) -> str | None:
        if value is not None and value not in SCORER_MODULES:
            raise ValueError(f"unknown scorer {value!r}; known: {', '.join(sorted(SCORER_MODULES))}")
        return value

    @field_validator("protocols")
    @classmethod
    def _known_protocols(cls, value: dict[str, ProtocolOverride]) -> dict[str, ProtocolOverride]:
        unknown = sorted(set(value) - set(PROTOCOLS))
        if unknown:
            raise ValueError(f"unknown protocol(s) {', '.join(unknown)}; known: {', '.join(PROTOCOLS)}")
        return value

    @field_validator("aliases")
    @classmethod
    def _alias_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        bad = [alias for alias in value if not re.fullmatch(r"[a-z0-9_]+", alias)]
        if bad:
            raise ValueError(f"alias(es) {', '.join(map(repr, bad))}: use lower-case letters, digits and _")
        return value

    @field_validator("metric_max")
    @classmethod
    def _positive_maxima(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [metric for metric, top in value.items() if not 0 < top < float("inf")]
        if bad:
            raise ValueError(f"{', '.join(bad)}: a metric's maximum must be a positive number")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskConfig:
        if self.name in self.aliases:
            raise ValueError(f"aliases: {self.name!r} is the task's own name")
        if self.metric_sums is not None:
            groups = subtask_groups(self.scorer)
            unknown = sorted({g for parts in self.metric_sums.sums.values() for g in parts} - set(groups))
            if unknown:
                raise ValueError(
                    f"metric_sums: scorer {self.scorer!r} has no subtask group(s) {', '.join(unknown)}; "
                    f"its groups: {', '.join(groups) or '(none)'}"
                )
        if self.scorer in JUDGED_SCORERS and self.judge is None:
            raise ValueError(
                f"judge: scorer {self.scorer!r} is judged by an LLM, so the task needs a judge block"
            )
        for protocol, override in self.protocols.items():
            for section, base in (("prompt", self.prompt), ("generation", self.generation)):
                changes = getattr(override, section)
                try:
                    type(base).model_validate({**base.model_dump(), **changes})
                except ValidationError as exc:
                    raise ValueError(f"protocols.{protocol}.{section}: {_describe_errors(exc)}") from None
        return self

    @property
    def source(self) -> Path | None:
        """The YAML file this task was read from."""
        return self._source

    @property
    def judged(self) -> bool:
        return self.scorer in JUDGED_SCORERS

    def prompt_for(self, protocol: str = "official") -> PromptConfig:
        """The prompt settings under `protocol` (the task's own, with that protocol's changes applied)."""
        _check_protocol(protocol)
        override = self.protocols.get(protocol)
        if override is None or not override.prompt:
            return self.prompt
        return PromptConfig.model_validate({**self.prompt.model_dump(), **override.prompt})

    def generation_for(self, protocol: str = "official") -> GenerationConfig:
        """The generation settings under `protocol`."""
        _check_protocol(protocol)
        override = self.protocols.get(protocol)
        if override is None or not override.generation:
            return self.generation
        return GenerationConfig.model_validate({**self.generation.model_dump(), **override.generation})

    def judge_for(self, protocol: str = "official") -> JudgeConfig:
        """The judge settings under `protocol` (model, temperature, max_tokens, retries)."""
        if self.judge is None:
            raise UserError(f"task {self.name} has no judge")
        return self.judge.for_protocol(protocol)

    def required_columns(self, protocol: str = "official", *, for_prompt: bool = False) -> list[str]:
        """Columns a local copy must have: those scoring needs, plus those the prompt reads when `for_prompt`."""
        columns = list(self.columns.required)
        if self.columns.question_id is not None:
            columns.append(self.columns.question_id)
        if for_prompt:
            prompt = self.prompt_for(protocol)
            columns.append(self.columns.question)
            if prompt.format in ("multiple_choice", "cqm"):
                columns += [prompt.hint_column, prompt.choices_column]
            if prompt.ocr_tokens:
                columns.append(prompt.ocr_column)
        return list(dict.fromkeys(columns))


def subtask_groups(scorer: str | None) -> dict[str, tuple[str, ...]]:
    """The scorer's named groups of subtask metrics (MME: perception, cognition); {} for most scorers."""
    if scorer is None:
        return {}
    module = importlib.import_module(f"tinyllava_bench.metrics.{SCORER_MODULES[scorer]}")
    return dict(getattr(module, "SUBTASK_GROUPS", {}))


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; use one of: {', '.join(PROTOCOLS)}")


def _describe_errors(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors():
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{location}: {message}" if location else message)
    return "; ".join(parts)


def parse_task(data: Any, source: Path | str = "<task>") -> TaskConfig:
    """Validate a parsed task YAML; a bad field raises UserError naming the field and `source`."""
    if not isinstance(data, Mapping):
        raise UserError(f"task file {source} must hold a mapping of fields (name, dataset, prompt, ...)")
    try:
        task = TaskConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise UserError(f"task file {source} is invalid: {_describe_errors(exc)}") from None
    task._source = Path(source) if str(source) != "<task>" else None
    return task


def read_task_file(path: Path) -> TaskConfig:
    """Read and validate one task YAML."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot read task file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            where = f" (line {mark.line + 1}, column {mark.column + 1})"
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(f"task file {path} is not valid YAML{where}: {problem}") from None
    task = parse_task(data, path)
    if task.name != path.stem:
        raise UserError(f"task file {path}: name {task.name!r} must match the file name {path.stem!r}")
    return task
