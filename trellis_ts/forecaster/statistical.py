"""Statistical candidates of `model="auto"`: the seasonal naive, and statsforecast's AutoETS and
AutoTheta (imported on first use, so `import trellis_ts` stays light).

They forecast windows the way the auto model scores and uses them: for each series the
parameters are estimated once, on the series up to `fit_end` (the start of the validation
windows: the last `STATS_MAX_LENGTH` steps of it at most), and each forecast runs the fitted
model over the history up to its window's start (statsforecast's `forward`, milliseconds).
Nothing is stored: a loaded model estimates again from the saved history and gets the same
numbers. They read no covariates.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence

import numpy as np

__all__ = ["STATISTICAL", "STATS_MAX_LENGTH", "Skipped", "baseline_scores", "statistical_forecasts"]

# The statistical candidates and their names in summaries.
STATISTICAL = {"seasonal_naive": "SeasonalNaive", "ets": "AutoETS", "theta": "AutoTheta"}
# Parameters are estimated on at most the last this many steps of a series: AutoTheta took ~7 s
# on 16 weeks of half-hourly data and did not finish on 3 years in 600 s.
STATS_MAX_LENGTH = 2000
# A statistical candidate whose estimation is projected to take more CPU seconds than this is
# skipped (CPU, not wall time: on a busy machine wall time ran 2-6 times over).
STATS_BUDGET_SECONDS = 120.0


class Skipped(Exception):
    """A candidate that was left out, with the reason (said in the auto model's summary)."""


def _statsforecast_model(name: str, season: int):
    try:
        from statsforecast.models import AutoETS, AutoTheta
    except ImportError as exc:  # pragma: no cover - a dependency, absent only in odd installs
        raise Skipped(f"{STATISTICAL[name]} needs statsforecast ({exc})") from None
    return (AutoETS if name == "ets" else AutoTheta)(season_length=season)


def _naive(history: np.ndarray, horizon: int, season: int) -> np.ndarray:
    season = season if len(history) >= season else 1
    last = history[-season:]
    return last[np.arange(horizon) % season]


def statistical_forecasts(
    name: str,
    values: Sequence[np.ndarray],
    series_of: np.ndarray,
    start_of: np.ndarray,
    fit_end: Sequence[int],
    horizon: int,
    season: int,
    *,
    budget_seconds: float | None = None,
) -> tuple[np.ndarray, int]:
    """Forecasts `[n, horizon]` of windows `(series_of[i], start_of[i])` (the history is
    `values[s][:start]`, in the data's units), with parameters estimated on
    `values[s][:fit_end[s]]`, and the number of series where the model failed (the seasonal
    naive stands in there). Raises `Skipped` when the estimation is projected to exceed
    `budget_seconds`."""
    budget_seconds = STATS_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    series_of = np.asarray(series_of, dtype=np.int64)
    out = np.zeros((len(series_of), horizon))
    used = np.unique(series_of)
    failed, started = 0, time.process_time()
    for k, s in enumerate(used):
        rows = np.flatnonzero(series_of == s)
        y = np.asarray(values[s], dtype=np.float64)
        if name == "seasonal_naive":
            for i in rows:
                out[i] = _naive(y[: start_of[i]], horizon, season)
            continue
        train = y[max(0, fit_end[s] - STATS_MAX_LENGTH) : fit_end[s]]
        m = season if len(train) >= 2 * season + 2 else 1
        try:
            model = _statsforecast_model(name, m).fit(train)
            for i in rows:
                history = y[max(0, start_of[i] - STATS_MAX_LENGTH) : start_of[i]]
                out[i] = model.forward(y=history, h=horizon)["mean"]
            if not np.isfinite(out[rows]).all():
                raise FloatingPointError("not finite")
        except Skipped:
            raise
        except Exception:  # noqa: BLE001 - a statistical fit that fails stands down for this series
            failed += 1
            for i in rows:
                out[i] = _naive(y[: start_of[i]], horizon, season)
        elapsed = time.process_time() - started
        projected = elapsed / (k + 1) * len(used)
        if k + 1 < len(used) and projected > budget_seconds:
            raise Skipped(
                f"{STATISTICAL[name]} skipped: {len(used)} series would take about "
                f"{projected:.0f} s (budget {budget_seconds:.0f} s)"
            )
    return out, failed


def baseline_scores(
    panel,
    series_of: np.ndarray,
    start_of: np.ndarray,
    horizon: int,
    season: int,
    names=tuple(STATISTICAL),
) -> dict[str, float]:
    """Mean MASE of the statistical baselines `names` on the windows `(series_of, start_of)` of
    `panel` (as `evaluate` scores a model: each window's MAE over the seasonal naive scale of
    the history before it), each estimated once before a series' first window."""
    from trellis_ts.metrics import naive_scale

    series_of, start_of = np.asarray(series_of), np.asarray(start_of)
    fit_end = [
        int(start_of[series_of == s].min(initial=len(v))) for s, v in enumerate(panel.values)
    ]
    targets = np.stack(
        [panel.values[s][t : t + horizon] for s, t in zip(series_of, start_of, strict=True)]
    )
    scales = np.array(
        [naive_scale(panel.values[s][:t], season) for s, t in zip(series_of, start_of, strict=True)]
    )
    out = {}
    for name in names:
        try:
            pred, _ = statistical_forecasts(
                name,
                panel.values,
                series_of,
                start_of,
                fit_end,
                horizon,
                season,
                budget_seconds=math.inf,
            )
        except Skipped:
            continue
        out[name] = float(np.nanmean(np.abs(pred - targets).mean(axis=1) / scales))
    return out
