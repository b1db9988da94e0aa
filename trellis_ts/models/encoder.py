"""`TrellisModel`: RevIN → patches (+ covariates) → causal encoder blocks → head, channel-independent."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.layers import AttentionMixer, TrellisMixer
from trellis_ts.models.covariates import (
    CovariateEncoder,
    ModelInputs,
    future_tokens,
    repeat_for_channels,
)
from trellis_ts.models.spec import ModelSpec
from trellis_ts.modules.blocks import SwiGLU
from trellis_ts.modules.fused import Dropout
from trellis_ts.modules.heads import FlattenHead, PoolHead
from trellis_ts.modules.patching import make_patches
from trellis_ts.modules.revin import denormalize, normalize


def make_mixer(spec: ModelSpec) -> nn.Module:
    """The spec's token mixer (`trellis_ts.layers`), from its explicit arguments."""
    if spec.mixer == "attention":
        window = spec.attention_window if spec.streaming else None
        return AttentionMixer(spec.d_model, spec.n_heads, window)
    return TrellisMixer(spec.d_model, spec.n_heads, **spec.mixer_options)


class EncoderBlock(nn.Module):
    """`x + Mixer(RMSNorm(x))`, then `x + SwiGLU(RMSNorm(x))`."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        self.mixer_norm = nn.RMSNorm(config.d_model)
        self.mixer = make_mixer(config)
        self.ffn_norm = nn.RMSNorm(config.d_model)
        self.ffn = SwiGLU(config.d_model, int(config.ffn_mult * config.d_model), config.dropout)
        self.dropout = Dropout(config.dropout)

    def forward(self, x: Tensor, state=None, return_state: bool = False):
        """With `state`/`return_state`, the mixer's state in and out (`trellis_ts.layers`)."""
        y = self.mixer(self.mixer_norm(x), state, return_state)
        if return_state:
            y, state = y
        x = x + self.dropout(y)
        x = x + self.dropout(self.ffn(self.ffn_norm(x)))
        return (x, state) if return_state else x


def sinusoidal_positions(n: int, d: int) -> Tensor:
    """`[n, d]` fixed sin/cos position codes (no parameters, any length)."""
    position = torch.arange(n, dtype=torch.float32)[:, None]
    freq = torch.exp(torch.arange(0, d, 2, dtype=torch.float32) * (-math.log(10000.0) / d))
    codes = torch.zeros(n, d)
    codes[:, 0::2] = torch.sin(position * freq)
    codes[:, 1::2] = torch.cos(position * freq[: d // 2])
    return codes


class TrellisModel(nn.Module):
    """Forecast `prediction_length` steps of a series from its `context_length` past steps.

    `forward(past_target [B, L]) -> [B, H]`, or `[B, H, Q]` when trained on Q quantiles; a
    multichannel `[B, L, C]` gives `[B, H, C]` (`[B, H, C, Q]`), each channel on its own.
    Channels are independent (each is its own sequence of patch tokens through shared
    weights), so the same model serves any number of channels or series. The encoder is causal
    over patches. The trellis mixer needs no position code (its recurrence is order-aware); the
    attention baseline gets fixed sinusoidal ones.

    Built with `inputs` (`ModelInputs`), it also reads the covariates of each window, by the
    batch's field names (`trellis_ts.models.covariates` explains how they enter); a row's
    covariates serve all its channels. Without covariates no covariate weights exist.
    """

    def __init__(self, config: ModelSpec, inputs: ModelInputs | None = None) -> None:
        super().__init__()
        inputs = inputs or ModelInputs()
        self.config, self.inputs = config, inputs
        n_tokens = config.n_patches
        if inputs.feat_dynamic_real:
            n_tokens += future_tokens(config.prediction_length, config.patch_len)
        self.embed = nn.Linear(config.patch_len, config.d_model)
        if config.mixer == "attention":
            self.register_buffer(
                "positions",
                sinusoidal_positions(n_tokens, config.d_model),
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
            self.head = FlattenHead(n_tokens, config.d_model, out, config.dropout)
        else:
            self.head = PoolHead(config.d_model, out, config.pool_queries, config.dropout)
        # Created last, so that a model without covariates draws its weights as it always has.
        self.covariates = (
            CovariateEncoder(
                inputs,
                patch_len=config.patch_len,
                patch_stride=config.patch_stride,
                prediction_length=config.prediction_length,
                d_model=config.d_model,
            )
            if inputs.any
            else None
        )

    def forward(
        self,
        past_target: Tensor,
        past_feat_dynamic_real: Tensor | None = None,
        feat_dynamic_real: Tensor | None = None,
        feat_static_real: Tensor | None = None,
        feat_static_cat: Tensor | None = None,
    ) -> Tensor:
        config = self.config
        x = past_target if past_target.dim() == 3 else past_target[..., None]
        batch, length, channels = x.shape
        if length != config.context_length:
            raise ValueError(f"expected {config.context_length} input steps, got {length}")
        stats = None
        if config.revin:
            x, stats = normalize(x)
        series = x.transpose(1, 2).reshape(batch * channels, length)  # channel independence
        tokens = self.embed(make_patches(series, config.patch_len, config.patch_stride))
        if self.covariates is not None:
            given = dict(
                past_feat_dynamic_real=past_feat_dynamic_real,
                feat_dynamic_real=feat_dynamic_real,
                feat_static_real=feat_static_real,
                feat_static_cat=feat_static_cat,
            )
            missing = [k for k in self.inputs.fields if given[k] is None]
            if missing:
                raise ValueError(f"this model was built with covariates; missing inputs {missing}")
            tokens = self.covariates(
                tokens, **{k: repeat_for_channels(v, channels) for k, v in given.items()}
            )
        if self.positions is not None:
            tokens = tokens + self.positions
        h = self.embed_dropout(tokens)
        for block in self.blocks:
            h = block(h)
        y = self.head(self.norm(h))  # [B*C, H*Q]
        y = y.view(batch * channels, config.prediction_length, config.n_outputs)
        if self.linear is not None:  # into the point (middle) output: quantiles keep their gaps
            mid = config.n_outputs // 2
            y = torch.cat(
                [
                    y[..., :mid],
                    y[..., mid : mid + 1] + self.linear(series)[..., None],
                    y[..., mid + 1 :],
                ],
                dim=-1,
            )
        y = y.view(batch, channels, config.prediction_length, config.n_outputs).transpose(1, 2)
        y = _monotone(y) if config.n_outputs > 1 else y.squeeze(-1)
        if stats is not None:
            y = denormalize(y, stats)
        return y if past_target.dim() == 3 else y.squeeze(2)


def _monotone(y: Tensor) -> Tensor:
    """Quantile outputs that never cross: the middle one, plus/minus cumulative softplus gaps."""
    mid = y.shape[-1] // 2
    centre = y[..., mid : mid + 1]
    above = centre + F.softplus(y[..., mid + 1 :]).cumsum(-1)
    below = centre - F.softplus(y[..., :mid]).flip(-1).cumsum(-1).flip(-1)
    return torch.cat([below, centre, above], dim=-1)


def example_inputs(config: ModelSpec, batch: int = 2, channels: int = 3, seed: int = 0) -> Tensor:
    """A random `[batch, context_length, channels]` input for shape checks."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, config.context_length, channels, generator=gen)
