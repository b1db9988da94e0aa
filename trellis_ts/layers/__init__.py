"""Token mixers with one interface: `Mixer(config)(x [B, T, D]) -> [B, T, D]`, causal."""

from __future__ import annotations

from torch import nn

from trellis_ts.forecaster.config import TrellisConfig

from .attention import AttentionMixer
from .trellis import TrellisMixer

MIXER_CLASSES = {"trellis": TrellisMixer, "attention": AttentionMixer}


def make_mixer(config: TrellisConfig) -> nn.Module:
    return MIXER_CLASSES[config.mixer](config)


__all__ = ["AttentionMixer", "TrellisMixer", "make_mixer"]
