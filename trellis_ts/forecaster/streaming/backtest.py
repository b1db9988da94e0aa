"""Forecasts of a streaming model at many origins from one read of each series.

A read from the series' start keeps, for every full patch, the blocks' output and statistics
(`advance(..., keep_tokens=True)`); a forecast from origin `o` (the steps before `o` observed)
is the head on the last patch ending at or before `o` and the `o mod patch_len` steps after it,
exactly what `predict` on the series cut at `o` computes. So every origin of a backtest costs
one head, and the whole backtest one read.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from trellis_ts.forecaster.streaming.inputs import StreamInputs
from trellis_ts.forecaster.streaming.state import (
    StreamState,
    advance,
    forecast_state,
    stream_decay,
    window_values,
)

__all__ = ["read_series", "origin_forecasts"]

HEADS_PER_CALL = 4096


def static_vectors(model: nn.Module, data: StreamInputs, rows=None) -> torch.Tensor | None:
    """The static covariates' vector of each series (`model.static_vector`), or None."""
    real, cat = data.static_real, data.static_cat
    if rows is not None:
        real = None if real is None else real[rows]
        cat = None if cat is None else cat[rows]
    with torch.no_grad():
        return model.static_vector(
            None if real is None else torch.as_tensor(real),
            None if cat is None else torch.as_tensor(cat),
        )


def read_series(model, config, data: StreamInputs, names, keep_tokens: bool = False):
    """A fresh state of `names` after reading `data` whole (and the token records if kept)."""
    n_dynamic = 0 if data.dynamic is None else data.dynamic[0].shape[1]
    state = StreamState.empty(model, names, n_dynamic)
    records = advance(
        model,
        state,
        list(range(len(names))),
        data.values,
        data.dynamic,
        static_vectors(model, data),
        stream_decay(config),
        keep_tokens=keep_tokens,
    )
    return state, records


def origin_forecasts(
    model: nn.Module,
    config,
    data: StreamInputs,
    records,
    series: np.ndarray,
    origins: np.ndarray,
) -> np.ndarray:
    """Forecasts `[n, H]` (`[n, H, Q]`) in the units the model reads, from `origins[i]` of
    `series[i]` (steps observed), given the series' token `records` of one read."""
    P, H = config.patch_len, config.prediction_length
    token = origins // P - 1
    if (token < 0).any():
        raise ValueError("an origin comes before the series' first full patch")
    observed = origins - (token + 1) * P
    outputs = torch.stack([records[s].outputs[t] for s, t in zip(series, token, strict=True)])
    stats = np.stack([records[s].stats[t] for s, t in zip(series, token, strict=True)])
    L = config.context_length
    partial, recent = np.empty((len(series), P - 1)), np.empty((len(series), L))
    for s in np.unique(series):
        at = np.flatnonzero(series == s)
        partial[at] = window_values(data.values[s], (token[at] + 1) * P, P - 1)
        recent[at] = window_values(data.values[s], origins[at] - L, L)
    future = None
    n_known = getattr(model.inputs, "feat_dynamic_real", 0)
    if n_known:
        future = np.stack(
            [data.dynamic[s][o : o + H, -n_known:] for s, o in zip(series, origins, strict=True)]
        )
    static = static_vectors(model, data)
    out = []
    for lo in range(0, len(series), HEADS_PER_CALL):
        part = slice(lo, lo + HEADS_PER_CALL)
        out.append(
            forecast_state(
                model,
                outputs[part],
                stats[part],
                partial[part],
                observed[part],
                recent[part],
                None if future is None else future[part],
                None if static is None else static[torch.as_tensor(series[part])],
            )
        )
    if not out:
        return np.zeros((0, H))
    return np.concatenate(out)
