"""Small reusable modules: the feed-forward block and the short causal convolution."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.modules.fused import Dropout


class SwiGLU(nn.Module):
    """`W_out (SiLU(W_gate x) ⊙ W_up x)`, the feed-forward half of a layer."""

    def __init__(self, d_model: int, hidden: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d_model, 2 * hidden, bias=False)
        self.out = nn.Linear(hidden, d_model, bias=False)
        self.dropout = Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.out(self.dropout(F.silu(gate) * up))


class CausalConv1d(nn.Module):
    """Depthwise convolution over tokens that sees only the current and earlier tokens."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(channels, channels, kernel_size, groups=channels)

    def forward(self, x: Tensor) -> Tensor:
        """`x [B, T, D]` → `[B, T, D]`."""
        x = F.pad(x.transpose(1, 2), (self.kernel_size - 1, 0))
        return self.conv(x).transpose(1, 2)
