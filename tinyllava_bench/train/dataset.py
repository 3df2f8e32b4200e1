"""The tokenised training set (flat arrays + images, read by the dataloader) and the report of what became of
the records of its data file."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from tinyllava_bench.tasks.images import MAX_IMAGE_PIXELS
from tinyllava_bench.train.image_checks import ImageUnreadable, safe_image_path

logger = logging.getLogger("tinyllava_bench.train")

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
