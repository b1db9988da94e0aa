"""Cutting each channel's window into patches (the encoder's tokens)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def make_patches(x: Tensor, patch_len: int, stride: int) -> Tensor:
    """`x [N, L]` → `[N, P, patch_len]` with `P = (L − patch_len) // stride + 2`.

    The end is padded by repeating the last value `stride` times (as PatchTST does), so the
    most recent steps always fall into a full patch.
    """
    x = F.pad(x.unsqueeze(1), (0, stride), mode="replicate").squeeze(1)
    return x.unfold(-1, patch_len, stride)
