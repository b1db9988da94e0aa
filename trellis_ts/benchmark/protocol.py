"""The long-term-forecasting protocol: how a file is split, scaled and cut into windows, and how
every test window is scored (the rules published LTSF numbers use; `runner` has them in words).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from torch import nn

from trellis_ts.data.features.scaling import Scaler
from trellis_ts.data.windows import SeriesSet, WindowDataset, model_inputs
from trellis_ts.errors import DataError
from trellis_ts.forecaster.training import forecast_contexts

# What is forecast from what: every channel ("M"), the target alone ("S"), or the target with
# every other channel as a past covariate ("MS").
FEATURES = ("M", "S", "MS")


ETT_MONTH = 30 * 24  # hours in the protocol's 30-day month


# ------------------------------------------------------------------------------ splits
def split_borders(kind: str, n_rows: int, context_length: int) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, stop)`` of "train", "val" and "test" (val/test start L rows early)."""
    L = context_length
    if kind in ("ett_hourly", "ett_minute"):
        month = ETT_MONTH * (1 if kind == "ett_hourly" else 4)
        train_end, val_end, test_end = 12 * month, 16 * month, 20 * month
        if n_rows < test_end:
            raise DataError(
                f"an ETT file needs {test_end} rows for its standard split but has {n_rows}; "
                "use the unmodified file"
            )
        borders = {
            "train": (0, train_end),
            "val": (train_end - L, val_end),
            "test": (val_end - L, test_end),
        }
    elif kind == "ratio_7_1_2":
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        n_val = n_rows - n_train - n_test
        borders = {
            "train": (0, n_train),
            "val": (n_train - L, n_train + n_val),
            "test": (n_rows - n_test - L, n_rows),
        }
    else:
        raise ValueError(f"unknown split kind {kind!r}")
    if borders["val"][0] < 0:
        raise DataError(
            f"context_length={L} is longer than the {borders['train'][1]} training rows; "
            "use a shorter context_length"
        )
    return borders


def _check_windows(borders: dict[str, tuple[int, int]], L: int, H: int) -> None:
    for name, (start, stop) in borders.items():
        if stop - start - L - H + 1 < 1:
            raise DataError(
                f"the {name} split has {stop - start} rows, fewer than context_length + horizon "
                f"= {L + H}; use a shorter context_length or horizon"
            )


def prepare_splits(
    values: np.ndarray, borders: dict[str, tuple[int, int]], names: Sequence[str] | None = None
) -> tuple[Scaler, dict[str, np.ndarray]]:
    """Fit the scaler on the train rows only; return it and each split's scaled rows ``[T_s, C]``."""
    start, stop = borders["train"]
    names = [str(c) for c in range(values.shape[1])] if names is None else names
    scaler = Scaler.fit_rows(names, values[start:stop])
    return scaler, {name: scaler.transform(values[a:b]) for name, (a, b) in borders.items()}


def split_series(rows: np.ndarray, features: str = "M", target: int = -1) -> SeriesSet:
    """A split's scaled rows ``[T, C]`` as the model's series: every channel (``"M"``), the
    ``target`` column alone (``"S"``), or the target with the other columns as past covariates
    (``"MS"``). The models are channel-independent, so "M" is C univariate series."""
    rows = np.asarray(rows, dtype=np.float32)
    if features == "M":
        return SeriesSet(target=[np.ascontiguousarray(rows[:, c]) for c in range(rows.shape[1])])
    target = target % rows.shape[1]
    series = SeriesSet(target=[np.ascontiguousarray(rows[:, target])])
    if features == "S":
        return series
    others = np.delete(rows, target, axis=1)
    return SeriesSet(target=series.target, past_feat_dynamic_real=[others])


def split_windows(
    rows: np.ndarray, context_length: int, horizon: int, features: str = "M", target: int = -1
) -> WindowDataset:
    """Every window (stride 1) of every forecast channel of ``rows`` ``[T, C]``:
    ``T - L - H + 1`` each."""
    return WindowDataset(split_series(rows, features, target), context_length, horizon)


def evaluate_windows(
    model: nn.Module, windows: WindowDataset, batch_size: int = 1024, point_index: int = 0
) -> dict[str, float]:
    """MSE and MAE over all windows, steps and channels (float64 sums, no window dropped).

    ``point_index`` picks the point forecast of a quantile model (its outputs ``[n, H, Q]``).
    """
    n, H = len(windows), windows.prediction_length
    squared = absolute = 0.0
    for start in range(0, n, batch_size):
        batch = windows.gather(np.arange(start, min(start + batch_size, n)))
        inputs = {k: v.numpy() for k, v in model_inputs(batch).items()}
        pred = forecast_contexts(model, inputs, batch_size=batch_size)
        if pred.ndim == 3:
            pred = pred[..., point_index]
        err = pred - batch["future_target"].numpy().astype(np.float64)
        squared += float(np.sum(err * err))
        absolute += float(np.sum(np.abs(err)))
    count = max(n * H, 1)
    return {"mse": squared / count, "mae": absolute / count, "windows": n}
