"""Seeded temperature sampling with one random stream per answer, so an answer depends on its seed, not its batch.

transformers' own sampling draws every row of a batch from the global RNG: the same question then gets another
answer when the batch size, the batch's other questions or a resumed run change what came before it. Here each
row owns a CPU generator seeded by the caller (e.g. from the run's seed and the sample's key) and draws exactly one
uniform number per step, so its answer is the same in any batch and on any device (up to the logits themselves).

The distribution is transformers' `do_sample=True` one: logits / temperature, then top-k, then top-p (nucleus),
then softmax; the token is picked by inverse CDF with the row's number. It runs as a logits processor inside a
greedy `generate` call: it leaves 0 on the drawn token and -inf elsewhere, so the argmax is the drawn token.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    """Sampling settings for one batch; `seeds[i]` seeds row i's stream."""

    temperature: float
    seeds: tuple[int, ...]
    top_k: int | None = None  # None or 0: no top-k cut
    top_p: float | None = None  # None or 1.0: no nucleus cut

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"sampling needs temperature > 0, got {self.temperature}")
        if self.top_p is not None and not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def rows(self, indices: Sequence[int]) -> Sampling:
        """The same settings for a sub-batch made of rows `indices` of this one."""
        return Sampling(self.temperature, tuple(self.seeds[i] for i in indices), self.top_k, self.top_p)


def sample_seed(*parts: object) -> int:
    """A 63-bit seed from any printable parts (run seed, task, sample key): stable across processes and runs."""
    digest = hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


class SeededSampler:
    """A transformers logits processor (duck-typed: transformers stays unimported until generation) that samples each row from its own generator (see the module docstring)."""

    def __init__(self, sampling: Sampling) -> None:
        self.sampling = sampling
        self.generators = [torch.Generator(device="cpu").manual_seed(seed) for seed in sampling.seeds]

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if scores.shape[0] != len(self.generators):
            raise ValueError(f"{scores.shape[0]} rows but {len(self.generators)} seeds")
        probs = warped_probabilities(scores, self.sampling)
        draws = torch.stack([torch.rand((), generator=g, dtype=torch.float64) for g in self.generators])
        tokens = draw_tokens(probs, draws.to(probs.device))
        out = torch.full_like(scores, float("-inf"))
        out.scatter_(1, tokens[:, None], 0.0)
        return out


def warped_probabilities(scores: torch.Tensor, sampling: Sampling) -> torch.Tensor:
    """Next-token probabilities after temperature, top-k and top-p, in transformers' order and with its rules."""
    logits = scores.float() / sampling.temperature
    if sampling.top_k:
        k = min(sampling.top_k, logits.shape[-1])
        kth = torch.topk(logits, k).values[..., -1, None]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if sampling.top_p is not None and sampling.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)
        cumulative = sorted_logits.softmax(-1).cumsum(-1)
        remove = cumulative <= (1 - sampling.top_p)
        remove[..., -1:] = False  # the most likely token always stays
        logits = logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))
    return logits.softmax(-1)


def draw_tokens(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """Inverse-CDF draw: row i takes the first token whose cumulative probability exceeds uniforms[i]."""
    cdf = probs.double().cumsum(-1)
    targets = uniforms.double()[:, None] * cdf[:, -1:]
    # right=True: a token of probability 0 (equal neighbours in the CDF) can never be the one found
    tokens = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    return tokens.clamp(max=probs.shape[-1] - 1)
