"""The Trellis token mixer: projections and gates around the two-pass op (TRELLIS.md, Figure 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.config import TrellisConfig
from trellis_ts.nn.blocks import CausalConv1d
from trellis_ts.ops.trellis import chunk_trellis


class TrellisMixer(nn.Module):
    """`x [B, T, D]` → `[B, T, D]`, causal over tokens.

    - q, k: Linear → short causal depthwise conv → SiLU → unit L2 norm per head;
      v: Linear → SiLU → unit L2 norm per head (unit-norm writes keep the update contractive).
    - alpha: Linear to heads × slots; beta = sigmoid(Linear) per head, computed as logsigmoid,
      bias set so beta starts at `beta_init`; gamma = sigmoid(Linear) / chunk_size per head
      (the bound keeps a chunk's summed step contractive: ops/trellis/README.md, "Stability").
    - per-head RMSNorm of the op's output, gated by GELU(Linear x), then Linear out.
    """

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        d_model, heads = config.d_model, config.n_heads
        self.heads, self.slots = heads, config.n_slots
        self.head_dim = d_model // heads
        self.chunk_size, self.phi, self.between = config.chunk_size, config.phi, config.between
        self.forget_gate = config.forget_gate
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.conv_q = CausalConv1d(d_model, config.conv_size) if config.conv_size else None
        self.conv_k = CausalConv1d(d_model, config.conv_size) if config.conv_size else None
        self.alpha = nn.Linear(d_model, heads * config.n_slots)
        self.beta = nn.Linear(d_model, heads)
        self.gamma = nn.Linear(d_model, heads)
        self.out_norm = nn.RMSNorm(self.head_dim)
        self.out_gate = nn.Linear(d_model, d_model)
        self.out = nn.Linear(d_model, d_model, bias=False)
        nn.init.zeros_(self.beta.weight)
        nn.init.constant_(self.beta.bias, math.log(config.beta_init / (1 - config.beta_init)))

    def _heads(self, x: Tensor) -> Tensor:
        """`[B, T, D]` → unit-norm `[B, T, H, D/H]`."""
        x = x.unflatten(-1, (self.heads, self.head_dim))
        # rsqrt of the squared norm: the same as F.normalize, several times faster on CPU here.
        return x * torch.rsqrt(x.square().sum(-1, keepdim=True).clamp_min(1e-12))

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        if self.conv_q is not None:
            q, k = self.conv_q(q), self.conv_k(k)
        q, k, v = (self._heads(F.silu(t)) for t in (q, k, v))
        alpha = self.alpha(x).unflatten(-1, (self.heads, self.slots))
        log_beta = F.logsigmoid(self.beta(x)) if self.forget_gate else x.new_zeros(q.shape[:3])
        gamma = self.gamma(x).sigmoid() / self.chunk_size
        y, _ = chunk_trellis(
            q, k, v, alpha, log_beta, gamma,
            chunk_size=self.chunk_size, phi=self.phi, f=self.between,
        )  # fmt: skip
        y = self.out_norm(y).flatten(-2) * F.gelu(self.out_gate(x))
        return self.out(y)
