"""The demo's wall time with the machine to itself vs beside a busy CPU-heavy process.

    python benchmarks/demo_under_load.py --out benchmarks/results/demo_under_load.json

Runs `tinyllava-bench demo --quiet` twice into fresh folders: once alone, once beside a bounded burner, a second
Python process that multiplies 256x256 float32 matrices with torch's default thread count (one per core: the
neighbour that made OpenMP threads spin, as another user's training job or test run would). The burner stops
itself after --burn-limit seconds and is stopped as soon as the demo ends. Both demo runs use the demo's default
threads unless --threads is given. The load average at start and end of each run is recorded, since a shared
machine is never quite quiet.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BURNER = """
import sys, time, torch
stop = time.time() + float(sys.argv[1])
a = torch.randn(256, 256)
n = 0
while time.time() < stop:
    a = torch.tanh(a @ a)
    n += 1
print(n, torch.get_num_threads(), flush=True)
"""


def user_env() -> dict[str, str]:
    """The environment without thread settings: the defaults a user gets are what is measured."""
    return {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}


def run_demo(output: Path, seed: int, threads: int | None, quick: bool = False) -> dict:
    command = [sys.executable, "-m", "tinyllava_bench", "demo", "--quiet", "--seed", str(seed)]
    command += ["--quick"] if quick else []
    output.parent.mkdir(parents=True, exist_ok=True)
    command += ["--output", str(output)] + (["--threads", str(threads)] if threads else [])
    load_before = os.getloadavg()
    started = time.time()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=user_env())
    seconds = time.time() - started
    record = json.loads((output / "demo.json").read_text())
    return {
        "seed": seed,
        "command": " ".join(command[1:]),
        "wall_s": round(seconds, 1),
        "demo_seconds": record["seconds"],
        "threads": record["threads"],
        "scores": record["scores"],
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0, help="seed of the quiet run")
    parser.add_argument(
        "--busy-seed",
        type=int,
        default=None,
        help="seed of the run beside the burner (default: --seed; another seed does the same work and doubles "
        "as a seed of the README's across-seed summary)",
    )
    parser.add_argument("--threads", type=int, default=None, help="demo --threads (default: the demo's own)")
    parser.add_argument("--burn-limit", type=float, default=3600.0, help="the burner stops itself after this")
    parser.add_argument("--quick", action="store_true", help="the smoke-test demo (seconds, not minutes)")
    parser.add_argument(
        "--keep", type=Path, default=None, help="keep both output folders here (quiet/, busy/)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/demo_under_load.json"))
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="demo-load-"))
    keep = args.keep or scratch
    busy_seed = args.seed if args.busy_seed is None else args.busy_seed
    try:
        quiet = run_demo(keep / "quiet", args.seed, args.threads, args.quick)
        print(f"quiet: {quiet['wall_s']:.0f} s", flush=True)
        burner = subprocess.Popen(
            [sys.executable, "-c", BURNER, str(args.burn_limit)],
            env=user_env(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            time.sleep(5)  # the burner's threads are up before the demo starts
            busy = run_demo(keep / "busy", busy_seed, args.threads, args.quick)
        finally:
            burner.terminate()
            burner.wait(timeout=30)
        print(
            f"beside the burner: {busy['wall_s']:.0f} s ({busy['wall_s'] / quiet['wall_s']:.2f}x)", flush=True
        )
        result = {
            "cpus": os.cpu_count(),
            "burner": "torch default threads (one per core), 256x256 float32 matmul + tanh in a loop",
            "quiet": quiet,
            "busy": busy,
            "slowdown": round(busy["wall_s"] / quiet["wall_s"], 2),
            **({"same_scores": quiet["scores"] == busy["scores"]} if busy_seed == args.seed else {}),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {args.out}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
