"""Forecast heads: from the encoder's patch outputs to `prediction_length × n_outputs` values."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trellis_ts.modules.fused import Dropout


class FlattenHead(nn.Module):
    """All patch outputs, flattened, through one Linear (PatchTST's head).

    Its parameter count grows with the number of patches, i.e. with the context length.
    """

    def __init__(self, n_patches: int, d_model: int, out_features: int, dropout: float) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(n_patches * d_model, out_features)

    def forward(self, h: Tensor) -> Tensor:
        """`h [N, P, D]` → `[N, out_features]`."""
        return self.linear(self.dropout(h.flatten(1)))


class PoolHead(nn.Module):
    """Learned queries attend over the patch outputs; their summaries go through one Linear.

    The parameter count does not depend on the number of patches, so the same head serves any
    context length.
    """

    def __init__(self, d_model: int, out_features: int, n_queries: int, dropout: float) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, d_model) / d_model**0.5)
        self.key = nn.Linear(d_model, d_model, bias=False)
        self.dropout = Dropout(dropout)
        self.linear = nn.Linear(n_queries * d_model, out_features)

    def forward(self, h: Tensor) -> Tensor:
        """`h [N, P, D]` → `[N, out_features]`."""
        scores = self.key(h) @ self.queries.T / h.shape[-1] ** 0.5  # [N, P, Q]
        pooled = scores.softmax(dim=1).transpose(1, 2) @ h  # [N, Q, D]
        return self.linear(self.dropout(pooled.flatten(1)))
