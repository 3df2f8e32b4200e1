"""Samples/s and model FLOP utilisation of batched short-answer generation at TinyLLaVA-3.1B's real shapes, on a GPU.

A random model (nothing downloaded; configs in code: Phi-2 hidden 2560, 32 layers, 32 heads, intermediate 10240,
vocab 51200; SigLIP-so400m hidden 1152, 26 of 27 layers run, 16 heads, intermediate 4304, 384 px / patch 14 = 729
tokens; mlp2x_gelu connector) in bf16 answers synthetic requests through `TinyLlava.generate_ids`, the call the eval
engine makes per batch, with prompts of GQA's length (system prompt + question + short-answer suffix: 50-70 text
tokens) and `max_new_tokens` short-answer tokens (EOS's output row is zeroed so every answer has exactly that many).
Pixel tensors are prepared beforehand on the CPU, as the engine's DataLoader hands them over.

FLOPs per sample (multiply-add = 2 FLOPs; useful work only: no padding, causal attention counted as half):
  vision    2*T_v*(3*p^2)*d_v + L_v*[2*T_v*(4*d_v^2 + 2*d_v*i_v) + 4*T_v^2*d_v]
  connector 2*T_v*(d_v*d + d^2)
  prefill   L*[2*T*(4*d^2 + 2*d*i) + 2*T^2*d] + 2*d*V           (T = text + T_v tokens; logits of the last only)
  decode    per new token after the first, context c: L*[2*(4*d^2 + 2*d*i) + 4*c*d] + 2*d*V
MFU = FLOPs / (seconds * peak); peak = dense bf16 tensor-core TFLOP/s of the GPU (H100 SXM / H200: 989.4).

    python benchmarks/gpu_realistic.py                       # on a GPU machine
    python benchmarks/gpu_realistic.py --tiny                # CPU smoke check of the script (seconds); never in tests
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

if (
    str(common.REPO_ROOT) not in sys.path
):  # run from a bare checkout (a GPU box without the package installed)
    sys.path.append(str(common.REPO_ROOT))

# Dense bf16 tensor-core peaks (no sparsity), TFLOP/s, by a substring of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "H100": 989.4,  # SXM (the "H100 80GB HBM3" name)
    "H200": 989.4,
    "GH200": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
    "A10G": 70.0,
}

TINY_SPEC = common.ModelSpec(
    name="smoke-tiny",
    hidden=64,
    layers=2,
    heads=4,
    intermediate=128,
    vision_hidden=32,
    vision_layers=2,
    vision_heads=2,
    vision_intermediate=64,
    image_size=56,
    vocab=512,
    partial_rotary_factor=0.5,
)


def peak_tflops(device_name: str) -> float | None:
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):  # "H100 PCIe" before "H100"
        if key in device_name:
            return PEAK_BF16_TFLOPS[key]
    return None


# ===== FLOPs ===================================================================================================


def vision_flops(spec: common.ModelSpec) -> float:
    t, d, i = spec.image_tokens, spec.vision_hidden, spec.vision_intermediate
    patch_embed = 2 * t * 3 * spec.patch_size**2 * d
    per_layer = 2 * t * (4 * d * d + 2 * d * i) + 4 * t * t * d
    return patch_embed + spec.vision_layers * per_layer


def connector_flops(spec: common.ModelSpec) -> float:
    return 2 * spec.image_tokens * (spec.vision_hidden * spec.hidden + spec.hidden**2)


def prefill_flops(spec: common.ModelSpec, tokens: int, vocab: int) -> float:
    d, i = spec.hidden, spec.intermediate
    return spec.layers * (2 * tokens * (4 * d * d + 2 * d * i) + 2 * tokens * tokens * d) + 2 * d * vocab


def decode_flops(spec: common.ModelSpec, prompt_tokens: int, new_tokens: int, vocab: int) -> float:
    d, i = spec.hidden, spec.intermediate
    total = 0.0
    for step in range(1, new_tokens):  # the first new token comes out of prefill
        context = prompt_tokens + step
        total += spec.layers * (2 * (4 * d * d + 2 * d * i) + 4 * context * d) + 2 * d * vocab
    return total


def sample_flops(spec: common.ModelSpec, text_tokens: int, new_tokens: int, vocab: int) -> dict[str, float]:
    prompt = text_tokens + spec.image_tokens
    parts = {
        "vision": vision_flops(spec),
        "connector": connector_flops(spec),
        "prefill": prefill_flops(spec, prompt, vocab),
        "decode": decode_flops(spec, prompt, new_tokens, vocab),
    }
    parts["total"] = sum(parts.values())
    return parts


# ===== requests ================================================================================================


def synthetic_requests(n: int, model: Any, seed: int) -> list[tuple[list[int], Any]]:
    """(prompt ids with one image placeholder, pixel tensor) pairs; 50-70 text tokens as GQA prompts have."""
    import torch

    from tinyllava_bench.models.tokenization import IMAGE_TOKEN_INDEX

    rng = random.Random(seed)
    generator = torch.Generator().manual_seed(seed)
    text_vocab = len(model.tokenizer)  # ids the tokenizer knows; the embedding is larger (Phi-2's 51200)
    side = model.vision_tower.config.image_size
    requests = []
    for _ in range(n):
        length = rng.randint(50, 70)
        ids = [rng.randrange(1, text_vocab) for _ in range(length)]
        ids.insert(min(38, length), IMAGE_TOKEN_INDEX)  # after "... USER: " as the template puts it
        pixels = torch.randn(3, side, side, generator=generator).clamp_(-1, 1)
        requests.append((ids, pixels))
    return requests


def synchronize(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_batches(
    model: Any, requests: list[tuple[list[int], Any]], batch_size: int, new_tokens: int, device: str
) -> tuple[float, list[list[int]]]:
    """Seconds for all requests in batches (sorted longest first, as the engine does) and the generated ids."""
    order = sorted(range(len(requests)), key=lambda k: -len(requests[k][0]))
    outputs: list[list[int]] = [[] for _ in requests]
    synchronize(device)
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        ids = model.generate_ids(
            [requests[k][1] for k in batch],
            [""] * len(batch),
            max_new_tokens=new_tokens,
            prompt_ids=[requests[k][0] for k in batch],
        )
        for k, generated in zip(batch, ids):
            outputs[k] = generated
    synchronize(device)
    return time.perf_counter() - started, outputs


def _seconds(function: Any, device: str, repeats: int = 2) -> float:
    """Mean seconds of `function()` after one untimed call."""
    function()
    synchronize(device)
    started = time.perf_counter()
    for _ in range(repeats):
        function()
    synchronize(device)
    return (time.perf_counter() - started) / repeats


def phase_times(model: Any, requests: list, batch_size: int, device: str) -> dict[str, float]:
    """One warm batch split into vision+connector, prefill (generate 1 token) and one decode step (from 16)."""
    import torch

    batch = requests[:batch_size]
    pixels, ids = [p for _, p in batch], [i for i, _ in batch]

    def generate(tokens: int) -> Any:
        return model.generate_ids(pixels, [""] * len(batch), max_new_tokens=tokens, prompt_ids=ids)

    with torch.inference_mode():
        encode = _seconds(lambda: model.encode_images(torch.stack(pixels)), device)
        one = _seconds(lambda: generate(1), device)
        sixteen = _seconds(lambda: generate(16), device)
    return {
        "batch_size": batch_size,
        "vision_and_connector_s": encode,
        "prefill_s": max(
            one - encode, 0.0
        ),  # splice, LLM prefill and generate's own work for the first token
        "decode_step_s": (sixteen - one) / 15,
    }


def prefill_diagnostics(model: Any, requests: list, batch_size: int, device: str) -> dict[str, float]:
    """The LLM's prefill forward on one batch as the engine pads it, without the padding mask (what equal
    lengths or packing give), and with Phi's composed `gelu_new` swapped for one fused tanh-GELU kernel."""
    import torch

    batch = requests[:batch_size]
    language_model = model.language_model
    with torch.inference_mode():
        features = model.encode_images(torch.stack([p for _, p in batch]))
        inputs = model.splice([i for i, _ in batch], features)
        common_args = {
            "inputs_embeds": inputs["inputs_embeds"],
            "position_ids": inputs["position_ids"],
            "use_cache": True,
            "logits_to_keep": 1,
        }
        result = {
            "batch_size": batch_size,
            "padded_tokens": int(inputs["attention_mask"].numel()),
            "real_tokens": int(inputs["attention_mask"].sum()),
            "llm_prefill_s": _seconds(
                lambda: language_model(attention_mask=inputs["attention_mask"], **common_args), device
            ),
            "llm_prefill_no_mask_s": _seconds(lambda: language_model(**common_args), device),
        }
        layers = language_model.model.layers
        mlps = [layer.mlp for layer in layers if hasattr(layer.mlp, "activation_fn")]
        if mlps:
            original = [mlp.activation_fn for mlp in mlps]
            result["activation"] = type(original[0]).__name__
            for mlp in mlps:
                mlp.activation_fn = torch.nn.GELU(approximate="tanh")
            try:
                result["llm_prefill_fused_gelu_s"] = _seconds(
                    lambda: language_model(attention_mask=inputs["attention_mask"], **common_args), device
                )
            finally:
                for mlp, activation in zip(mlps, original):
                    mlp.activation_fn = activation
    return result


def attention_shape_diagnostics(
    model: Any, requests: list, batch_size: int, new_tokens: int, device: str
) -> dict:
    """Seconds for the same requests on shapes never seen before: first with cuDNN attention excluded, then with
    torch's default SDPA backends (cuDNN's first, on Hopper) while cuDNN has no plan for them, then again warm.
    Run before anything else touches these shapes."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    no_cudnn = [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    with sdpa_kernel(no_cudnn):
        first, _ = run_batches(model, requests, batch_size, new_tokens, device)
    default_cold, _ = run_batches(model, requests, batch_size, new_tokens, device)
    default_warm, _ = run_batches(model, requests, batch_size, new_tokens, device)
    return {
        "batch_size": batch_size,
        "requests": len(requests),
        "distinct_prompt_lengths": len({len(i) for i, _ in requests}),
        "no_cudnn_first_time_s": first,
        "default_first_time_for_cudnn_s": default_cold,
        "default_warm_s": default_warm,
    }


# ===== main ====================================================================================================


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tiny", action="store_true", help="CPU smoke check: a tiny model, float32, seconds")
    parser.add_argument("--device", default=None, help="default: cuda (cpu with --tiny)")
    parser.add_argument("--batch-sizes", default=None, help="default 1,8,32,64 (1,4 with --tiny)")
    parser.add_argument(
        "--samples", type=int, default=None, help="requests per batch size (default 4 batches)"
    )
    parser.add_argument("--max-new-tokens", type=int, default=4, help="short answer: a few tokens")
    parser.add_argument("--peak-tflops", type=float, default=None, help="override the GPU's dense bf16 peak")
    parser.add_argument("--no-diagnostics", action="store_true", help="skip the phase and prefill breakdowns")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from tinyllava_bench.testing.models import build_random_model

    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        print(
            "no GPU visible: run this on a GPU machine, or use --tiny for a CPU smoke check", file=sys.stderr
        )
        return 2
    on_gpu = device.startswith("cuda")
    spec = TINY_SPEC if args.tiny else common.PHI2_SIGLIP
    dtype = torch.float32 if args.tiny else torch.bfloat16
    batch_sizes = [int(b) for b in (args.batch_sizes or ("1,4" if args.tiny else "1,8,32,64")).split(",")]
    device_name = torch.cuda.get_device_name() if on_gpu else "cpu"
    peak = args.peak_tflops or (peak_tflops(device_name) if on_gpu else None)
    default_out = "gpu_realistic_tiny.json" if args.tiny else "gpu_realistic.json"
    out = Path(args.out) if args.out else common.RESULTS_DIR / default_out

    def mfu(flops: float, seconds: float) -> float | None:
        return round(100 * flops / seconds / (peak * 1e12), 2) if peak and seconds > 0 else None

    started = time.perf_counter()
    model = build_random_model(spec, device=device, dtype=dtype, init_std=None, with_preprocessor=False)
    with torch.no_grad():  # exactly max_new_tokens per answer, for every batch size
        model.language_model.get_output_embeddings().weight[model.tokenizer.eos_token_id].zero_()
    synchronize(device)
    build_s = time.perf_counter() - started
    vocab = model.language_model.config.vocab_size
    params = {
        "vision": common.parameter_count(model.vision_tower),
        "connector": common.parameter_count(model.connector),
        "llm": common.parameter_count(model.language_model),
    }
    print(
        f"{spec.name}: {sum(params.values()) / 1e9:.3f}B parameters on {device_name}, built in {build_s:.1f}s"
    )

    n_max = args.samples or max(16, 4 * max(batch_sizes))
    requests = synthetic_requests(n_max, model, args.seed)
    diagnostics: dict[str, Any] = {}
    if not args.no_diagnostics:
        # first of all, while every prompt length is new: what a never-seen shape costs
        small = min(8, max(batch_sizes))
        diagnostics["attention_new_shapes"] = attention_shape_diagnostics(
            model, requests[: 8 * small], small, args.max_new_tokens, device
        )
        print(f"  new-shape cost: {diagnostics['attention_new_shapes']}", flush=True)

    rows, reference = [], None
    for batch_size in batch_sizes:
        n = args.samples or max(16, 4 * batch_size)
        subset = requests[:n]
        cold, _ = run_batches(model, subset, batch_size, args.max_new_tokens, device)
        if on_gpu:
            torch.cuda.reset_peak_memory_stats()
        seconds, outputs = run_batches(model, subset, batch_size, args.max_new_tokens, device)
        flops = sum(
            sample_flops(spec, len(ids) - 1, len(out), vocab)["total"]
            for (ids, _), out in zip(subset, outputs)
        )
        if reference is None:
            reference = outputs
        shared = min(len(reference), len(outputs))
        row = {
            "batch_size": batch_size,
            "samples": n,
            "seconds": round(seconds, 4),
            "samples_per_s": round(n / seconds, 2),
            "first_pass_samples_per_s": round(n / cold, 2),  # includes per-shape set-up (cuBLAS, cuDNN plans)
            "achieved_tflops": round(flops / seconds / 1e12, 3),
            "mfu_pct": mfu(flops, seconds),
            "peak_memory_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2) if on_gpu else None,
            "new_tokens_per_answer": sorted({len(o) for o in outputs}),
            # greedy answers equal to the first batch size's on the requests both ran (bf16 batching changes sums)
            "answers_equal_to_first_batch_size": f"{sum(reference[k] == outputs[k] for k in range(shared))}/{shared}",
        }
        rows.append(row)
        print(
            f"  batch {batch_size:>3}: {row['samples_per_s']:>8} samples/s (first pass "
            f"{row['first_pass_samples_per_s']})  {row['achieved_tflops']:>8} TFLOP/s  MFU {row['mfu_pct']}%  "
            f"mem {row['peak_memory_gib']} GiB",
            flush=True,
        )

    typical = sample_flops(spec, 61, args.max_new_tokens, vocab)  # 60 text tokens + the placeholder
    if not args.no_diagnostics:
        phases = []
        for batch_size in sorted({1, max(batch_sizes)}):
            phase = phase_times(model, requests, batch_size, device)
            phase["vision_and_connector_mfu_pct"] = mfu(
                batch_size * (typical["vision"] + typical["connector"]), phase["vision_and_connector_s"]
            )
            phase["prefill_mfu_pct"] = mfu(batch_size * typical["prefill"], phase["prefill_s"])
            phases.append({k: round(v, 5) if isinstance(v, float) else v for k, v in phase.items()})
            print(f"  phases: {phases[-1]}", flush=True)
        diagnostics["phases"] = phases
        prefill = prefill_diagnostics(model, requests, max(batch_sizes), device)
        prefill["llm_prefill_mfu_pct"] = mfu(
            prefill["batch_size"] * (typical["prefill"] - 2 * spec.hidden * vocab), prefill["llm_prefill_s"]
        )
        diagnostics["llm_prefill"] = {
            k: round(v, 5) if isinstance(v, float) else v for k, v in prefill.items()
        }
        print(f"  LLM prefill: {diagnostics['llm_prefill']}", flush=True)

    print()
    print(
        common.format_table(
            rows,
            [
                ("batch_size", "batch"),
                ("samples_per_s", "samples/s"),
                ("first_pass_samples_per_s", "first pass"),
                ("achieved_tflops", "TFLOP/s"),
                ("mfu_pct", "MFU %"),
                ("peak_memory_gib", "peak GiB"),
                ("answers_equal_to_first_batch_size", "answers = batch 1"),
            ],
        )
    )
    result = {
        "benchmark": "gpu_realistic",
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "machine": {**common.machine_info(), "device": device_name},
        "model": {**spec.to_dict(), "parameters": params, "dtype": str(dtype).replace("torch.", "")},
        "settings": {
            "max_new_tokens": args.max_new_tokens,
            "text_tokens": "50-70 per prompt (uniform), plus the image's tokens",
            "peak_tflops": peak,
            "build_s": round(build_s, 2),
            "timed_pass": "the second pass over the same requests (the first sets up each new shape)",
        },
        "flops_per_typical_sample": {k: f"{v:.4g}" for k, v in typical.items()},
        "flop_formula": __doc__.split("FLOPs per sample", 1)[1].split("    python", 1)[0].strip(),
        "runs": rows,
        "diagnostics": diagnostics,
    }
    common.write_result(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
