"""Token mixers with one interface, causal over tokens:
`mixer(x [B, T, D], state=None, return_state=False) -> y [B, T, D]` (and the state after `x`
when asked: `TrellisMixer`'s bounded `MixerState`, `AttentionMixer`'s growing key-value cache, or its bounded `WindowCache` with a window).
Each takes explicit arguments; `trellis_ts.models.encoder` builds them from a `ModelSpec`."""

from __future__ import annotations

from .attention import AttentionMixer, WindowCache
from .trellis import MixerState, TrellisMixer

__all__ = ["AttentionMixer", "MixerState", "TrellisMixer", "WindowCache"]
