"""The mixer's fused pointwise Functions against the plain PyTorch they replace."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from trellis_ts.modules.fused import (
    Dropout,
    conv_backward,
    conv_forward,
    rms_norm_gate,
    silu_norm_backward,
    silu_norm_forward,
)


class _Conv(torch.autograd.Function):  # the forward/backward pair as one node, to gradcheck it
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return conv_forward(x, weight, bias)

    @staticmethod
    def backward(ctx, grad_y):
        return conv_backward(grad_y, *ctx.saved_tensors)


class _SiluNorm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        y, inv = silu_norm_forward(x)
        ctx.save_for_backward(x, y, inv)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        return silu_norm_backward(grad_y, *ctx.saved_tensors)


causal_depthwise_conv, silu_unit_norm = _Conv.apply, _SiluNorm.apply


def _randn(*shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=gen, dtype=torch.float64).requires_grad_()


@pytest.mark.parametrize("length", [1, 2, 9])
def test_causal_depthwise_conv_is_the_causal_grouped_conv(length):
    x, w, b = _randn(2, length, 3), _randn(3, 4, seed=1), _randn(3, seed=2)
    reference = F.conv1d(F.pad(x.transpose(1, 2), (3, 0)), w[:, None, :], b, groups=3)
    torch.testing.assert_close(causal_depthwise_conv(x, w, b), reference.transpose(1, 2))
    assert torch.autograd.gradcheck(causal_depthwise_conv, (x, w, b))


def test_silu_unit_norm():
    x = _randn(2, 5, 3, 4)
    torch.testing.assert_close(silu_unit_norm(x), F.normalize(F.silu(x), dim=-1))
    assert torch.autograd.gradcheck(silu_unit_norm, (x,))
    zero = torch.full((1, 4), -1e4, dtype=torch.float64, requires_grad=True)  # SiLU(x) ≈ 0
    assert torch.isfinite(silu_unit_norm(zero)).all()


def test_rms_norm_gate():
    y, g, w = _randn(2, 5, 3, 4), _randn(2, 5, 3, 4, seed=1), _randn(4, seed=2)
    norm = nn.RMSNorm(4, eps=1e-6, dtype=torch.float64)
    with torch.no_grad():
        norm.weight.copy_(w)
    torch.testing.assert_close(rms_norm_gate(y, w, g, 1e-6), norm(y) * F.gelu(g))
    assert torch.autograd.gradcheck(lambda a, b, c: rms_norm_gate(a, b, c, 1e-6), (y, w, g))


def test_dropout_rate_scale_gradient_and_seed():
    drop = Dropout(0.25)
    x = torch.ones(200_000, requires_grad=True)
    torch.manual_seed(3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.75) < 0.005
    torch.testing.assert_close(y[kept], torch.full_like(y[kept], 1 / 0.75))
    y.sum().backward()
    torch.testing.assert_close(x.grad, y.detach())  # the same mask and scale
    torch.manual_seed(3)
    torch.testing.assert_close(drop(x), y)  # seeded like any torch draw
    assert drop.eval()(x) is x
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)
