"""What the demo measured and where it wrote it, and the lines it prints (blind scores, regress's tests)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.demo.settings import ABLATION_AXIS, DEMO_RECORD


@dataclass
class DemoResult:
    """Where the demo wrote everything, and what it measured."""

    output: Path
    runs: dict[str, Path]  # variant name -> run folder
    checkpoints: dict[str, Path]  # variant name -> finetuned model
    table: Path
    table_markdown: str
    leaderboard: Path
    plots: list[Path]
    seconds: dict[str, float]  # wall time per step, and "total"
    scores: dict[str, dict[str, float | None]]  # variant name -> task -> headline value
    blind: dict[str, float | None]  # task -> headline value of answering without the picture (demo.blind)
    regress: dict[str, dict[str, Any]] = field(default_factory=dict)  # task -> regress_summary's entry

    def blind_line(self) -> str:
        """The scores of answering without the picture, in the table's order, labelled as the table."""
        return blind_line(self.blind)

    def regress_line(self) -> str:
        return regress_line(self.regress, *list(self.runs)[:2])

    def printed(self) -> str:
        """What the demo prints at its end: the table, the blind scale, what regress finds, and the summary."""
        return "\n".join(
            [
                self.table_markdown.rstrip("\n"),
                f"- {self.blind_line()}",
                f"- {self.regress_line()}",
                "",
                self.summary(),
            ]
        )

    def summary(self) -> str:
        """What was trained, what was written where, how long it took, and the commands that take it further."""
        base, other = (self.runs[name] for name in list(self.runs)[:2])
        trained = ", ".join(f"{name} ({path})" for name, path in self.checkpoints.items())
        lines = [
            f"demo finished in {self.seconds['total']:.0f} s; everything is in {self.output}/",
            f"  trained         {trained}",
            f"  data            {self.output / 'data'} (training data, benchmark copies)",
            f"  base models     {self.output / 'base'} (the demo LLM and vision tower)",
            f"  ablation table  {self.table}",
            f"  leaderboard     {self.leaderboard}",
            *(f"  plot            {path}" for path in self.plots),
            *(f"  run folder      {path}" for path in self.runs.values()),
            f"  record          {self.output / DEMO_RECORD} (what was printed and measured)",
            "next:",
            f"  tinyllava-bench report {' '.join(str(p) for p in self.runs.values())} --group-by {ABLATION_AXIS}",
            f"  tinyllava-bench regress --baseline {base} --current {other}",
            f"  tinyllava-bench view {other}",
        ]
        return "\n".join(lines)


def _label(task: str) -> str:
    from tinyllava_bench.tasks.registry import benchmark_columns

    return next((b.label for b in benchmark_columns() if b.paper_column == task), task)


def blind_line(blind: dict[str, float | None]) -> str:
    """The blind answerer's scores in the table's order, labelled as the table."""
    from tinyllava_bench.tasks.registry import benchmark_columns

    values = [
        f"{b.label} {blind[b.paper_column]:.1f}"
        for b in benchmark_columns()
        if b.paper_column in blind and blind[b.paper_column] is not None
    ]
    return (
        "Without the picture (the best answer for each question opening, fitted on these questions): "
        + ", ".join(values)
    )


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f}" if value >= 0.001 else f"{value:.0e}"


def regress_line(regress: dict[str, dict[str, Any]], baseline: str, current: str) -> str:
    """regress's paired tests in one line, in the table's order: each headline's change, the questions it lost and
    gained, and the p-value (the verdicts are the reader's: a line whose words change with them could not be
    compared with another machine's run)."""
    from tinyllava_bench.tasks.registry import paper_columns

    order = [column for column in paper_columns() if column in regress]

    def item(task: str) -> str:
        entry = regress[task]
        change = (entry["current"] or 0.0) - (entry["baseline"] or 0.0)
        counts = f"{entry['lost']} lost / {entry['gained']} gained, " if entry.get("lost") is not None else ""
        return f"{_label(task)} {change:+.1f} ({counts}p = {_p(entry['p_value'])})"

    return (
        f"regress {current} against {baseline} (paired tests per question; p < 0.05 is significant): "
        + "; ".join(item(t) for t in order)
    )
