"""The evaluation loop: for each task, generate what is not done yet (batched, sharded over ranks, appended to a
write-ahead samples log), then on rank 0 score everything and write the run folder."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.distributed import Dist, close_distributed, init_distributed
from tinyllava_bench.engine.generation import (
    build_requests,
    generate,
    note_stale,
    rows_without_images,
    shard,
)
from tinyllava_bench.engine.hooks import NO_HOOKS, EvalHooks
from tinyllava_bench.engine.model_protocol import EvalModel, TinyLlavaModel
from tinyllava_bench.engine.provenance import (
    checkpoint_fingerprint,
    device_description,
    fingerprint,
    tool_provenance,
)
from tinyllava_bench.engine.schema import RESULTS_FILE, SCHEMA_VERSION
from tinyllava_bench.engine.store import (
    make_run_folder,
    read_results,
    read_samples,
    results_lock,
    task_lock,
    write_json_atomic,
    write_jsonl_atomic,
)
from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, UserError
from tinyllava_bench.judge.redaction import redact_url
from tinyllava_bench.threads import threads_record


@dataclass
class EvalConfig:
    model: str
    tasks: list[str]
    output: Path
    limit: int | None = None
    batch_size: int | str = "auto"
    protocol: str = "official"
    device: str = "cpu"
    dtype: str | None = None
    num_workers: int = 2
    judge_model: str | None = None
    judge_temperature: float | None = None
    judge_max_tokens: int | None = None
    judge_retries: int | None = None
    judge_base_url: str | None = None
    judge_cache: Path | None = None
    data_root: Path | None = None
    seed: int = 0
    model_args: dict[str, Any] = field(default_factory=dict)
    task_options: dict[str, Any] = field(default_factory=dict)
    max_error_rate: float = 0.0  # the share of errored or unjudged samples a run may have and still exit 0
    # each image's prompt prefix prefilled once for all its questions (the same answers as without)
    prefix_sharing: bool = True
    show_progress: bool = True

    def public(self) -> dict[str, Any]:
        """The settings as results.json records them; credentials inside a judge URL are masked."""
        public = {k: (str(v) if isinstance(v, Path) else v) for k, v in self.__dict__.items()}
        public["judge_base_url"] = redact_url(self.judge_base_url)
        return public


def expand_tasks(spec: str | list[str]) -> list[str]:
    """Task names from `--tasks`: `all` (the registry's `in_all` tasks, in paper order), aliases as their task's
    name, a path to a task YAML as given."""
    from tinyllava_bench.tasks.registry import all_tasks, resolve_alias

    names = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for name in (n.strip() for n in names if n.strip()):
        is_file = Path(name).suffix in (".yaml", ".yml") and Path(name).is_file()
        for task in all_tasks() if name == "all" else (name if is_file else resolve_alias(name),):
            if task not in out:
                out.append(task)
    if not out:
        raise UserError("--tasks is empty; name tasks (see `tinyllava-bench tasks`) or use all")
    return out


def samples_path(output: Path, task: str) -> Path:
    return output / f"samples_{task}.jsonl"


def log_path(output: Path, task: str, dist: Dist) -> Path:
    """The write-ahead log a rank appends finished samples to (kept: it is what a rerun resumes from)."""
    suffix = "" if dist.world == 1 else f".rank{dist.rank}"
    return output / f"samples_{task}.partial{suffix}.jsonl"


def finished_records(output: Path, task: str) -> dict[str, dict[str, Any]]:
    """Every finished sample of any earlier run in `output`, by key (final file and all ranks' logs)."""
    done: dict[str, dict[str, Any]] = {}
    for path in sorted(output.glob(f"samples_{task}.partial*.jsonl")) + [samples_path(output, task)]:
        for record in read_samples(path):
            if record.get("key") and record.get("prediction") is not None:
                done.setdefault(record["key"], record)
    return done


def evaluate(
    config: EvalConfig, model: EvalModel | None = None, hooks: EvalHooks | None = None
) -> dict[str, Any]:
    """Run `config` and return results.json's content (on every rank; only rank 0 writes files).

    `model`: run this model (engine/model_protocol.py) instead of loading `config.model` (which then only names
    it); the caller keeps and releases it. `hooks`: told of each phase and batch (engine/hooks.py)."""
    import torch

    from tinyllava_bench import load_model
    from tinyllava_bench.tasks import load_task

    started = time.time()
    started_at = datetime.now(timezone.utc).isoformat(timespec="seconds")
    device = config.device
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda but no GPU is visible; use --device cpu")
    hooks = hooks or NO_HOOKS
    dist = init_distributed(device)
    loaded = model is None
    try:
        if device == "cuda" and dist.world > 1:
            device = f"cuda:{dist.local_rank}"
        tasks = [load_task(name) for name in expand_tasks(config.tasks)]  # fail fast on an unknown task
        # a missing key, a bad judge setting or an unwritable judge cache must not surface only after hours of
        # generation (and every judge setting is resolved here the way scoring will resolve it)
        if any(task.judged for task in tasks):
            from tinyllava_bench.judge.settings import check_judge_ready

            for task in tasks:
                if task.judged:
                    _judge_settings(task, config)
            check_judge_ready(_judge_cache_dir(config, Path(config.output)))
        output = Path(config.output)
        if dist.is_main:  # before the model loads: an impossible --output must not cost a load
            make_run_folder(output)
        torch.manual_seed(config.seed)
        if model is None:
            with hooks.phase("load_model"):
                model = TinyLlavaModel(
                    load_model(config.model, device=device, dtype=config.dtype, **config.model_args)
                )
        with hooks.phase("checkpoint_fingerprint"):
            checkpoint_fp = (
                checkpoint_fingerprint(str(model.checkpoint_dir)) if model.checkpoint_dir else None
            )
        model_key = fingerprint(
            {
                "checkpoint": checkpoint_fp,
                # the vision tower, base tokenizer or processor config read from other folders
                **({"read_from": _read_from_fingerprints(model)} if model.read_from else {}),
                "settings": model.settings.to_dict(),
                "dtype": str(model.dtype),
                "device": device.split(":")[0],
            }
        )
        results = (
            _start_results(output, config, model, checkpoint_fp, model_key, started_at)
            if dist.is_main
            else {}
        )
        n_generated = 0
        finished: dict[str, Any] = {}  # the tasks this process ran
        for task in tasks:
            with task_lock(output, task.name, dist), hooks.phase("run_task"):
                entry, generated = _run_task(task, model, model_key, config, output, dist, hooks)
            n_generated += generated
            if dist.is_main:
                finished[task.name] = entry
                _finish_provenance(results, started, n_generated)
                _write_results(output, results, finished, config.max_error_rate)
        return dist.broadcast(results)
    finally:
        if loaded and model is not None:
            model.release()
        close_distributed()


def _read_from_fingerprints(model: Any) -> dict[str, str]:
    return {name: checkpoint_fingerprint(str(path)) for name, path in sorted(model.read_from.items())}


def _start_results(
    output: Path, config: EvalConfig, model: Any, checkpoint_fp: str | None, model_key: str, started_at: str
) -> dict[str, Any]:
    """results.json's content at the start: the earlier run's tasks when they came from this very model (same
    files, settings, dtype); an earlier run of the same checkpoint that differs is moved aside, and a run folder
    of another model is refused."""
    checkpoint_dir = str(Path(model.checkpoint_dir).resolve()) if model.checkpoint_dir else None
    with results_lock(output):
        previous = read_results(output / RESULTS_FILE)
        if previous:
            _refuse_other_model(output, previous, config.model, checkpoint_dir)
            if previous.get("provenance", {}).get("model_key") != model_key:
                _supersede(output, previous, started_at)
                previous = {}
    card = model.card
    if card is None:
        from tinyllava_bench.models.zoo import card_for_checkpoint

        card = card_for_checkpoint(config.model)
    return {
        "schema_version": SCHEMA_VERSION,
        "model": {
            "name": card.name if card else model.name,
            "source": config.model,
            "layout": model.settings.layout,
            "card": card.metadata() if card else _card_from_model(model),
        },
        "tasks": dict(previous.get("tasks", {})),
        "config": {**config.public(), "model_settings": model.settings.to_dict()},
        "provenance": {
            **tool_provenance(),
            "device": device_description(config.device),
            "dtype": str(model.dtype).replace("torch.", ""),
            "checkpoint_dir": checkpoint_dir,
            "checkpoint_fingerprint": checkpoint_fp,
            **({"read_from": _read_from_fingerprints(model)} if model.read_from else {}),
            "model_key": model_key,
            "seed": config.seed,
            **threads_record(),
            "started_at": started_at,
        },
    }


def _refuse_other_model(
    output: Path, previous: dict[str, Any], source: str, checkpoint_dir: str | None
) -> None:
    """An eval into another model's run folder would replace its results: refuse, and say how to go on."""
    earlier_dir = previous.get("provenance", {}).get("checkpoint_dir")
    earlier_source = previous.get("model", {}).get("source")
    same = earlier_dir == checkpoint_dir if earlier_dir and checkpoint_dir else earlier_source == source
    if not same:
        raise UserError(
            f"{output} holds the results of another model ({earlier_source or earlier_dir}); pass a new --output "
            "for this one, or move that run folder away"
        )


def _supersede(output: Path, previous: dict[str, Any], started_at: str) -> None:
    """The same checkpoint, but its files or load settings changed since the earlier run: none of its answers may be
    reused. Its results and samples are moved (not deleted) into OUT/superseded/<time>/, and the user is told."""
    stamp = str(previous.get("provenance", {}).get("started_at") or started_at).replace(":", "")
    target = output / "superseded" / stamp
    names = [
        RESULTS_FILE,
        *(p.name for p in output.glob("samples_*.jsonl")),
        *(p.name for p in output.glob("submission_*.json")),
    ]
    target.mkdir(parents=True, exist_ok=True)
    for name in names:
        if (output / name).exists():
            (output / name).replace(target / name)
    print(
        f"note: the model's files or settings changed since the earlier run in {output} (its fingerprint differs): "
        f"that run is moved to {target} and every task is evaluated afresh",
        file=sys.stderr,
    )


def _write_results(
    output: Path, results: dict[str, Any], finished: dict[str, Any], max_error_rate: float
) -> None:
    """Write results.json with the tasks this process `finished` over what is on disk now: another process writing
    into the same run folder may have recorded other tasks since this one started."""
    with results_lock(output):
        on_disk = read_results(output / RESULTS_FILE)
        same_model = on_disk.get("provenance", {}).get("model_key") == results["provenance"]["model_key"]
        results["tasks"] = {**(on_disk.get("tasks", {}) if same_model else results["tasks"]), **finished}
        results["summary"] = run_summary(results["tasks"].values(), max_error_rate)
        write_json_atomic(output / RESULTS_FILE, results)


def run_summary(entries: Any, max_error_rate: float = 0.0) -> dict[str, Any]:
    """Counts over task entries and the exit status they call for: 3 (EXIT_INCOMPLETE) when the share of samples
    that errored or got no judge score is above `max_error_rate`, else 0."""
    entries = list(entries)
    n_samples = sum(int(entry.get("n_samples") or 0) for entry in entries)
    n_errors = sum(int(entry.get("n_errors") or 0) for entry in entries)
    n_judge_failures = sum(int(entry.get("n_judge_failures") or 0) for entry in entries)
    failed = n_errors + n_judge_failures
    rate = failed / n_samples if n_samples else 0.0
    return {
        "n_samples": n_samples,
        "n_errors": n_errors,
        "n_judge_failures": n_judge_failures,
        "error_rate": round(rate, 6),
        "max_error_rate": max_error_rate,
        "exit_status": EXIT_INCOMPLETE if failed and rate > max_error_rate else EXIT_OK,
    }


def _card_from_model(model: EvalModel) -> dict[str, Any]:
    return model.card_fields()


def _finish_provenance(results: dict[str, Any], started: float, n_generated: int) -> None:
    wall = time.time() - started
    results["provenance"]["wall_time_s"] = round(wall, 3)
    results["provenance"]["samples_generated"] = n_generated
    results["provenance"]["samples_per_s"] = round(n_generated / wall, 3) if wall > 0 else None


def _run_task(
    task: Any,
    model: EvalModel,
    model_key: str,
    config: EvalConfig,
    output: Path,
    dist: Dist,
    hooks: EvalHooks = NO_HOOKS,
) -> tuple[dict[str, Any], int]:
    from tinyllava_bench.tasks import apply_overrides, load_task_data

    protocol = config.protocol
    if config.task_options:
        task = apply_overrides(task, config.task_options)
    data = load_task_data(task, data_root=config.data_root, protocol=protocol)
    generation = task.generation_for(protocol)
    text_rows = rows_without_images(data)
    indices = list(range(len(text_rows)))[: config.limit] if config.limit else list(range(len(text_rows)))
    question_ids = data.question_ids()
    task_key = fingerprint(
        {
            "task": task.model_dump(mode="json"),
            "protocol": protocol,
            "prompt": task.prompt_for(protocol).model_dump(mode="json"),
            "generation": generation.record(config.seed),  # a sampled answer belongs to its seed
            "data": data.fingerprint(),
        }
    )
    keys = {i: fingerprint([model_key, task_key, i, str(question_ids[i])]) for i in indices}

    # rank 0 decides what is left (other ranks may already be writing); everyone waits for its list
    share = config.prefix_sharing and model.supports_prefix_sharing
    plan = None
    if dist.is_main:
        done = finished_records(output, task.name)  # read once: the logs may hold 200k lines
        pending = [i for i in indices if keys[i] not in done]
        note_stale(task.name, done, keys)
        plan = (pending, {i: data.image_key(i) for i in pending} if share else {})
    pending, image_keys = dist.broadcast(plan)
    todo = shard(pending, image_keys, dist)
    requests = build_requests(task, text_rows, todo, keys, question_ids, image_keys, model, protocol)
    log = log_path(output, task.name, dist)
    with hooks.phase("generate_loop"):
        generated = generate(requests, data, model, generation, config, log, task.name, dist, hooks)
    dist.barrier()
    if not dist.is_main:
        return {}, generated
    with hooks.phase("score_and_write"):
        entry = _score_task(task, data, text_rows, indices, keys, question_ids, config, output)
    return entry, generated


def _score_task(
    task: Any,
    data: Any,
    text_rows: list[dict],
    indices: list[int],
    keys: dict[int, str],
    question_ids: list[Any],
    config: EvalConfig,
    output: Path,
) -> dict[str, Any]:
    from tinyllava_bench.tasks import score_predictions, write_submission

    done = finished_records(output, task.name)
    errors_before = read_samples(samples_path(output, task.name))
    failed = {r["key"]: r for r in errors_before if r.get("key") and r.get("prediction") is None}
    for path in output.glob(f"samples_{task.name}.partial*.jsonl"):
        for record in read_samples(path):
            if record.get("prediction") is None and record.get("key") not in done:
                failed[record["key"]] = record
    records = []
    for i in indices:
        record = done.get(keys[i]) or failed.get(keys[i])
        if record is None:
            raise RuntimeError(
                f"sample {i} of {task.name} was neither generated nor failed; rerun to finish it"
            )
        record = dict(record)
        if record.get("prediction") is not None:
            # only scoring can have failed (e.g. the judge gave up); it is done afresh below, so an error an
            # earlier run wrote into samples_<task>.jsonl must not outlive it
            record["parsed"], record["score"], record["error"] = None, None, None
            record.pop("judge_error", None)
        records.append(record)
    predictions = [r["prediction"] for r in records]
    judge = (
        _judge_client(task, config, output)
        if task.judged and any(p is not None for p in predictions)
        else None
    )
    scored = score_predictions(
        task, [text_rows[i] for i in indices], predictions, config.protocol, judge=judge
    )
    for sample in scored["samples"]:
        record = records[sample["index"]]
        record["parsed"], record["score"] = sample["parsed"], sample["score"]
        for key in ("error", "judge_error"):
            if sample.get(key):
                record[key] = sample[key]
    write_jsonl_atomic(samples_path(output, task.name), records)
    if task.submission:
        write_submission(
            task, [question_ids[i] for i in indices], predictions, output / f"submission_{task.name}.json"
        )
    return {
        "metrics": scored["metrics"],
        "headline": task.headline,
        "n_samples": len(indices),
        # samples without an answer or a score for a reason other than the judge: n_judge_failures counts those
        "n_errors": sum(1 for r in records if r.get("error") and not r.get("judge_error")),
        "protocol": config.protocol,
        "scorer": task.scorer,  # regress refuses to compare runs scored by different rules
        "judge_model": scored.get("judge_model"),
        # model, temperature, max_tokens, retries, base_url (credentials masked); None for unjudged tasks
        "judge": scored.get("judge"),
        "n_judge_failures": scored["n_judge_failures"],
        "dataset": data.provenance(),
        "generation": task.generation_for(config.protocol).record(config.seed),
        "limit": config.limit,
    }


def _judge_client(task: Any, config: EvalConfig, output: Path) -> Any:
    from tinyllava_bench.judge.settings import open_judge_client

    return open_judge_client(_judge_settings(task, config), _judge_cache_dir(config, output))


def _judge_settings(task: Any, config: EvalConfig) -> Any:
    """The task's judge settings under the run's protocol, with the --judge-* overrides (as `score` resolves them)."""
    from tinyllava_bench.judge.settings import judge_overrides, resolve_judge_settings

    return resolve_judge_settings(task, config.protocol, **judge_overrides(config))


def _judge_cache_dir(config: EvalConfig, output: Path) -> Path:
    return Path(config.judge_cache) if config.judge_cache else output / "judge_cache"
