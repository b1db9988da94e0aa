"""What a backtest scored: metrics averaged over windows, and whether they were in-sample."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from trellis_ts.data import Panel

__all__ = ["aggregate_metrics", "warn_in_sample"]


def aggregate_metrics(table: pd.DataFrame) -> dict[str, float]:
    """A backtest table's metrics averaged over series and windows, plus the window count."""
    scores = [c for c in table.columns if c not in ("series", "cutoff")]
    return {c: float(table[c].mean()) for c in scores} | {"n_windows": len(table)}


def warn_in_sample(fit_span: dict | None, panel: Panel, series_of: np.ndarray,
                   start_of: np.ndarray, horizon: int) -> int:  # fmt: skip
    """Warn when scored windows forecast time steps the model was fitted on; return how many.

    `fit_span` is the estimator's `fit_span_` (names, first and last fitted time of each
    series); windows are (series, start) pairs whose targets are ``[start, start + horizon)``.
    """
    if not fit_span:
        return 0
    bounds = dict(zip(fit_span["names"], zip(fit_span["first"], fit_span["last"], strict=True),
                      strict=True))  # fmt: skip
    inside, names = 0, []
    for s, start in zip(series_of.tolist(), start_of.tolist(), strict=True):
        name = panel.names[s]
        if name not in bounds:
            continue
        first, last = bounds[name]
        times = panel.index[s][start : start + horizon]
        try:
            overlaps = bool(((times >= first) & (times <= last)).any())
        except TypeError:  # integer time against timestamps: the fit used another time axis
            continue
        if overlaps:
            inside += 1
            names += [] if name in names else [name]
    if inside:
        shown = ", ".join(repr(n) for n in names[:3]) + (", ..." if len(names) > 3 else "")
        warnings.warn(
            f"{inside} of {len(start_of)} scored windows forecast time steps the model was "
            f"fitted on (series {shown}; fit data up to {bounds[names[0]][1]}): the score is "
            "in-sample, not an out-of-sample accuracy; evaluate on data after the fit's end.",
            UserWarning,
            stacklevel=4,
        )
    return inside
