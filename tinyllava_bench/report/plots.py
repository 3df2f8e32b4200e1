"""PNG charts of a report table: the headline metric per benchmark (one panel each, on its own scale), an ablation
difference chart and a normalised overview. matplotlib is used through its object API with the Agg canvas, so no
display and no global pyplot state.

Every y-axis starts at 0 except the ablation chart's, whose differences go both ways around its 0 line. A
benchmark's scale is the highest value its number could take: 100 for percentages, for MME 200 per category the
run scored (a demo run of 5 perception categories is out of 1,000, not the full test's 2,000).
"""

from __future__ import annotations

import math
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.tables import ReportTable, TableRow, paper_full_scale
from tinyllava_bench.tasks import registry
from tinyllava_bench.tasks.registry import Benchmark

if TYPE_CHECKING:
    from matplotlib.artist import Artist
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PANELS_PER_ROW = 4
CHAR_WIDTH_INCHES = 0.075  # a tick label's character at matplotlib's default 10 points
VALUE_LABEL_INCHES = 0.26  # a bar's value label ("+12.5", "357.7") in x-small type


def _labels_fit(axes_inches: float, n_groups: int, bars_per_group: int, bar_share: float) -> bool:
    """Whether a value label fits over each bar without running into its neighbour's."""
    return axes_inches / max(1, n_groups) * bar_share / max(1, bars_per_group) >= VALUE_LABEL_INCHES


@dataclass(frozen=True)
class BenchmarkScale:
    """How one benchmark is drawn: `top` is the axis maximum; values are in the benchmark's own unit, or in percent
    of each row's own maximum where rows differ in it (`per_row_percent`)."""

    top: float
    per_row_percent: bool
    caption: str  # what the axis measures, under the benchmark's name


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) else f"{value:,g}"


def benchmark_scales(table: ReportTable) -> dict[str, BenchmarkScale]:
    """Benchmark label -> its scale, from the maxima the table's cells carry (and the paper's, when compared)."""
    paper = {b.label: b for b in registry.benchmark_columns()}
    scales = {}
    for label in table.benchmarks:
        maxima = {
            row.cells[label].full_scale or 100.0 for row in table.rows if row.cells[label].value is not None
        }
        compared = table.mode == "paper" and any(row.cells[label].reference is not None for row in table.rows)
        if compared and label in paper:
            maxima.add(paper_full_scale(paper[label]))
        if len(maxima) > 1:
            scales[label] = BenchmarkScale(100.0, True, "% of each number's maximum")
            continue
        top = maxima.pop() if maxima else 100.0
        if top == 100.0:
            caption = "score (%)"
        elif label in paper and _sum_of_parts(paper[label], top):
            categories = int(top // (registry.sum_part_max(paper[label].tasks[0]) or 1))
            caption = f"max {_number(top)} ({categories} categor{'y' if categories == 1 else 'ies'})"
        else:
            caption = f"score (max {_number(top)})"
        scales[label] = BenchmarkScale(top, False, caption)
    return scales


def _sum_of_parts(benchmark: Benchmark, top: float) -> bool:
    """Whether a maximum is a whole number of the benchmark's subtasks (MME: 200 each), to caption it so."""
    part = registry.sum_part_max(benchmark.tasks[0])
    return part is not None and top % part == 0


def _on_scale(value: float | None, maximum: float | None, scale: BenchmarkScale) -> float | None:
    if value is None:
        return None
    return value / (maximum or 100.0) * 100.0 if scale.per_row_percent else value


def _share(value: float | None, maximum: float | None) -> float | None:
    """A value (or difference) as percent of its benchmark's maximum: points, for a percentage."""
    return None if value is None else value / (maximum or 100.0) * 100.0


def baseline_by_benchmark(
    table: ReportTable, baseline: Mapping[str, float | None] | None
) -> dict[str, float]:
    """A baseline given per task (as the demo's blind scores: {"gqa": 33.4, "mme": 263.2}) or per benchmark label,
    as benchmark label -> value, for the table's benchmarks."""
    if not baseline:
        return {}
    tasks_of = {b.label: b.tasks for b in registry.benchmark_columns()}
    found = {}
    for label in table.benchmarks:
        for key in (label, *tasks_of.get(label, ())):
            value = baseline.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
                found[label] = float(value)
                break
    return found


def _row_label(table: ReportTable, row: TableRow) -> str:
    extra = [row.labels[c] for c in ("Protocol", "Judge") if c in table.label_columns and row.labels.get(c)]
    return row.labels["Model"] + (f" ({', '.join(extra)})" if extra else "")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _new_figure(n_groups: int, n_series: int) -> Figure:
    width = max(7.0, 1.0 + n_groups * (0.5 + 0.18 * n_series))
    return _figure(width, 4.8 + 0.22 * n_series)  # room for the legend under the axes


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]


def _benchmark_ticks(figure: Figure, axes: Axes, labels: list[str]) -> None:
    """Benchmark names under their group of bars; turned when the longest would run into its neighbour."""
    # inches per group: the figure less the y-axis margin
    room = (figure.get_figwidth() - 1.2) / max(1, len(labels))
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    crowded = longest * CHAR_WIDTH_INCHES > room
    axes.set_xticks(
        range(len(labels)), labels, rotation=30 if crowded else 0, ha="right" if crowded else "center"
    )


def _grouped_bars(axes: Axes, benchmarks: list[str], series: list[tuple[str, list[float | None]]]) -> None:
    count = max(1, len(series))
    width = 0.8 / count
    for number, ((label, values), colour) in enumerate(zip(series, _colours(count), strict=False)):
        positions = [b + (number - (count - 1) / 2) * width for b in range(len(benchmarks))]
        heights = [float("nan") if v is None else v for v in values]
        axes.bar(positions, heights, width=width, label=label, color=colour)


def _wrap(text: str, figure: Figure) -> str:
    # wrapped to the figure width so a long title is never cut at the edge
    return textwrap.fill(text, width=max(40, int(figure.get_figwidth() * 9)))


def _legend_below(figure: Figure, handles: list | None = None) -> None:
    if handles is None:
        handles = [h for axes in figure.axes[:1] for h in axes.get_legend_handles_labels()[0]]
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=2, fontsize="small", frameon=False)


def _measured_benchmarks(table: ReportTable) -> list[str]:
    used = [b for b in table.benchmarks if any(row.cells[b].value is not None for row in table.rows)]
    return used or list(table.benchmarks)


def _panel_columns(count: int) -> int:
    """Panels per row: up to PANELS_PER_ROW, chosen so the last row is as full as it can be (6 -> 3 + 3)."""
    lines = math.ceil(count / PANELS_PER_ROW)
    return max(1, math.ceil(count / lines))


def benchmark_bars_figure(table: ReportTable, baseline: Mapping[str, float | None] | None = None) -> Figure:
    """One panel per benchmark, on its own scale from 0: a bar per row, the paper's numbers as black ticks when
    compared, the baseline (e.g. answering without the picture) as a dashed line where one is given."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    benchmarks = _measured_benchmarks(table)
    scales = benchmark_scales(table)
    floor = baseline_by_benchmark(table, baseline)
    paper = {b.label: b for b in registry.benchmark_columns()}
    columns = _panel_columns(len(benchmarks))
    lines = math.ceil(len(benchmarks) / columns)
    n_rows = len(table.rows)
    panel_inches = 2.5 - 0.5  # less the y tick labels
    figure = _figure(max(7.0, 2.5 * columns + 0.4), 2.7 * lines + 1.0 + 0.25 * math.ceil((n_rows + 2) / 2))
    colours = _colours(n_rows)
    for number, label in enumerate(benchmarks):
        axes = figure.add_subplot(lines, columns, number + 1)
        scale = scales[label]
        cells = [row.cells[label] for row in table.rows]
        heights = [_on_scale(c.value, c.full_scale, scale) for c in cells]
        bars = axes.bar(
            range(n_rows), [math.nan if h is None else h for h in heights], color=colours, width=0.7
        )
        if _labels_fit(panel_inches, 1, n_rows, 0.7 * n_rows / (n_rows + 0.2)):
            # on a white ground, so a baseline line running through a label never hides it
            ground = {"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none", "alpha": 0.85}
            axes.bar_label(bars, fmt="%.1f", fontsize="x-small", padding=2, bbox=ground, zorder=5)
        if table.mode == "paper":
            paper_scale = paper_full_scale(paper[label]) if label in paper else 100.0
            ticks = [(i, _on_scale(c.reference, paper_scale, scale)) for i, c in enumerate(cells)]
            ticks = [(i, y) for i, y in ticks if y is not None]
            if ticks:
                xs, ys = zip(*ticks, strict=True)
                axes.scatter(xs, ys, marker="_", s=400, color="black", linewidths=2, zorder=3)
        right = n_rows - 0.4
        if label in floor and not scale.per_row_percent:
            # the line spans the bars; its value stands in a margin right of them, clear of the bars' labels
            axes.hlines(floor[label], -0.6, right, colors="dimgray", linestyles="--", linewidth=1.3, zorder=4)
            axes.text(
                right + 0.05,
                floor[label],
                f"blind\n{floor[label]:.1f}",
                fontsize="x-small",
                color="dimgray",
                va="center",
            )
            right += 0.6
        axes.set_ylim(0.0, scale.top * 1.12)  # headroom for the value labels; the ticks stop at the maximum
        axes.set_yticks([scale.top * i / 4 for i in range(5)])
        axes.set_xticks([])
        axes.set_xlim(-0.6, right)
        axes.set_title(f"{label}\n{scale.caption}", fontsize="medium")
        axes.grid(axis="y", alpha=0.3)
    handles: list[Artist] = [
        Patch(color=c, label=_row_label(table, row)) for row, c in zip(table.rows, colours, strict=True)
    ]
    if table.mode == "paper":
        handles.append(
            Line2D([], [], color="black", marker="_", linestyle="", markersize=14, label="the paper")
        )
    if floor:
        handles.append(Line2D([], [], color="dimgray", linestyle="--", label="answering without the picture"))
    figure.suptitle(_wrap("Headline metric per benchmark, each on its own scale from 0", figure))
    _legend_below(figure, handles)
    return figure


def ablation_deltas_figure(table: ReportTable) -> Figure:
    """Bars of each row's difference to its group's reference row (an ablation view's `--group-by`), in points of
    each benchmark's maximum (points, for a percentage)."""
    from matplotlib.container import BarContainer

    benchmarks = _measured_benchmarks(table)
    compared = [row for row in table.rows if not row.is_reference]
    figure = _new_figure(len(benchmarks), len(compared))
    axes = figure.add_subplot()
    reference_of = {row.group: row for row in table.rows if row.is_reference}
    axis_column = next((c for c in reversed(table.label_columns) if c not in ("Protocol", "Judge")), "Model")
    series = []
    for row in compared:
        reference = reference_of.get(row.group)
        against = reference.labels.get(axis_column, "").replace(" (ref)", "") if reference else "?"
        label = f"{row.labels['Model']}: {row.labels.get(axis_column, '')} vs {against}"
        series.append((label, [_share(row.cells[b].delta, row.cells[b].full_scale) for b in benchmarks]))
    _grouped_bars(axes, benchmarks, series)
    scales = benchmark_scales(table)
    _benchmark_ticks(
        figure,
        axes,
        [b if scales[b].top == 100.0 else f"{b}\n(% of {_number(scales[b].top)})" for b in benchmarks],
    )
    axes.axhline(0.0, color="black", linewidth=0.8)
    if _labels_fit(figure.get_figwidth() - 1.5, len(benchmarks), len(series), 0.8):
        for container in axes.containers:
            if isinstance(container, BarContainer):  # the bars of each series (all this axes holds)
                axes.bar_label(container, fmt="%+.1f", fontsize="x-small", padding=2)
    if not series:
        axes.text(
            0.5,
            0.5,
            "no group has more than one row: nothing to compare",
            ha="center",
            transform=axes.transAxes,
        )
    axes.set_title(
        _wrap(f"Ablation over {table.group_axis}: difference to each group's reference row", figure)
    )
    axes.set_xlabel("benchmark")
    axes.set_ylabel("difference (points of the benchmark's maximum)")
    axes.grid(axis="y", alpha=0.3)
    _legend_below(figure)
    return figure


def overview_figure(table: ReportTable) -> Figure:
    """Each benchmark normalised so models compare at a glance: 100 = the paper's number when compared with the
    paper, else 100 = the best row on that benchmark. The axis starts at 0."""
    benchmarks = _measured_benchmarks(table)
    against_paper = table.mode == "paper"
    best: dict[str, float | None] = {}
    for b in benchmarks:
        values = [row.cells[b].value for row in table.rows]
        best[b] = max((v for v in values if v is not None), default=None)
    figure = _new_figure(len(benchmarks), len(table.rows))
    axes = figure.add_subplot()
    top = 100.0
    for row, colour in zip(table.rows, _colours(len(table.rows)), strict=False):
        ys: list[float] = []
        for b in benchmarks:
            cell = row.cells[b]
            base = cell.reference if against_paper else best[b]
            ys.append(math.nan if cell.value is None or not base else cell.value / base * 100.0)
        top = max([top, *(y for y in ys if not math.isnan(y))])
        axes.plot(range(len(benchmarks)), ys, marker="o", label=_row_label(table, row), color=colour)
    axes.axhline(100.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_ylim(0.0, top * 1.08)
    _benchmark_ticks(figure, axes, benchmarks)
    reference = "the paper's number" if against_paper else "the best row"
    axes.set_title(_wrap(f"Overview: each benchmark as % of {reference}", figure))
    axes.set_xlabel("benchmark")
    axes.set_ylabel(f"% of {reference}")
    axes.grid(alpha=0.3)
    _legend_below(figure)
    return figure


def plotted_values(table: ReportTable) -> str:
    """The table's values a chart was drawn from (model -> benchmark -> value; blank cells left out), as JSON:
    saved in the PNG's Description so a picture in the docs can be checked against the numbers beside it
    (`read_plotted_values`)."""
    import json

    values = {
        row.labels["Model"]: {
            b: row.cells[b].value for b in table.benchmarks if row.cells[b].value is not None
        }
        for row in table.rows
    }
    return json.dumps(values, allow_nan=False)


def read_plotted_values(path: str | Path) -> dict[str, dict[str, float | None]]:
    """What `plotted_values` saved in a chart written here ({} for a PNG without it)."""
    import json

    from PIL import Image

    with Image.open(path) as image:
        text = getattr(image, "text", {}).get("Description")
    return json.loads(text) if text else {}


def _save(figure: Figure, path: str | Path, table: ReportTable) -> Path:
    out = Path(path)
    figure.savefig(out, metadata={"Description": plotted_values(table)})
    return out


def plot_benchmark_bars(
    table: ReportTable, path: str | Path, baseline: Mapping[str, float | None] | None = None
) -> Path:
    return _save(benchmark_bars_figure(table, baseline), path, table)


def plot_ablation_deltas(table: ReportTable, path: str | Path) -> Path:
    return _save(ablation_deltas_figure(table), path, table)


def plot_overview(table: ReportTable, path: str | Path) -> Path:
    return _save(overview_figure(table), path, table)


def read_baseline(path: str | Path) -> dict[str, float | None]:
    """Baseline scores from a JSON file: {task: headline value} (or a demo's demo.json, whose `blind` holds them)."""
    import json

    file = Path(path)
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UserError(f"--blind-scores {file}: cannot read it ({exc.strerror or exc})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"--blind-scores {file}: not valid JSON ({exc})") from None
    if isinstance(data, dict) and isinstance(data.get("blind"), dict):
        data = data["blind"]
    valid = isinstance(data, dict) and all(
        value is None
        or (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value))
        for value in data.values()
    )
    if not valid:
        raise UserError(
            f'--blind-scores {file}: give a JSON object of task -> headline score (e.g. {{"gqa": 33.4}}) or a '
            "demo's demo.json"
        )
    return {str(task): None if value is None else float(value) for task, value in data.items()}


def write_plots(
    table: ReportTable, out_dir: str | Path, baseline: Mapping[str, float | None] | None = None
) -> list[Path]:
    """All charts that fit the table into `out_dir` (created if needed); returns the files written. `baseline`
    (task or benchmark -> headline value, e.g. the demo's blind scores) is drawn on the benchmark panels."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        plot_benchmark_bars(table, folder / "benchmarks.png", baseline),
        plot_overview(table, folder / "overview.png"),
    ]
    if table.mode == "group":
        written.append(plot_ablation_deltas(table, folder / "ablation_deltas.png"))
    return written
