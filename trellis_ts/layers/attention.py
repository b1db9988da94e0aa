"""Causal softmax attention with the mixer interface: the PatchTST-style baseline."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.forecaster.config import TrellisConfig


class AttentionMixer(nn.Module):
    """`x [B, T, D]` → `[B, T, D]`: multi-head causal scaled-dot-product attention.

    Its time and memory grow with T² (the key-value set grows with the sequence), which is what
    the Trellis mixer is measured against.
    """

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        self.heads = config.n_heads
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model, bias=False)
        self.out = nn.Linear(config.d_model, config.d_model, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, -1)
        )
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, d]
        return self.out(y.transpose(1, 2).flatten(-2))
