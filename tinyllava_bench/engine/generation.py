"""The generation loop of one task: requests built from rows, sharded over ranks, prepared in batches by the model
(engine/model_protocol.py), generated in chunks the batch sizer picks, and appended to the write-ahead samples log.

A sample that cannot be generated fails alone: its record carries the error and the others keep their answers."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.batching import BatchSizer, Prepared, Request
from tinyllava_bench.engine.distributed import Dist
from tinyllava_bench.engine.hooks import NO_HOOKS, EvalHooks
from tinyllava_bench.engine.model_protocol import EvalModel
from tinyllava_bench.engine.store import SampleWriter
from tinyllava_bench.schema import SCHEMA_VERSION, SampleRecord


def rows_without_images(data: Any) -> list[dict[str, Any]]:
    """The task's rows as Python dicts, without the image column (images are loaded per batch)."""
    image_column = data.task.columns.image
    rows = data.rows
    if image_column and image_column in rows.column_names:
        rows = rows.remove_columns(image_column)
    return rows.to_list()


def shard(pending: list[int], image_keys: dict[int, str | None], dist: Dist) -> list[int]:
    """This rank's share of `pending`: every world-th row, or with prefix sharing every world-th image group (the
    largest first), so one picture's questions stay on one rank and its prefix is prefilled once."""
    if not image_keys or dist.world == 1:
        return dist.shard(pending)
    groups: dict[Any, list[int]] = {}
    for i in pending:
        key = image_keys.get(i)
        groups.setdefault(("alone", i) if key is None else key, []).append(i)
    ordered = sorted(groups.values(), key=len, reverse=True)  # stable: ties keep row order
    return [i for group in dist.shard(ordered) for i in group]


def note_stale(task: str, done: dict[str, dict[str, Any]], keys: dict[int, str]) -> None:
    """Say when earlier answers to these very rows exist but no longer match (the task file, prompt, generation
    settings or data changed since): they are redone, not reused."""
    current = set(keys.values())
    stale = {
        record.get("index")
        for key, record in done.items()
        if key not in current and record.get("index") in keys
    }
    if stale:
        print(
            f"note: {task}: {len(stale)} earlier answer(s) were made with another task file, prompt, generation "
            "setting or data; they are generated again",
            file=sys.stderr,
        )


def build_requests(
    task: Any,
    text_rows: list[dict[str, Any]],
    todo: list[int],
    keys: dict[int, str],
    question_ids: list[Any],
    image_keys: dict[int, str | None],
    model: EvalModel,
    protocol: str,
) -> list[Request]:
    """A request per row in `todo`, longest prompt first (out-of-memory shows up at once)."""
    from tinyllava_bench.tasks import build_question

    requests, built = [], []
    for i in todo:
        fields = {name: text_rows[i].get(name) for name in task.columns.fields if name in text_rows[i]}
        try:
            built.append((i, fields, build_question(task, text_rows[i], protocol)))
        except ValueError as exc:
            # a row no prompt can be made from (no question) fails alone, as a bad image does
            requests.append(Request(i, keys[i], question_ids[i], "", "", [], fields, error=f"prompt: {exc}"))
    prompts = [model.render_prompt(question) for _, _, question in built]
    all_ids = model.tokenize_prompts(prompts)  # one batched tokenizer call
    for (i, fields, question), prompt, ids in zip(built, prompts, all_ids, strict=True):
        requests.append(
            Request(i, keys[i], question_ids[i], question, prompt, ids, fields, image_key=image_keys.get(i))
        )
    requests.sort(key=lambda r: -len(r.prompt_ids))
    return requests


def generate(
    requests: list[Request],
    data: Any,
    model: EvalModel,
    generation: Any,
    config: Any,
    log: Path,
    task: str,
    dist: Dist,
    hooks: EvalHooks = NO_HOOKS,
) -> int:
    """Answers for `requests` with the task's generation settings, appended to the log at `log`; sampled tasks
    draw each sample's tokens from a stream seeded by (--seed, task, row, question id), so batch size, sharding
    and resuming don't change them."""
    from tqdm.auto import tqdm

    if not requests:
        return 0
    share = config.prefix_sharing and model.supports_prefix_sharing
    sizer = BatchSizer(config.batch_size, config.device, share)
    bar = tqdm(
        total=len(requests),
        desc=task,
        unit="sample",
        disable=not (config.show_progress and dist.is_main),
        dynamic_ncols=True,
    )
    # the bar is closed on the way out of an error too, so the error message starts on a line of its own
    with bar, SampleWriter(log) as writer:
        batches = iter(model.prepare(requests, data.image, lambda: sizer.size, config.num_workers, share))
        while True:
            with hooks.phase("wait_for_images"):
                batch = next(batches, None)
            if batch is None:
                break
            records = generate_batch(batch, model, generation, sizer, config.seed, task, share, hooks)
            with hooks.phase("samples_log_write"):
                writer.write(records)
            hooks.on_batch(task, records)
            bar.update(len(batch))
    return len(requests)


def generate_batch(
    batch: list[Prepared],
    model: EvalModel,
    generation: Any,
    sizer: BatchSizer,
    seed: int,
    task: str,
    prefix_sharing: bool = False,
    hooks: EvalHooks = NO_HOOKS,
) -> list[dict]:
    """The sample records of one prepared batch: its answers, or each failing sample's error."""
    from tinyllava_bench.models.sampling import Sampling, sample_seed

    ready = [p for p in batch if p.error is None]
    state = model.begin_batch(ready, prefix_sharing)

    def run(chunk: list[Prepared]) -> list[list[int]]:
        sampling = None
        if generation.sampling:
            seeds = tuple(sample_seed(seed, task, p.request.index, p.request.question_id) for p in chunk)
            sampling = Sampling(generation.temperature, seeds, top_k=generation.top_k, top_p=generation.top_p)
        with hooks.phase("model_generate"):
            return model.generate(chunk, generation.max_new_tokens, sampling, state)

    def decode(ids: list[list[int]]) -> list[str]:
        with hooks.phase("decode"):
            return model.decode(ids)

    outputs: dict[int, tuple[str | None, str | None]] = {}
    try:
        texts = decode(sizer.run(ready, run, _image_of))
        outputs = {id(p): (text, None) for p, text in zip(ready, texts)}
    except Exception as exc:
        if ready and len(ready) == 1:
            outputs = {id(ready[0]): (None, _generation_error(exc))}
        else:  # find the sample that fails; the others still get their answers
            for prepared in ready:
                try:
                    outputs[id(prepared)] = (decode(run([prepared]))[0], None)
                except Exception as alone:
                    outputs[id(prepared)] = (None, _generation_error(alone))
    records = []
    for prepared in batch:
        prediction, error = outputs.get(id(prepared), (None, prepared.error))
        request = prepared.request
        records.append(
            SampleRecord(
                schema_version=SCHEMA_VERSION,
                key=request.key,
                index=request.index,
                question_id=request.question_id,
                prompt=request.prompt,
                prediction=prediction,
                parsed=None,
                score=None,
                error=error,
                fields=request.fields,
            ).dump()
        )
    return records


def _image_of(prepared: Prepared) -> Any:
    """The image a sample asks about, for chunks of one image; a sample without an image key stands alone."""
    key = prepared.request.image_key
    return id(prepared) if key is None else key


def _generation_error(exc: BaseException) -> str:
    return f"generation: {type(exc).__name__}: {exc}".splitlines()[0]
