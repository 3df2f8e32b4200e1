"""A stage's data file -> the tokenised training set, with the account of every record.

Every record is tokenised up front (train/encoding.py), so the run knows exactly how many samples were cut to
`model_max_length` (image tokens counted as the spliced length), how many train on nothing, and how many were set
aside, and why. Records: train/records.py; the set and its report: train/dataset.py; its cache: train/token_cache.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.templates import Template
from tinyllava_bench.models.tokenization import IGNORE_INDEX
from tinyllava_bench.train.dataset import ConversationDataset, DataReport
from tinyllava_bench.train.encoding import EncodedRecord, EncodeSettings, SetAside, encode_record, has_target
from tinyllava_bench.train.records import file_fingerprint, read_records, record_images
from tinyllava_bench.train.token_cache import cache_key, image_stats, read_cache, write_cache

logger = logging.getLogger("tinyllava_bench.train")


_WORKER_SETTINGS: EncodeSettings | None = None


def _start_worker(settings: EncodeSettings) -> None:
    global _WORKER_SETTINGS
    _WORKER_SETTINGS = settings


def _encode_chunk(chunk: list[tuple[int, dict[str, Any]]]) -> list[EncodedRecord | SetAside]:
    assert _WORKER_SETTINGS is not None
    return [encode_record(record, index, _WORKER_SETTINGS) for index, record in chunk]


def _encode_all(
    records: list[dict[str, Any]], settings: EncodeSettings, workers: int, progress: bool, name: str
) -> Iterator[EncodedRecord | SetAside]:
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(records), desc=f"tokenising {name}", unit="rec", mininterval=2.0)
    # worker processes pay off only on large files: each one starts a fresh interpreter
    if workers > 1 and len(records) >= PARALLEL_FROM:
        import multiprocessing

        numbered = list(enumerate(records))
        chunks = [numbered[i : i + CHUNK] for i in range(0, len(numbered), CHUNK)]
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, initializer=_start_worker, initargs=(settings,)) as pool:
            for results in pool.imap(_encode_chunk, chunks):
                if bar:
                    bar.update(len(results))
                yield from results
    else:
        for index, record in enumerate(records):
            if bar:
                bar.update(1)
            yield encode_record(record, index, settings)
    if bar:
        bar.close()


PARALLEL_FROM = 20_000
CHUNK = 2_000


def build_dataset(
    data_path: Path,
    image_folder: Path,
    template: Template,
    tokenizer: Any,
    preprocessor: Any,
    image_tokens: int,
    max_length: int,
    caption_stage: bool,
    progress: bool = True,
    workers: int = 1,
    cache_dir: Path | None = None,
    keep_eos_text: bool = False,
) -> ConversationDataset:
    """Tokenise every record of `data_path` through `template`, fit it to `max_length`, check its images.

    With `cache_dir`, the result is stored there (keyed by the data fingerprint, tokenizer, template and limits) and
    read back by later calls: the other processes of a distributed run, or a resumed run. It is read back only while
    every image it names (kept, missing or set aside) has the size and time it had: an image removed or replaced
    since tokenises the data again.
    """
    data_path, image_folder = Path(data_path).absolute(), Path(image_folder).absolute()
    fingerprint = file_fingerprint(data_path) if data_path.is_file() else ""
    settings = EncodeSettings(
        template, tokenizer, image_folder, image_tokens, max_length, caption_stage, keep_eos_text
    )
    cache = Path(cache_dir) / f"tokenized-{cache_key(settings, fingerprint)}" if cache_dir else None
    if cache is not None and (cache.with_suffix(".json")).is_file():
        dataset = read_cache(cache, image_folder, preprocessor)
        if dataset is not None:
            logger.info("%s (tokenised earlier: %s)", dataset.report.summary(), cache.with_suffix(".npz"))
            return dataset
        logger.info("images changed since %s was tokenised: tokenising again", data_path)
    records = read_records(data_path)
    report = DataReport(str(data_path), str(image_folder), fingerprint, records=len(records))
    if not image_folder.is_dir() and any(record_images(r) for r in records):
        raise UserError(f"{image_folder}: no such image folder; see docs/training.md for the layout")
    flat_ids: list[np.ndarray] = []
    flat_labels: list[np.ndarray] = []
    sizes, images, sample_ids, lengths, words = [], [], [], [], []
    for result in _encode_all(records, settings, workers, progress, data_path.name):
        if isinstance(result, tuple):
            report.skip(result[1], result[0], (result[2], result[3]) if len(result) == 4 else None)
            continue
        report.truncated += result.truncated
        report.eos_text_masked += result.eos_text_masked
        report.no_target += not result.eos_text_masked and not has_target(result.labels.tolist())
        report.kept += 1
        report.with_images += bool(result.images)
        report.text_only += not result.images
        report.tokens += result.spliced
        report.target_tokens += int((result.labels != IGNORE_INDEX).sum())
        flat_ids.append(result.ids)
        flat_labels.append(result.labels)
        sizes.append(len(result.ids))
        images.append(result.images)
        sample_ids.append(result.record_id)
        lengths.append(result.spliced)
        words.append(result.words)
    if not sample_ids:
        raise UserError(f"{report.summary()}; no sample left to train on")
    offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
    np.cumsum(sizes, out=offsets[1:])
    troubled = report.skipped or report.truncated or report.eos_text_masked or report.no_target
    level = logging.WARNING if troubled else logging.INFO
    logger.log(level, report.summary())
    dataset = ConversationDataset(
        np.concatenate(flat_ids),
        np.concatenate(flat_labels),
        offsets,
        images,
        sample_ids,
        lengths,
        words,
        image_folder,
        preprocessor,
        report,
    )
    if cache is not None:
        names = {name for r in records for name in (record_images(r) or [])}
        write_cache(cache, dataset, image_stats(image_folder, names))
    return dataset
