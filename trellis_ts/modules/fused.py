"""Pointwise pieces of the Trellis mixer as autograd Functions with analytic backwards.

Recorded op by op, the mixer's short convolution, activations and norms cost more than its
matrix products on a CPU (each is a pass over `[B, T, D]` in the forward and two or three in
the backward). Each piece here does its work in as few passes as its math allows: the conv and
SiLU + unit-norm pairs (forward, backward) serve the mixer's one input node
(`trellis_ts.layers.trellis.LayerInputs`); the norm-and-gate and the dropout are autograd
Functions of their own. Pure PyTorch, any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_EPS = 1e-12


def conv_forward(x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
    """`y_t = b + Σ_j w_j ⊙ x_{t−K+1+j}` over tokens (zero before the first), `x [B, T, C]`,
    `weight [C, K]`, `bias [C]`: K shifted multiply-adds instead of a convolution kernel."""
    size = weight.shape[1]
    y = torch.addcmul(bias, x, weight[:, -1])
    for j in range(size - 1):
        shift = size - 1 - j
        if shift < x.shape[1]:
            y[:, shift:].addcmul_(x[:, :-shift], weight[:, j])
    return y


def conv_backward(grad_y: Tensor, x: Tensor, weight: Tensor, grad_x: Tensor | None = None):
    """Gradients of `conv_forward` (into `grad_x` when given): `(grad_x, grad_weight, grad_bias)`."""
    size = weight.shape[1]
    grad_x = torch.mul(grad_y, weight[:, -1], out=grad_x)
    grad_w = torch.empty_like(weight)
    grad_w[:, -1] = (grad_y * x).sum((0, 1))
    for j in range(size - 1):
        shift = size - 1 - j
        if shift < x.shape[1]:
            grad_x[:, :-shift].addcmul_(grad_y[:, shift:], weight[:, j])
            grad_w[:, j] = (grad_y[:, shift:] * x[:, :-shift]).sum((0, 1))
        else:
            grad_w[:, j] = 0.0
    return grad_x, grad_w, grad_y.sum((0, 1))


def silu_norm_forward(x: Tensor, out: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """`y = s / ‖s‖` with `s = SiLU(x)` over the last axis; returns `y` and `1 / ‖s‖`.

    Norms below 1e-6 count as 1e-6 (a zero vector maps to zero), as the clamp it replaces.
    """
    s = F.silu(x)
    inv = torch.linalg.vector_norm(s, dim=-1, keepdim=True).clamp_min_(math.sqrt(_EPS))
    inv = inv.reciprocal_()
    return torch.mul(s, inv, out=out), inv


def silu_norm_backward(grad_y, x, y, inv, out: Tensor | None = None) -> Tensor:
    """Gradient of `silu_norm_forward` with respect to `x` (into `out` when given)."""
    along = (grad_y * y).sum(-1, keepdim=True)
    along = torch.where(inv < 1.0 / math.sqrt(_EPS), along, 0.0)  # clamped: no projection
    grad_s = (grad_y - y * along).mul_(inv)
    sig = torch.sigmoid(x)
    return torch.mul(grad_s, sig.mul_(1.0 + x * (1.0 - sig)), out=out)


class RmsNormGate(torch.autograd.Function):
    """`RMSNorm(y) · w ⊙ GELU(g)` over the last axis: the mixer's output norm and post-gate.

    `y, g [..., d]`, `weight [d]`; GELU is the exact (erf) one.
    """

    @staticmethod
    def forward(ctx, y, weight, gate, eps):
        inv = torch.rsqrt(y.square().mean(-1, keepdim=True) + eps)
        normed = y * inv
        gelu = F.gelu(gate)
        out = normed * weight * gelu
        ctx.save_for_backward(normed, inv, weight, gate, gelu)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        normed, inv, weight, gate, gelu = ctx.saved_tensors
        weighted = grad_out * weight  # dL/d(normed ⊙ gelu)
        grad_normed = weighted * gelu
        cdf = 0.5 * (1.0 + torch.erf(gate * (1.0 / math.sqrt(2.0))))
        pdf = torch.exp(-0.5 * gate * gate) * (1.0 / math.sqrt(2.0 * math.pi))
        grad_gate = weighted * normed * (cdf + gate * pdf)
        reduce = tuple(range(grad_out.dim() - 1))
        grad_weight = (grad_out * normed * gelu).sum(reduce)
        grad_y = inv * (grad_normed - normed * (grad_normed * normed).mean(-1, keepdim=True))
        return grad_y, grad_weight, grad_gate, None


def rms_norm_gate(y: Tensor, weight: Tensor, gate: Tensor, eps: float) -> Tensor:
    return RmsNormGate.apply(y, weight, gate, eps)


_LANES = torch.iinfo(torch.int16).max - torch.iinfo(torch.int16).min + 1  # 65,536


class _DropoutMask(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, keep, scale):
        ctx.save_for_backward(keep)
        ctx.scale = scale
        return torch.where(keep, x * scale, 0.0)

    @staticmethod
    def backward(ctx, grad):
        (keep,) = ctx.saved_tensors
        return torch.where(keep, grad * ctx.scale, 0.0), None, None


class Dropout(torch.nn.Module):
    """Inverted dropout, as `nn.Dropout`, with a mask drawn four elements per random integer.

    On a CPU, `nn.Dropout`'s Bernoulli draw took longer than a quarter of a whole encoder
    training step; here one 64-bit draw gives four 16-bit lanes, each compared with `p`
    (so `p` is applied in steps of 1/65,536), about three times faster. Seeded by torch's
    generator like every other draw.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must lie in [0, 1), got {p}")
        self.p = p

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        if x.device.type != "cpu":  # accelerators have a fused kernel
            return F.dropout(x, self.p, True)
        n = x.numel()
        lanes = torch.randint(
            torch.iinfo(torch.int64).min,
            torch.iinfo(torch.int64).max,
            ((n + 3) // 4,),
            dtype=torch.int64,
            device=x.device,
        )
        lanes = lanes.view(torch.int16)[:n].view(x.shape)
        threshold = torch.iinfo(torch.int16).min + round(self.p * _LANES)
        return _DropoutMask.apply(x, lanes >= threshold, 1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"
