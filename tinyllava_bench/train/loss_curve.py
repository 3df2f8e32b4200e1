"""The loss curve of a stage: `OUTPUT/<stage>/loss_curve.png`, drawn from the points `training.json` logs.

The points are the record's `loss_history` (every logged step, the earlier session's included when the stage was
resumed, as the trainer's state carries them). The PNG carries the same points in its `loss_points` text chunk, so
the picture can be checked against `training.json` without reading pixels. matplotlib is used through its object
API on the Agg canvas: no display, no global pyplot state.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tinyllava_bench import __version__

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger("tinyllava_bench.train")

LOSS_CURVE = "loss_curve.png"
POINTS_KEY = "loss_points"  # the PNG text chunk holding [[step, loss or null], ...]


def logged_points(record: dict[str, Any]) -> list[tuple[int, float | None]]:
    """(step, loss) of every logged step of the record, in order; a non-finite loss is None (not drawn)."""
    points = []
    for entry in record.get("loss_history") or []:
        loss = entry.get("loss")
        finite = isinstance(loss, (int, float)) and math.isfinite(loss)
        points.append((int(entry["step"]), float(loss) if finite else None))
    return points


def _resumed_at(record: dict[str, Any]) -> int | None:
    source = record.get("resumed_from")
    if not source:
        return None
    from tinyllava_bench.train.resume import checkpoint_step

    step = checkpoint_step(Path(source))
    if step is None:  # the checkpoint is gone already: its folder name says the step
        match = re.search(r"checkpoint-(\d+)$", str(source).rstrip("/"))
        step = int(match.group(1)) if match else None
    return step


def _title(record: dict[str, Any], points: list[tuple[int, float | None]]) -> str:
    stage = record.get("stage", "?")
    steps = record.get("steps")
    parts = [f"stage {stage}: {len(points)} logged steps" + (f" of {steps}" if steps is not None else "")]
    if record.get("status") == "diverged":
        parts.append(f"diverged at step {record.get('diverged_at_step')} ({record.get('diverged_on')})")
    elif record.get("status") not in (None, "complete"):
        parts.append(str(record["status"]))
    return "; ".join(parts)


def draw_loss_curve(record: dict[str, Any]) -> Figure:
    """The figure of the record's logged losses: step on x, loss on y from 0. A diverged stage draws its finite
    points and a red line at the step it diverged; a resumed stage a dotted line where it resumed."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(7.0, 4.2), dpi=110, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    points = logged_points(record)
    finite = [(step, loss) for step, loss in points if loss is not None]
    if finite:
        steps, losses = zip(*finite, strict=True)
        axes.plot(steps, losses, color="tab:blue", linewidth=1.4, marker="." if len(finite) <= 60 else None)
    else:
        axes.text(0.5, 0.5, "no finite loss was logged", ha="center", va="center", transform=axes.transAxes)
    resumed = _resumed_at(record)
    if resumed is not None:
        axes.axvline(resumed, color="grey", linestyle=":", label=f"resumed at step {resumed}")
    if record.get("status") == "diverged" and record.get("diverged_at_step") is not None:
        step = record["diverged_at_step"]
        axes.axvline(step, color="tab:red", linestyle="--", label=f"diverged at step {step}")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_ylim(bottom=0.0, top=max((loss for _, loss in finite), default=1.0) * 1.05 or 1.0)
    all_steps = [step for step, _ in points] + [s for s in (resumed, record.get("diverged_at_step")) if s]
    if all_steps:
        axes.set_xlim(min(0, *all_steps), max(all_steps) + max(1, max(all_steps) // 50))
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # steps are whole
    axes.grid(True, alpha=0.3)
    axes.set_title(_title(record, points), fontsize="medium")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right", fontsize="small")  # the y-axis from 0 leaves room under the curve
    return figure


def write_loss_curve(stage_dir: Path, record: dict[str, Any]) -> str | None:
    """Draw the record's loss curve to `stage_dir/loss_curve.png` (atomically); its path, or None with a warning
    when it could not be written (the picture is a by-product: failing it must not throw away a trained stage)."""
    path = Path(stage_dir) / LOSS_CURVE
    points = [[step, loss] for step, loss in logged_points(record)]
    metadata = {
        "Title": f"loss curve of stage {record.get('stage', '?')}",
        "Software": f"tinyllava-bench {__version__}",
        POINTS_KEY: json.dumps(points, separators=(",", ":")),
    }
    tmp = None
    try:
        figure = draw_loss_curve(record)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            figure.savefig(handle, format="png", metadata=metadata)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except (OSError, ValueError) as exc:
        if tmp:
            Path(tmp).unlink(missing_ok=True)
        logger.warning(
            "stage %s: could not write %s (%s); training.json keeps the losses",
            record.get("stage"),
            path,
            exc,
        )
        return None
    return str(path)
