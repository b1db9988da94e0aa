"""The Trellis token mixer: projections and gates around the two-pass op (TRELLIS.md, Figure 1)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.config import TrellisConfig
from trellis_ts.nn.fused import causal_depthwise_conv, rms_norm_gate, silu_unit_norm
from trellis_ts.ops.trellis import chunk_trellis

_OLD_PROJECTIONS = ("qkv", "alpha", "beta", "gamma", "out_gate")  # 0.1.0's separate Linears


class TrellisMixer(nn.Module):
    """`x [B, T, D]` → `[B, T, D]`, causal over tokens.

    One Linear makes every per-token input of the layer: q, k, v, the targets alpha (heads ×
    slots), the forget and learning-rate gates (one per head) and the output gate. Then:

    - q, k: short causal depthwise conv → SiLU → unit L2 norm per head; v: SiLU → unit norm
      (unit-norm writes keep the update contractive);
    - beta = sigmoid, computed as logsigmoid, its bias set so beta starts at `beta_init`;
      gamma = sigmoid, divided by `chunk_size` for a nonlinear φ (the stale-gradient chunk's
      bound, ops/trellis/README.md "Stability"; φ = identity chunks exactly and needs none);
    - per-head RMSNorm of the op's output, times GELU(output gate), then Linear out.
    """

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        d_model, heads = config.d_model, config.n_heads
        self.heads, self.slots = heads, config.n_slots
        self.head_dim = d_model // heads
        self.chunk_size, self.phi, self.between = config.chunk_size, config.phi, config.between
        self.forget_gate = config.forget_gate
        # q, k, v | alpha | beta | gamma | output gate
        self.widths = (3 * d_model, heads * config.n_slots, heads, heads, d_model)
        self.proj = nn.Linear(d_model, sum(self.widths))
        self.conv_size = config.conv_size
        if config.conv_size:
            # As nn.Conv1d(groups=channels) initialises them: uniform(±1/√K).
            bound = 1.0 / math.sqrt(config.conv_size)
            self.conv_weight = nn.Parameter(
                torch.empty(2 * d_model, config.conv_size).uniform_(-bound, bound)
            )
            self.conv_bias = nn.Parameter(torch.empty(2 * d_model).uniform_(-bound, bound))
        self.out_norm_weight = nn.Parameter(torch.ones(self.head_dim))
        self.out = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.proj.bias[: 3 * d_model].zero_()
            beta = self._rows(2)
            self.proj.weight[beta].zero_()
            self.proj.bias[beta].fill_(math.log(config.beta_init / (1 - config.beta_init)))
        self._register_load_state_dict_pre_hook(self._from_separate_projections)

    def _rows(self, part: int) -> slice:
        start = sum(self.widths[:part])
        return slice(start, start + self.widths[part])

    def forward(self, x: Tensor) -> Tensor:
        heads, head_dim = self.heads, self.head_dim
        d_model = heads * head_dim
        qkv, alpha, beta, gamma, gate = self.proj(x).split(self.widths, dim=-1)
        if self.conv_size:
            qk = causal_depthwise_conv(qkv[..., : 2 * d_model], self.conv_weight, self.conv_bias)
            q, k = silu_unit_norm(qk.unflatten(-1, (2 * heads, head_dim))).chunk(2, dim=2)
            v = silu_unit_norm(qkv[..., 2 * d_model :].unflatten(-1, (heads, head_dim)))
        else:
            q, k, v = silu_unit_norm(qkv.unflatten(-1, (3 * heads, head_dim))).chunk(3, dim=2)
        alpha = alpha.unflatten(-1, (heads, self.slots))
        log_beta = F.logsigmoid(beta) if self.forget_gate else torch.zeros_like(beta)
        gamma = torch.sigmoid(gamma)
        if self.phi != "identity":
            gamma = gamma / self.chunk_size
        y, _ = chunk_trellis(
            q, k, v, alpha, log_beta, gamma,
            chunk_size=self.chunk_size, phi=self.phi, f=self.between,
        )  # fmt: skip
        y = rms_norm_gate(y, self.out_norm_weight, gate.unflatten(-1, (heads, head_dim)), 1e-6)
        return self.out(y.flatten(-2))

    def _from_separate_projections(self, state_dict, prefix, *args) -> None:
        """Load weights saved by trellis-ts 0.1.0, whose projections were separate Linears."""
        if prefix + "qkv.weight" not in state_dict:
            return
        weights = [state_dict.pop(f"{prefix}{name}.weight") for name in _OLD_PROJECTIONS]
        biases = [state_dict.pop(f"{prefix}{name}.bias", None) for name in _OLD_PROJECTIONS]
        biases = [
            torch.zeros(w.shape[0]) if b is None else b
            for w, b in zip(weights, biases, strict=True)
        ]
        state_dict[prefix + "proj.weight"] = torch.cat(weights)
        state_dict[prefix + "proj.bias"] = torch.cat(biases)
        if prefix + "conv_q.conv.weight" in state_dict:
            convs = [state_dict.pop(f"{prefix}conv_{n}.conv.weight")[:, 0] for n in "qk"]
            state_dict[prefix + "conv_weight"] = torch.cat(convs)
            conv_biases = [state_dict.pop(f"{prefix}conv_{n}.conv.bias") for n in "qk"]
            state_dict[prefix + "conv_bias"] = torch.cat(conv_biases)
        state_dict[prefix + "out_norm_weight"] = state_dict.pop(prefix + "out_norm.weight")
