"""Batches for the trainer: tokenised samples right-padded, their images stacked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from tinyllava_bench.models.tokenization import IGNORE_INDEX


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
