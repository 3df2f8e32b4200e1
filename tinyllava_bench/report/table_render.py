"""A ReportTable as text: Markdown, LaTeX, CSV or HTML, each with its own escaping; one decimal, as the paper prints.

Only the table's shape is read here (report.tables builds it), so the CLI can import TABLE_FORMATS at start-up."""

from __future__ import annotations

import csv
import html
import io
from typing import TYPE_CHECKING

from tinyllava_bench.errors import UserError

if TYPE_CHECKING:
    from tinyllava_bench.report.tables import Cell, ReportTable, TableMode

TABLE_FORMATS = ("md", "latex", "csv", "html")


def format_number(value: float | None) -> str:
    """One decimal, as the paper prints; empty for a missing number."""
    return "" if value is None else f"{value:.1f}"


def format_delta(delta: float | None) -> str:
    if delta is None:
        return ""
    text = f"{delta:+.1f}"
    return "+0.0" if text == "-0.0" else text


def cell_text(cell: Cell, mode: TableMode) -> str:
    """A cell as one string: `61.9`, `61.9 / 62.0 (-0.1)` against the paper, `62.5 (+0.6)` against a group's ref."""
    if mode == "paper":
        if cell.value is None and cell.reference is None:
            return ""
        measured = format_number(cell.value) or "-"
        paper = format_number(cell.reference) or "-"
        delta = format_delta(cell.delta)
        return f"{measured} / {paper}" + (f" ({delta})" if delta else "")
    if mode == "group" and cell.delta is not None:
        return f"{format_number(cell.value)} ({format_delta(cell.delta)})"
    return format_number(cell.value)


def markdown_escape(text: str) -> str:
    """Text for a Markdown table cell or list item: a `|` would end the cell."""
    return text.replace("|", "\\|")


def _markdown(table: ReportTable) -> str:
    header = [*table.label_columns, *table.benchmarks]
    align = [":--" for _ in table.label_columns] + ["--:" for _ in table.benchmarks]
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in table.rows:
        texts = [markdown_escape(row.labels.get(c, "")) for c in table.label_columns]
        texts += [cell_text(row.cells[b], table.mode) for b in table.benchmarks]
        lines.append("| " + " | ".join(texts) + " |")
    if table.footnotes:
        lines.append("")
        lines.extend(f"- {markdown_escape(note)}" for note in table.footnotes)
    return "\n".join(lines) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def _latex(table: ReportTable) -> str:
    spec = "l" * len(table.label_columns) + "r" * len(table.benchmarks)
    lines = [
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{latex_escape(table.title)}}}",
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in [*table.label_columns, *table.benchmarks]) + r" \\",
        r"\midrule",
    ]
    previous_group = None
    for row in table.rows:
        if table.mode == "group" and previous_group is not None and row.group != previous_group:
            lines.append(r"\midrule")
        previous_group = row.group
        texts = [latex_escape(row.labels.get(c, "")) for c in table.label_columns]
        texts += [latex_escape(cell_text(row.cells[b], table.mode)) for b in table.benchmarks]
        lines.append(" & ".join(texts) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    for note in table.footnotes:
        lines.append(rf"\par\footnotesize {latex_escape(note)}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _csv(table: ReportTable) -> str:
    # Machine-readable: comparison parts get their own columns instead of being packed into one string.
    header = list(table.label_columns)
    if table.mode == "group":
        header += ["Group", "Reference"]
    for b in table.benchmarks:
        header.append(b)
        if table.mode == "paper":
            header += [f"{b} paper", f"{b} delta"]
        elif table.mode == "group":
            header.append(f"{b} delta")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for row in table.rows:
        record = [row.labels.get(c, "") for c in table.label_columns]
        if table.mode == "group":
            record += [str(row.group), "yes" if row.is_reference else ""]
        for b in table.benchmarks:
            cell = row.cells[b]
            record.append(format_number(cell.value))
            if table.mode == "paper":
                record += [format_number(cell.reference), format_delta(cell.delta)]
            elif table.mode == "group":
                record.append(format_delta(cell.delta))
        writer.writerow(record)
    return buffer.getvalue()


def _html(table: ReportTable) -> str:
    lines = [
        '<table class="tinyllava-bench-report">',
        f"<caption>{html.escape(table.title)}</caption>",
        "<thead><tr>",
    ]
    lines += [f'<th scope="col">{html.escape(c)}</th>' for c in [*table.label_columns, *table.benchmarks]]
    lines.append("</tr></thead>")
    previous_group = None
    for row in table.rows:
        if row.group != previous_group:
            if previous_group is not None:
                lines.append("</tbody>")
            lines.append("<tbody>")
            previous_group = row.group
        cells = [f"<td>{html.escape(row.labels.get(c, ''))}</td>" for c in table.label_columns]
        cells += [
            f'<td align="right">{html.escape(cell_text(row.cells[b], table.mode))}</td>'
            for b in table.benchmarks
        ]
        lines.append("<tr>" + "".join(cells) + "</tr>")
    if table.rows:
        lines.append("</tbody>")
    lines.append("</table>")
    lines += [f'<p class="note">{html.escape(note)}</p>' for note in table.footnotes]
    return "\n".join(lines) + "\n"


def render_table(table: ReportTable, fmt: str = "md") -> str:
    """The table as text in one of TABLE_FORMATS."""
    renderers = {"md": _markdown, "latex": _latex, "csv": _csv, "html": _html}
    if fmt not in renderers:
        raise UserError(f"unknown table format {fmt!r}; choose one of {', '.join(TABLE_FORMATS)}")
    return renderers[fmt](table)
