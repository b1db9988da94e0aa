"""Causal softmax attention with the mixer interface: the PatchTST-style baseline, and the
sliding-window decoder that is the streaming model's control."""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class WindowCache(NamedTuple):
    """The keys and values `[B, H, W - 1, d]` of a series' last `W - 1` tokens (left-padded),
    and how many of them are real (`valid [B]`): the bounded state of windowed attention."""

    keys: Tensor
    values: Tensor
    valid: Tensor


class AttentionMixer(nn.Module):
    """`x [B, T, D]` → `[B, T, D]`: multi-head causal scaled-dot-product attention.

    Without `window` every token sees all tokens before it: time and memory grow with T² (the
    key-value set grows with the sequence), which is what the Trellis mixer is measured against.
    With `window=W` a token sees itself and the `W - 1` tokens before it, with a learned bias
    per head and distance (its only position code), and the state is a bounded `WindowCache`.
    """

    def __init__(self, d_model: int, n_heads: int, window: int | None = None) -> None:
        super().__init__()
        self.heads, self.window = n_heads, window
        self.qkv = nn.Linear(d_model, 3 * d_model, bias=False)
        self.out = nn.Linear(d_model, d_model, bias=False)
        if window is not None:
            self.distance_bias = nn.Parameter(torch.zeros(n_heads, window))

    def forward(self, x: Tensor, state=None, return_state: bool = False):
        """`state` is the keys and values `[B, H, S, d]` of the tokens before `x` (a KV cache;
        a `WindowCache` with `window`); with `return_state=True` the output comes with the cache
        extended by `x`'s tokens."""
        q, k, v = (
            t.unflatten(-1, (self.heads, -1)).transpose(1, 2) for t in self.qkv(x).chunk(3, -1)
        )
        if self.window is not None:
            y, state = self._windowed(q, k, v, state)
        else:
            if state is not None:
                k, v = torch.cat([state[0], k], dim=2), torch.cat([state[1], v], dim=2)
            new, seen = q.shape[2], k.shape[2]
            if new == seen:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # [B, H, T, d]
            else:  # token i of x sees the cache and x up to i
                mask = torch.ones(new, seen, dtype=torch.bool, device=x.device).tril(seen - new)
                y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
            state = (k, v)
        y = self.out(y.transpose(1, 2).flatten(-2))
        return (y, state) if return_state else y

    def _windowed(self, q: Tensor, k: Tensor, v: Tensor, cache: WindowCache | None):
        batch, heads, new, dim = q.shape
        W = self.window
        if cache is None:
            cache = empty_cache(batch, heads, W, dim, q)
        keys, values = torch.cat([cache.keys, k], 2), torch.cat([cache.values, v], 2)
        cached = cache.keys.shape[2]
        seen = cached + new
        device = q.device
        # token i of x sits at position cached + i; key j at position j
        distance = (cached + torch.arange(new, device=device))[:, None] - torch.arange(
            seen, device=device
        )
        inside = (distance >= 0) & (distance < W)  # [T, S + T]
        real = torch.arange(seen, device=device) >= (cached - cache.valid)[:, None]  # [B, S + T]
        allowed = inside[None, None] & real[:, None, None]
        bias = self.distance_bias[:, distance.clamp(0, W - 1)].to(q.dtype)  # [H, T, S + T]
        mask = torch.where(allowed, bias[None], torch.finfo(q.dtype).min)
        y = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)
        keep = W - 1
        if seen < keep:  # shorter than the window: pad on the left, as the cache is laid out
            pad = keys.new_zeros(batch, heads, keep - seen, dim)
            keys, values = torch.cat([pad, keys], 2), torch.cat([pad, values], 2)
        state = WindowCache(
            keys[:, :, keys.shape[2] - keep :],
            values[:, :, values.shape[2] - keep :],
            torch.clamp(cache.valid + new, max=keep),
        )
        return y, state


def empty_cache(batch: int, heads: int, window: int, dim: int, like: Tensor) -> WindowCache:
    """The `WindowCache` of series that have read nothing yet."""
    zeros = like.new_zeros(batch, heads, window - 1, dim)
    return WindowCache(
        zeros, zeros.clone(), torch.zeros(batch, dtype=torch.long, device=like.device)
    )
