"""LLaVA conversation data → token ids + labels (template-driven), truncation accounting, images, collation.

A record is `{id, image?, conversations: [{from: human|gpt, value}]}` with `<image>` in the human turn that shows
the image. Every record is tokenised up front, so the run knows exactly how many samples were cut to
`model_max_length` (image tokens counted as the spliced length), how many train on nothing, and how many were set
aside, and why. Tokens, labels and cuts are the original code's (docs/training.md lists where they still differ).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from tinyllava_bench.errors import UserError
from tinyllava_bench.models.templates import IMAGE_PLACEHOLDER, Template
from tinyllava_bench.models.tokenization import IGNORE_INDEX, IMAGE_TOKEN_INDEX, encode_conversation
from tinyllava_bench.tasks.encoding import json_lines, not_utf8_error
from tinyllava_bench.tasks.images import MAX_IMAGE_PIXELS

logger = logging.getLogger("tinyllava_bench.train")

HUMAN_ROLES = ("human", "user")
ASSISTANT_ROLES = ("gpt", "assistant")

# Why a record can be set aside; each reason is counted and reported, never silently.
SKIP_MALFORMED = "malformed_conversation"
SKIP_PLACEHOLDERS = "image_placeholder_mismatch"
SKIP_MISSING_IMAGE = "missing_image_file"
SKIP_NO_IMAGE_IN_CAPTION_STAGE = "text_only_in_caption_stage"
SKIP_BAD_IMAGE_FIELD = "image_field_not_a_path"
SKIP_BAD_TEXT = "text_not_unicode"
SKIP_UNREADABLE_IMAGE = "unreadable_image"
# counted while training: an image readable when the data was prepared that no longer is
SKIP_IMAGE_FAILED_IN_TRAINING = "image_unreadable_during_training"
IMAGE_ERRORS_KEPT = 20


@dataclass
class DataReport:
    """What became of the records of one data file."""

    path: str
    image_folder: str
    fingerprint: str
    records: int = 0
    kept: int = 0
    with_images: int = 0
    text_only: int = 0
    truncated: int = 0
    # kept, but every label ignored: a turn holds the end-of-answer text itself (the original masks such a sample)
    eos_text_masked: int = 0
    # kept, but no answer token within model_max_length (the original keeps these too; they add nothing to the loss)
    no_target: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    skipped_examples: dict[str, list[str]] = field(default_factory=dict)
    tokens: int = 0  # spliced tokens of the kept samples (image tokens included)
    target_tokens: int = 0
    image_errors: list[dict[str, str]] = field(default_factory=list)  # {id, image, reason}, the first few

    def skip(self, reason: str, record_id: str, detail: tuple[str, str] | None = None) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        examples = self.skipped_examples.setdefault(reason, [])
        if len(examples) < 5:
            examples.append(record_id)
        if detail is not None and len(self.image_errors) < IMAGE_ERRORS_KEPT:
            self.image_errors.append({"id": record_id, "image": detail[0], "reason": detail[1]})

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "image_folder": self.image_folder,
            "fingerprint": self.fingerprint,
            "records": self.records,
            "kept": self.kept,
            "with_images": self.with_images,
            "text_only": self.text_only,
            "truncated": self.truncated,
            "eos_text_masked": self.eos_text_masked,
            "no_target": self.no_target,
            "skipped": dict(self.skipped),
            "skipped_examples": dict(self.skipped_examples),
            "tokens": self.tokens,
            "target_tokens": self.target_tokens,
            "image_errors": list(self.image_errors),
        }

    def summary(self) -> str:
        skipped = sum(self.skipped.values())
        text = (
            f"{self.path}: {self.records} records, {self.kept} kept ({self.with_images} with images, "
            f"{self.text_only} text-only), {self.truncated} truncated to model_max_length, {skipped} set aside"
        )
        if self.eos_text_masked or self.no_target:
            text += (
                f"; {self.eos_text_masked + self.no_target} kept but train on nothing ({self.eos_text_masked} hold "
                f"the end-of-answer text, {self.no_target} no answer token within model_max_length)"
            )
        if skipped:
            text += " (" + ", ".join(f"{reason}: {n}" for reason, n in sorted(self.skipped.items())) + ")"
        return text


def file_fingerprint(path: Path) -> str:
    """sha256 of the data file's bytes: two runs on the same fingerprint saw the same records."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return "sha256:" + digest.hexdigest()


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a LLaVA-format `.json` (a list) or `.jsonl` file."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such data file; see docs/training.md for the data-root layout")
    try:
        if path.suffix == ".jsonl":
            # json_lines names the file's own line (json.loads of one line would call every line "line 1")
            with open(path, encoding="utf-8") as handle:
                records = [record for _, record in json_lines(handle, path)]
        else:
            records = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise not_utf8_error(path, exc) from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise UserError(f"{path}: expected a JSON list of {{id, image, conversations}} records")
    return records


def conversation_turns(record: dict[str, Any]) -> list[tuple[str, str]] | None:
    """(question, answer) pairs of a record; None when the conversation is not human/gpt alternating.

    As LLaVA's preprocessing, a conversation that opens with the assistant loses that first turn.
    """
    messages = record.get("conversations")
    if not isinstance(messages, list) or not messages:
        return None
    if isinstance(messages[0], dict) and messages[0].get("from") not in HUMAN_ROLES:
        messages = messages[1:]
    if not messages or len(messages) % 2:
        return None
    turns = []
    for question, answer in zip(messages[0::2], messages[1::2]):
        if not (isinstance(question, dict) and isinstance(answer, dict)):
            return None
        if question.get("from") not in HUMAN_ROLES or answer.get("from") not in ASSISTANT_ROLES:
            return None
        if not isinstance(question.get("value"), str) or not isinstance(answer.get("value"), str):
            return None
        turns.append((question["value"], answer["value"]))
    return turns


def record_images(record: dict[str, Any]) -> list[str] | None:
    """The record's image paths; None when `image` is neither a path nor a list of paths."""
    image = record.get("image")
    if image is None:
        return []
    if isinstance(image, str):
        return [image]
    if isinstance(image, list) and all(isinstance(name, str) for name in image):
        return list(image)
    return None


def safe_image_path(image_folder: Path, relative: str) -> Path:
    """`image_folder / relative`, refusing paths that leave the folder (absolute, `..`, or an image file that is a
    symbolic link to somewhere outside it). Linked subfolders (`images/coco -> /data/coco`) are the layout's own
    business and stay allowed; a link planted as the image itself is not."""
    normal = os.path.normpath(relative)
    if os.path.isabs(relative) or normal == ".." or normal.startswith(".." + os.sep):
        raise UserError(
            f"image path {relative!r} leaves the image folder {image_folder}; image paths must be relative to it"
        )
    path = image_folder / normal
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        folder = Path(os.path.realpath(path.parent))
        if folder != target.parent and folder not in target.parents:
            raise UserError(
                f"image {relative!r} in {image_folder} is a symbolic link to {target}, outside the image folder; "
                "copy the image in or link the folder that holds it"
            )
    return path


class ImageUnreadable(Exception):
    """An image that passed the check when the data was prepared could not be read while training."""


def check_image(path: Path) -> str | None:
    """Why the image at `path` cannot be trained on (header, size, decompression-bomb limit), or None."""
    try:
        stat = path.stat()
    except OSError:
        return "missing"
    return _image_problem(str(path), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=65536)
def _image_problem(path: str, size: int, mtime_ns: int) -> str | None:
    # keyed by size and time too: a file replaced on disk is checked again
    if size == 0:
        return "empty file (0 bytes)"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > MAX_IMAGE_PIXELS:
                    return f"{width}x{height} pixels, above the limit of {MAX_IMAGE_PIXELS} (a decompression bomb?)"
                image.verify()  # PNG: every chunk's checksum; other formats: what their plugin checks
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        return f"too large to decode safely ({exc})"
    except UnidentifiedImageError:
        return "not an image PIL can read"
    except (OSError, ValueError, SyntaxError, EOFError) as exc:
        return f"damaged ({exc})"
    return None


def fit_to_length(
    ids: list[int], labels: list[int], image_tokens: int, max_length: int
) -> tuple[list[int], list[int], int]:
    """Cut `ids`/`labels` where the original code cuts: the spliced sequence (each placeholder = `image_tokens`)
    at `max_length`. Returns (ids, labels, spliced length after the cut).

    As the original, the sample is kept whatever is left: an image that straddles the limit keeps its placeholder
    (the model then cuts its features, `TinyLlava.splice`), an image wholly past it is dropped, and a sample left
    without answer tokens stays (it adds nothing to the loss). The original also cuts the token ids at
    `max_length` before splicing; with at least one token per image that cut is contained in this one.
    """
    spliced, cut = 0, len(ids)
    for position, token in enumerate(ids):
        if spliced >= max_length:
            cut = position
            break
        spliced += image_tokens if token == IMAGE_TOKEN_INDEX else 1
    return ids[:cut], labels[:cut], min(spliced, max_length)


def has_target(labels: Sequence[int]) -> bool:
    """Whether any label is learned (the first never is, once the LM shifts labels by one)."""
    return any(label != IGNORE_INDEX for label in labels[1:])


def word_length(record: dict[str, Any]) -> int:
    """The original's length for grouping: words (whitespace split) of every message, negative without an image."""
    words = sum(
        len(message["value"].split())
        for message in record.get("conversations") or []
        if isinstance(message, dict) and isinstance(message.get("value"), str)
    )
    return words if record_images(record) else -words


def end_text_turn(template: Template, turns: list[tuple[str, str]]) -> int | None:
    """The first turn whose question or answer holds the template's end-of-answer text itself (`</s>`, ...)."""
    if not template.eos:
        return None
    for index, (question, answer) in enumerate(turns):
        if template.eos in question or template.eos in answer:
            return index
    return None


class ConversationDataset(torch.utils.data.Dataset):
    """Tokenised samples (held in flat int32 arrays, cheap to share with dataloader workers) + their images."""

    def __init__(
        self,
        ids: np.ndarray,
        labels: np.ndarray,
        offsets: np.ndarray,
        images: list[tuple[str, ...]],
        sample_ids: list[str],
        lengths: list[int],
        word_lengths: list[int],
        image_folder: Path,
        preprocessor: Any,
        report: DataReport,
    ) -> None:
        self.ids, self.labels, self.offsets = ids, labels, offsets
        self.images, self.sample_ids = images, sample_ids
        self.spliced_lengths = lengths
        self.word_lengths = word_lengths
        self.image_folder = image_folder
        self.preprocessor = preprocessor
        self.report = report

    def __len__(self) -> int:
        return len(self.sample_ids)

    @property
    def modality_lengths(self) -> list[int]:
        """The grouping key of the original's sampler: the record's word count, negative for text-only records."""
        return list(self.word_lengths)

    def token_ids(self, index: int) -> tuple[list[int], list[int]]:
        start, end = int(self.offsets[index]), int(self.offsets[index + 1])
        return self.ids[start:end].tolist(), self.labels[start:end].tolist()

    def __getitem__(self, index: int) -> dict[str, Any]:
        ids, labels = self.token_ids(index)
        try:
            pixels = [self._load_image(name) for name in self.images[index]]
        except ImageUnreadable as exc:
            # checked when the data was prepared, so the file changed since: skip the sample (the collator drops
            # it and training.json counts it) rather than lose the run
            logger.warning("sample %s skipped: %s", self.sample_ids[index], exc)
            return {"skipped": self.sample_ids[index]}
        return {"input_ids": ids, "labels": labels, "images": pixels}

    def _load_image(self, name: str) -> torch.Tensor:
        path = safe_image_path(self.image_folder, name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as image:
                    if image.size[0] * image.size[1] > MAX_IMAGE_PIXELS:
                        raise ImageUnreadable(
                            f"{path}: {image.size[0]}x{image.size[1]} pixels, above the limit"
                        )
                    return self.preprocessor(image.convert("RGB"))  # as LLaVA's training code
        except (
            Image.DecompressionBombError,
            Image.DecompressionBombWarning,
            OSError,
            ValueError,
            SyntaxError,
        ) as exc:
            raise ImageUnreadable(f"{path}: cannot read the image ({exc})") from None


@dataclass(frozen=True)
class EncodeSettings:
    """Everything that decides how a record becomes tokens; part of the tokenisation cache's key."""

    template: Template
    tokenizer: Any
    image_folder: Path
    image_tokens: int
    max_length: int
    caption_stage: bool
    # train on turns that hold the end-of-answer text itself; the original masks such samples whole
    keep_eos_text: bool = False


@dataclass
class EncodedRecord:
    record_id: str
    ids: np.ndarray
    labels: np.ndarray
    images: tuple[str, ...]
    spliced: int
    truncated: bool
    words: int  # signed word count (`word_length`)
    eos_text_masked: bool = False


def _is_unicode(turns: list[tuple[str, str]]) -> bool:
    """False when a value holds a lone surrogate (JSON's "\\ud800"), which no tokenizer can encode."""
    try:
        for question, answer in turns:
            question.encode("utf-8")
            answer.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


# A record set aside: (record id, reason), or (record id, reason, image, what is wrong with it)
SetAside = tuple[str, ...]


def encode_record(record: dict[str, Any], index: int, settings: EncodeSettings) -> EncodedRecord | SetAside:
    """The record's tokens and labels, fitted to max_length; or (record id, why it is set aside[, image, detail])."""
    record_id = str(record.get("id", index))
    turns = conversation_turns(record)
    if turns is None:
        return record_id, SKIP_MALFORMED
    names = record_images(record)
    if names is None:
        return record_id, SKIP_BAD_IMAGE_FIELD
    if not _is_unicode(turns):
        return record_id, SKIP_BAD_TEXT
    if settings.caption_stage and not names:
        return record_id, SKIP_NO_IMAGE_IN_CAPTION_STAGE
    placeholders = 1 if settings.caption_stage else sum(q.count(IMAGE_PLACEHOLDER) for q, _ in turns)
    if placeholders != len(names):
        return record_id, SKIP_PLACEHOLDERS
    if not all(safe_image_path(settings.image_folder, name).is_file() for name in names):
        return record_id, SKIP_MISSING_IMAGE
    for name in names:
        problem = check_image(safe_image_path(settings.image_folder, name))
        if problem:
            return record_id, SKIP_UNREADABLE_IMAGE, name, problem
    ids, labels = encode_conversation(settings.template, settings.tokenizer, turns)
    if ids.count(IMAGE_TOKEN_INDEX) != len(names):
        return record_id, SKIP_PLACEHOLDERS
    masked = False
    literal = None if settings.keep_eos_text else end_text_turn(settings.template, turns)
    if literal is not None:
        # The original splits the conversation into rounds at the end-of-answer text, so a literal one makes a
        # round it cannot parse; it stops counting there and, finding fewer tokens than the sample has, ignores
        # every label ("tokenization mismatch"), unless the rounds it did count already reach model_max_length.
        counted = (
            len(encode_conversation(settings.template, settings.tokenizer, turns[:literal])[0])
            if literal
            else 0
        )
        if counted < settings.max_length:
            labels = [IGNORE_INDEX] * len(labels)
            masked = True
    full = len(ids)
    ids, labels, spliced = fit_to_length(ids, labels, settings.image_tokens, settings.max_length)
    return EncodedRecord(
        record_id,
        np.asarray(ids, dtype=np.int32),
        np.asarray(labels, dtype=np.int32),
        tuple(names[: ids.count(IMAGE_TOKEN_INDEX)]),
        spliced,
        len(ids) < full,
        word_length(record),
        masked,
    )


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


def _cache_key(settings: EncodeSettings, fingerprint: str) -> str:
    tokenizer = settings.tokenizer
    vocab = hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode()).hexdigest()
    key = {
        "version": CACHE_VERSION,
        "fingerprint": fingerprint,
        "template": repr(settings.template),
        "vocab": vocab,
        "tokenizer": type(tokenizer).__name__,
        "image_folder": str(settings.image_folder),
        "image_tokens": settings.image_tokens,
        "max_length": settings.max_length,
        "caption_stage": settings.caption_stage,
        "keep_eos_text": settings.keep_eos_text,
    }
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]


CACHE_VERSION = 3  # 2: the original's cuts, whole-sample masks and word lengths; 3: image checks and stats


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
    cache = Path(cache_dir) / f"tokenized-{_cache_key(settings, fingerprint)}" if cache_dir else None
    if cache is not None and (cache.with_suffix(".json")).is_file():
        dataset = _read_cache(cache, image_folder, preprocessor)
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
        _write_cache(cache, dataset, image_stats(image_folder, names))
    return dataset


def image_stats(image_folder: Path, names: Iterator[str] | set[str]) -> dict[str, list[int] | None]:
    """(size, modification time) of each named image, None where there is no such file: what the cache depends on."""
    stats: dict[str, list[int] | None] = {}
    for name in sorted(names):
        try:
            stat = os.stat(os.path.join(image_folder, name))
            stats[name] = [stat.st_size, stat.st_mtime_ns]
        except (OSError, ValueError):
            stats[name] = None
    return stats


def _write_cache(cache: Path, dataset: ConversationDataset, images: dict[str, list[int] | None]) -> None:
    """Arrays to `<cache>.npz`, the rest to `<cache>.json` (written last, atomically: its presence means done)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    partial = cache.parent / f".{cache.name}.{os.getpid()}"
    with open(partial.with_suffix(".npz"), "wb") as handle:
        np.savez(handle, ids=dataset.ids, labels=dataset.labels, offsets=dataset.offsets)
    os.replace(partial.with_suffix(".npz"), cache.with_suffix(".npz"))
    meta = {
        "sample_ids": dataset.sample_ids,
        "images": [list(names) for names in dataset.images],
        "lengths": dataset.spliced_lengths,
        "word_lengths": dataset.word_lengths,
        "report": dataset.report.to_dict(),
        "image_stats": images,
    }
    partial.with_suffix(".json").write_text(json.dumps(meta))
    os.replace(partial.with_suffix(".json"), cache.with_suffix(".json"))


def _read_cache(cache: Path, image_folder: Path, preprocessor: Any) -> ConversationDataset | None:
    """The cached dataset; None when an image it depends on changed (or the cache cannot be read)."""
    try:
        meta = json.loads(cache.with_suffix(".json").read_text())
    except ValueError:
        return None
    stats = meta.get("image_stats", {})
    if image_stats(image_folder, set(stats)) != stats:
        return None
    with np.load(cache.with_suffix(".npz")) as arrays:
        ids, labels, offsets = arrays["ids"], arrays["labels"], arrays["offsets"]
    report = DataReport(**{k: v for k, v in meta["report"].items()})
    return ConversationDataset(
        ids,
        labels,
        offsets,
        [tuple(names) for names in meta["images"]],
        meta["sample_ids"],
        meta["lengths"],
        meta["word_lengths"],
        image_folder,
        preprocessor,
        report,
    )


@dataclass
class ConversationCollator:
    """Right-pads a batch: input_ids/labels [B, L], lengths [B], and the batch's images stacked in sample order.

    The pad id is never seen by the model (TinyLlava.forward gets each row cut to its length), so a pad that equals
    EOS (Phi-2) cannot mask a real EOS.
    """

    pad_token_id: int

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Any]:
        # samples whose image failed to load are dropped here and named in the batch, so the trainer counts them
        skipped = [f["skipped"] for f in features if "skipped" in f]
        features = [f for f in features if "skipped" not in f]
        longest = max((len(f["input_ids"]) for f in features), default=0)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), longest), IGNORE_INDEX, dtype=torch.long)
        lengths = torch.zeros(len(features), dtype=torch.long)
        pixels = []
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.as_tensor(feature["input_ids"], dtype=torch.long)
            labels[row, :n] = torch.as_tensor(feature["labels"], dtype=torch.long)
            lengths[row] = n
            pixels.extend(feature["images"])
        batch: dict[str, Any] = {"input_ids": input_ids, "labels": labels, "lengths": lengths}
        if skipped:
            batch["skipped"] = skipped
        if pixels:
            batch["pixel_values"] = torch.stack(pixels)
        return batch
