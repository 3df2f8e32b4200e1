"""The README's demo block, written from what a demo run recorded, and checked against a new run.

    python -m tinyllava_bench.demo.readme results/demo            # rewrite README.md's block from this run
    python -m tinyllava_bench.demo.readme results/demo --check    # exit 1 when the block differs beyond tolerance
    python -m tinyllava_bench.demo.readme --seeds S0 S1 S2 --other-rounding S0_AVX2
                                       # summarise demo runs of several seeds, and a seed rerun on other rounding

The block holds (1) what the demo printed (ablation table, the blind scale, regress's paired tests), taken from the
run's `demo.json`, and (2) what held across the seeds measured (`benchmarks/results/demo_seeds.json`): which recipe
wins where, what regress finds significant, how far each number moved with the seed. The seed-to-seed spread is the
check's tolerance: another machine's floating point changes a trained model the way another seed does (a different
trajectory from the first differing rounding on), but keeps the same data and questions. A run given with
`--other-rounding` repeats one of the seeds on another floating-point path (e.g. `ATEN_CPU_CAPABILITY=avx2`: the
kernels of a machine without AVX-512) and measures that: how far it moved each number, whether it bore out every
claim; the tolerance is the larger of its moves and the seeds' spread. The check also holds a new run to the
across-seed claims (a recipe that won in every seed must win in it, a change significant in every seed must be
significant in it).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tinyllava_bench.doc_blocks import block_span
from tinyllava_bench.errors import UserError

BEGIN = "<!-- demo-block:begin: written by `python -m tinyllava_bench.demo.readme`; CI checks it -->"
END = "<!-- demo-block:end -->"
DEFAULT_README = Path("README.md")
DEFAULT_SEEDS = Path("benchmarks") / "results" / "demo_seeds.json"
# the demo's benchmark chart under the block, relative to the README
PLOT = Path("docs") / "images" / "demo_benchmarks.png"
RECORD = "demo.json"
ALPHA = 0.05
# a number of this block: a sign, digits, a decimal part, or a p-value's exponent (4e-05)
NUMBER = re.compile(r"(?<![\w.])[+-]?\d+(?:\.\d+)?(?:e-\d+)?(?![\w])")


def _labels() -> dict[str, str]:
    from tinyllava_bench.tasks.registry import benchmark_columns

    return {b.paper_column: b.label for b in benchmark_columns() if b.paper_column}


def _order(tasks: Sequence[str]) -> list[str]:
    return [task for task in _labels() if task in tasks]


# --- reading demo runs -----------------------------------------------------------------------------------------


def read_record(folder: Path) -> dict[str, Any]:
    """A demo run's demo.json, completed from its run folders where an older demo did not record everything."""
    from tinyllava_bench.demo.reports import regress_summary

    path = Path(folder) / RECORD
    if not path.is_file():
        raise UserError(
            f"{path} does not exist: pass the folder a finished `tinyllava-bench demo` wrote into"
        )
    record = json.loads(path.read_text())
    names = list(record["scores"])
    runs = {name: Path(folder) / "runs" / name for name in names}
    if "regress" not in record:
        record["regress"] = regress_summary(runs[names[0]], runs[names[1]])
    if "table_markdown" not in record:
        record["table_markdown"] = (Path(folder) / "ablation.md").read_text()
    record.setdefault("threads", {"threads": record["settings"].get("threads", 1)})
    return record


def summarize_seeds(folders: Sequence[Path], other_rounding: Sequence[Path] = ()) -> dict[str, Any]:
    """Per seed: scores, blind scores and regress's tests; and what held in every seed. `other_rounding`: runs that
    repeat one of the seeds on another floating-point path (see `rounding_reruns`)."""
    records = [read_record(folder) for folder in folders]
    seeds = [r["settings"]["seed"] for r in records]
    if len(set(seeds)) != len(seeds):
        raise UserError(f"the demo runs share a seed ({seeds}); summarise runs of different seeds")
    base, other = list(records[0]["scores"])[:2]
    tasks = _order(list(records[0]["scores"][base]))
    runs = [
        {
            "seed": r["settings"]["seed"],
            "scores": r["scores"],
            "blind": r["blind"],
            "regress": r["regress"],
            "seconds": r["seconds"].get("total"),
            "threads": r["threads"],
            "provenance": r.get("provenance"),
        }
        for r in records
    ]
    summary = {
        "baseline": base,
        "current": other,
        "tasks": tasks,
        "runs": runs,
        "claims": seed_claims(runs, base, other, tasks),
        "tolerance": seed_tolerance(runs, tasks),
    }
    reruns = rounding_reruns(summary, [read_record(folder) for folder in other_rounding])
    if reruns:
        summary["other_rounding"] = reruns
        for task in tasks:
            summary["tolerance"][task] = max(
                [summary["tolerance"][task], *(r["moves"][task] for r in reruns)]
            )
    return summary


def rounding_path(provenance: dict[str, Any] | None, threads: dict[str, Any]) -> str:
    """The floating-point path a run took: torch's CPU kernels (capability) and threads per process."""
    capability = (provenance or {}).get("cpu_capability") or "unrecorded"
    return f"torch's {capability} kernels, {threads.get('threads', 1)} thread(s) per process"


def rounding_reruns(summary: dict[str, Any], records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each rerun against the seed run it repeats: its path, how far each score moved (rounded up to a tenth), and
    the across-seed claims it did not bear out. Refused: a rerun of no summarised seed, or on the same path."""
    by_seed = {run["seed"]: run for run in summary["runs"]}
    out = []
    for record in records:
        seed = record["settings"]["seed"]
        if seed not in by_seed:
            raise UserError(
                f"an --other-rounding run has seed {seed}, which no --seeds run has; rerun one of those"
            )
        first = by_seed[seed]
        path, seed_path = (
            rounding_path(record.get("provenance"), record["threads"]),
            rounding_path(first["provenance"], first["threads"]),
        )
        if path == seed_path:
            raise UserError(
                f"the --other-rounding run of seed {seed} took the seed run's own floating-point path ({path}); "
                "rerun it under ATEN_CPU_CAPABILITY=avx2 (or with another `tinyllava-bench demo --threads`)"
            )
        moves = seed_tolerance([first, {"scores": record["scores"]}], summary["tasks"])
        out.append(
            {
                "seed": seed,
                "path": path,
                "seed_path": seed_path,
                "scores": record["scores"],
                "regress": record["regress"],
                "moves": moves,
                "contradicted": contradicted_claims(record, summary),
                "provenance": record.get("provenance"),
            }
        )
    return out


def seed_claims(runs: list[dict[str, Any]], base: str, other: str, tasks: list[str]) -> dict[str, list[str]]:
    """What every seed agrees on: where the second recipe wins or loses, what regress finds, the blind margins."""

    def delta(run: dict[str, Any], task: str) -> float:
        return run["scores"][other][task] - run["scores"][base][task]

    def significant(run: dict[str, Any], task: str) -> bool:
        return bool(run["regress"][task]["significant"])

    def above_blind(run: dict[str, Any], task: str) -> bool:
        return all(run["scores"][name][task] > run["blind"][task] for name in (base, other))

    return {
        "current_wins": [t for t in tasks if all(delta(r, t) > 0 for r in runs)],
        "baseline_wins": [t for t in tasks if all(delta(r, t) < 0 for r in runs)],
        "significant_always": [t for t in tasks if all(significant(r, t) for r in runs)],
        "significant_never": [t for t in tasks if not any(significant(r, t) for r in runs)],
        "above_blind_always": [t for t in tasks if all(above_blind(r, t) for r in runs)],
    }


def seed_tolerance(runs: list[dict[str, Any]], tasks: list[str]) -> dict[str, float]:
    """Per task: the largest change of any model's score from the first run's, rounded up to a tenth."""
    first = runs[0]
    out = {}
    for task in tasks:
        moves = [
            abs(run["scores"][name][task] - first["scores"][name][task])
            for run in runs[1:]
            for name in first["scores"]
        ]
        out[task] = math.ceil(max(moves or [0.0]) * 10 - 1e-9) / 10
    return out


# --- the block --------------------------------------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {round(seconds % 60):02d} s"


def _names(tasks: Sequence[str]) -> str:
    labels = _labels()
    return ", ".join(labels.get(t, t) for t in tasks) or "none"


def render_block(record: dict[str, Any], seeds: dict[str, Any]) -> str:
    """The README's block: what this run printed, then what held across the seeds (with the tolerance)."""
    from tinyllava_bench.demo.result import blind_line, regress_line

    base, other = list(record["scores"])[:2]
    settings = record["settings"]
    threads = record["threads"].get("threads", settings.get("threads", 1))
    machines = sorted(
        {
            f"torch {p.get('torch')}, {p.get('cpus')} CPUs ({p.get('machine')})"
            for p in (r.get("provenance") for r in seeds["runs"])
            if p
        }
    )
    printed = "\n".join(
        [
            record["table_markdown"].rstrip("\n"),
            f"- {blind_line(record['blind'])}",
            f"- {regress_line(record['regress'], base, other)}",
        ]
    )
    labels = _labels()
    claims, tolerance, runs = seeds["claims"], seeds["tolerance"], seeds["runs"]
    seed_list = ", ".join(str(r["seed"]) for r in runs)
    tasks = seeds["tasks"]
    deltas = "; ".join(
        f"{labels[t]} " + " / ".join(f"{r['scores'][other][t] - r['scores'][base][t]:+.1f}" for r in runs)
        for t in tasks
    )
    sometimes = [
        f"{labels[t]} ({sum(r['regress'][t]['significant'] for r in runs)} of {len(runs)})"
        for t in tasks
        if t not in claims["significant_always"] and t not in claims["significant_never"]
    ]
    flips = [t for t in tasks if t not in claims["current_wins"] and t not in claims["baseline_wins"]]
    margin = {
        t: min(min(r["scores"][n][t] for n in (base, other)) - r["blind"][t] for r in runs)
        for t in claims["above_blind_always"]
    }
    lines = [
        BEGIN,
        f"What it printed (seed {settings['seed']}, {threads} torch thread(s) per process; "
        f"{_minutes(record['seconds']['total'])}):",
        "",
        "```",
        printed,
        "```",
        "",
        f"Across seeds {seed_list} (one full demo each, `{DEFAULT_SEEDS.as_posix()}`; "
        f"{'; '.join(machines) or 'machine not recorded'}), {other} minus {base} was "
        f"{deltas}. So in every seed {other} wins on {_names(claims['current_wins'])} and {base} wins on "
        f"{_names(claims['baseline_wins'])}; the sign of {_names(flips)} varies with the seed. `regress` finds "
        f"{_names(claims['significant_always'])} significant in every seed, "
        f"{', '.join(sometimes) or 'nothing'} in some seeds only, and never {_names(claims['significant_never'])}. "
        f"Both models beat the blind answerer in every seed on "
        + (
            ", ".join(f"{labels[t]} (by {margin[t]:.1f} or more)" for t in claims["above_blind_always"])
            or "no benchmark"
        )
        + f"; on {_names([t for t in tasks if t not in claims['above_blind_always']])} a model sat at or below "
        "it in some seed.",
        "",
        "What varies with the seed is the size of every number: each score moved by up to "
        + ", ".join(f"{labels[t]} ±{tolerance[t]:.1f}" for t in tasks)
        + " from seed "
        + f"{runs[0]['seed']}'s. That spread is the tolerance of the check: `.ci/run` runs the demo and "
        "`python -m tinyllava_bench.demo.readme results/demo --check` fails when a number of this block differs "
        "from the new run's by more (a change between two numbers: twice that), when any word differs, or when "
        "the new run contradicts a claim above that held in every seed. Why a seed's spread: another machine's "
        "floating point sends training down another path from its first differing rounding on, as another seed "
        "does. "
        + _rounding_sentence(seeds)
        + " On one machine and torch build the demo repeats itself exactly: a second run of seed 0 printed the "
        "same numbers.",
        END,
    ]
    return "\n".join(lines)


def _rounding_sentence(seeds: dict[str, Any]) -> str:
    reruns = seeds.get("other_rounding") or []
    if not reruns:
        return "That another machine moves the numbers less than a new seed is reasoning here, not a measurement."
    labels = _labels()
    parts = []
    for rerun in reruns:
        verdict = (
            "it bore out every claim above"
            if not rerun["contradicted"]
            else "it contradicted: " + "; ".join(rerun["contradicted"])
        )
        parts.append(
            f"Measured: seed {rerun['seed']} again on another floating-point path ({rerun['path']}; the seed's run "
            f"above: {rerun['seed_path']}) moved each score by up to "
            + ", ".join(f"{labels[t]} ±{rerun['moves'][t]:.1f}" for t in seeds["tasks"])
            + f", and {verdict}."
        )
    return " ".join(parts)


# --- comparing a block with a new run ---------------------------------------------------------------------------


def _tokens(text: str) -> tuple[list[str], list[str]]:
    """The text between numbers (the words) and the numbers, in order."""
    words = NUMBER.split(text)
    return words, NUMBER.findall(text)


def _kinds(text: str, tolerance: dict[str, float]) -> list[tuple[str, float | None]]:
    """Per number of a block: what it is and how far it may move (None: any amount, 0: not at all).

    Table cells take their column's tolerance, the blind and regress lines the tolerance of the benchmark named
    before the number (a change, signed, twice that); p-values and sample counts of the tests are not compared
    (the claims are: `contradicted_claims`), nor the run's time and machine. The across-seed sentences come from
    the seeds file and must be equal."""
    by_label = {label: task for task, label in _labels().items() if task in tolerance}
    label_pattern = re.compile("|".join(sorted(map(re.escape, by_label), key=len, reverse=True)))

    def allowed(label: str | None, number: str) -> float | None:
        if label not in by_label:
            return 0.0
        return tolerance[by_label[label]] * (2 if number.startswith(("+", "-")) else 1)

    kinds: list[tuple[str, float | None]] = []
    header: list[str] = []
    for line in text.split("\n"):
        numbers = list(NUMBER.finditer(line))
        if line.startswith("| Model"):
            header = [cell.strip() for cell in line.strip("|").split("|")]
        if line.startswith("|") and header and len(line.strip("|").split("|")) == len(header):
            for label, cell in zip(header, line.strip("|").split("|")):
                kinds += [(label, allowed(label, m.group())) for m in NUMBER.finditer(cell)]
        elif line.startswith(("- Without the picture", "- regress")):
            for match in numbers:
                before = line[: match.start()]
                if re.search(r"(p = |\(|lost / )$", before):
                    kinds.append(("test detail", None))
                    continue
                found = list(label_pattern.finditer(before))
                named = found[-1].group() if found else None
                kinds.append((named or "text", allowed(named, match.group())))
        elif line.startswith("What it printed"):
            kinds += [("the run's setting or time", None)] * len(numbers)
        else:
            kinds += [("text", 0.0)] * len(numbers)
    return kinds


def compare_blocks(old: str, new: str, tolerance: dict[str, float]) -> list[str]:
    """Where README's block (`old`) differs from the block the new run gives (`new`) beyond tolerance."""
    old_words, old_numbers = _tokens(old)
    new_words, new_numbers = _tokens(new)
    if old_words != new_words or len(old_numbers) != len(new_numbers):
        import difflib

        diff = difflib.unified_diff(
            old.split("\n"), new.split("\n"), "README.md", "this run", lineterm="", n=0
        )
        return ["the words differ:", *list(diff)[2:]]
    problems = []
    for (kind, tol), was, now in zip(_kinds(new, tolerance), old_numbers, new_numbers):
        if tol is None:
            continue
        if abs(float(was) - float(now)) > tol + 1e-9:
            problems.append(f"{kind}: README {was}, this run {now} (tolerance ±{tol:.1f})")
    return problems


def contradicted_claims(record: dict[str, Any], seeds: dict[str, Any]) -> list[str]:
    """The across-seed claims this run does not bear out."""
    base, other = seeds["baseline"], seeds["current"]
    scores, regress, blind = record["scores"], record["regress"], record["blind"]
    claims = seeds["claims"]
    out = []
    for task in claims["current_wins"]:
        if not scores[other][task] > scores[base][task]:
            out.append(f"{task}: {other} won in every seed, not in this run")
    for task in claims["baseline_wins"]:
        if not scores[other][task] < scores[base][task]:
            out.append(f"{task}: {base} won in every seed, not in this run")
    for task in claims["significant_always"]:
        if not regress[task]["significant"]:
            out.append(f"{task}: significant in every seed, not in this run (p = {regress[task]['p_value']})")
    for task in claims["significant_never"]:
        if regress[task]["significant"]:
            out.append(f"{task}: significant in no seed, but in this run (p = {regress[task]['p_value']})")
    for task in claims["above_blind_always"]:
        if not all(scores[name][task] > blind[task] for name in (base, other)):
            out.append(f"{task}: both models beat the blind answerer in every seed, not in this run")
    return out


def readme_block(readme_text: str, readme: Path) -> tuple[int, int]:
    """The demo block's span in the README, its marker lines included (render_block writes them too)."""
    start, stop = block_span(readme_text, BEGIN, END, str(readme))
    return start - len(BEGIN), stop + len(END)


def check(folder: Path, readme: Path, seeds_path: Path) -> list[str]:
    """Everything in README's block that this demo run does not reproduce (empty: the block holds)."""
    seeds = _read_seeds(seeds_path)
    record = read_record(folder)
    text = readme.read_text(encoding="utf-8")
    start, end = readme_block(text, readme)
    new = render_block(record, seeds)
    return compare_blocks(text[start:end], new, seeds["tolerance"]) + contradicted_claims(record, seeds)


def update(folder: Path, readme: Path, seeds_path: Path) -> None:
    """The README's block from the run, and the picture below it (the run's benchmark chart, which carries the
    numbers it was drawn from: `report.plots.read_plotted_values`)."""
    import shutil

    seeds = _read_seeds(seeds_path)
    text = readme.read_text(encoding="utf-8")
    start, end = readme_block(text, readme)
    readme.write_text(text[:start] + render_block(read_record(folder), seeds) + text[end:], encoding="utf-8")
    picture = readme.parent / PLOT
    picture.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(Path(folder) / "plots" / "benchmarks.png", picture)


def _read_seeds(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(
            f"{path} does not exist: summarise demo runs of three seeds into it first "
            "(`python -m tinyllava_bench.demo.readme -h` says how)"
        )
    return json.loads(path.read_text())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tinyllava_bench.demo.readme", description=__doc__.split("\n")[0]
    )
    parser.add_argument("demo", nargs="?", type=Path, help="a finished demo's output folder")
    parser.add_argument(
        "--check", action="store_true", help="compare README's block with the run; exit 1 if off"
    )
    parser.add_argument("--seeds", nargs="+", type=Path, metavar="DIR", help="demo runs of different seeds")
    parser.add_argument(
        "--other-rounding",
        nargs="+",
        type=Path,
        default=[],
        metavar="DIR",
        help="with --seeds: demo runs that repeat one of those seeds on another floating-point path "
        "(e.g. ATEN_CPU_CAPABILITY=avx2 tinyllava-bench demo --seed 0 ...)",
    )
    parser.add_argument("--readme", type=Path, default=DEFAULT_README)
    parser.add_argument("--seeds-file", type=Path, default=DEFAULT_SEEDS)
    parser.set_defaults(func=main)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.other_rounding and not args.seeds:
            parser.error("--other-rounding needs the --seeds runs it repeats one of")
        if args.seeds:
            summary = summarize_seeds(args.seeds, args.other_rounding)
            args.seeds_file.parent.mkdir(parents=True, exist_ok=True)
            args.seeds_file.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n")
            print(f"wrote {args.seeds_file}")
        if args.demo is None:
            if not args.seeds:
                parser.error("pass a demo output folder, or --seeds")
            return 0
        if args.check:
            problems = check(args.demo, args.readme, args.seeds_file)
            if problems:
                print(f"{args.readme}'s demo block does not hold for {args.demo}:", file=sys.stderr)
                for problem in problems:
                    print(f"  {problem}", file=sys.stderr)
                return 1
            print(f"{args.readme}'s demo block holds for {args.demo} (within the stated tolerance)")
            return 0
        update(args.demo, args.readme, args.seeds_file)
        print(f"rewrote the demo block of {args.readme} and {PLOT} from {args.demo}")
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code


if __name__ == "__main__":
    raise SystemExit(main())
