"""`load_model` and `evaluate`: a checkpoint in any layout, and a resumable evaluation into a run folder."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from tinyllava_bench.api.results import EvalResult, PathLike, Results
from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, UserError, run_phase

if TYPE_CHECKING:  # pragma: no cover
    from tinyllava_bench.models.tinyllava import TinyLlava


def load_model(model: str, *, device: str = "cpu", dtype: Any = None, **model_args: Any) -> TinyLlava:
    """Load any TinyLLaVA checkpoint (legacy, Factory, HF llava, or this project's own layout).

    `model` is a model-zoo name, a hub id or a local folder. `model_args` replace what the checkpoint's own
    code would have used (`template`, `image_aspect`, `vision_select`, `vision_layer`, `trust_remote_code`, ...),
    as `eval --model-args` does.
    """
    from tinyllava_bench.models.loading import load_model as _load

    return _load(model, device=device, dtype=dtype, **model_args)


def _key_values(value: str | Mapping[str, Any] | None, flag: str) -> dict[str, Any]:
    """`a=1,b=x` → {"a": 1, "b": "x"} with YAML scalars (numbers, booleans, null); a mapping is taken as is."""
    if isinstance(value, Mapping):
        return dict(value)
    import yaml

    out: dict[str, Any] = {}
    for item in (value or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UserError(f"{flag} takes key=value pairs separated by commas, got {item!r}")
        key, text = item.split("=", 1)
        try:  # safe_load: a python/... tag is refused, never run
            out[key.strip()] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or " ".join(str(exc).split())
            raise UserError(f"{flag} {item!r}: the value is not a plain YAML value ({problem})") from None
    return out


def check_max_error_rate(max_error_rate: float) -> None:
    if not 0.0 <= max_error_rate <= 1.0:
        raise UserError(f"--max-error-rate is a share between 0 and 1, got {max_error_rate}")


def evaluate(
    model: str,
    tasks: str | Sequence[str],
    *,
    output: PathLike | None = None,
    limit: int | None = None,
    batch_size: int | str = "auto",
    protocol: str = "official",
    device: str | None = None,
    dtype: str | None = None,
    num_workers: int | None = None,
    judge_model: str | None = None,
    judge_temperature: float | None = None,
    judge_max_tokens: int | None = None,
    judge_retries: int | None = None,
    judge_base_url: str | None = None,
    judge_cache: PathLike | None = None,
    data_root: PathLike | None = None,
    model_args: str | Mapping[str, Any] | None = None,
    task_options: str | Mapping[str, Any] | None = None,
    seed: int = 0,
    threads: int | None = None,
    prefix_sharing: bool = True,
    max_error_rate: float = 0.0,
    show_progress: bool = True,
) -> EvalResult:
    """Evaluate `model` on `tasks` (names, comma-separated or a list, or "all") and write the run folder.

    The keywords are `tinyllava-bench eval`'s flags (`model_args`/`task_options` also take a mapping). A run
    into a folder that holds an earlier run of the same model resumes it. `exit_status` is 3 when more than
    `max_error_rate` of the samples errored or got no judge score (they are recorded and retried next time).
    """
    import torch

    from tinyllava_bench.engine.runner import EvalConfig, expand_tasks
    from tinyllava_bench.engine.runner import evaluate as run_evaluation
    from tinyllava_bench.judge.settings import judge_overrides, resolve_judge_settings
    from tinyllava_bench.models.loading import check_overrides
    from tinyllava_bench.tasks import apply_overrides, load_task
    from tinyllava_bench.threads import apply_threads

    # the settings first: what is wrong there is a usage error (2), found before anything loads
    if limit is not None and limit < 1:
        raise UserError("--limit must be a positive number of rows")
    check_max_error_rate(max_error_rate)
    names = expand_tasks(tasks if isinstance(tasks, str) else list(tasks))
    overrides = _key_values(model_args, "--model-args")
    options = _key_values(task_options, "--task-options")
    check_overrides(overrides)
    judge = SimpleNamespace(
        judge_model=judge_model,
        judge_temperature=judge_temperature,
        judge_max_tokens=judge_max_tokens,
        judge_retries=judge_retries,
        judge_base_url=judge_base_url,
    )
    for name in names:
        task = apply_overrides(load_task(name), options)  # an unknown task or option key
        if task.judged:  # a judge setting out of range
            resolve_judge_settings(task, protocol, **judge_overrides(judge))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    apply_threads(threads)  # before the model loads; results.json's provenance records it
    run_folder = Path(output) if output else Path("results") / Path(model.rstrip("/")).name
    config = EvalConfig(
        model=model,
        tasks=names,
        output=run_folder,
        limit=limit,
        batch_size=batch_size,
        protocol=protocol,
        device=device,
        dtype=dtype,
        num_workers=max(0, num_workers)
        if num_workers is not None
        else (2 if device.startswith("cuda") else 0),
        judge_model=judge_model,
        judge_temperature=judge_temperature,
        judge_max_tokens=judge_max_tokens,
        judge_retries=judge_retries,
        judge_base_url=judge_base_url,
        judge_cache=Path(judge_cache) if judge_cache else None,
        data_root=Path(data_root) if data_root else None,
        seed=seed,
        model_args=overrides,
        task_options=options,
        max_error_rate=max_error_rate,
        prefix_sharing=prefix_sharing,
        show_progress=show_progress,
    )
    with run_phase():
        results = run_evaluation(config)
    if not results:
        return EvalResult(results=results, output=run_folder, exit_status=EXIT_OK)
    status, message = _eval_status(results, names, max_error_rate)
    return EvalResult(results=results, output=run_folder, exit_status=status, message=message)


def _eval_status(results: Results, tasks: list[str], max_error_rate: float) -> tuple[int, str | None]:
    """0, or 3 with one line of counts when samples of this run's tasks errored or went unjudged."""
    from tinyllava_bench.engine.runner import run_summary

    summary = run_summary(
        (results["tasks"][name] for name in tasks if name in results["tasks"]), max_error_rate
    )
    failed = summary["n_errors"] + summary["n_judge_failures"]
    if not failed:
        return EXIT_OK, None
    counts = f"{summary['n_errors']} sample(s) errored and {summary['n_judge_failures']} got no judge score, of {summary['n_samples']}"
    if summary["exit_status"] == EXIT_OK:
        return EXIT_OK, f"note: {counts} (within --max-error-rate {max_error_rate:g})"
    return EXIT_INCOMPLETE, (
        f"incomplete: {counts}; they are recorded with their error in samples_<task>.jsonl and are retried on "
        "the next run into this folder (exit status 3; --max-error-rate accepts a share of them)"
    )
