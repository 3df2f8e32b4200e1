"""`tinyllava-bench view RUN`: one self-contained HTML page to read a run's answers (and compare two runs).

The page needs no server and no network: the per-task metrics, every sample and small JPEG thumbnails are embedded
once as JSON, and the page's own script filters, searches and paginates them (so 10,000+ samples stay fast: only
one page of rows is ever in the DOM). Model output and dataset text are untrusted: the page builds every cell with
`textContent`, the embedded JSON has `<`, `>` and `&` escaped so no `</script>` inside a prediction can end the
data block, and a Content-Security-Policy lets only the page's own (nonce-tagged) script run and only data: images
load.

Samples records carry no image, so thumbnails come from the task's data, found the way the run found it (its
`--data-root`, else the data path results.json recorded, else the hub), and only when that data's fingerprint is
the one the run recorded: a thumbnail of another dataset's row would be worse than none. When the data cannot be
found the page says so and shows no thumbnails.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import secrets
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tinyllava_bench.errors import UserError
from tinyllava_bench.report.runs import Run, load_run, load_samples, sample_identity, samples_file
from tinyllava_bench.tasks.registry import sample_score_range

DEFAULT_THUMBNAIL_PX = 96
THUMBNAIL_QUALITY = 70
# Where the gold answer sits in a sample's `fields` (tasks/*.yaml `columns.fields`), first present wins.
GOLD_FIELDS = ("answer", "answers", "multiple_choice_answer", "gold")
# What the page filters on as a sample's category (POPE/MME/LLaVA-W, MM-Vet, SQA-I, VQAv2), first present wins.
CATEGORY_FIELDS = ("category", "capability", "subject", "answer_type", "question_type")


@dataclass
class Thumbnails:
    """Thumbnails shared by all samples (POPE asks many questions of one image: each JPEG is stored once)."""

    size: int
    images: list[str] = field(default_factory=list)
    _by_hash: dict[str, int] = field(default_factory=dict)

    def add(self, image: Any) -> int:
        """Store a thumbnail of a PIL image; returns its index in `images`."""
        image = image.copy()
        image.thumbnail((self.size, self.size))
        buffer = io.BytesIO()
        image.convert("RGB").save(buffer, format="JPEG", quality=THUMBNAIL_QUALITY)
        data = buffer.getvalue()
        digest = hashlib.sha1(data).hexdigest()
        if digest not in self._by_hash:
            self._by_hash[digest] = len(self.images)
            self.images.append("data:image/jpeg;base64," + base64.b64encode(data).decode("ascii"))
        return self._by_hash[digest]


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


def _task_images(
    run: Run, task: str, data_root: Path | None
) -> tuple[Callable[[int], Any] | None, str | None]:
    """How to read row i's image of `task` the way the run did, or None and the reason there is none."""
    from tinyllava_bench.tasks import apply_overrides, load_task, load_task_data

    recorded = run.tasks[task].dataset
    config = run.config
    protocol = str(config.get("protocol") or run.tasks[task].protocol or "official")
    if data_root is not None:
        where, kwargs = f"--data-root {data_root}", {"data_root": data_root}
    elif config.get("data_root"):
        where, kwargs = f"the run's --data-root {config['data_root']}", {"data_root": config["data_root"]}
    elif recorded.get("local_path"):
        where, kwargs = f"the run's data {recorded['local_path']}", {"data": recorded["local_path"]}
    else:
        where, kwargs = f"the hub dataset {recorded.get('id') or task}", {}
    try:
        task_config = load_task(task)
        options = config.get("task_options")
        if isinstance(options, Mapping) and options:
            task_config = apply_overrides(task_config, options)
        data = load_task_data(task_config, protocol=protocol, **kwargs)
        fingerprint = data.fingerprint()
    except Exception as exc:  # a missing folder, no network, a moved file: the page is still worth having
        reason = " ".join(str(exc).split())
        return None, f"{task}: no thumbnails: could not read {where} ({reason}); pass --data-root DIR"
    if recorded.get("fingerprint") and fingerprint != recorded["fingerprint"]:
        return None, (
            f"{task}: no thumbnails: {where} is not the data this run read (its fingerprint differs from the "
            f"one in results.json); pass --data-root DIR with the run's data"
        )
    return data.image, None


def _sample_entry(task: str, record: Mapping[str, Any]) -> dict[str, Any]:
    """One sample as the page reads it (short keys: the JSON holds 10,000+ of them)."""
    fields = record.get("fields") if isinstance(record.get("fields"), Mapping) else {}
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
            image_of, note = _task_images(run, task, root)
            if note:
                notes.append(note)
            if image_of is not None:
                n_thumbnailed += _add_thumbnails(task, entries, image_of, thumbs, notes, progress)
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


def _add_thumbnails(
    task: str,
    entries: list[dict[str, Any]],
    image_of: Callable[[int], Any],
    thumbs: Thumbnails,
    notes: list[str],
    progress: bool,
) -> int:
    from tqdm import tqdm

    failed, done = 0, 0
    # one bar per task; tqdm turns itself off when stderr is not a terminal
    for entry in tqdm(entries, desc=f"{task} thumbnails", disable=None if progress else True, leave=False):
        index = entry["i"]
        if not isinstance(index, int):
            failed += 1
            continue
        try:
            entry["th"] = thumbs.add(image_of(index))
            done += 1
        except Exception:  # one unreadable image costs one thumbnail (the run recorded its error, if any)
            failed += 1
    if failed:
        notes.append(f"{task}: {failed} sample(s) have no thumbnail (their image could not be read)")
    return done


def _embedded_json(data: Any) -> str:
    """JSON that cannot end the <script> element holding it: `</script>` or `<!--` in a prediction stays data."""
    from tinyllava_bench.engine.store import json_text

    text = json_text(data, separators=(",", ":"))
    for raw, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026")):
        text = text.replace(raw, escaped)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(view: Mapping[str, Any]) -> str:
    """The self-contained HTML page of a view (build_view's output)."""
    nonce = secrets.token_urlsafe(18)
    policy = (
        f"default-src 'none'; img-src data:; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}'; "
        "base-uri 'none'; form-action 'none'"
    )
    return (
        PAGE.replace("__POLICY__", policy)
        .replace("__NONCE__", nonce)
        .replace("__DATA__", _embedded_json(view))
        .replace("__SCRIPT__", SCRIPT)
    )


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
    from tinyllava_bench.engine.store import write_atomic

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


def run_view(args: argparse.Namespace) -> int:
    path, view = write_view(
        args.run,
        compare=args.compare,
        output=args.output,
        data_root=args.data_root,
        thumbnails=not args.no_thumbnails,
        thumbnail_px=args.thumbnail_size,
    )
    for note in view["notes"]:
        print(f"note: {note}", file=sys.stderr)
    samples = view["samples"]
    summary = f"wrote {path}: {len(samples)} sample(s) of {len(view['tasks'])} task(s), "
    summary += f"{view['n_thumbnailed']} with a thumbnail"
    if args.compare is not None:
        to_here = sum(1 for s in samples if s.get("x") == "a")
        to_other = sum(1 for s in samples if s.get("x") == "b")
        summary += (
            f"; {to_here + to_other} flipped ({to_here} right only here, {to_other} right only in the other)"
        )
    print(summary, file=sys.stderr)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            print(f"no browser could be started; open {path.resolve()} yourself", file=sys.stderr)
    return 0


def add_view_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the `view` verb."""
    view = subparsers.add_parser(
        "view",
        help="a self-contained HTML page to read a run's samples (and compare two runs)",
        description=(
            "Writes one offline HTML page: per-task metrics and every sample (thumbnail, exact prompt, "
            "prediction, gold answer, score, judge error or error), filtered by task, category, right/wrong and "
            "error, searchable, paginated. With --compare, the other run's answer and score sit beside each "
            "sample and a filter shows the samples that flipped. Thumbnails come from the task data the run read "
            "(its --data-root or recorded data path, checked against the recorded fingerprint)."
        ),
    )
    view.add_argument("run", metavar="RUN_FOLDER", help="a run folder written by `eval --output`")
    view.add_argument("--compare", metavar="OTHER_RUN", help="another run folder to show side by side")
    view.add_argument(
        "--output",
        metavar="FILE.html",
        help="where to write the page (default RUN_FOLDER/view.html, or view-vs-OTHER.html with --compare)",
    )
    view.add_argument("--open", action="store_true", help="open the page in the web browser")
    view.add_argument(
        "--data-root",
        metavar="DIR",
        help="where the tasks' data is, when it moved since the run (default: where the run read it)",
    )
    view.add_argument(
        "--no-thumbnails", action="store_true", help="do not read the task data; show no images"
    )
    view.add_argument(
        "--thumbnail-size",
        type=int,
        default=DEFAULT_THUMBNAIL_PX,
        metavar="PX",
        help=f"longest side of a thumbnail in pixels (default {DEFAULT_THUMBNAIL_PX})",
    )
    view.set_defaults(func=run_view)


PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="__POLICY__">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tinyllava-bench view</title>
<style nonce="__NONCE__">
body { font: 14px/1.4 system-ui, sans-serif; margin: 1em 2em; color: #1b1b1b; }
h1 { font-size: 1.4em; margin: 0.2em 0; } h2 { font-size: 1.15em; margin: 1em 0 0.4em; }
.sub { color: #555; }
table { border-collapse: collapse; }
th, td { border: 1px solid #d6d6d6; padding: 4px 6px; vertical-align: top; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
#notes li { color: #8a5300; }
.metric-list { white-space: pre; }
.controls { display: flex; flex-wrap: wrap; gap: 0.6em 1.2em; align-items: center; margin: 0.5em 0; }
.controls input[type=search] { width: 22em; }
.pager { margin: 0.5em 0; display: flex; gap: 0.8em; align-items: center; }
#samples td.text { white-space: pre-wrap; word-break: break-word; max-width: 28em; }
#samples td.text div.clip { max-height: 9em; overflow: auto; }
#samples td.thumb img { display: block; max-width: 96px; max-height: 96px; }
.right { background: #e3f4e1; } .wrong { background: #fbe3e1; } .partial { background: #fff4d6; }
.unscored { background: #eeeeee; }
.err { color: #a40000; } .muted { color: #777; } .small { font-size: 0.85em; }
.flip { font-weight: bold; }
</style>
</head>
<body>
<h1 id="title"></h1>
<div class="sub" id="subtitle"></div>
<ul id="notes"></ul>
<h2>Metrics</h2>
<table id="metrics"></table>
<h2>Samples</h2>
<div class="controls">
<label>Task <select id="task"></select></label>
<label>Category <select id="category"></select></label>
<label>Outcome <select id="outcome">
<option value="">all</option><option value="right">right</option><option value="wrong">wrong</option>
<option value="partial">partial credit</option><option value="unscored">unscored</option>
<option value="notright">not right</option></select></label>
<label>Errors <select id="errors">
<option value="">all</option><option value="any">with an error or judge error</option>
<option value="none">without errors</option></select></label>
<label id="flips-label">Comparison <select id="flips"></select></label>
<input id="search" type="search" placeholder="search prompt, prediction, answer, id, error">
</div>
<div class="pager">
<button id="prev" type="button">&lsaquo; previous</button><span id="page"></span>
<button id="next" type="button">next &rsaquo;</button>
<label>rows per page <select id="pagesize"><option value="25">25</option>
<option value="50" selected>50</option><option value="100">100</option><option value="250">250</option>
</select></label>
<span id="count" data-count="0"></span>
</div>
<table id="samples"><thead id="head"></thead><tbody id="rows"></tbody></table>
<script type="application/json" id="view-data">__DATA__</script>
<script nonce="__NONCE__">__SCRIPT__</script>
</body>
</html>
"""

# The page's script: every value from the run goes into the DOM with textContent (never innerHTML).
SCRIPT = r"""
"use strict";
(function () {
  const DATA = JSON.parse(document.getElementById("view-data").textContent);
  const $ = (id) => document.getElementById(id);
  const runs = DATA.runs, A = runs[0], B = runs.length > 1 ? runs[1] : null;
  const samples = DATA.samples, others = DATA.others, thumbs = DATA.thumbs;

  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    if (cls) node.className = cls;
    return node;
  }
  function option(select, value, text) {
    const node = el("option", text);
    node.value = value;
    select.appendChild(node);
  }
  function fmt(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "number") return Number.isInteger(value) ? String(value) : value.toFixed(2);
    return String(value);
  }

  document.title = "view: " + A.model + (B ? " vs " + B.model : "");
  const named = (run) => run.label + (run.model !== run.label ? " \u2014 " + run.model : "");
  $("title").textContent = named(A) + (B ? "  vs  " + named(B) : "");
  $("subtitle").textContent = [A.path, A.started_at, A.git_commit ? "commit " + A.git_commit : null]
    .filter(Boolean).join(" \u00b7 ") + (B ? "   |   compared with " + B.path : "");
  for (const note of DATA.notes) $("notes").appendChild(el("li", note));

  // metrics: one row per task, its headline in front, the other metrics folded away
  (function metrics() {
    const table = $("metrics"), head = el("tr");
    const columns = ["task", "headline", A.label].concat(B ? [B.label, "difference"] : [])
      .concat(["samples", "errors", "judge failures", "protocol", "scorer", "other metrics"]);
    for (const c of columns) head.appendChild(el("th", c));
    table.appendChild(head);
    const value = (t, name) => (t && name in t.metrics ? t.metrics[name] : null);
    const shown = (t, name) => {
      const v = value(t, name);
      return v === null ? (t && t.invalid_metrics[name]) || "" : v.toFixed(2);
    };
    for (const task of DATA.tasks) {
      const a = A.tasks[task], b = B ? B.tasks[task] || null : null, row = el("tr");
      row.dataset.task = task;
      row.appendChild(el("td", task));
      row.appendChild(el("td", a.headline || ""));
      row.appendChild(el("td", shown(a, a.headline), "num headline"));
      if (B) {
        row.appendChild(el("td", shown(b, a.headline), "num"));
        const va = value(a, a.headline), vb = value(b, a.headline);
        row.appendChild(el("td", va === null || vb === null ? "" : (va >= vb ? "+" : "") + (va - vb).toFixed(2), "num"));
      }
      [a.n_samples, a.n_errors, a.n_judge_failures].forEach((v) => row.appendChild(el("td", fmt(v), "num")));
      row.appendChild(el("td", a.protocol || ""));
      row.appendChild(el("td", a.scorer || ""));
      const rest = Object.keys(a.metrics).concat(Object.keys(a.invalid_metrics)).filter((m) => m !== a.headline);
      const td = el("td", null, "small");
      if (rest.length) {
        const details = el("details"), list = el("div", null, "metric-list");
        details.appendChild(el("summary", rest.length + " more"));
        list.textContent = rest.map((m) => m + ": " + shown(a, m) + (B ? " / " + shown(b, m) : "")).join("\n");
        details.appendChild(list);
        td.appendChild(details);
      }
      row.appendChild(td);
      table.appendChild(row);
    }
  })();

  // filters
  option($("task"), "", "all tasks");
  for (const task of DATA.tasks) option($("task"), task, task);
  if (B) {
    option($("flips"), "", "all");
    option($("flips"), "flipped", "flipped (right in one run only)");
    option($("flips"), "a", "right only in " + A.label);
    option($("flips"), "b", "right only in " + B.label);
    option($("flips"), "changed", "prediction differs");
    option($("flips"), "m", "not in " + B.label);
  } else {
    $("flips-label").hidden = true;
  }
  function fillCategories() {
    const task = $("task").value, select = $("category"), seen = new Set();
    const keep = select.value;
    for (const s of samples) if ((!task || s.t === task) && s.c) seen.add(s.c);
    select.textContent = "";
    option(select, "", "all categories");
    for (const c of Array.from(seen).sort()) option(select, c, c);
    select.value = seen.has(keep) ? keep : "";
  }

  // what the search looks in, lower-cased once
  const haystacks = samples.map((s) => {
    const o = s.b >= 0 && others ? others[s.b] : null;
    return [s.t, s.q, s.p, s.y, s.a, s.g, s.e, s.j, s.c, o ? o.y : "", o ? o.e : "", o ? o.j : ""]
      .join("\n").toLowerCase();
  });

  let filtered = [], page = 0;
  function apply() {
    const task = $("task").value, category = $("category").value, outcome = $("outcome").value;
    const errors = $("errors").value, flips = B ? $("flips").value : "";
    const query = $("search").value.trim().toLowerCase();
    filtered = [];
    samples.forEach((s, n) => {
      if (task && s.t !== task) return;
      if (category && s.c !== category) return;
      if (outcome === "notright" ? s.o === "right" : outcome && s.o !== outcome) return;
      const hasError = Boolean(s.e || s.j);
      if ((errors === "any" && !hasError) || (errors === "none" && hasError)) return;
      if (flips === "flipped" && s.x !== "a" && s.x !== "b") return;
      if ((flips === "a" || flips === "b" || flips === "m") && s.x !== flips) return;
      if (flips === "changed" && (s.b < 0 || others[s.b].y === s.y)) return;
      if (query && !haystacks[n].includes(query)) return;
      filtered.push(n);
    });
    page = 0;
    render();
  }

  // judged tasks (MM-Vet, LLaVA-W): `parsed` is what the judge's review was read as
  const judged = (s) => Boolean(A.tasks[s.t] && A.tasks[s.t].judge_model);
  function cell(row, text, cls) {
    const td = el("td", null, cls);
    const box = el("div", text, "clip");
    td.appendChild(box);
    row.appendChild(td);
    return td;
  }
  function answerCell(row, s, cls) {
    const td = el("td", null, "text " + cls);
    td.appendChild(el("div", s.y === null ? "(no prediction)" : s.y, "clip prediction"));
    if (s.a && s.a !== s.y && !judged(s)) td.appendChild(el("div", "parsed: " + s.a, "small muted parsed"));
    row.appendChild(td);
  }
  function scoreCell(row, s) {
    const td = el("td", null, "num " + s.o);
    td.appendChild(el("div", fmt(s.s), "score"));
    td.appendChild(el("div", s.o, "small muted"));
    row.appendChild(td);
  }
  function problemCell(row, s) {
    const td = el("td", null, "text");
    if (judged(s) && s.a) td.appendChild(el("div", "judge: " + s.a, "judge"));
    if (s.j) td.appendChild(el("div", "judge error: " + s.j, "err"));
    if (s.e) td.appendChild(el("div", "error: " + s.e, "err"));
    row.appendChild(td);
  }

  function render() {
    const size = Number($("pagesize").value), pages = Math.max(1, Math.ceil(filtered.length / size));
    page = Math.min(Math.max(page, 0), pages - 1);
    $("count").textContent = filtered.length + " of " + samples.length + " samples";
    $("count").dataset.count = String(filtered.length);
    $("page").textContent = "page " + (page + 1) + " of " + pages;
    $("prev").disabled = page === 0;
    $("next").disabled = page >= pages - 1;
    const head = $("head"), body = $("rows");
    head.textContent = "";
    body.textContent = "";
    const tr = el("tr");
    const columns = ["task / id", "image", "prompt", "prediction" + (B ? " (" + A.label + ")" : ""), "gold",
      "score"].concat(B ? ["prediction (" + B.label + ")", "score (" + B.label + ")"] : []).concat(["judge / error"]);
    for (const c of columns) tr.appendChild(el("th", c));
    head.appendChild(tr);
    for (const n of filtered.slice(page * size, (page + 1) * size)) {
      const s = samples[n], row = el("tr");
      row.dataset.sample = String(n);
      const id = el("td", null, "small");
      id.appendChild(el("div", s.t));
      id.appendChild(el("div", "#" + s.i + (s.q !== "" && s.q !== String(s.i) ? " \u00b7 " + s.q : ""), "muted"));
      if (s.c) id.appendChild(el("div", s.c, "muted"));
      if (B && (s.x === "a" || s.x === "b")) {
        id.appendChild(el("div", "right only in " + (s.x === "a" ? A.label : B.label), "flip"));
      }
      row.appendChild(id);
      const image = el("td", null, "thumb");
      if (s.th >= 0 && String(thumbs[s.th]).startsWith("data:image/jpeg;base64,")) {
        const img = document.createElement("img");
        img.alt = s.t + " #" + s.i;
        img.src = thumbs[s.th];
        image.appendChild(img);
      }
      row.appendChild(image);
      cell(row, s.p, "text prompt");
      answerCell(row, s, "mine");
      const gold = cell(row, s.g, "text gold");
      const extra = Object.keys(s.f).filter((k) => s.f[k] !== s.g && s.f[k] !== s.c);
      if (extra.length) gold.appendChild(el("div", extra.map((k) => k + ": " + s.f[k]).join("\n"), "small muted"));
      scoreCell(row, s);
      if (B) {
        const o = s.b >= 0 ? others[s.b] : null;
        if (o) {
          answerCell(row, o, "theirs");
          scoreCell(row, o);
        } else {
          row.appendChild(el("td", "(not in " + B.label + ")", "muted"));
          row.appendChild(el("td", ""));
        }
      }
      problemCell(row, s);
      body.appendChild(row);
    }
  }

  $("task").addEventListener("change", () => { fillCategories(); apply(); });
  for (const id of ["category", "outcome", "errors", "flips"]) $(id).addEventListener("change", apply);
  $("search").addEventListener("input", apply);
  $("pagesize").addEventListener("change", () => { page = 0; render(); });
  $("prev").addEventListener("click", () => { page -= 1; render(); });
  $("next").addEventListener("click", () => { page += 1; render(); });
  fillCategories();
  apply();
  document.body.dataset.ready = "1";
})();
"""
