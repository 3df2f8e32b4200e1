"""`tinyllava-bench view RUN`: what the page shows, built from one run folder (or two, compared), and the page
written beside it.

The per-task metrics, every sample (with the other run's answer where compared) and small JPEG thumbnails
(report.thumbnails) are gathered here as one JSON-ready dict; report.view_page embeds it once in a self-contained
HTML page whose script filters, searches and paginates it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.runs import Run, load_run, load_samples, sample_identity, samples_file
from tinyllava_bench.report.thumbnails import DEFAULT_THUMBNAIL_PX, Thumbnails, add_thumbnails, task_images
from tinyllava_bench.report.view_page import render_page
from tinyllava_bench.tasks.registry import sample_score_range

# Where the gold answer sits in a sample's `fields` (tasks/*.yaml `columns.fields`), first present wins.
GOLD_FIELDS = ("answer", "answers", "multiple_choice_answer", "gold")
# What the page filters on as a sample's category (POPE/MME/LLaVA-W, MM-Vet, SQA-I, VQAv2), first present wins.
CATEGORY_FIELDS = ("category", "capability", "subject", "answer_type", "question_type")


def outcome(task: str, score: Any) -> str:
    """right (full marks), wrong (the bottom of the scale), partial (between: VQA accuracy, judge scores) or
    unscored (no score)."""
    if not isinstance(score, (int, float)) or isinstance(score, bool):
        return "unscored"
    # the task's per-sample score range (docs/run_folder.md): full marks are "right", the bottom "wrong"
    low, high = sample_score_range(task)
    if score >= high:
        return "right"
    if score <= low:
        return "wrong"
    return "partial"


def _first_field(fields: Mapping[str, Any], names: Sequence[str]) -> Any:
    for name in names:
        if fields.get(name) not in (None, "", []):
            return fields[name]
    return None


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def _sample_entry(task: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """One sample as the page reads it (short keys: the JSON holds 10,000+ of them)."""
    recorded = record.get("fields")
    fields: Mapping[str, Any] = recorded if isinstance(recorded, Mapping) else {}
    category = _first_field(fields, CATEGORY_FIELDS)
    return {
        "t": task,
        "i": record.get("index"),
        "q": _text(record.get("question_id")),
        "p": _text(record.get("prompt")),
        "y": _text(record.get("prediction")) if record.get("prediction") is not None else None,
        "a": _text(record.get("parsed")),
        "s": record.get("score"),
        "o": outcome(task, record.get("score")),
        "e": _text(record.get("error")),
        "j": _text(record.get("judge_error")),
        "g": _text(_first_field(fields, GOLD_FIELDS)),
        "c": _text(category),
        "f": {str(k): _text(v) for k, v in fields.items()},
        "th": -1,
    }


def _compare_code(mine: Mapping[str, Any], other: Mapping[str, Any] | None) -> str:
    """'m': the other run lacks the sample; 'a': right only here; 'b': right only in the other run; '': neither."""
    if other is None:
        return "m"
    if (mine["o"] == "right") == (other["o"] == "right"):
        return ""
    return "a" if mine["o"] == "right" else "b"


def _run_header(run: Run, label: str) -> dict[str, Any]:
    tasks = {}
    for name, task in run.tasks.items():
        tasks[name] = {
            "metrics": task.metrics,
            "invalid_metrics": task.invalid_metrics,
            "headline": task.headline,
            "n_samples": task.n_samples,
            "n_errors": task.n_errors,
            "n_judge_failures": task.n_judge_failures,
            "protocol": task.protocol,
            "scorer": task.scorer,
            "judge_model": task.judge_model,
            "limit": task.limit,
            "fingerprint": (task.dataset or {}).get("fingerprint"),
            "judge": task.judge,
        }
    return {
        "label": label,
        "path": str(run.path),
        "model": run.model_name,
        "source": run.model_source,
        "card": run.card,
        "started_at": run.provenance.get("started_at"),
        "git_commit": run.provenance.get("git_commit"),
        "tasks": tasks,
    }


def _read_task_samples(run: Run, task: str, notes: list[str]) -> list[dict[str, Any]]:
    path = samples_file(run, task)
    if not path.is_file():
        notes.append(f"{run.path}: no {path.name}, so task {task} has metrics but no samples to show")
        return []
    return load_samples(path)


def build_view(
    run_path: str | Path,
    compare: str | Path | None = None,
    data_root: str | Path | None = None,
    thumbnails: bool = True,
    thumbnail_px: int = DEFAULT_THUMBNAIL_PX,
    progress: bool = True,
) -> dict[str, Any]:
    """Everything the page shows, as the JSON it embeds: runs, samples (with compare codes) and thumbnails."""
    if thumbnail_px < 16 or thumbnail_px > 512:
        raise UserError(f"--thumbnail-size {thumbnail_px} is out of range; give 16 to 512 pixels")
    run = load_run(run_path)
    other = load_run(compare) if compare is not None else None
    if other is not None and other.path.resolve() == run.path.resolve():
        raise UserError(f"--compare {compare} is the run being viewed; give another run folder")
    labels = [run.path.name or run.model_name]
    if other is not None:
        other_label = other.path.name or other.model_name
        labels.append(other_label if other_label != labels[0] else f"{other_label} (compared)")
    root = Path(data_root).expanduser() if data_root is not None else None
    if root is not None and not root.is_dir():
        raise UserError(f"--data-root {root} is not a folder; give the folder the run's data is in")

    notes: list[str] = []
    samples: list[dict[str, Any]] = []
    others: list[dict[str, Any] | None] = []
    thumbs = Thumbnails(thumbnail_px)
    n_thumbnailed = 0
    for task in run.tasks:
        records = _read_task_samples(run, task, notes)
        entries = [_sample_entry(task, record) for record in records]
        if other is not None:
            by_identity: dict[tuple[str, ...], dict[str, Any]] = {}
            if task in other.tasks:
                other_fp = other.tasks[task].dataset.get("fingerprint")
                if other_fp and other_fp != run.tasks[task].dataset.get("fingerprint"):
                    notes.append(
                        f"{task}: the two runs read different data (dataset fingerprints differ); samples are "
                        "paired by question id and row, which may not be the same question"
                    )
                for record in _read_task_samples(other, task, notes):
                    identity = sample_identity(record)
                    if identity is not None:
                        by_identity.setdefault(identity, _sample_entry(task, record))
            else:
                notes.append(f"{task}: not in {labels[1]}, so its samples have nothing to compare with")
            matched = set()
            for entry, record in zip(entries, records):
                identity = sample_identity(record)
                partner = by_identity.get(identity) if identity is not None else None
                if partner is not None:
                    matched.add(identity)
                entry["x"] = _compare_code(entry, partner)
                entry["b"] = len(others) if partner is not None else -1
                if partner is not None:
                    others.append({k: partner[k] for k in ("t", "y", "a", "s", "o", "e", "j")})
            unmatched = len(by_identity) - len(matched)
            if unmatched:
                notes.append(
                    f"{task}: {unmatched} sample(s) of {labels[1]} are not in {labels[0]} (not shown)"
                )
        if thumbnails and entries:
            image_of, note = task_images(run, task, root)
            if note:
                notes.append(note)
            if image_of is not None:
                n_thumbnailed += add_thumbnails(task, entries, image_of, thumbs, notes, progress)
        samples.extend(entries)
    if other is not None:
        for task in other.tasks:
            if task not in run.tasks:
                notes.append(f"{task}: only in {labels[1]} (not shown)")
    if not thumbnails:
        notes.append("thumbnails were turned off (--no-thumbnails)")
    return {
        "runs": [_run_header(run, labels[0])] + ([_run_header(other, labels[1])] if other else []),
        "tasks": list(run.tasks),
        "samples": samples,
        "others": others,
        "thumbs": thumbs.images,
        "notes": notes,
        "n_thumbnailed": n_thumbnailed,
    }


def default_output(run_path: Path, compare: Path | None) -> Path:
    """RUN/view.html, or RUN/view-vs-<OTHER folder name>.html for a comparison."""
    if compare is None:
        return run_path / "view.html"
    name = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in compare.resolve().name) or "other"
    return run_path / f"view-vs-{name}.html"


def write_view(
    run_path: str | Path,
    compare: str | Path | None = None,
    output: str | Path | None = None,
    data_root: str | Path | None = None,
    thumbnails: bool = True,
    thumbnail_px: int = DEFAULT_THUMBNAIL_PX,
    progress: bool = True,
) -> tuple[Path, dict[str, Any]]:
    """Build the page and write it atomically; returns its path and the view it shows."""
    from tinyllava_bench.json_files import write_atomic

    view = build_view(run_path, compare, data_root, thumbnails, thumbnail_px, progress)
    path = (
        Path(output)
        if output is not None
        else default_output(Path(run_path), None if compare is None else Path(compare))
    )
    if path.exists() and path.is_dir():
        raise UserError(f"--output {path} is a folder; give a file name such as {path / 'view.html'}")
    write_atomic(path, render_page(view), kept="an earlier page there is left as it was")
    return path, view
