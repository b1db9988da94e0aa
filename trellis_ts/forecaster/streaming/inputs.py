"""From a `Panel` to what the streaming model reads, alike at fit, update, predict and backtest.

The targets go through the fit's `target_transform` and, for the series the fit saw, its
per-series scale; a series first seen later keeps its own units (the causal normalisation
makes the model indifferent to them, and a series then reads the same whether it comes whole
or in pieces). Covariates are scaled as the window model's are (`InputScaling`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trellis_ts.data.features import transforms
from trellis_ts.data.io.frames import Panel
from trellis_ts.forecaster.inputs import InputScaling

__all__ = ["StreamInputs", "stream_inputs"]


@dataclass
class StreamInputs:
    """`values[i]` float64 `[T_i]`; `dynamic[i]` float32 `[T_i, k]` (past, then known
    covariates; None without any); `static_real [n, S]`, `static_cat [n, K]` (or None);
    `ahead [n, H, F]`: the known covariates over the horizon after each end (None unless
    asked for); `mean`, `scale [n]`: what maps the model's units back to the data's (before
    the inverse target transform)."""

    values: list[np.ndarray]
    dynamic: list[np.ndarray] | None
    static_real: np.ndarray | None
    static_cat: np.ndarray | None
    ahead: np.ndarray | None
    mean: np.ndarray
    scale: np.ndarray


def stream_inputs(
    scaling: InputScaling,
    panel: Panel,
    future: Sequence[np.ndarray] | None = None,
    horizon: int | None = None,
) -> StreamInputs:
    """The panel's series as the streaming model reads them; with `future` (per covariate
    group, `[H, F]`, as `predict` reads it) also the known covariates over the `horizon`."""
    series = scaling.series_set(panel, future)
    seen = [
        transforms.forward(scaling.transform, v, f"series {n!r}")
        for n, v in zip(panel.names, panel.values, strict=True)
    ]
    stats = [known or (0.0, 1.0) for known in scaling.target.lookup(panel.names)]
    mean, scale = np.array(stats, dtype=np.float64).reshape(-1, 2).T
    values = [(v - m) / s for v, m, s in zip(seen, mean, scale, strict=True)]
    group = np.arange(panel.n_series) if series.group is None else np.asarray(series.group)
    dynamic = ahead = None
    parts = [p for p in (series.past_feat_dynamic_real, series.feat_dynamic_real) if p is not None]
    if parts:
        dynamic = []
        for i, v in enumerate(values):
            T = len(v)
            dynamic.append(np.concatenate([p[group[i]][:T] for p in parts], axis=1))
        if series.feat_dynamic_real is not None and future is not None:
            ahead = np.stack(
                [
                    series.feat_dynamic_real[group[i]][len(v) : len(v) + horizon]
                    for i, v in enumerate(values)
                ]
            )
    return StreamInputs(
        values,
        dynamic,
        series.feat_static_real,
        series.feat_static_cat,
        ahead,
        mean,
        scale,
    )
