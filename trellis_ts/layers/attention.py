"""Causal softmax attention with the mixer interface: the PatchTST-style baseline."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class AttentionMixer(nn.Module):
    """`x [B, T, D]` → `[B, T, D]`: multi-head causal scaled-dot-product attention.

    Its time and memory grow with T² (the key-value set grows with the sequence), which is what
    the Trellis mixer is measured against.
    """

    def __init__(self, d_model: int, n_heads: int) -> None:
        super().__init__()
        self.heads = n_heads
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)

    def forward(
        self, x: Tensor, state: tuple[Tensor, Tensor] | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, tuple[Tensor, Tensor]]:
        """`state` is the keys and values `[B, H, S, d]` of the tokens before `x` (a KV cache);
        with `return_state=True` the output comes with the cache extended by `x`'s tokens."""
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, -1)
        )
        if state is not None:
            k, v = torch.cat([state[0], k], dim=2), torch.cat([state[1], v], dim=2)
        new, seen = q.shape[2], k.shape[2]
        if new == seen:
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, d]
        else:  # token i of x sees the cache and x up to i
            mask = torch.ones(new, seen, dtype=torch.bool, device=x.device).tril(seen - new)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        y = self.out(y.transpose(1, 2).flatten(-2))
        return (y, (k, v)) if return_state else y
