"""Shared pieces of the benchmark scripts: the random models' sizes (built by tinyllava_bench.testing.models),
machine facts, measured subprocesses, tables and result files. Imports only the standard library (and the kit's
torch-free sizes) at module level."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tinyllava_bench.testing.sizes import ModelSpec

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPO_ROOT = Path(__file__).resolve().parent.parent


# A CPU-sized model with the real SigLIP token count (729), so prefill is dominated by image tokens as in the paper.
MID = ModelSpec(
    name="mid-phi512x3-siglip256x2-729tok",
    hidden=512,
    layers=3,
    heads=8,
    intermediate=2048,
    vision_hidden=256,
    vision_layers=2,
    vision_heads=4,
    vision_intermediate=1024,
    image_size=384,
    partial_rotary_factor=0.5,  # head dim 64: 32 rotary dims
)
# TinyLLaVA-3.1B's shapes: Phi-2 and SigLIP-so400m-patch14-384 (hidden_states[-2]: 26 of 27 layers run).
PHI2_SIGLIP = ModelSpec(
    name="phi2-2.7b-siglip-so400m",
    hidden=2560,
    layers=32,
    heads=32,
    intermediate=10240,
    vision_hidden=1152,
    vision_layers=26,
    vision_heads=16,
    vision_intermediate=4304,
    image_size=384,
    vocab=51200,
)


def parameter_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


# ----- the machine ---------------------------------------------------------------------------------------------


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def machine_info() -> dict[str, Any]:
    """CPU model and count, load, versions: what a reader needs to compare numbers across machines."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average_1_5_15": load_average(),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        fields = dict(line.split(":", 1) for line in lscpu.splitlines() if ":" in line)
        fields = {k.strip(): v.strip() for k, v in fields.items()}
        info["cpu_model"] = fields.get("Model name")
        info["lscpu_cpus"] = fields.get("CPU(s)")
        info["hypervisor"] = fields.get("Hypervisor vendor")
        info["lscpu_head"] = lscpu.splitlines()[:10]
    except (OSError, subprocess.SubprocessError):
        pass
    for package in ("torch", "transformers", "datasets"):
        try:
            info[package] = __import__(package).__version__
        except ImportError:
            info[package] = None
    return info


# ----- measured subprocesses ------------------------------------------------------------------------------------


def run_measured(
    command: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> dict:
    """Run `command`, output to `log`; wall and CPU seconds, and the peak resident memory of its largest process.

    CPU seconds and memory come from wait4: the child's own and its reaped children's (DataLoader workers).
    """
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as handle:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        # wait4 gives this child's own rusage (its waited-for children included); Popen.wait would discard it
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall_s": round(wall, 3),
        "cpu_s": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "returncode": process.returncode,
        "log": str(log),
    }


def thread_env(threads: int) -> dict[str, str]:
    """The environment with OpenMP/MKL pinned to `threads` (0: left to torch), so every process computes alike."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1"}
    if threads > 0:
        env.update({"OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)})
    return env


def peak_rss_mib() -> float:
    """This process's peak resident memory. VmHWM where Linux has it: getrusage's ru_maxrss carries the parent's
    peak across fork and exec, so every worker of a big orchestrator would report the orchestrator's size."""
    import resource

    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ----- output ---------------------------------------------------------------------------------------------------


def format_table(rows: list[dict[str, Any]], columns: list[tuple[str, str]]) -> str:
    """A plain-text table of `rows` with (key, header) columns; floats get 3 significant decimals."""

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
        return str(value)

    body = [[cell(row.get(key)) for key, _ in columns] for row in rows]
    widths = [max(len(header), *(len(r[i]) for r in body)) for i, (_, header) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in body]
    return "\n".join(lines)


def write_result(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")
    return path


def python_for_lmms() -> str:
    """The interpreter that has lmms-eval: $LMMS_PYTHON, else /work/lmms-venv's, else this one."""
    candidate = os.environ.get("LMMS_PYTHON") or "/work/lmms-venv/bin/python"
    return candidate if Path(candidate).exists() else sys.executable


# ----- worker processes (one measured runner each) ---------------------------------------------------------------


# Modules every runner needs sooner or later; imported before any timer starts so that in-process times compare
# work, not which runner happens to import transformers' processing stack first (that import alone takes seconds).
PREIMPORTS = (
    "torch",
    "datasets",
    "transformers.processing_utils",
    "transformers.models.siglip.modeling_siglip",
    "transformers.models.phi.modeling_phi",
    "transformers.models.llava.modeling_llava",
    "transformers.models.siglip.image_processing_pil_siglip",
    "transformers.models.llava.image_processing_pil_llava",
    "transformers.generation.utils",
    "tinyllava_bench.models.loading",
    "tinyllava_bench.tasks.data",
)


def worker_arguments(description: str) -> Any:
    """The command line every eval worker takes (the orchestrator, eval_throughput.py, passes them all)."""
    import argparse

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--result", required=True, help="where the worker's JSON result goes")
    parser.add_argument("--output", default=None, help="the runner's output folder (ours, lmms)")
    parser.add_argument("--rows", type=int, required=True)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-new-tokens", type=int, default=4)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--num-workers", type=int, default=2, help="the engine's DataLoader workers (ours)")
    parser.add_argument("--lmms-model", default=None, help="tinyllava_bench or llava_hf (lmms)")
    parser.add_argument("--task-dir", default=None, help="the local lmms-eval task folder (lmms)")
    return parser


def run_worker(work: Any, description: str, argv: list[str] | None = None) -> int:
    """Parse the worker command line, import PREIMPORTS, pin threads, run `work(args)` and write its result (with
    the imports' time, the thread count and peak memory) to --result."""
    import contextlib
    import importlib

    args = worker_arguments(description).parse_args(argv)
    started = time.perf_counter()
    for name in PREIMPORTS:
        with contextlib.suppress(ImportError):  # a module another transformers version names differently
            importlib.import_module(name)
    import torch

    imports_s = time.perf_counter() - started
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    result = work(args)
    result["phases"]["preimports"] = imports_s
    result["threads"] = torch.get_num_threads()
    result["peak_rss_mib_self"] = peak_rss_mib()
    if args.device.startswith("cuda"):
        result["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    Path(args.result).write_text(json.dumps(result, default=str))
    return 0
