"""`ModelSpec`: what a network is built from, and nothing else (torch-free).

The forecaster's `TrellisConfig` also holds training, data and device settings; a model sees
only these architecture fields, every size already resolved (`trellis_ts.forecaster.sizing.
model_spec` makes one from a config).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from trellis_ts.ops.trellis.choices import DEFAULT_BETWEEN, DEFAULT_CHUNK_SIZE, DEFAULT_PHI

__all__ = ["ModelSpec"]


@dataclass(frozen=True)
class ModelSpec:
    """The architecture of one network, sized. Field meanings: `TrellisConfig`'s of one name."""

    context_length: int
    prediction_length: int
    patch_len: int = 16
    patch_stride: int = 8
    model: str = "encoder"  # "encoder", "dlinear" or "seasonal_naive"
    n_outputs: int = 1  # values per step: 1, or one per trained quantile
    season_length: int | None = None  # the seasonal naive's period
    mixer: str = "trellis"
    d_model: int = 64
    n_heads: int = 4
    n_layers: int = 2
    ffn_mult: float = 2.0
    dropout: float = 0.1
    head: str = "flatten"
    pool_queries: int = 8
    revin: bool = True
    linear_path: bool = False
    n_slots: int = 32
    chunk_size: int = DEFAULT_CHUNK_SIZE
    phi: str = DEFAULT_PHI
    between: str = DEFAULT_BETWEEN
    conv_size: int = 4
    forget_gate: bool = True
    beta_init: float = 0.97
    streaming: bool = False  # a decoder over whole series (`trellis_ts.models.streaming`)
    attention_window: int = 64  # tokens a streaming attention decoder sees (itself included)

    @property
    def n_patches(self) -> int:
        """Tokens per window: patches after padding the end by one stride (as PatchTST does)."""
        return (self.context_length - self.patch_len) // self.patch_stride + 2

    @property
    def mixer_options(self) -> dict:
        """The keyword arguments of the Trellis mixer (`trellis_ts.layers.TrellisMixer`)."""
        names = ("n_slots", "chunk_size", "phi", "between", "conv_size", "forget_gate", "beta_init")
        return {name: getattr(self, name) for name in names}

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
