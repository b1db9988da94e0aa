"""The LTSF protocol for a streaming model: fit on whole series, score every test origin in one
pass, each forecast reading the whole history before its origin.

The splits, the scaler and the scored windows are the protocol's (`trellis_ts.benchmark.
runner`); what differs is the lookback. A streaming model reads each series from its first
row: at a test origin it has read the train rows, the validation rows and the earlier test
rows, never a later one ("whole history" in the table). `context_length` is then the window its
linear path reads (`trellis_ts.models.streaming`), not a limit on what it has seen.
"""

from __future__ import annotations

import time

import numpy as np

from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.streaming.backtest import origin_forecasts, read_series
from trellis_ts.forecaster.streaming.inputs import StreamInputs
from trellis_ts.forecaster.streaming.training import train_streaming

__all__ = ["LOOKBACK", "run_streaming"]

LOOKBACK = "whole history"


def _inputs(columns: list[np.ndarray]) -> StreamInputs:
    n = len(columns)
    return StreamInputs(columns, None, None, None, None, np.zeros(n), np.ones(n))


def run_streaming(
    config: TrellisConfig,
    scaled: np.ndarray,
    borders: dict[str, tuple[int, int]],
    columns: list[int],
    names: list[str],
    score_test: bool,
):
    """Train on the rows before the test split (validation targets: the validation split's own
    rows), then score every test origin. `scaled [T, C]` are all rows the run may read, scaled
    by the train rows' scaler. Returns `(model, summary, scores)` as the window runs do, the
    scores with the seconds the one-pass scoring took (`seconds`)."""
    if config.loss == "quantile":
        raise ConfigError("the streaming benchmark scores point forecasts; use a point loss")
    L, H = config.context_length, config.prediction_length
    train_end, val_end = borders["train"][1], borders["val"][1]
    fit = _inputs([np.asarray(scaled[:val_end, c], np.float64) for c in columns])
    model, summary, _ = train_streaming(
        config, fit, names=names, val_ranges=[(train_end, val_end)] * len(columns)
    )
    scores = {"mse": None, "mae": None, "windows": None, "seconds": 0.0}
    if not score_test:
        return model, summary, scores
    started = time.perf_counter()
    test_start, test_end = borders["test"][0] + L, borders["test"][1]
    data = _inputs([np.asarray(scaled[:test_end, c], np.float64) for c in columns])
    _, records = read_series(model, config, data, names, keep_tokens=True)
    origins = np.arange(test_start, test_end - H + 1)
    squared = absolute = 0.0
    for s in range(len(columns)):
        out = origin_forecasts(model, config, data, records, np.full(len(origins), s), origins)
        truth = data.values[s][origins[:, None] + np.arange(H)]
        err = out - truth
        squared += float(np.sum(err * err))
        absolute += float(np.sum(np.abs(err)))
    count = len(origins) * len(columns) * H
    scores = {
        "mse": squared / count,
        "mae": absolute / count,
        "windows": len(origins) * len(columns),
        "seconds": time.perf_counter() - started,
    }
    return model, summary, scores
