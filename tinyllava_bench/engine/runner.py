"""The evaluation loop: for each task, generate what is not done yet (batched, sharded over ranks, appended to a
write-ahead samples log), then on rank 0 score everything and write the run folder."""

from __future__ import annotations

import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.distributed import Dist, close_distributed, init_distributed
from tinyllava_bench.engine.eval_config import EvalConfig
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
    fingerprint,
)
from tinyllava_bench.engine.run_folder import (
    finish_provenance,
    read_from_fingerprints,
    start_results,
    write_results,
)
from tinyllava_bench.engine.store import make_run_folder, read_samples, task_lock
from tinyllava_bench.errors import UserError
from tinyllava_bench.json_files import write_jsonl_atomic
from tinyllava_bench.schema import (
    DatasetInfo,
    GenerationRecord,
    JudgeRecord,
    SampleRecord,
    TaskEntry,
)


def samples_path(output: Path, task: str) -> Path:
    return output / f"samples_{task}.jsonl"


def log_path(output: Path, task: str, dist: Dist) -> Path:
    """The write-ahead log a rank appends finished samples to (kept: it is what a rerun resumes from)."""
    suffix = "" if dist.world == 1 else f".rank{dist.rank}"
    return output / f"samples_{task}.partial{suffix}.jsonl"


def sample_records(output: Path, task: str) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """The samples of any earlier run in `output` by key, read once: those with a prediction and those that failed
    (all ranks' logs, then the final file; a key's first record wins)."""
    done: dict[str, dict[str, Any]] = {}
    failed: dict[str, dict[str, Any]] = {}
    for path in sorted(output.glob(f"samples_{task}.partial*.jsonl")) + [samples_path(output, task)]:
        for record in read_samples(path):
            if record.get("key"):
                (done if record.get("prediction") is not None else failed).setdefault(record["key"], record)
    return done, failed


def finished_records(output: Path, task: str) -> dict[str, dict[str, Any]]:
    """Every finished sample of any earlier run in `output`, by key (final file and all ranks' logs)."""
    return sample_records(output, task)[0]


def evaluate(
    config: EvalConfig, model: EvalModel | None = None, hooks: EvalHooks | None = None
) -> dict[str, Any]:
    """Run `config` and return results.json's content (on every rank; only rank 0 writes files).

    `model`: run this model (engine/model_protocol.py) instead of loading `config.model` (which then only names
    it); the caller keeps and releases it. `hooks`: told of each phase and batch (engine/hooks.py)."""
    import torch

    from tinyllava_bench.models.loading import load_model
    from tinyllava_bench.tasks import load_task
    from tinyllava_bench.tasks.registry import expand_tasks

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
                **({"read_from": read_from_fingerprints(model)} if model.read_from else {}),
                "settings": model.settings.to_dict(),
                "dtype": str(model.dtype),
                "device": device.split(":")[0],
            }
        )
        results = (
            start_results(output, config, model, checkpoint_fp, model_key, started_at)
            if dist.is_main
            else None
        )
        n_generated = 0
        finished: dict[str, TaskEntry] = {}  # the tasks this process ran
        for task in tasks:
            with task_lock(output, task.name, dist), hooks.phase("run_task"):
                entry, generated = _run_task(task, model, model_key, config, output, dist, hooks)
            n_generated += generated
            if results is not None and entry is not None:
                finished[task.name] = entry
                finish_provenance(results, started, n_generated)
                write_results(output, results, finished, config.max_error_rate)
        return dist.broadcast(results.dump() if results is not None else {})
    finally:
        if loaded and model is not None:
            model.release()
        close_distributed()


def _run_task(
    task: Any,
    model: EvalModel,
    model_key: str,
    config: EvalConfig,
    output: Path,
    dist: Dist,
    hooks: EvalHooks = NO_HOOKS,
) -> tuple[TaskEntry | None, int]:
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
        return None, generated
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
) -> TaskEntry:
    from tinyllava_bench.tasks import score_predictions, write_submission

    done, failed = sample_records(output, task.name)
    records = []
    for i in indices:
        found = done.get(keys[i]) or failed.get(keys[i])
        if found is None:
            raise RuntimeError(
                f"sample {i} of {task.name} was neither generated nor failed; rerun to finish it"
            )
        record = dict(found)
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
    write_jsonl_atomic(
        samples_path(output, task.name), [SampleRecord.model_validate(r).dump() for r in records]
    )
    if task.submission:
        write_submission(
            task, [question_ids[i] for i in indices], predictions, output / f"submission_{task.name}.json"
        )
    judge_record = scored.get("judge")
    return TaskEntry(
        metrics=scored["metrics"],
        headline=task.headline,
        n_samples=len(indices),
        # samples without an answer or a score for a reason other than the judge: n_judge_failures counts those
        n_errors=sum(1 for r in records if r.get("error") and not r.get("judge_error")),
        protocol=config.protocol,
        scorer=task.scorer,  # regress refuses to compare runs scored by different rules
        judge_model=scored.get("judge_model"),
        # model, temperature, max_tokens, retries, base_url (credentials masked); None for unjudged tasks
        judge=JudgeRecord(**judge_record) if judge_record is not None else None,
        n_judge_failures=scored["n_judge_failures"],
        dataset=DatasetInfo.model_validate(data.provenance()),
        generation=GenerationRecord(**task.generation_for(config.protocol).record(config.seed)),
        limit=config.limit,
    )


def _judge_client(task: Any, config: EvalConfig, output: Path) -> Any:
    from tinyllava_bench.judge.settings import open_judge_client

    return open_judge_client(_judge_settings(task, config), _judge_cache_dir(config, output))


def _judge_settings(task: Any, config: EvalConfig) -> Any:
    """The task's judge settings under the run's protocol, with the --judge-* overrides (as `score` resolves them)."""
    from tinyllava_bench.judge.settings import judge_overrides, resolve_judge_settings

    return resolve_judge_settings(task, config.protocol, **judge_overrides(config))


def _judge_cache_dir(config: EvalConfig, output: Path) -> Path:
    return Path(config.judge_cache) if config.judge_cache else output / "judge_cache"
