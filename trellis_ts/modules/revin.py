"""Reversible instance normalisation, functional: the statistics travel with the batch.

Each window and channel is normalised by its own mean and standard deviation; the forecast is
mapped back with the same statistics. Nothing is kept on a module between batches.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


class RevinStats(NamedTuple):
    mean: Tensor  # [B, 1, C]
    std: Tensor  # [B, 1, C]


def normalize(x: Tensor, eps: float = 1e-5) -> tuple[Tensor, RevinStats]:
    """`x [B, L, C]` → `(x_n [B, L, C], stats)`; a constant window maps to zeros."""
    mean = x.mean(dim=1, keepdim=True)
    std = torch.sqrt(x.var(dim=1, keepdim=True, unbiased=False) + eps)
    return (x - mean) / std, RevinStats(mean, std)


def denormalize(y: Tensor, stats: RevinStats) -> Tensor:
    """`y [B, H, C]` or `[B, H, C, Q]` back to the scale of the window it was normalised with."""
    mean, std = stats
    if y.dim() == 4:
        mean, std = mean[..., None], std[..., None]
    return y * std + mean
