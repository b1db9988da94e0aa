"""The Trellis token mixer: projections and gates around the two-pass op (TRELLIS.md, Figure 1)."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.modules.fused import (
    conv_backward,
    conv_forward,
    rms_norm_gate,
    silu_norm_backward,
    silu_norm_forward,
)
from trellis_ts.ops.trellis import (
    DEFAULT_BETWEEN,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PHI,
    TrellisState,
    chunk_trellis,
)

_OLD_PROJECTIONS = ("qkv", "alpha", "beta", "gamma", "out_gate")  # 0.1.0's separate Linears


class MixerState(NamedTuple):
    """What a Trellis layer carries from one piece of a sequence to the next, per series: the
    op's memories (`TrellisState`: `key_memory [B, H, m, d]`, `value_memory [B, H, m, d]`) and
    the q and k columns of the last `conv_size - 1` projection rows `[B, K - 1, 2D]`, which the
    causal conv reads."""

    memory: TrellisState
    conv_rows: Tensor


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

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        *,
        n_slots: int = 32,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        phi: str = DEFAULT_PHI,
        between: str = DEFAULT_BETWEEN,
        conv_size: int = 4,
        forget_gate: bool = True,
        beta_init: float = 0.97,
    ) -> None:
        super().__init__()
        heads = n_heads
        self.heads, self.slots = heads, n_slots
        self.head_dim = d_model // heads
        self.chunk_size, self.phi, self.between = chunk_size, phi, between
        self.forget_gate = forget_gate
        # q, k, v | alpha | beta | gamma | output gate
        self.widths = (3 * d_model, heads * n_slots, heads, heads, d_model)
        self.proj = nn.Linear(d_model, sum(self.widths))
        self.conv_size = conv_size
        if conv_size:
            # As nn.Conv1d(groups=channels) initialises them: uniform(±1/√K).
            bound = 1.0 / math.sqrt(conv_size)
            self.conv_weight = nn.Parameter(
                torch.empty(2 * d_model, conv_size).uniform_(-bound, bound)
            )
            self.conv_bias = nn.Parameter(torch.empty(2 * d_model).uniform_(-bound, bound))
        self.out_norm_weight = nn.Parameter(torch.ones(self.head_dim))
        self.out = nn.Linear(d_model, d_model, bias=False)
        with torch.no_grad():
            self.proj.bias[: 3 * d_model].zero_()
            beta = self._rows(2)
            self.proj.weight[beta].zero_()
            self.proj.bias[beta].fill_(math.log(beta_init / (1 - beta_init)))
        self._register_load_state_dict_pre_hook(self._from_separate_projections)

    def _rows(self, part: int) -> slice:
        start = sum(self.widths[:part])
        return slice(start, start + self.widths[part])

    def forward(
        self, x: Tensor, state: MixerState | None = None, return_state: bool = False
    ) -> Tensor | tuple[Tensor, MixerState]:
        """`state` carries what the layer read before `x` (the op's memories and the projection
        rows the causal conv still needs); with `return_state=True` the output comes with the
        state after `x`. Reading a sequence in pieces with the state carried gives the output of
        one call over the whole sequence."""
        heads, head_dim = self.heads, self.head_dim
        scale = 1.0 if self.phi == "identity" else 1.0 / self.chunk_size
        conv = (self.conv_weight, self.conv_bias) if self.conv_size else (None, None)
        h = self.proj(x)
        keep = max(self.conv_size - 1, 0)
        conv_width = 2 * heads * head_dim  # the conv reads the q and k columns only
        if state is not None and keep:  # the conv reads the last rows before x: run them again
            rows = state.conv_rows
            rest = h.shape[-1] - rows.shape[-1]
            if rest:  # the other columns' outputs of these rows are dropped below: zeros serve
                rows = torch.cat([rows, rows.new_zeros(*rows.shape[:2], rest)], dim=-1)
            h = torch.cat([rows, h], dim=1)
        q, k, v, alpha, log_beta, gamma, gate = LayerInputs.apply(
            h, *conv, heads, head_dim, self.slots, scale, self.forget_gate
        )
        if state is not None and keep:
            q, k, v, alpha, log_beta, gamma, gate = (
                t[:, keep:] for t in (q, k, v, alpha, log_beta, gamma, gate)
            )
        y, op_state = chunk_trellis(
            q,
            k,
            v,
            alpha,
            log_beta,
            gamma,
            chunk_size=self.chunk_size,
            phi=self.phi,
            f=self.between,
            initial_state=None if state is None else state.memory,
            output_final_state=return_state,
        )
        y = rms_norm_gate(y, self.out_norm_weight, gate.unflatten(-1, (heads, head_dim)), 1e-6)
        y = self.out(y.flatten(-2))
        if not return_state:
            return y
        rows = h[:, max(h.shape[1] - keep, 0) :, :conv_width]
        if rows.shape[1] < keep:  # fewer rows than the conv reads: zeros, as its padding
            rows = torch.cat(
                [rows.new_zeros(rows.shape[0], keep - rows.shape[1], rows.shape[2]), rows], 1
            )
        return y, MixerState(op_state, rows)

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


class LayerInputs(torch.autograd.Function):
    """From the projection `h [B, T, 3D + H·m + 2H + D]` to the op's inputs, in one node.

    q, k: causal conv (when weights are given) → SiLU → unit norm per head; v: SiLU → unit norm;
    alpha as is; log β = logsigmoid (0 without a forget gate); γ = sigmoid · `scale`; the output
    gate as is. q, k, v, alpha, log β and γ are laid out head-major (`[B, H, T, ·]` memory, seen
    as `[B, T, H, ·]`), which is how the op reads them, and the backward writes one gradient of
    `h` in place of the concatenation that splitting `h` would cost.
    """

    @staticmethod
    def forward(ctx, h, conv_weight, conv_bias, heads, head_dim, slots, scale, forget_gate):
        batch, length, _ = h.shape
        d_model = heads * head_dim
        edges = _edges(d_model, heads, slots)
        pre_qk = h[..., : 2 * d_model]
        if conv_weight is not None:
            pre_qk = conv_forward(pre_qk, conv_weight, conv_bias)
        qkv = h.new_empty(batch, 3 * heads, length, head_dim).transpose(1, 2)  # head-major
        _, inv_qk = silu_norm_forward(
            pre_qk.unflatten(-1, (2 * heads, head_dim)), out=qkv[:, :, : 2 * heads]
        )
        _, inv_v = silu_norm_forward(
            h[..., 2 * d_model : edges[1]].unflatten(-1, (heads, head_dim)),
            out=qkv[:, :, 2 * heads :],
        )
        alpha = _head_major(h[..., edges[1] : edges[2]].unflatten(-1, (heads, slots)))
        beta_logits = h[..., edges[2] : edges[3]]
        log_beta = F.logsigmoid(beta_logits) if forget_gate else torch.zeros_like(beta_logits)
        gamma = torch.sigmoid(h[..., edges[3] : edges[4]])
        ctx.save_for_backward(h, conv_weight, pre_qk, qkv, inv_qk, inv_v, gamma)
        ctx.meta = (heads, slots, head_dim, scale, forget_gate)
        q, k, v = qkv.chunk(3, dim=2)
        return (
            q,
            k,
            v,
            alpha,
            _head_major(log_beta),
            _head_major(gamma * scale),
            h[..., edges[4] :].contiguous(),
        )

    @staticmethod
    def backward(ctx, grad_q, grad_k, grad_v, grad_alpha, grad_log_beta, grad_gamma, grad_gate):
        h, conv_weight, pre_qk, qkv, inv_qk, inv_v, gamma = ctx.saved_tensors
        heads, slots, head_dim, scale, forget_gate = ctx.meta
        d_model = heads * head_dim
        edges = _edges(d_model, heads, slots)
        grad_h = torch.empty_like(h)
        # q and k: unit norm and SiLU, then (through the convolution) into grad_h.
        grad_pre = torch.empty_like(pre_qk).unflatten(-1, (2 * heads, head_dim))
        pre = pre_qk.unflatten(-1, (2 * heads, head_dim))
        for part, grad in ((slice(0, heads), grad_q), (slice(heads, 2 * heads), grad_k)):
            silu_norm_backward(
                _zeros_if_none(grad, qkv[:, :, part]),
                pre[:, :, part],
                qkv[:, :, part],
                inv_qk[:, :, part],
                out=grad_pre[:, :, part],
            )
        grad_pre = grad_pre.flatten(-2)
        grad_conv_weight = grad_conv_bias = None
        if conv_weight is not None:
            _, grad_conv_weight, grad_conv_bias = conv_backward(
                grad_pre, h[..., : 2 * d_model], conv_weight, grad_x=grad_h[..., : 2 * d_model]
            )
        else:
            grad_h[..., : 2 * d_model] = grad_pre
        v = slice(2 * heads, 3 * heads)
        silu_norm_backward(
            _zeros_if_none(grad_v, qkv[:, :, v]),
            h[..., 2 * d_model : edges[1]].unflatten(-1, (heads, head_dim)),
            qkv[:, :, v],
            inv_v,
            out=grad_h[..., 2 * d_model : edges[1]].unflatten(-1, (heads, head_dim)),
        )
        _copy_or_zero(grad_h[..., edges[1] : edges[2]], grad_alpha, flatten=True)
        beta_part = grad_h[..., edges[2] : edges[3]]
        if forget_gate and grad_log_beta is not None:  # d logsigmoid(x) / dx = sigmoid(−x)
            torch.mul(grad_log_beta, torch.sigmoid(-h[..., edges[2] : edges[3]]), out=beta_part)
        else:
            beta_part.zero_()
        gamma_part = grad_h[..., edges[3] : edges[4]]
        if grad_gamma is not None:
            torch.mul(grad_gamma, gamma * (1.0 - gamma) * scale, out=gamma_part)
        else:
            gamma_part.zero_()
        _copy_or_zero(grad_h[..., edges[4] :], grad_gate)
        return grad_h, grad_conv_weight, grad_conv_bias, None, None, None, None, None


def _head_major(x: Tensor) -> Tensor:
    """`[B, T, H, ...]` with `[B, H, T, ...]` memory: the op's layout, seen in the API's order."""
    return x.transpose(1, 2).contiguous().transpose(1, 2)


def _edges(d_model: int, heads: int, slots: int) -> tuple[int, ...]:
    """Where q, k, v | alpha | beta | gamma | gate start in the projection (and its width)."""
    widths = (3 * d_model, heads * slots, heads, heads, d_model)
    return tuple(sum(widths[:i]) for i in range(len(widths) + 1))


def _zeros_if_none(grad: Tensor | None, like: Tensor) -> Tensor:
    return torch.zeros_like(like) if grad is None else grad


def _copy_or_zero(target: Tensor, grad: Tensor | None, flatten: bool = False) -> None:
    if grad is None:
        target.zero_()
    else:
        target.copy_(grad.flatten(-2) if flatten else grad)
