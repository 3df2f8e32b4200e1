"""PNG charts of a report table: grouped bars per benchmark, an ablation difference chart and a normalised overview.
matplotlib is used through its object API with the Agg canvas, so no display and no global pyplot state."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

from tinyllava_bench.report.runs import full_scale
from tinyllava_bench.report.tables import ReportTable, TableRow

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Non-percentage headline metrics are drawn as percent of their maximum so they share an axis with the rest.
_FULL_SCALE = {"MME": full_scale("mme", "perception")}


def _scale(benchmark: str) -> float:
    return _FULL_SCALE.get(benchmark, 100.0)


def _tick_label(benchmark: str) -> str:
    scale = _scale(benchmark)
    return benchmark if scale == 100.0 else f"{benchmark}\n(% of {scale:g})"


def _row_label(table: ReportTable, row: TableRow) -> str:
    extra = [row.labels[c] for c in ("Protocol", "Judge") if c in table.label_columns and row.labels.get(c)]
    return row.labels["Model"] + (f" ({', '.join(extra)})" if extra else "")


def _new_figure(n_groups: int, n_series: int) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    width = max(7.0, 1.0 + n_groups * (0.5 + 0.18 * n_series))
    height = 4.8 + 0.22 * n_series  # room for the legend under the axes
    figure = Figure(figsize=(width, height), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _colours(count: int) -> list:
    from matplotlib import colormaps

    palette = colormaps["tab10" if count <= 10 else "tab20"]
    return [palette(i % palette.N) for i in range(count)]


def _grouped_bars(axes: Axes, benchmarks: list[str], series: list[tuple[str, list[float | None]]]) -> None:
    count = max(1, len(series))
    width = 0.8 / count
    for number, ((label, values), colour) in enumerate(zip(series, _colours(count), strict=False)):
        positions = [b + (number - (count - 1) / 2) * width for b in range(len(benchmarks))]
        heights = [float("nan") if v is None else v for v in values]
        axes.bar(positions, heights, width=width, label=label, color=colour)
    axes.set_xticks(range(len(benchmarks)), [_tick_label(b) for b in benchmarks])


def _set_title(axes: Axes, title: str) -> None:
    # Wrapped to the axes width so a long title is never cut at the figure edge.
    width_inches = axes.figure.get_figwidth()
    axes.set_title(textwrap.fill(title, width=max(40, int(width_inches * 9))))


def _legend_below(figure: Figure, axes: Axes) -> None:
    if axes.get_legend_handles_labels()[0]:
        figure.legend(loc="outside lower center", ncols=2, fontsize="small", frameon=False)


def _measured_benchmarks(table: ReportTable) -> list[str]:
    used = [b for b in table.benchmarks if any(row.cells[b].value is not None for row in table.rows)]
    return used or list(table.benchmarks)


def plot_benchmark_bars(table: ReportTable, path: str | Path) -> Path:
    """Grouped bars: one group per benchmark, one bar per model; the paper's numbers as black ticks when compared."""
    benchmarks = _measured_benchmarks(table)
    figure = _new_figure(len(benchmarks), len(table.rows))
    axes = figure.add_subplot()
    series = [
        (
            _row_label(table, row),
            [
                None if row.cells[b].value is None else row.cells[b].value / _scale(b) * 100.0
                for b in benchmarks
            ],
        )
        for row in table.rows
    ]
    _grouped_bars(axes, benchmarks, series)
    if table.mode == "paper":
        count = max(1, len(table.rows))
        width = 0.8 / count
        xs, ys = [], []
        for number, row in enumerate(table.rows):
            for position, b in enumerate(benchmarks):
                if row.cells[b].reference is not None:
                    xs.append(position + (number - (count - 1) / 2) * width)
                    ys.append(row.cells[b].reference / _scale(b) * 100.0)
        if xs:
            axes.scatter(xs, ys, marker="_", s=180, color="black", linewidths=2, label="paper", zorder=3)
    paper_note = " (black ticks: the paper's numbers)" if table.mode == "paper" else ""
    _set_title(axes, f"Headline metric per benchmark{paper_note}")
    axes.set_xlabel("benchmark")
    axes.set_ylabel("score (%; MME as % of its maximum)")
    axes.grid(axis="y", alpha=0.3)
    _legend_below(figure, axes)
    out = Path(path)
    figure.savefig(out)
    return out


def plot_ablation_deltas(table: ReportTable, path: str | Path) -> Path:
    """Bars of each row's difference to its group's reference row (an ablation view's `--group-by`)."""
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
        deltas = [
            None if row.cells[b].delta is None else row.cells[b].delta / _scale(b) * 100.0 for b in benchmarks
        ]
        series.append((label, deltas))
    _grouped_bars(axes, benchmarks, series)
    axes.axhline(0.0, color="black", linewidth=0.8)
    for container in axes.containers:
        axes.bar_label(container, fmt="%+.1f", fontsize="x-small", padding=2)
    if not series:
        axes.text(
            0.5,
            0.5,
            "no group has more than one row: nothing to compare",
            ha="center",
            transform=axes.transAxes,
        )
    _set_title(axes, f"Ablation over {table.group_axis}: difference to each group's reference row")
    axes.set_xlabel("benchmark")
    axes.set_ylabel("difference (points; MME in % of its maximum)")
    axes.grid(axis="y", alpha=0.3)
    _legend_below(figure, axes)
    out = Path(path)
    figure.savefig(out)
    return out


def plot_overview(table: ReportTable, path: str | Path) -> Path:
    """Each benchmark normalised so models compare at a glance: 100 = the paper's number when compared with the
    paper, else 100 = the best row on that benchmark."""
    benchmarks = _measured_benchmarks(table)
    against_paper = table.mode == "paper"
    best = {
        b: max((row.cells[b].value for row in table.rows if row.cells[b].value is not None), default=None)
        for b in benchmarks
    }
    figure = _new_figure(len(benchmarks), len(table.rows))
    axes = figure.add_subplot()
    for row, colour in zip(table.rows, _colours(len(table.rows)), strict=False):
        ys = []
        for b in benchmarks:
            cell = row.cells[b]
            base = cell.reference if against_paper else best[b]
            ys.append(float("nan") if cell.value is None or not base else cell.value / base * 100.0)
        axes.plot(range(len(benchmarks)), ys, marker="o", label=_row_label(table, row), color=colour)
    axes.axhline(100.0, color="black", linewidth=0.8, linestyle="--")
    axes.set_xticks(range(len(benchmarks)), benchmarks)
    reference = "the paper's number" if against_paper else "the best row"
    _set_title(axes, f"Overview: each benchmark as % of {reference}")
    axes.set_xlabel("benchmark")
    axes.set_ylabel(f"% of {reference}")
    axes.grid(alpha=0.3)
    _legend_below(figure, axes)
    out = Path(path)
    figure.savefig(out)
    return out


def write_plots(table: ReportTable, out_dir: str | Path) -> list[Path]:
    """All charts that fit the table into `out_dir` (created if needed); returns the files written."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written = [
        plot_benchmark_bars(table, folder / "benchmarks.png"),
        plot_overview(table, folder / "overview.png"),
    ]
    if table.mode == "group":
        written.append(plot_ablation_deltas(table, folder / "ablation_deltas.png"))
    return written
