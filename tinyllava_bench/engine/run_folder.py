"""A run folder's results.json over a run's life: started from the earlier run of the same model (or that run moved
aside when the model changed, or refused when it is another model's folder), rewritten under a lock after each task
with the run's summary, and its provenance finished with the run's times."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

from tinyllava_bench.engine.eval_config import EvalConfig
from tinyllava_bench.engine.provenance import checkpoint_fingerprint, device_description, tool_provenance
from tinyllava_bench.engine.store import results_lock
from tinyllava_bench.errors import EXIT_INCOMPLETE, EXIT_OK, UserError
from tinyllava_bench.json_files import write_json_atomic
from tinyllava_bench.schema import (
    RESULTS_FILE,
    SCHEMA_VERSION,
    ModelCard,
    ModelInfo,
    Provenance,
    Results,
    Summary,
    TaskEntry,
    load_results,
)
from tinyllava_bench.threads import threads_record


def read_from_fingerprints(model: Any) -> dict[str, str]:
    return {name: checkpoint_fingerprint(str(path)) for name, path in sorted(model.read_from.items())}


def start_results(
    output: Path, config: EvalConfig, model: Any, checkpoint_fp: str | None, model_key: str, started_at: str
) -> Results:
    """results.json's content at the start: the earlier run's tasks when they came from this very model (same
    files, settings, dtype); an earlier run of the same checkpoint that differs is moved aside, and a run folder
    of another model is refused."""
    checkpoint_dir = str(Path(model.checkpoint_dir).resolve()) if model.checkpoint_dir else None
    with results_lock(output):
        previous = load_results(output / RESULTS_FILE)
        if previous is not None:
            _refuse_other_model(output, previous, config.model, checkpoint_dir)
            if previous.provenance.model_key != model_key:
                _supersede(output, previous, started_at)
                previous = None
    card = model.card
    if card is None:
        from tinyllava_bench.models.zoo import card_for_checkpoint

        card = card_for_checkpoint(config.model)
    provenance = Provenance(
        **tool_provenance(),
        device=device_description(config.device),
        dtype=str(model.dtype).replace("torch.", ""),
        checkpoint_dir=checkpoint_dir,
        checkpoint_fingerprint=checkpoint_fp,
        model_key=model_key,
        seed=config.seed,
        **threads_record(),
        started_at=started_at,
    )
    # present only when the loader read folders beside the checkpoint (dumped in field order all the same)
    if model.read_from:
        provenance.read_from = read_from_fingerprints(model)
    return Results(
        schema_version=SCHEMA_VERSION,
        model=ModelInfo(
            name=card.name if card else model.name,
            source=config.model,
            layout=model.settings.layout,
            card=ModelCard(**(card.metadata() if card else model.card_fields())),
        ),
        tasks=dict(previous.tasks) if previous is not None else {},
        config={**config.public(), "model_settings": model.settings.to_dict()},
        provenance=provenance,
    )


def _refuse_other_model(output: Path, previous: Results, source: str, checkpoint_dir: str | None) -> None:
    """An eval into another model's run folder would replace its results: refuse, and say how to go on."""
    earlier_dir = previous.provenance.checkpoint_dir
    earlier_source = previous.model.source
    same = earlier_dir == checkpoint_dir if earlier_dir and checkpoint_dir else earlier_source == source
    if not same:
        raise UserError(
            f"{output} holds the results of another model ({earlier_source or earlier_dir}); pass a new --output "
            "for this one, or move that run folder away"
        )


def _supersede(output: Path, previous: Results, started_at: str) -> None:
    """The same checkpoint, but its files or load settings changed since the earlier run: none of its answers may be
    reused. Its results and samples are moved (not deleted) into OUT/superseded/<time>/, and the user is told."""
    stamp = str(previous.provenance.started_at or started_at).replace(":", "")
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


def write_results(
    output: Path, results: Results, finished: dict[str, TaskEntry], max_error_rate: float
) -> None:
    """Write results.json with the tasks this process `finished` over what is on disk now: another process writing
    into the same run folder may have recorded other tasks since this one started."""
    with results_lock(output):
        on_disk = load_results(output / RESULTS_FILE)
        same_model = on_disk is not None and on_disk.provenance.model_key == results.provenance.model_key
        results.tasks = {
            **(on_disk.tasks if on_disk is not None and same_model else results.tasks),
            **finished,
        }
        results.summary = Summary(**run_summary([t.dump() for t in results.tasks.values()], max_error_rate))
        write_json_atomic(output / RESULTS_FILE, results.dump())


def run_summary(entries: Any, max_error_rate: float = 0.0) -> dict[str, Any]:
    """Counts over task entries and the exit status they call for: 3 (EXIT_INCOMPLETE) when the share of samples
    that errored or got no judge score is above `max_error_rate`, else 0."""
    entries = list(entries)
    n_samples = sum(int(entry.get("n_samples") or 0) for entry in entries)
    n_errors = sum(int(entry.get("n_errors") or 0) for entry in entries)
    n_judge_failures = sum(int(entry.get("n_judge_failures") or 0) for entry in entries)
    failed = n_errors + n_judge_failures
    rate = failed / n_samples if n_samples else 0.0
    return Summary(
        n_samples=n_samples,
        n_errors=n_errors,
        n_judge_failures=n_judge_failures,
        error_rate=round(rate, 6),
        max_error_rate=max_error_rate,
        exit_status=EXIT_INCOMPLETE if failed and rate > max_error_rate else EXIT_OK,
    ).dump()


def finish_provenance(results: Results, started: float, n_generated: int) -> None:
    wall = time.time() - started
    results.provenance.wall_time_s = round(wall, 3)
    results.provenance.samples_generated = n_generated
    results.provenance.samples_per_s = round(n_generated / wall, 3) if wall > 0 else None
