"""Connectors from vision features to LLM embeddings, by name; parameter names match TinyLLaVA_Factory's."""

from __future__ import annotations

import re

import torch
from torch import nn

from tinyllava_bench.errors import UserError

CONNECTOR_TYPES = ("mlp2x_gelu", "mlp3x_gelu", "linear", "resampler", "identity")


def build_connector(
    connector_type: str,
    vision_hidden: int,
    llm_hidden: int,
    *,
    num_queries: int | None = None,
    num_layers: int | None = None,
) -> nn.Module:
    """`mlpNx_gelu` = Linear(vision→llm) then N-1 × (exact GELU, Linear(llm→llm)); keys `0`, `2`, ... as LLaVA."""
    mlp = re.fullmatch(r"mlp(\d+)x_gelu", connector_type)
    if mlp:
        modules: list[nn.Module] = [nn.Linear(vision_hidden, llm_hidden)]
        for _ in range(1, int(mlp.group(1))):
            modules += [nn.GELU(), nn.Linear(llm_hidden, llm_hidden)]
        return nn.Sequential(*modules)
    if connector_type == "linear":
        return nn.Linear(vision_hidden, llm_hidden)
    if connector_type == "identity":
        return nn.Identity()
    if connector_type == "resampler":
        return PerceiverResampler(vision_hidden, llm_hidden, num_queries or 64, num_layers or 2)
    raise UserError(f"unknown connector {connector_type!r}; known: {', '.join(CONNECTOR_TYPES)}")


class PerceiverAttention(nn.Module):
    """Learned latents attend to [media; latents] (Flamingo-style), 8 heads of 64."""

    def __init__(self, dim: int, dim_head: int = 64, heads: int = 8) -> None:
        super().__init__()
        self.heads, self.dim_head = heads, dim_head
        inner = dim_head * heads
        self.norm_media = nn.LayerNorm(dim)
        self.norm_latents = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, inner * 2, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        return x.view(b, n, self.heads, self.dim_head).transpose(1, 2)

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        media, latents = self.norm_media(media), self.norm_latents(latents)
        q = self._split_heads(self.to_q(latents)) * self.dim_head**-0.5
        k, v = self.to_kv(torch.cat((media, latents), dim=1)).chunk(2, dim=-1)
        k, v = self._split_heads(k), self._split_heads(v)
        sim = q @ k.transpose(-1, -2)
        attn = (sim - sim.amax(dim=-1, keepdim=True).detach()).softmax(dim=-1)
        out = (attn @ v).transpose(1, 2).flatten(2)
        return self.to_out(out)


class _ResamplerLayer(nn.ModuleList):
    """One (attention, feed-forward) pair; a ModuleList so the weights keep Factory's names `layers.N.0`/`.1`."""

    def __init__(self, dim: int) -> None:
        super().__init__(
            [
                PerceiverAttention(dim),
                nn.Sequential(
                    nn.LayerNorm(dim),
                    nn.Linear(dim, dim * 4, bias=False),
                    nn.GELU(),
                    nn.Linear(dim * 4, dim, bias=False),
                ),
            ]
        )

    def forward(self, media: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        attention, feed_forward = self[0], self[1]
        latents = attention(media, latents) + latents
        return feed_forward(latents) + latents


class PerceiverResampler(nn.Module):
    """Factory's `resampler`: project, then `num_layers` × (attention, feed-forward) over `num_queries` latents."""

    def __init__(self, vision_hidden: int, dim: int, num_queries: int, num_layers: int) -> None:
        super().__init__()
        self.latents = nn.Parameter(torch.randn(num_queries, dim))
        self.linear = nn.Linear(vision_hidden, dim)
        self.layers = nn.ModuleList(_ResamplerLayer(dim) for _ in range(num_layers))
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.linear(x)
        latents = self.latents.unsqueeze(0).expand(x.shape[0], -1, -1)
        for layer in self.layers:
            latents = layer(x, latents)
        return self.norm(latents)
