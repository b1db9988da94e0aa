"""Covariates into the patch encoder: what the data gives (`ModelInputs`) and how it enters.

The targets stay channel-independent: every series is its own sequence of patch tokens, and
its covariates only add to those tokens:

* time-varying covariates over the context (past ones, and the history of the known ones) are
  patched like the target, and each patch's values are one more linear term of that token's
  embedding ("extra values in each patch token");
* known covariates over the horizon become extra tokens after the context tokens (one per
  `patch_len` steps): the causal encoder reads them after the whole history, and the head reads
  their outputs beside the context's;
* static covariates are one learned vector (a linear map of the real ones plus one embedding
  per categorical one) added to every token.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from trellis_ts.modules.patching import make_patches

__all__ = ["CovariateEncoder", "ModelInputs", "repeat_for_channels"]


@dataclass(frozen=True)
class ModelInputs:
    """The covariate inputs a model is built for, named as the batch fields they come in.

    Decided by the data, not a hyperparameter: ``past_feat_dynamic_real`` (P past covariates),
    ``feat_dynamic_real`` (F known covariates, calendar features included),
    ``feat_static_real`` (S real static covariates) and ``feat_static_cat`` (the number of
    categories of each categorical static covariate; code 0 is kept for an unknown category).
    """

    past_feat_dynamic_real: int = 0
    feat_dynamic_real: int = 0
    feat_static_real: int = 0
    feat_static_cat: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "feat_static_cat", tuple(int(c) for c in self.feat_static_cat))

    @property
    def any(self) -> bool:
        return bool(
            self.past_feat_dynamic_real
            or self.feat_dynamic_real
            or self.feat_static_real
            or self.feat_static_cat
        )

    @property
    def fields(self) -> tuple[str, ...]:
        """The batch fields these inputs need besides ``past_target``."""
        return tuple(k for k, v in asdict(self).items() if v)

    def to_dict(self) -> dict:
        return asdict(self) | {"feat_static_cat": list(self.feat_static_cat)}


def future_tokens(prediction_length: int, patch_len: int) -> int:
    """Tokens that carry the known covariates over the horizon: one per ``patch_len`` steps."""
    return math.ceil(prediction_length / patch_len)


def repeat_for_channels(value: Tensor | None, channels: int) -> Tensor | None:
    """Per-row covariates ``[B, ...]`` for the ``B * channels`` series of a multichannel input
    (row ``b`` serves series ``b * channels + c``)."""
    if value is None or channels == 1:
        return value
    return value.repeat_interleave(channels, dim=0)


def patch_values(x: Tensor, patch_len: int, stride: int) -> Tensor:
    """``x [N, T, D]`` → ``[N, P, D * patch_len]``: the values of every column in each patch."""
    n, length, width = x.shape
    patches = make_patches(x.transpose(1, 2).reshape(n * width, length), patch_len, stride)
    return patches.view(n, width, patches.shape[1], patch_len).transpose(1, 2).flatten(2)


class CovariateEncoder(nn.Module):
    """Adds a window's covariates to its patch tokens (module docstring: how each kind enters).

    `forward(tokens [N, P, D], ...)` → ``[N, P + P_f, D]`` (``P_f`` horizon tokens when there
    are known covariates, else 0); every covariate argument has a leading ``[N]``.
    """

    def __init__(
        self,
        inputs: ModelInputs,
        *,
        patch_len: int,
        patch_stride: int,
        prediction_length: int,
        d_model: int,
    ) -> None:
        super().__init__()
        self.patch_len, self.patch_stride = patch_len, patch_stride
        dynamic = inputs.past_feat_dynamic_real + inputs.feat_dynamic_real
        self.context = nn.Linear(patch_len * dynamic, d_model, bias=False) if dynamic else None
        self.n_future = (
            future_tokens(prediction_length, patch_len) if inputs.feat_dynamic_real else 0
        )
        self.prediction_length = prediction_length
        self.future = (
            nn.Linear(patch_len * inputs.feat_dynamic_real, d_model)
            if inputs.feat_dynamic_real
            else None
        )
        self.static_real = (
            nn.Linear(inputs.feat_static_real, d_model, bias=False)
            if inputs.feat_static_real
            else None
        )
        self.static_cat = nn.ModuleList(
            nn.Embedding(c + 1, d_model, padding_idx=0) for c in inputs.feat_static_cat
        )

    def forward(
        self,
        tokens: Tensor,
        past_feat_dynamic_real: Tensor | None = None,
        feat_dynamic_real: Tensor | None = None,
        feat_static_real: Tensor | None = None,
        feat_static_cat: Tensor | None = None,
    ) -> Tensor:
        H = self.prediction_length
        if self.context is not None:
            parts = [
                p
                for p in (
                    past_feat_dynamic_real,
                    None if feat_dynamic_real is None else feat_dynamic_real[:, :-H],
                )
                if p is not None
            ]
            dynamic = torch.cat(parts, dim=-1).to(tokens.dtype)
            tokens = tokens + self.context(patch_values(dynamic, self.patch_len, self.patch_stride))
        if self.future is not None:
            ahead = feat_dynamic_real[:, -H:].to(tokens.dtype)  # [N, H, F]
            pad = self.n_future * self.patch_len - H
            if pad:  # the last horizon patch repeats the final known values, as the context's does
                ahead = torch.cat([ahead, ahead[:, -1:].expand(-1, pad, -1)], dim=1)
            patches = ahead.unflatten(1, (self.n_future, self.patch_len)).transpose(2, 3)
            tokens = torch.cat([tokens, self.future(patches.flatten(2))], dim=1)
        static = 0
        if self.static_real is not None:
            static = static + self.static_real(feat_static_real.to(tokens.dtype))
        for k, embedding in enumerate(self.static_cat):
            static = static + embedding(feat_static_cat[:, k].long())
        return tokens + static[:, None, :] if torch.is_tensor(static) else tokens
