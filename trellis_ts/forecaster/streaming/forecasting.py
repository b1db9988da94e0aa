"""The streaming side of `TrellisForecaster`: fit, forecast, update and backtest a model whose
per-series state reads whole series (`trellis_ts.forecaster.streaming.state`).

Each function takes the forecaster and works on its fitted attributes (`model_`, `scaling_`,
`stream_`, ...); the estimator calls them where a window model would run its windows.
"""

from __future__ import annotations

import sys

import numpy as np

from trellis_ts.data.io.frames import Panel
from trellis_ts.data.windows import select_windows
from trellis_ts.errors import DataError
from trellis_ts.forecaster.backtest import Backtest, backtest_windows, warn_in_sample
from trellis_ts.forecaster.conformal import calibration_of, validation_windows
from trellis_ts.forecaster.streaming.backtest import origin_forecasts, read_series, static_vectors
from trellis_ts.forecaster.streaming.inputs import stream_inputs
from trellis_ts.forecaster.streaming.state import StreamState, advance, forecast_state, stream_decay
from trellis_ts.forecaster.streaming.training import train_streaming

__all__ = ["fit_streaming", "stream_forecast", "stream_backtest", "advanced_state"]


def fit_streaming(f, config, panel: Panel, summary_line: str, scaling, inputs, columns, **fit):
    """Train on `panel`'s whole series, read each to its end, calibrate on the held-out ends;
    sets the forecaster's fitted attributes."""
    names = list(panel.names)
    f.data_summary_ = summary_line
    if config.verbose:
        print(summary_line, file=sys.stderr, flush=True)
    data = stream_inputs(scaling, panel)
    model, summary, val_ranges = train_streaming(config, data, inputs=inputs, names=names, **fit)
    state, records = read_series(model, config, data, names, keep_tokens=val_ranges is not None)
    calibration = None
    windows = validation_windows(config, data.values, val_ranges)
    if windows is not None:
        out = origin_forecasts(model, config, data, records, windows.series, windows.start)
        first_target = {
            n: ix[lo] for n, ix, (lo, _) in zip(names, panel.index, val_ranges, strict=True)
        }
        calibration = calibration_of(config, out, windows, names, first_target)
    summary.extra["streaming"] = {"state_bytes_per_series": state.nbytes()}
    f.config_, f.columns_, f.inputs_, f.model_, f.scaling_ = config, columns, inputs, model, scaling
    f.history_ = panel.tail(config.context_length)
    f.freq_ = panel.freq
    f.fit_span_ = {
        "names": names,
        "first": [ix[0] for ix in panel.index],
        "last": [ix[-1] for ix in panel.index],
    }
    f.summary_, f.calibration_, f.stream_ = summary, calibration, state
    return f


def stream_forecast(f, panel: Panel, fresh: bool, ahead, levels, calibration):
    """`predict`'s `(output, point, bounds)` for the series of `panel`: from the stored state
    (`fresh=False`: `panel` is the stored tail) or from a read of `panel` from its start."""
    config, model = f.config_, f.model_
    H, P = config.prediction_length, config.patch_len
    data = stream_inputs(f.scaling_, panel, future=ahead, horizon=H)
    if fresh:
        state, _ = read_series(model, config, data, list(panel.names))
    else:
        state = f.stream_
    where = {n: i for i, n in enumerate(state.names)}
    rows = np.array([where[n] for n in panel.names])
    early = [n for n, r in zip(panel.names, rows, strict=True) if np.isnan(state.token_stats[r, 0])]
    if early:
        raise DataError(
            f"series {early[0]!r} has fewer than patch_len={P} observations; a streaming model "
            "forecasts after the first full patch: add rows with update(), or a longer history"
        )
    out = forecast_state(
        model,
        state.outputs[rows],
        state.token_stats[rows],
        state.partial[rows],
        state.seen[rows] % P,
        state.recent[rows],
        data.ahead,
        static_vectors(model, data),
    )
    contexts = np.stack([v[-config.context_length :] for v in panel.values])
    return f._in_data_units(
        out, contexts, data.mean, data.scale, list(panel.names), levels, calibration
    )


def advanced_state(f, added: Panel) -> StreamState:
    """A copy of the stored state with `added`'s rows read (new series appended): the model's
    state after `update`, built before anything is assigned."""
    model, config = f.model_, f.config_
    state = f.stream_.copy()
    keep = [i for i, v in enumerate(added.values) if len(v)]
    if not keep:
        return state
    added = added.take(keep)
    data = stream_inputs(f.scaling_, added)
    known = set(state.names)
    new = [n for n in added.names if n not in known]
    if new:
        n_dynamic = state.partial_dynamic.shape[-1]
        state = state.extended(StreamState.empty(model, new, n_dynamic))
    where = {n: i for i, n in enumerate(state.names)}
    advance(
        model,
        state,
        [where[n] for n in added.names],
        data.values,
        data.dynamic,
        static_vectors(model, data),
        stream_decay(config),
    )
    return state


def stream_backtest(f, panel: Panel, calibration, levels, n_windows, step) -> Backtest:
    """`rolling_forecasts` of a streaming model: one read of each series, every origin scored
    from the state there (the same as `predict` on the series cut at that origin)."""
    config, model = f.config_, f.model_
    L, H = config.context_length, config.prediction_length
    step, n_windows = backtest_windows(panel, config, step, n_windows)
    data = stream_inputs(f.scaling_, panel)
    windows = select_windows(data.values, L, H, step=step, n_windows=n_windows, values=panel.values)
    warn_in_sample(getattr(f, "fit_span_", None), panel, windows.series, windows.start, H)
    _, records = read_series(model, config, data, list(panel.names), keep_tokens=True)
    out = origin_forecasts(model, config, data, records, windows.series, windows.start)
    names = [panel.names[s] for s in windows.series]
    output, point, bounds = f._in_data_units(
        out,
        windows.contexts,
        data.mean[windows.series],
        data.scale[windows.series],
        names,
        list(levels),
        calibration,
    )
    quantiles = config.quantiles if output.ndim == 3 else None
    return Backtest(panel, windows, output, point, quantiles, bounds)
