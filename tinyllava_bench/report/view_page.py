"""The `view` page: one self-contained HTML file (template, style and script) with the view data embedded as JSON.

The page needs no server and no network, and its own script filters, searches and paginates the samples (so 10,000+
samples stay fast: only one page of rows is ever in the DOM). Model output and dataset text are untrusted: the page
builds every cell with `textContent`, the embedded JSON has `<`, `>` and `&` escaped so no `</script>` inside a
prediction can end the data block, and a Content-Security-Policy lets only the page's own (nonce-tagged) script run
and only data: images load.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any


def embedded_json(data: Any) -> str:
    """JSON that cannot end the <script> element holding it: `</script>` or `<!--` in a prediction stays data."""
    from tinyllava_bench.json_files import json_text

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
        .replace("__DATA__", embedded_json(view))
        .replace("__SCRIPT__", SCRIPT)
    )


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
