"""Image-prefix sharing: many questions about one picture prefill the picture once.

In every TinyLLaVA template the image comes before the question, so the prompt up to and including the image
(system prompt, `USER: `, the image's features) is the same for every question about that picture. It is encoded
and prefilled once into a KV cache (transformers' DynamicCache); each question then runs only its own remaining
tokens and its answer on a copy of that cache, expanded along the batch dimension.

Positions are those of the unshared run: the prefix sits at 0..P-1 in every row, a row's suffix at P..P+s-1 and
its answer after it. Rows of one batch whose suffixes differ in length are padded between prefix and suffix (masked
out, the position ids skipping the gap), so no row's tokens move.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from tinyllava_bench.models.tokenization import IMAGE_TOKEN_INDEX


@dataclass
class PromptSplit:
    """One prompt cut after its image token: `prefix` is shared by every question about the same picture."""

    prefix: tuple[int, ...]  # token ids up to and including IMAGE_TOKEN_INDEX
    suffix: list[int]  # the question's own tokens (never empty)


def split_prompt(ids: Sequence[int], image_tokens: int, max_length: int | None) -> PromptSplit | None:
    """`ids` cut after its one image token, or None where sharing does not apply: no image or several, nothing
    after the image, or a sequence that `max_length` would cut (that one runs unshared, cut as before)."""
    ids = list(ids)
    positions = [i for i, token in enumerate(ids) if token == IMAGE_TOKEN_INDEX]
    if len(positions) != 1 or positions[0] == len(ids) - 1:
        return None
    if max_length is not None and len(ids) - 1 + image_tokens > max_length:
        return None
    cut = positions[0] + 1
    return PromptSplit(tuple(ids[:cut]), ids[cut:])


@dataclass
class PrefixStore:
    """Prefilled prefixes by (image key, prefix ids): each layer's keys and values, [1, heads, P, head_dim].

    Kept by the caller across the chunks of one group of questions, so a picture is encoded and prefilled once
    however many batches its questions take."""

    entries: dict[tuple[Hashable, tuple[int, ...]], list[tuple[torch.Tensor, torch.Tensor]]] = field(
        default_factory=dict
    )

    def __contains__(self, key: tuple[Hashable, tuple[int, ...]]) -> bool:
        return key in self.entries

    def length(self, key: tuple[Hashable, tuple[int, ...]]) -> int:
        """The prefix's length in positions (its image tokens expanded)."""
        return self.entries[key][0][0].shape[-2]

    def add(self, keys: Sequence[tuple[Hashable, tuple[int, ...]]], cache: Any) -> None:
        """Row i of a batched prefill `cache` is the prefix of `keys[i]`."""
        layers = [(layer.keys, layer.values) for layer in cache.layers]
        for row, key in enumerate(keys):
            self.entries[key] = [(k[row : row + 1], v[row : row + 1]) for k, v in layers]

    def expanded(self, keys: Sequence[tuple[Hashable, tuple[int, ...]]], config: Any) -> Any:
        """A new DynamicCache whose row i is a copy of the prefix of `keys[i]` (the stored ones stay untouched)."""
        from transformers import DynamicCache

        rows = [self.entries[key] for key in keys]
        data = [
            (torch.cat([row[layer][0] for row in rows]), torch.cat([row[layer][1] for row in rows]))
            for layer in range(len(rows[0]))
        ]
        return DynamicCache(ddp_cache_data=data, config=config)


def cache_argument(language_model: Any) -> str:
    """The name the installed transformers gives the cache argument (`cache` from 5.2x, `past_key_values` before)."""
    import inspect

    parameters = inspect.signature(language_model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def output_cache(output: Any) -> Any:
    cache = output.get("cache")
    return cache if cache is not None else output.get("past_key_values")


def suffix_inputs(
    suffix_embeds: Sequence[torch.Tensor], prefix_length: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """inputs_embeds [B, P+S, H] (the prefix part is never read: its keys and values come from the cache) and the
    attention mask [B, P+S]: prefix, then padding, then each row's suffix, so generate's position ids (the mask's
    running count) put the suffix right after the prefix, as in the unshared run."""
    longest = max(e.shape[0] for e in suffix_embeds)
    first = suffix_embeds[0]
    batch, hidden = len(suffix_embeds), first.shape[1]
    embeds = torch.zeros(batch, prefix_length + longest, hidden, dtype=first.dtype, device=first.device)
    mask = torch.zeros(batch, prefix_length + longest, dtype=torch.long, device=first.device)
    mask[:, :prefix_length] = 1
    for row, suffix in enumerate(suffix_embeds):
        n = suffix.shape[0]
        embeds[row, prefix_length + longest - n :] = suffix
        mask[row, prefix_length + longest - n :] = 1
    return embeds, mask
