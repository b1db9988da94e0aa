"""Cutting op inputs into chunks, and the decays inside each chunk (shared by the chunk forms)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def to_chunks(x: Tensor, front: int, chunk_size: int, multiple: int | None = None) -> Tensor:
    """`[B, T, H, ...]` → `[B, H, N, C, ...]`, padding `front` tokens before and the end to a full chunk.

    Padded tokens carry gamma = 0 (no write) and log_beta = 0 (no decay), so they leave the
    memories untouched; their reads are dropped. With `multiple` (a multiple of `chunk_size`)
    the end is padded until the padded length is a multiple of it.
    """
    length = x.shape[1]
    back = (-(front + length)) % (multiple or chunk_size)
    x = x.movedim(1, 2)  # [B, H, T, ...]
    if front or back:
        x = F.pad(x, [0, 0] * (x.dim() - 3) + [front, back])
    # Contiguous once here: every batched product below would otherwise copy it again.
    return x.unflatten(2, (-1, chunk_size)).contiguous()


def chunk_decays(log_beta_c: Tensor, gamma_c: Tensor) -> tuple[Tensor, Tensor]:
    """Decays inside each chunk from the log-space cumulative sum `b_r = log μ_r`.

    Returns `D [B, H, N, C, C]` with `D[r, i] = γ_i μ_r / μ_i` for `i ≤ r` (0 above the
    diagonal; the ratio is formed only where `i ≤ r`, so it never overflows) and `μ [B, H, N, C]`.
    """
    b = log_beta_c.cumsum(-1)
    size = b.shape[-1]
    causal = torch.ones(size, size, dtype=torch.bool, device=b.device).tril()
    log_ratio = torch.where(causal, b[..., :, None] - b[..., None, :], float("-inf"))
    return log_ratio.exp() * gamma_c[..., None, :], b.exp()


def stack_passes(key: Tensor, value: Tensor, dim: int = 2) -> Tensor:
    """Stack key- and value-pass tensors on a new axis `dim`, zero-padding the last axis to match.

    Zero columns are exact: they never enter a product with a non-zero and stay zero.
    """
    width = max(key.shape[-1], value.shape[-1])
    key = F.pad(key, (0, width - key.shape[-1]))
    value = F.pad(value, (0, width - value.shape[-1]))
    return torch.stack([key, value], dim)


def unstack_passes(x: Tensor, d: int, dv: int, dim: int = 2) -> tuple[Tensor, Tensor]:
    """Inverse of `stack_passes`."""
    key, value = x.unbind(dim)
    return key[..., :d], value[..., :dv]
