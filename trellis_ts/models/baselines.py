"""Baselines with the model's interface (`past_target [B, L] → [B, H]`), trained by the same harness.

`trellis_ts.models.build_model` builds them from a `ModelSpec`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.models.covariates import ModelInputs
from trellis_ts.models.spec import ModelSpec


class DLinear(nn.Module):
    """Moving-average decomposition, then one Linear over time for each part, shared by channels.

    The trend is a centred moving average (kernel 25, the ends padded by repetition); the
    seasonal part is the remainder. Like the published model it uses no instance normalisation.
    With covariates (`inputs`), one more Linear maps a window's covariates (past ones over the
    context, known ones over the context and the horizon, static real ones) to the horizon,
    plus one learned horizon profile per category of each categorical static covariate: a
    linear regression on the covariates beside the linear one on the history.
    """

    def __init__(
        self, config: ModelSpec, inputs: ModelInputs | None = None, kernel_size: int = 25
    ) -> None:
        super().__init__()
        inputs = inputs or ModelInputs()
        self.config, self.inputs = config, inputs
        self.kernel_size = kernel_size
        L, H = config.context_length, config.prediction_length
        self.trend = nn.Linear(L, H)
        self.seasonal = nn.Linear(L, H)
        width = (
            L * inputs.past_feat_dynamic_real
            + (L + H) * inputs.feat_dynamic_real
            + inputs.feat_static_real
        )
        self.covariates = nn.Linear(width, H, bias=False) if width else None
        self.categories = nn.ModuleList(
            nn.Embedding(c + 1, H, padding_idx=0) for c in inputs.feat_static_cat
        )

    def forward(
        self,
        past_target: Tensor,
        past_feat_dynamic_real: Tensor | None = None,
        feat_dynamic_real: Tensor | None = None,
        feat_static_real: Tensor | None = None,
        feat_static_cat: Tensor | None = None,
    ) -> Tensor:
        x = past_target if past_target.dim() == 3 else past_target[..., None]
        series = x.transpose(1, 2)  # [B, C, L]
        half = (self.kernel_size - 1) // 2
        padded = F.pad(series, (half, self.kernel_size - 1 - half), mode="replicate")
        trend = F.avg_pool1d(padded, self.kernel_size, stride=1)
        y = self.trend(trend) + self.seasonal(series - trend)  # [B, C, H]
        if self.covariates is not None:
            parts = [
                v.flatten(1)
                for v in (past_feat_dynamic_real, feat_dynamic_real, feat_static_real)
                if v is not None
            ]
            y = y + self.covariates(torch.cat(parts, dim=1).to(y.dtype))[:, None, :]
        for k, embedding in enumerate(self.categories):
            y = y + embedding(feat_static_cat[:, k].long())[:, None, :]
        y = y.transpose(1, 2)  # [B, H, C]
        return y if past_target.dim() == 3 else y[..., 0]


class SeasonalNaive(nn.Module):
    """Repeats the last `season_length` steps of the context (no parameters to train)."""

    def __init__(self, config: ModelSpec) -> None:
        super().__init__()
        if config.season_length is None:
            raise ValueError("SeasonalNaive needs a season_length (the estimator derives it)")
        self.config = config
        self.inputs = ModelInputs()
        season, horizon = config.season_length, config.prediction_length
        offsets = torch.arange(horizon) % season + config.context_length - season
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, past_target: Tensor, **covariates: Tensor | None) -> Tensor:
        return past_target[:, self.offsets]
