"""The `zoo` verb: list the model cards."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tinyllava_bench.models.zoo import ModelCard

ZOO_FORMATS = ("table", "csv", "json", "markdown")
ZOO_COLUMNS = (
    "name",
    "checkpoint",
    "layout",
    "llm_family",
    "vision",
    "connector",
    "template",
    "image_aspect",
    "image_tokens",
    "recipe",
    "data",
    "params_b",
)
# The terminal table keeps what tells the cards apart and their scores, to fit 120 columns; csv, json and
# markdown carry every column. Header -> card column, text columns first.
TABLE_TEXT_COLUMNS = {
    "name": "name",
    "llm": "llm_family",
    "vision": "vision",
    "recipe": "recipe",
    "params_b": "params_b",
}
TABLE_WIDTH = 120


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "zoo",
        help="list the model zoo (released checkpoints and paper variants)",
        description=(
            "table (default): the cards and the paper's scores, 120 columns wide, then the released checkpoints' "
            "hub ids; csv, json and markdown: every column of every card."
        ),
    )
    parser.add_argument("--format", choices=ZOO_FORMATS, default="table")
    parser.set_defaults(func=run_zoo)


def _benchmark_labels() -> dict[str, str]:
    """Card score key -> the label the report tables use (VQAv2, SQA-I, ...)."""
    from tinyllava_bench.tasks.registry import benchmark_columns

    return {b.paper_column: b.label for b in benchmark_columns() if b.paper_column}


def zoo_rows() -> list[dict[str, Any]]:
    """One row per card: the card columns, the paper's score per benchmark, and `also_reported`."""
    from tinyllava_bench.models.zoo import list_cards
    from tinyllava_bench.tasks.registry import paper_columns

    benchmarks = paper_columns()

    rows = []
    for card in list_cards():
        row: dict[str, Any] = {column: getattr(card, column) for column in ZOO_COLUMNS}
        row["vision"] = row["vision"].split("/")[-1]
        row.update({bench: card.paper_scores.get(bench) for bench in benchmarks})
        row["also_reported"] = _also_reported(card)
        row["disagreeing"] = sorted(card.disagreements())  # the benchmarks `also_reported` speaks of
        rows.append(row)
    return rows


def _also_reported(card: ModelCard) -> str:
    # the score columns hold the card's own source; a second source that disagrees is named beside them
    return "; ".join(
        f"{bench} {value:g} ({source})"
        for bench, values in card.disagreements().items()
        for value, source in values[1:]
    )


def _cell(value: Any, score: bool = False) -> str:
    if value is None:
        return ""
    return f"{value:.1f}" if score else str(value)


def _short_vision(vision: str) -> str:
    lowered = vision.lower()
    return "SigLIP" if "siglip" in lowered else "CLIP" if "clip" in lowered else vision


def render_table(rows: list[dict[str, Any]]) -> str:
    """The terminal table: text columns left-aligned, scores right-aligned, the full vision tower, checkpoint and
    layout left to the other formats; then each released checkpoint's hub id and the scores a second source
    gives differently."""
    from tinyllava_bench.tasks.registry import paper_columns

    benchmarks = paper_columns()

    labels = _benchmark_labels()
    headers = [*TABLE_TEXT_COLUMNS, *(labels.get(b, b) for b in benchmarks)]
    body = []
    for row in rows:
        cells = [_cell(row[column]) for column in TABLE_TEXT_COLUMNS.values()]
        cells[2] = _short_vision(cells[2])
        body.append(
            [
                *cells,
                *(_cell(row[b], score=True) + ("*" if b in row["disagreeing"] else "") for b in benchmarks),
            ]
        )
    # a column with a starred cell keeps its other numbers aligned on the decimal point
    starred = {i for line in body for i, cell in enumerate(line) if cell.endswith("*")}
    body = [
        [c if i not in starred or c.endswith("*") or not c else c + " " for i, c in enumerate(line)]
        for line in body
    ]
    widths = [max(len(line[i]) for line in [headers, *body]) for i in range(len(headers))]
    n_text = len(TABLE_TEXT_COLUMNS)

    def line(cells: list[str]) -> str:
        text = [c.ljust(w) for c, w in zip(cells[:n_text], widths, strict=False)]
        numbers = [c.rjust(w) for c, w in zip(cells[n_text:], widths[n_text:], strict=True)]
        return " ".join([*text, *numbers]).rstrip()

    lines = [line(headers), *(line(cells) for cells in body)]
    released = [row for row in rows if row["checkpoint"]]
    if released:
        width = max(len(row["name"]) for row in released)
        lines += ["", "released checkpoints (hub id, layout):"]
        lines += [f"  {row['name'].ljust(width)}  {row['checkpoint']} ({row['layout']})" for row in released]
    noted = [row for row in rows if row["also_reported"]]
    if noted:
        lines += ["", "* another source reports:"]
        lines += [f"  {row['name']}: {row['also_reported']}" for row in noted]
    lines += [
        "",
        "scores: the paper's (Table A1) or the card's source; every column: --format csv|json|markdown",
    ]
    return "\n".join(lines) + "\n"


def _markdown_cell(text: str) -> str:
    # a `|` would end the cell and a newline the row
    return " ".join(text.replace("\\", "\\\\").replace("|", "\\|").split())


def render_markdown(rows: list[dict[str, Any]]) -> str:
    """Every column as a GitHub-flavoured Markdown table; scores right-aligned."""
    from tinyllava_bench.tasks.registry import paper_columns

    benchmarks = paper_columns()

    columns = [*ZOO_COLUMNS, *benchmarks, "also_reported"]
    numeric = {"image_tokens", "params_b", *benchmarks}
    lines = [
        "| " + " | ".join(_markdown_cell(c) for c in columns) + " |",
        "| " + " | ".join("--:" if c in numeric else ":--" for c in columns) + " |",
    ]
    lines += [
        "| " + " | ".join(_markdown_cell(_cell(row[c], score=c in benchmarks)) for c in columns) + " |"
        for row in rows
    ]
    return "\n".join(lines) + "\n"


def run_zoo(args: argparse.Namespace) -> int:
    from tinyllava_bench.models.zoo import list_cards
    from tinyllava_bench.tasks.registry import paper_columns

    benchmarks = paper_columns()

    if args.format == "json":
        print(json.dumps([card.model_dump() for card in list_cards()], indent=2))
        return 0
    rows = zoo_rows()
    if args.format == "csv":
        import pandas as pd

        frame = pd.DataFrame(rows, columns=[*ZOO_COLUMNS, *benchmarks, "also_reported"])
        frame.to_csv(sys.stdout, index=False)
    elif args.format == "markdown":
        sys.stdout.write(render_markdown(rows))
    else:
        sys.stdout.write(render_table(rows))
    return 0
