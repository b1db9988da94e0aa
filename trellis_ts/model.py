"""`TrellisModel`: RevIN → patches → causal encoder blocks → head, channel-independent."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.config import TrellisConfig
from trellis_ts.layers import make_mixer
from trellis_ts.nn.blocks import SwiGLU
from trellis_ts.nn.fused import Dropout
from trellis_ts.nn.heads import FlattenHead, PoolHead
from trellis_ts.nn.patching import make_patches
from trellis_ts.nn.revin import denormalize, normalize


class EncoderBlock(nn.Module):
    """`x + Mixer(RMSNorm(x))`, then `x + SwiGLU(RMSNorm(x))`."""

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        self.mixer_norm = nn.RMSNorm(config.d_model)
        self.mixer = make_mixer(config)
        self.ffn_norm = nn.RMSNorm(config.d_model)
        self.ffn = SwiGLU(config.d_model, int(config.ffn_mult * config.d_model), config.dropout)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.dropout(self.mixer(self.mixer_norm(x)))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """`[n, d]` fixed sin/cos position codes (no parameters, any length)."""
    position = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    codes = torch.zeros(n, d)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: d // 2])
    return codes


class TrellisModel(nn.Module):
    """Forecast `prediction_length` steps of every channel from `context_length` past steps.

    `forward(x [B, L, C]) -> [B, H, C]`, or `[B, H, C, Q]` when trained on Q quantiles. Channels
    are independent (each is its own sequence of patch tokens through shared weights), so the
    same model serves any number of channels or series. The encoder is causal over patches.
    The trellis mixer needs no position code (its recurrence is order-aware); the attention
    baseline gets fixed sinusoidal ones.
    """

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Linear(config.patch_len, config.d_model)
        if config.mixer == "attention":
            self.register_buffer(
                "positions",
                sinusoidal_positions(config.n_patches, config.d_model),
                persistent=False,
            )
        else:
            self.positions = None
        self.embed_dropout = Dropout(config.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(config) for _ in range(config.n_layers))
        self.norm = nn.RMSNorm(config.d_model)
        out = config.prediction_length * config.n_outputs
        # A linear map of the normalised context to the horizon beside the encoder (as DLinear /
        # RLinear forecast on their own); the encoder's head adds what it misses.
        self.linear = (
            nn.Linear(config.context_length, config.prediction_length)
            if config.linear_path
            else None
        )
        if config.head == "flatten":
            self.head = FlattenHead(config.n_patches, config.d_model, out, config.dropout)
        else:
            self.head = PoolHead(config.d_model, out, config.pool_queries, config.dropout)

    def forward(self, x: Tensor) -> Tensor:
        config = self.config
        batch, length, channels = x.shape
        if length != config.context_length:
            raise ValueError(f"expected {config.context_length} input steps, got {length}")
        stats = None
        if config.revin:
            x, stats = normalize(x)
        series = x.transpose(1, 2).reshape(batch * channels, length)  # channel independence
        tokens = self.embed(make_patches(series, config.patch_len, config.patch_stride))
        if self.positions is not None:
            tokens = tokens + self.positions
        h = self.embed_dropout(tokens)
        for block in self.blocks:
            h = block(h)
        y = self.head(self.norm(h))  # [B*C, H*Q]
        y = y.view(batch * channels, config.prediction_length, config.n_outputs)
        if self.linear is not None:  # into the point (middle) output: quantiles keep their gaps
            mid = config.n_outputs // 2
            y = torch.cat([y[..., :mid], y[..., mid : mid + 1] + self.linear(series)[..., None],
                           y[..., mid + 1 :]], dim=-1)  # fmt: skip
        y = y.view(batch, channels, config.prediction_length, config.n_outputs).transpose(1, 2)
        y = _monotone(y) if config.n_outputs > 1 else y.squeeze(-1)
        if stats is not None:
            y = denormalize(y, stats)
        return y


def _monotone(y: Tensor) -> Tensor:
    """Quantile outputs that never cross: the middle one, plus/minus cumulative softplus gaps."""
    mid = y.shape[-1] // 2
    centre = y[..., mid : mid + 1]
    above = centre + F.softplus(y[..., mid + 1 :]).cumsum(-1)
    below = centre - F.softplus(y[..., :mid]).flip(-1).cumsum(-1).flip(-1)
    return torch.cat([below, centre, above], dim=-1)


def example_inputs(
    config: TrellisConfig, batch: int = 2, channels: int = 3, seed: int = 0
) -> Tensor:
    """A random `[batch, context_length, channels]` input for shape checks."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.context_length, channels, generator=gen)
