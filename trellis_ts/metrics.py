"""Forecast accuracy metrics on numpy arrays (all in the data's own units)."""

from __future__ import annotations

import numpy as np

from trellis_ts.data.frequency import seasonal_period

__all__ = ["naive_scale", "point_metrics", "quantile_metrics", "seasonal_period"]


def naive_scale(history: np.ndarray, season: int) -> float:
    """MASE's denominator: mean absolute seasonal difference of the history (season 1 if too short)."""
    if len(history) <= season:
        season = 1
    if len(history) <= season:
        return float("nan")
    return float(np.mean(np.abs(history[season:] - history[:-season])))


def point_metrics(y: np.ndarray, pred: np.ndarray, scale: float) -> dict[str, float]:
    """MSE, MAE, MASE (MAE over `scale`), sMAPE in percent (0 to 200, M4's scale; 0 where
    both are 0)."""
    err = pred - y
    denom = np.abs(y) + np.abs(pred)
    ratio = np.divide(2 * np.abs(err), denom, out=np.zeros_like(denom), where=denom > 0)
    mae = float(np.mean(np.abs(err)))
    return {
        "mse": float(np.mean(err**2)),
        "mae": mae,
        "mase": mae / scale if scale > 0 else float("nan"),
        "smape": 100 * float(np.mean(ratio)),
    }


def quantile_metrics(y: np.ndarray, qpred: np.ndarray, quantiles: np.ndarray) -> dict[str, float]:
    """Weighted quantile loss (a CRPS approximation) and the coverage of the outermost band.

    y `[..., H]`, qpred `[..., H, Q]`. wQL = 2 Σ pinball / Σ |y|, averaged over quantiles.
    """
    diff = y[..., None] - qpred
    pinball = np.maximum(quantiles * diff, (quantiles - 1) * diff)
    total = float(np.sum(np.abs(y)))
    wql = float(np.mean(2 * pinball.sum(axis=tuple(range(pinball.ndim - 1))) / max(total, 1e-12)))
    inside = (y >= qpred[..., 0]) & (y <= qpred[..., -1])
    return {"wql": wql, "coverage": float(np.mean(inside))}
