"""Baselines with the model's interface (`[B, L, C] → [B, H, C]`), trained by the same harness."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trellis_ts.config import TrellisConfig
from trellis_ts.model import TrellisModel
from trellis_ts.sizing import with_patches


class DLinear(nn.Module):
    """Moving-average decomposition, then one Linear over time for each part, shared by channels.

    The trend is a centred moving average (kernel 25, the ends padded by repetition); the
    seasonal part is the remainder. Like the published model it uses no instance normalisation.
    """

    def __init__(self, config: TrellisConfig, kernel_size: int = 25) -> None:
        super().__init__()
        self.config = config
        self.kernel_size = kernel_size
        self.trend = nn.Linear(config.context_length, config.prediction_length)
        self.seasonal = nn.Linear(config.context_length, config.prediction_length)

    def forward(self, x: Tensor) -> Tensor:
        series = x.transpose(1, 2)  # [B, C, L]
        half = (self.kernel_size - 1) // 2
        padded = F.pad(series, (half, self.kernel_size - 1 - half), mode="replicate")
        trend = F.avg_pool1d(padded, self.kernel_size, stride=1)
        y = self.trend(trend) + self.seasonal(series - trend)  # [B, C, H]
        return y.transpose(1, 2)


class SeasonalNaive(nn.Module):
    """Repeats the last `season_length` steps of the context (no parameters to train)."""

    def __init__(self, config: TrellisConfig) -> None:
        super().__init__()
        if config.season_length is None:
            raise ValueError("SeasonalNaive needs config.season_length (the estimator derives it)")
        self.config = config
        season, horizon = config.season_length, config.prediction_length
        offsets = torch.arange(horizon) % season + config.context_length - season
        self.register_buffer("offsets", offsets, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return x[:, self.offsets, :]


def build_model(config: TrellisConfig) -> nn.Module:
    """The forecaster a config describes: the Trellis/attention encoder or a baseline."""
    config = with_patches(config)  # unset patches: the rule fit uses for this context
    if config.model == "dlinear":
        return DLinear(config)
    if config.model == "seasonal_naive":
        return SeasonalNaive(config)
    return TrellisModel(config)
