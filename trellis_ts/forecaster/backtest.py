"""Backtests: rolling-origin forecasts of a fitted model, as metrics or as forecast rows.

`TrellisForecaster.backtest`/`evaluate` (metrics per window) and `backtest(...,
return_forecasts=True)` (one row per series, cutoff and horizon step) read one `Backtest`; the
windows are chosen by `trellis_ts.data.windows.select_windows`, as for the conformal calibration
at the end of `fit`.

Window convention (as `trellis_ts.data.windows`): a window of a series starting at position
``s`` has its context at ``[s - L, s)`` and its targets at ``[s, s + H)``; its cutoff is the
timestamp of position ``s - 1``, the last step the forecast saw.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trellis_ts.data.io.frames import Panel
from trellis_ts.errors import ConfigError, DataError, positive_int
from trellis_ts.metrics import quantile_metrics, seasonal_period

if TYPE_CHECKING:
    from trellis_ts.data.windows import Windows
    from trellis_ts.forecaster.config import TrellisConfig
    from trellis_ts.forecaster.conformal import Calibration
    from trellis_ts.forecaster.inputs import InputScaling

__all__ = [
    "Backtest",
    "backtest_windows",
    "check_levels",
    "quantile_columns",
    "run_backtest",
    "warn_in_sample",
]


def check_levels(level) -> list[int]:
    """Interval levels as integer percentages in [1, 99] (ConfigError otherwise)."""
    if level is None:
        return []
    levels = [level] if isinstance(level, int | float | np.number) else list(level)
    out = []
    for value in levels:
        ok = isinstance(value, int | float | np.number) and not isinstance(value, bool)
        if not ok or value != int(value) or not 1 <= value <= 99:
            raise ConfigError(
                f"level={value!r} is not valid; pass interval levels as integer percentages "
                "between 1 and 99, e.g. level=[80, 95]"
            )
        out.append(int(value))
    return sorted(set(out))


def quantile_columns(config: TrellisConfig, quantiles) -> list[tuple[float, int]]:
    """(level, output index) of each asked quantile (ConfigError unless the model trained it)."""
    if quantiles is None:
        return []
    if config.loss != "quantile":
        raise ConfigError(
            "this model gives point forecasts only; fit it with loss='quantile' to predict quantiles"
        )
    trained = [float(q) for q in config.quantiles]
    pairs = []
    for q in quantiles:
        if float(q) not in trained:
            raise ConfigError(
                f"quantile {q} was not trained; choose from {trained} or refit with it"
            )
        pairs.append((float(q), trained.index(float(q))))
    return pairs


@dataclass
class Backtest:
    """A model's forecasts on chosen windows of a panel, in the data's units.

    `output` is `[n, H]` (point model) or `[n, H, Q]` (quantile model, the trained levels
    `quantiles`); `point` is the point forecast (the median of a quantile model); `bounds` maps
    each interval level to its `(low, high)` arrays `[n, H]`.
    """

    panel: Panel
    windows: Windows
    output: np.ndarray
    point: np.ndarray
    quantiles: tuple[float, ...] | None
    bounds: dict[int, tuple[np.ndarray, np.ndarray]]

    def metrics(self) -> pd.DataFrame:
        """One row per series and window: series, cutoff, MSE, MAE, MASE, sMAPE in percent
        (0-200) (+ wQL and the
        outer quantile band's coverage for a quantile model; + coverage and mean width of
        each interval level, `coverage80`, `width80`, ...)."""
        panel, w = self.panel, self.windows
        n = len(w.series)
        if n == 0:
            return pd.DataFrame(columns=["series", "cutoff", "mse", "mae", "mase", "smape"])
        truth, point = w.targets, self.point
        err = point - truth
        denom = np.abs(truth) + np.abs(point)
        ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom), where=denom > 0)
        mae = np.mean(np.abs(err), axis=1)
        scale = _naive_scales(panel, w.series, w.start, seasonal_period(panel.freq))
        with np.errstate(divide="ignore", invalid="ignore"):
            mase = np.where(scale > 0, mae / scale, np.nan)
        cutoffs = np.empty(n, dtype=object)
        for s in np.unique(w.series):  # one take per series
            members = np.flatnonzero(w.series == s)
            cutoffs[members] = list(panel.index[s][w.start[members] - 1])
        table = {
            "series": np.array(panel.names, dtype=object)[w.series],
            "cutoff": cutoffs,
            "mse": np.mean(err**2, axis=1),
            "mae": mae,
            "mase": mase,
            "smape": 100 * np.mean(ratio, axis=1),
        }
        if self.quantiles is not None:
            qs = np.array(self.quantiles)
            scores = [quantile_metrics(truth[i], self.output[i], qs) for i in range(n)]
            table |= {k: [row[k] for row in scores] for k in scores[0]}
        for lvl, (low, high) in self.bounds.items():
            table[f"coverage{lvl}"] = np.mean((truth >= low) & (truth <= high), axis=1)
            table[f"width{lvl}"] = np.mean(high - low, axis=1)
        frame = pd.DataFrame(table)
        frame["cutoff"] = pd.Index(list(cutoffs))  # timestamps as a datetime column
        return frame

    def forecasts(self) -> pd.DataFrame:
        """One row per series, cutoff and horizon step: `series`, `cutoff`, `timestamp`,
        `horizon` (1..H), `actual`, `forecast`, then `forecast_q<level>` for each trained
        quantile of a quantile model and `forecast_lo<level>`, `forecast_hi<level>` for each
        interval level."""
        panel, w = self.panel, self.windows
        n, H = self.point.shape
        steps = np.arange(H)
        times, cutoffs = [], []
        for s, start in zip(w.series, w.start, strict=True):
            index = panel.index[int(s)]
            times.append(index[int(start) : int(start) + H])
            cutoffs.append(index[int(start) - 1])
        frame = {
            "series": np.repeat(np.array(panel.names, dtype=object)[w.series], H),
            "cutoff": pd.Index(cutoffs).repeat(H) if n else pd.Index([]),
            "timestamp": times[0].append(times[1:]) if n else pd.Index([]),
            "horizon": np.tile(steps + 1, n),
            "actual": w.targets.ravel(),
            "forecast": self.point.ravel(),
        }
        if self.quantiles is not None:
            for j, q in enumerate(self.quantiles):
                frame[f"forecast_q{q:g}"] = self.output[..., j].ravel()
        for lvl, (low, high) in self.bounds.items():
            frame[f"forecast_lo{lvl}"] = low.ravel()
            frame[f"forecast_hi{lvl}"] = high.ravel()
        return pd.DataFrame(frame)


def run_backtest(
    panel: Panel,
    *,
    config: TrellisConfig,
    scaling: InputScaling,
    forecast: Callable[..., tuple],
    calibration: Calibration | None = None,
    levels: Sequence[int] = (),
    fit_span: dict | None = None,
    n_windows: int | None = None,
    step: int | None = None,
) -> Backtest:
    """Forecast rolling windows of a panel with a fitted model, without refitting.

    Windows end at each series' last time step and go back by `step` (default
    `prediction_length`); `n_windows` keeps the newest of each series (default: all that fit).
    Covariates take their recorded values inside each window (the future covariates' over the
    window's horizon too). `forecast` is the estimator's forecast of scaled windows
    (`TrellisForecaster.rolling_forecasts` passes its own); `calibration` and `levels` add
    conformal intervals.
    """
    from trellis_ts.data.windows import select_windows  # torch: loaded when windows are made

    step, n_windows = backtest_windows(panel, config, step, n_windows)
    L, H = config.context_length, config.prediction_length
    series, mean, scale = scaling.series_set_with_stats(panel)
    windows = select_windows(series, L, H, step=step, n_windows=n_windows, values=panel.values)
    warn_in_sample(fit_span, panel, windows.series, windows.start, H)
    rows_mean, rows_scale = mean[windows.series], scale[windows.series]
    names = [panel.names[s] for s in windows.series]
    output, point, bounds = forecast(
        windows.inputs, windows.contexts, rows_mean, rows_scale, names, list(levels), calibration
    )
    quantiles = config.quantiles if output.ndim == 3 else None
    return Backtest(panel, windows, output, point, quantiles, bounds)


def _naive_scales(panel: Panel, series: np.ndarray, starts: np.ndarray, season: int) -> np.ndarray:
    """`naive_scale` of each window's history (`panel.values[s][:start]`), from one cumulative
    sum of absolute seasonal differences per series instead of one pass per window."""
    out = np.full(len(series), np.nan)
    for s in np.unique(series):
        members = np.flatnonzero(series == s)
        v = np.asarray(panel.values[s], dtype=np.float64)
        start = starts[members]
        for m, rows in ((season, start > season), (1, (start <= season) & (start > 1))):
            if m >= len(v) or not rows.any():
                continue
            sums = np.concatenate([[0.0], np.cumsum(np.abs(v[m:] - v[:-m]))])
            count = start[rows] - m
            out[members[rows]] = sums[count] / count
    return out


def backtest_windows(
    panel: Panel, config: TrellisConfig, step: int | None, n_windows: int | None
) -> tuple[int, int | None]:
    """The checked `step` (default: the horizon) and `n_windows` of a backtest of `panel`;
    DataError when a series cannot hold one window (`context_length + prediction_length`)."""
    step = positive_int(config.prediction_length if step is None else step, "step")
    n_windows = None if n_windows is None else positive_int(n_windows, "n_windows")
    L, H = config.context_length, config.prediction_length
    too_short = [n for n, v in zip(panel.names, panel.values, strict=True) if len(v) < L + H]
    if too_short:
        raise DataError(
            f"series {too_short[0]!r} is shorter than context_length + prediction_length = {L + H}; "
            "pass a longer history to evaluate"
        )
    return step, n_windows


def aggregate_metrics(table: pd.DataFrame) -> dict[str, float]:
    """A backtest table's metrics averaged over series and windows, plus the window count."""
    scores = [c for c in table.columns if c not in ("series", "cutoff")]
    return {c: float(table[c].mean()) for c in scores} | {"n_windows": len(table)}


def warn_in_sample(
    fit_span: dict | None, panel: Panel, series_of: np.ndarray, start_of: np.ndarray, horizon: int
) -> int:
    """Warn when scored windows forecast time steps the model was fitted on; return how many.

    `fit_span` is the estimator's `fit_span_` (names, first and last fitted time of each
    series); windows are (series, start) pairs whose targets are ``[start, start + horizon)``.
    """
    if not fit_span:
        return 0
    bounds = dict(
        zip(fit_span["names"], zip(fit_span["first"], fit_span["last"], strict=True), strict=True)
    )
    inside, names = 0, []
    series_of, start_of = np.asarray(series_of), np.asarray(start_of)
    for s in np.unique(series_of):  # per series: the positions of the fitted span, then compare
        name = panel.names[s]
        if name not in bounds:
            continue
        first, last = bounds[name]
        index = panel.index[s]
        try:
            lo = index.searchsorted(first, side="left")
            hi = index.searchsorted(last, side="right")  # positions [lo, hi) were fitted
        except TypeError:  # integer time against timestamps: the fit used another time axis
            continue
        start = start_of[series_of == s]
        overlaps = int(((start < hi) & (start + horizon > lo)).sum())
        if overlaps:
            inside += overlaps
            names.append(name)
    if inside:
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        warnings.warn(
            f"{inside} of {len(start_of)} scored windows forecast time steps the model was "
            f"fitted on (series {shown}; fit data up to {bounds[names[0]][1]}): the score is "
            "in-sample, not an out-of-sample accuracy; evaluate on data after the fit's end.",
            UserWarning,
            stacklevel=5,
        )
    return inside
