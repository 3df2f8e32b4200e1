"""Paper-shaped tables: models by benchmark in the paper's column order, ablation views grouped by a model-card axis,
measured-vs-paper comparisons, and the paper's own Table A1, built as a ReportTable (report.table_render writes it
out as Markdown, LaTeX, CSV or HTML)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from tinyllava_bench.errors import UserError
from tinyllava_bench.report import CARD_AXES
from tinyllava_bench.report.paper import PaperRow, load_paper_scores, match_paper_row, paper_table_a1
from tinyllava_bench.report.runs import (
    Benchmark,
    Run,
    TaskResult,
    benchmark_value,
    full_scale,
    task_full_scale,
)
from tinyllava_bench.tasks import registry

AXIS_TITLES = {"vision": "Vision", "llm": "LLM", "recipe": "Recipe", "data": "Data", "connector": "Connector"}
TableMode = Literal["plain", "paper", "group"]


@dataclass
class ModelRow:
    """One model (under one protocol) with its headline number per benchmark column."""

    label: str
    model_name: str
    protocol: str | None
    judge: str | None
    card: dict
    values: dict[str, float | None]
    run: Run | None = None
    # benchmark label -> the highest value its number could take (MME: 200 per category the run scored)
    full_scales: dict[str, float] = field(default_factory=dict)


@dataclass
class Cell:
    """A number, and in comparison views the number it is compared with and the difference (value - reference)."""

    value: float | None
    reference: float | None = None
    delta: float | None = None
    full_scale: float | None = (
        None  # the highest `value` could take (plots draw each benchmark on this scale)
    )


@dataclass
class TableRow:
    labels: dict[str, str]
    cells: dict[str, Cell]
    group: int = 0
    is_reference: bool = False


@dataclass
class ReportTable:
    """A rendered-format-independent table: label columns, then one column per benchmark."""

    title: str
    label_columns: list[str]
    benchmarks: list[str]
    rows: list[TableRow]
    mode: TableMode = "plain"
    footnotes: list[str] = field(default_factory=list)
    model_rows: list[ModelRow] = field(default_factory=list)
    group_axis: str | None = None


def benchmark_columns(runs: Sequence[Run]) -> list[Benchmark]:
    """The paper's eight benchmarks, then any other task the runs have (in order of first appearance)."""
    paper = registry.benchmark_columns()
    covered = {task for benchmark in paper for task in benchmark.tasks}
    extras: list[str] = []
    for run in runs:
        for name in run.tasks:
            if name not in covered and name not in extras:
                extras.append(name)
    return [*paper, *(Benchmark(name, None, (name,)) for name in extras)]


def _judge_summary(judges: dict[str, str]) -> str | None:
    distinct = sorted(set(judges.values()))
    if not distinct:
        return None
    if len(distinct) == 1:
        return distinct[0]
    return ", ".join(f"{task}={judge}" for task, judge in judges.items())


def model_rows_from_runs(
    runs: Sequence[Run], benchmarks: Sequence[Benchmark]
) -> tuple[list[ModelRow], list[str]]:
    """One row per (run, protocol) and the footnotes that qualify its numbers (limits, errors, splits)."""
    rows: list[ModelRow] = []
    notes: list[str] = []
    question_sets: dict[
        str, dict[str, str]
    ] = {}  # benchmark -> row label -> the question set it was scored on
    for run in runs:
        # A run with no tasks still gets a (blank) row, so a missing evaluation is visible rather than dropped.
        protocols = run.protocols() or [None]
        for protocol in protocols:
            tasks = {name: task for name, task in run.tasks.items() if task.protocol == protocol}
            values: dict[str, float | None] = {}
            full_scales: dict[str, float] = {}
            judges: dict[str, str] = {}
            used = []
            for benchmark in benchmarks:
                task, value = benchmark_value(tasks, benchmark)
                values[benchmark.label] = value
                if task is None:
                    continue
                full_scales[benchmark.label] = task_full_scale(task)
                used.append(task)
                question_sets.setdefault(benchmark.label, {})[
                    run.model_name if len(protocols) == 1 else f"{run.model_name} ({protocol})"
                ] = question_set_text(task)
                if task.judge_model:
                    judges[task.name] = task.judge_model
            rows.append(
                ModelRow(
                    label=run.model_name,
                    model_name=run.model_name,
                    protocol=protocol,
                    judge=_judge_summary(judges),
                    card=run.card,
                    values=values,
                    run=run,
                    full_scales=full_scales,
                )
            )
            where = run.model_name if len(protocols) == 1 else f"{run.model_name} ({protocol})"
            limited = [f"{t.name} ({t.limit})" for t in used if t.limit is not None]
            if limited:
                notes.append(f"{where}: ran on a --limit subset: {', '.join(limited)}.")
            failed = [f"{t.name} ({t.n_errors})" for t in used if t.n_errors]
            if failed:
                notes.append(f"{where}: samples with errors, not scored: {', '.join(failed)}.")
            unjudged = [f"{t.name} ({t.n_judge_failures})" for t in used if t.n_judge_failures]
            if unjudged:
                notes.append(
                    f"{where}: samples the judge failed on (scored as the grader does): {', '.join(unjudged)}."
                )
            other_headline = [
                f"{t.name}={t.headline}" for t in used if registry.headline(t.name) not in (None, t.headline)
            ]
            if other_headline:
                notes.append(f"{where}: headline metric set by the run: {', '.join(other_headline)}.")
            # a task's own footnote (tasks/*.yaml `benchmark.note`), e.g. VQAv2 val vs the paper's test-dev
            for note in dict.fromkeys(registry.benchmark_note(t.name) for t in used):
                if note:
                    notes.append(f"{where}: {note}")
    for label, by_row in question_sets.items():
        if len(set(by_row.values())) > 1:
            used_sets = "; ".join(f"{where}: {text}" for where, text in by_row.items())
            notes.append(
                f"{label}: rows scored on different question sets, not directly comparable ({used_sets})."
            )
    _disambiguate_labels(rows)
    return rows, notes


def question_set_text(task: TaskResult) -> str:
    """Which questions a task was scored on, as a run records it (LLaVA's 8,910-row POPE vs the hub's 9,000)."""
    recorded = task.dataset.get("question_set") or {}
    source = recorded.get("source") or task.dataset.get("id") or task.dataset.get("local_path") or "unknown"
    rows = recorded.get("rows") or task.dataset.get("rows")
    return f"{source} ({rows:,} rows)" if isinstance(rows, int) else str(source)


def _disambiguate_labels(rows: list[ModelRow]) -> None:
    # Two runs of the same model under the same protocol would otherwise be indistinguishable rows.
    def clashes() -> set[tuple[str, str | None]]:
        seen: dict[tuple[str, str | None], int] = {}
        for row in rows:
            seen[(row.label, row.protocol)] = seen.get((row.label, row.protocol), 0) + 1
        return {key for key, count in seen.items() if count > 1}

    for naming in (lambda run: run.path.name, lambda run: str(run.path)):
        duplicated = clashes()
        if not duplicated:
            return
        for row in rows:
            if (row.label, row.protocol) in duplicated and row.run is not None:
                row.label = f"{row.model_name} [{naming(row.run)}]"


def model_rows_from_paper(paper_rows: Sequence[PaperRow], benchmarks: Sequence[Benchmark]) -> list[ModelRow]:
    """Rows of paper_scores.csv in the same shape as measured rows."""
    return [
        ModelRow(
            label=paper.variant,
            model_name=paper.variant,
            protocol=None,
            judge=None,
            card=paper.card,
            values={
                b.label: paper.scores.get(b.paper_column) if b.paper_column else None for b in benchmarks
            },
            full_scales={b.label: paper_full_scale(b) for b in benchmarks if b.paper_column},
        )
        for paper in paper_rows
    ]


def paper_full_scale(benchmark: Benchmark) -> float:
    """The highest value the paper's number for a benchmark could take (its MME is out of all 14 categories)."""
    task = benchmark.tasks[0]
    return full_scale(task, registry.headline(task))


def _setting_columns(rows: Sequence[ModelRow]) -> tuple[list[str], list[str]]:
    """Protocol/judge become columns only where rows differ; otherwise a footnote says the common value."""
    columns, notes = [], []
    for title, values in (("Protocol", [r.protocol for r in rows]), ("Judge", [r.judge for r in rows])):
        distinct = set(values)
        if len(distinct) > 1:
            columns.append(title)
        elif distinct and next(iter(distinct)) is not None:
            notes.append(f"{title}: {next(iter(distinct))} (all rows).")
    return columns, notes


def _setting_labels(row: ModelRow, columns: Sequence[str]) -> dict[str, str]:
    values = {"Protocol": row.protocol, "Judge": row.judge}
    return {column: values[column] or "" for column in columns}


def _plain_table(
    rows: list[ModelRow], benchmarks: Sequence[Benchmark], title: str, notes: list[str]
) -> ReportTable:
    setting_columns, setting_notes = _setting_columns(rows)
    table_rows = [
        TableRow(
            labels={"Model": row.label, **_setting_labels(row, setting_columns)},
            cells={
                b.label: Cell(row.values.get(b.label), full_scale=row.full_scales.get(b.label))
                for b in benchmarks
            },
        )
        for row in rows
    ]
    return ReportTable(
        title=title,
        label_columns=["Model", *setting_columns],
        benchmarks=[b.label for b in benchmarks],
        rows=table_rows,
        footnotes=[*setting_notes, *notes],
        model_rows=rows,
    )


def _difference(value: float | None, reference: float | None) -> float | None:
    return None if value is None or reference is None else value - reference


def _group_table(
    rows: list[ModelRow], benchmarks: Sequence[Benchmark], axis: str, title: str, notes: list[str]
) -> ReportTable:
    if axis not in CARD_AXES:
        raise UserError(f"--group-by {axis!r}: choose one of {', '.join(CARD_AXES)}")
    if all(row.card.get(axis) is None for row in rows):
        raise UserError(
            f"--group-by {axis}: no row has model.card.{axis}; set it in the model card (results.json) "
            "or group by another axis"
        )
    others = [a for a in CARD_AXES if a != axis]
    groups: dict[tuple, list[ModelRow]] = {}
    for row in rows:
        groups.setdefault(tuple(row.card.get(a) for a in others), []).append(row)
    varying = [a for a in others if len({row.card.get(a) for row in rows}) > 1]
    constant = [
        f"{a}={rows[0].card.get(a)}" for a in others if a not in varying and rows[0].card.get(a) is not None
    ]
    setting_columns, setting_notes = _setting_columns(rows)
    label_columns = ["Model", *(AXIS_TITLES[a] for a in varying), AXIS_TITLES[axis], *setting_columns]
    table_rows: list[TableRow] = []
    lonely = []
    for number, members in enumerate(groups.values(), start=1):
        reference = members[0]
        if len(members) == 1:
            lonely.append(reference.label)
        for row in members:
            is_reference = row is reference
            axis_text = str(row.card.get(axis) or "")
            labels = {
                "Model": row.label,
                **{AXIS_TITLES[a]: str(row.card.get(a) or "") for a in varying},
                AXIS_TITLES[axis]: f"{axis_text} (ref)" if is_reference and len(members) > 1 else axis_text,
                **_setting_labels(row, setting_columns),
            }
            cells = {}
            for b in benchmarks:
                value = row.values.get(b.label)
                scale = row.full_scales.get(b.label)
                if is_reference:
                    cells[b.label] = Cell(value, full_scale=scale)
                else:
                    ref_value = reference.values.get(b.label)
                    cells[b.label] = Cell(value, ref_value, _difference(value, ref_value), scale)
            table_rows.append(TableRow(labels, cells, group=number, is_reference=is_reference))
    grouped_by = [a for a in others if any(row.card.get(a) is not None for row in rows)] or others
    footnotes = [
        f"Rows are grouped by {', '.join(grouped_by)}; within each group {axis} varies. Numbers in brackets are the "
        "difference in points to the group's first row, marked (ref).",
    ]
    if constant:
        footnotes.append(f"Same in all rows: {', '.join(constant)}.")
    if lonely:
        footnotes.append(f"No other row shares the settings of: {', '.join(lonely)} (no difference shown).")
    return ReportTable(
        title=title,
        label_columns=label_columns,
        benchmarks=[b.label for b in benchmarks],
        rows=table_rows,
        mode="group",
        footnotes=[*footnotes, *setting_notes, *notes],
        model_rows=rows,
        group_axis=axis,
    )


def _paper_comparison_table(
    rows: list[ModelRow], benchmarks: Sequence[Benchmark], title: str, notes: list[str]
) -> ReportTable:
    paper_rows = load_paper_scores()
    setting_columns, setting_notes = _setting_columns(rows)
    table_rows = []
    unmatched = []
    for row in rows:
        assert row.run is not None
        paper = match_paper_row(row.run, paper_rows)
        if paper is None:
            wanted = row.card.get("paper_variant")
            unmatched.append(
                f"{row.label} (paper_variant {wanted!r} is not in the file)" if wanted else row.label
            )
        cells = {}
        for b in benchmarks:
            value = row.values.get(b.label)
            reference = paper.scores.get(b.paper_column) if paper and b.paper_column else None
            cells[b.label] = Cell(
                value, reference, _difference(value, reference), row.full_scales.get(b.label)
            )
        labels = {
            "Model": row.label,
            "Paper row": paper.variant if paper else "",
            **_setting_labels(row, setting_columns),
        }
        table_rows.append(TableRow(labels, cells))
    footnotes = [
        "Cells: measured / paper (measured - paper), in points; paper numbers from paper_scores.csv."
    ]
    if unmatched:
        footnotes.append(
            "No paper row for: " + "; ".join(unmatched) + ". Set model.card.paper_variant to a `variant` of "
            "paper_scores.csv to compare."
        )
    return ReportTable(
        title=title,
        label_columns=["Model", "Paper row", *setting_columns],
        benchmarks=[b.label for b in benchmarks],
        rows=table_rows,
        mode="paper",
        footnotes=[*footnotes, *setting_notes, *notes],
        model_rows=rows,
    )


def results_table(runs: Sequence[Run], *, paper: bool = False, group_by: str | None = None) -> ReportTable:
    """The table for measured runs: plain, compared with the paper (`paper`), or an ablation view (`group_by`)."""
    if not runs:
        raise UserError(
            "no run folders given; pass at least one, or use `report --paper` for the paper's Table A1"
        )
    if paper and group_by:
        raise UserError("--paper and --group-by together on runs: choose one comparison (paper or ablation)")
    benchmarks = benchmark_columns(runs)
    rows, notes = model_rows_from_runs(runs, benchmarks)
    if group_by:
        return _group_table(rows, benchmarks, group_by, f"Ablation over {group_by} (headline metrics)", notes)
    if paper:
        return _paper_comparison_table(
            rows, benchmarks, "Measured vs TinyLLaVA paper (headline metrics)", notes
        )
    return _plain_table(rows, benchmarks, "TinyLLaVA Bench results (headline metrics)", notes)


def paper_table(group_by: str | None = None) -> ReportTable:
    """The paper's Table A1 (12 variants) in the report's shape, optionally as an ablation view."""
    benchmarks = registry.benchmark_columns()
    rows = model_rows_from_paper(paper_table_a1(), benchmarks)
    notes = ["Source: TinyLLaVA paper, Table A1, as listed in paper_scores.csv; empty = not reported there."]
    if group_by:
        return _group_table(
            rows, benchmarks, group_by, f"TinyLLaVA paper Table A1, ablation over {group_by}", notes
        )
    return _plain_table(rows, benchmarks, "TinyLLaVA paper, Table A1", notes)
