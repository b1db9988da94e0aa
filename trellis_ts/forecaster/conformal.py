"""Split-conformal prediction intervals from backtest residuals at the end of the fit data.

Calibration windows are the early-stopping validation windows: every window whose targets lie in
the last `val_fraction` of a series (`trellis_ts.data.train_val_ranges`), forecast by the fitted
weights, which never trained on them (they only chose the best epoch, a slight optimism the
benchmarks measure). Scores are taken per horizon step and are relative, so that they pool over
series and follow changes of volatility:

* point models: the absolute error over the context window's standard deviation (the scale
  RevIN normalises each window by; floored at `MIN_CONTEXT_SCALE` of the series' fit scale),
  `|y - yhat| / sd(context)`; the interval is `yhat +- t * sd(context)`. On ETTh1, whose errors
  are larger in the validation months than in the test months, this kept coverage within 2
  points of nominal where errors in fit-scale units over-covered by 8 (benchmarks/README.md);
* quantile models: the error relative to the outer trained band, `(y - median) / (q_hi - median)`
  above the median and `(median - y) / (median - q_lo)` below; the interval is
  `median - t (median - q_lo)`, `median + t (q_hi - median)`. It keeps the band's shape (wide
  where the model is unsure, asymmetric where it is) and corrects its overall width.

For each level `l` the threshold `t` is the `ceil((n + 1) l / 100)`-th smallest of the `n`
scores (the finite-sample split-conformal quantile), computed for every integer level 1..99.
Scores are pooled over series; a series with at least `PER_SERIES_MIN_WINDOWS` calibration
windows gets thresholds of its own. Ids not seen in fit use the pooled thresholds. Intervals of
different levels are nested and contain the point forecast.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from trellis_ts.data.windows import SeriesSet, Windows, select_windows
from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.training import forecast_contexts

__all__ = ["Calibration", "calibrate", "require_calibration"]

LEVELS = np.arange(1, 100)  # the integer percentages whose thresholds are stored
PER_SERIES_MIN_WINDOWS = 200  # fewer calibration windows than this: the series uses the pool
MAX_WINDOWS = 20_000  # calibration windows in all (more are thinned to an even stride)
MIN_HALF_WIDTH = 1e-4  # in series scales: a collapsed quantile band still gets a width
MIN_CONTEXT_SCALE = 0.05  # in series scales: a flat context still gets a width

NO_CALIBRATION = (
    "this model has no calibration for intervals: its fit data had no validation part "
    "(val_fraction=0, or a series shorter than about context_length + 2 * prediction_length), "
    "or it was saved by a trellis-ts without intervals; refit with val_fraction > 0 on longer series"
)


@dataclass
class Calibration:
    """Conformal thresholds `[1 + n_groups, H, 99]`: row 0 pooled, row `1 + i` series `groups[i]`.

    `kind` is "residual" (point models) or "band" (quantile models); `counts` holds the
    calibration windows behind each row; `first_target` the timestamp where each series'
    calibration targets start (a warm start warns when its new training data reaches past it).
    """

    kind: str
    thresholds: np.ndarray
    groups: list[str]
    counts: list[int]
    first_target: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ building
    @classmethod
    def from_scores(
        cls,
        kind: str,
        scores: np.ndarray,
        series: np.ndarray,
        names: Sequence[str],
        first_target: dict[str, Any],
    ) -> Calibration:
        """Thresholds from scores `[n, H]` of windows of `series` (indexes into `names`)."""
        rows, groups, counts = [_thresholds(scores)], [], [len(scores)]
        for s in np.unique(series):
            mine = scores[series == s]
            if len(mine) >= PER_SERIES_MIN_WINDOWS:
                rows.append(_thresholds(mine))
                groups.append(names[int(s)])
                counts.append(len(mine))
        return cls(kind, np.stack(rows), groups, counts, first_target)

    # ------------------------------------------------------------------ using
    def check(self, levels: Sequence[int]) -> None:
        """ConfigError when the pooled calibration is too small for one of `levels`."""
        for lvl in levels:
            if not np.isfinite(self.thresholds[0, :, lvl - 1]).all():
                needed = math.ceil(lvl / (100 - lvl))
                raise ConfigError(
                    f"a {lvl}% interval needs at least {needed} calibration windows but the fit's "
                    f"validation part held {self.counts[0]}; ask for a lower level, or refit on "
                    "longer series or with a larger val_fraction"
                )

    def intervals(
        self,
        output: np.ndarray,
        point: np.ndarray,
        contexts: np.ndarray,
        scale: np.ndarray,
        names: Sequence[str],
        levels: Sequence[int],
    ) -> dict[int, tuple[np.ndarray, np.ndarray]]:
        """`{level: (low, high)}`, each `[n, H]`, for forecasts `output` (`[n, H]` or
        `[n, H, Q]`) with point forecasts `point [n, H]` from `contexts [n, L]` of series
        `names` with fit scales `scale [n]` (all in the data's units)."""
        self.check(levels)
        row_of = {name: i + 1 for i, name in enumerate(self.groups)}
        rows = np.array([row_of.get(name, 0) for name in names], dtype=np.int64)
        below, above = _spreads(self.kind, output, point, contexts, scale)
        out = {}
        for lvl in levels:
            t = self.thresholds[rows, :, lvl - 1]  # [n, H]
            out[lvl] = (point - t * below, point + t * above)
        return out

    # ------------------------------------------------------------------ persistence
    def to_meta(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "groups": list(self.groups),
            "counts": list(self.counts),
            "first_target": dict(self.first_target),
        }

    @classmethod
    def from_saved(cls, meta: dict[str, Any], thresholds: np.ndarray) -> Calibration:
        return cls(
            meta["kind"],
            np.asarray(thresholds, dtype=np.float64),
            list(meta["groups"]),
            [int(c) for c in meta["counts"]],
            dict(meta.get("first_target", {})),
        )


def _thresholds(scores: np.ndarray) -> np.ndarray:
    """`[H, 99]`: per step, the `ceil((n + 1) l / 100)`-th smallest score (inf past the n-th)."""
    n = len(scores)
    ordered = np.sort(scores, axis=0)  # [n, H]
    k = np.ceil((n + 1) * LEVELS / 100).astype(np.int64)  # 1-based ranks [99]
    out = np.full((scores.shape[1], len(LEVELS)), np.inf)
    ok = k <= n
    out[:, ok] = ordered[k[ok] - 1].T
    return out


def _spreads(kind, output, point, contexts, scale) -> tuple[np.ndarray, np.ndarray]:
    """What a score of 1 means below and above the point forecast, `[n, H]` each."""
    scale = np.asarray(scale, dtype=np.float64)[:, None]
    if kind == "band":
        floor = MIN_HALF_WIDTH * scale
        return np.maximum(point - output[..., 0], floor), np.maximum(output[..., -1] - point, floor)
    spread = np.maximum(np.std(contexts, axis=1, keepdims=True), MIN_CONTEXT_SCALE * scale)
    spread = np.broadcast_to(spread, point.shape)
    return spread, spread


def calibrate(
    model: nn.Module,
    config: TrellisConfig,
    series: SeriesSet | Sequence[np.ndarray],
    names: Sequence[str],
    val_ranges: Sequence[tuple[int, int]] | None,
    first_target: dict[str, Any],
) -> Calibration | None:
    """Calibrate `model` on the validation windows of scaled `series` (with their covariates in
    a `SeriesSet`; None without validation windows)."""
    windows = validation_windows(config, series, val_ranges)
    if windows is None:
        return None
    out = forecast_contexts(model, windows.inputs, num_threads=config.num_threads)
    return calibration_of(config, out, windows, names, first_target)


def validation_windows(config: TrellisConfig, series, val_ranges) -> Windows | None:
    """The windows a fit calibrates on: inside `val_ranges`, thinned to `MAX_WINDOWS` (None
    without validation windows)."""
    if val_ranges is None:
        return None
    L, H = config.context_length, config.prediction_length
    total = sum(max(0, hi - H - max(lo, L) + 1) for lo, hi in val_ranges)
    if total == 0:
        return None
    return select_windows(series, L, H, step=math.ceil(total / MAX_WINDOWS), ranges=val_ranges)


def calibration_of(
    config: TrellisConfig, out: np.ndarray, windows: Windows, names, first_target
) -> Calibration:
    """The calibration of forecasts `out` (model units) of `windows`."""
    kind = "residual" if out.ndim == 2 else "band"
    point = out if out.ndim == 2 else out[..., config.point_index]
    below, above = _spreads(kind, out, point, windows.contexts, np.ones(len(point)))
    y = windows.targets
    scores = np.where(y >= point, (y - point) / above, (point - y) / below)
    return Calibration.from_scores(kind, scores, windows.series, names, first_target)


def require_calibration(
    calibration: Calibration | None, levels: Sequence[int]
) -> Calibration | None:
    """The calibration to draw `levels` from (None when no level is asked for)."""
    if not levels:
        return None
    if calibration is None:
        raise ConfigError(NO_CALIBRATION)
    calibration.check(levels)
    return calibration
