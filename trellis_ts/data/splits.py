"""The train/validation split in time, torch-free: the sizing and the tuning space, which run
before any model code loads, size with the same validation length that training holds out.

Positions follow the windows' convention (`trellis_ts.data.windows`): a window with start ``s``
has context ``[s - L, s)`` and targets ``[s, s + H)``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trellis_ts.errors import ConfigError, DataError, positive_int

__all__ = ["train_val_ranges", "validation_length"]


def validation_length(
    lengths: int | Sequence[int] | np.ndarray, prediction_length: int, val_fraction: float
) -> np.ndarray:
    """The steps held out at the end of series of ``lengths`` for validation, int64, same shape.

    ``max(prediction_length, val_fraction * T)`` with the fraction rounded half up (0.5 -> 1,
    2.5 -> 3, where Python's `round` would give 0 and 2); 0 when ``val_fraction == 0``.
    """
    T = np.asarray(lengths, dtype=np.int64)
    if val_fraction == 0:
        return np.zeros_like(T)
    return np.maximum(prediction_length, np.floor(val_fraction * T + 0.5).astype(np.int64))


def train_val_ranges(
    lengths: Sequence[int] | np.ndarray,
    context_length: int,
    prediction_length: int,
    val_fraction: float = 0.2,
    min_val_windows: int = 1,
    *,
    names: Sequence[str] | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]] | None]:
    """Split each series in time: validation targets are its last ``n_val`` positions.

    ``n_val = validation_length(T, prediction_length, val_fraction)``; with ``split = T - n_val``
    the training range is ``(0, split)`` (all training targets before ``split``) and the
    validation range ``(split, T)`` (validation context may reach back into the training part).
    Rule: if ANY series would get fewer than 1 training window or fewer than ``min_val_windows``
    validation windows (or ``val_fraction == 0``), there is no validation: the result is
    ``([(0, T_i), ...], None)`` and the caller trains on everything.
    Raises DataError for a series shorter than ``context_length + prediction_length``.
    """
    L = positive_int(context_length, "context_length")
    H = positive_int(prediction_length, "prediction_length")
    min_val_windows = positive_int(min_val_windows, "min_val_windows")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction!r} must be in [0, 1), e.g. 0.2.")
    T = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if T.size == 0:
        raise DataError("there are no series to train on; pass at least one series.")
    short = np.flatnonzero(T < L + H)
    if short.size:
        i = int(short[0])
        name = names[i] if names is not None else f"#{i}"
        raise DataError(
            f"series {name!r} has {T[i]} time steps but context_length + prediction_length = "
            f"{L + H} are needed; shorten context_length or provide a longer history."
        )
    everything = [(0, int(t)) for t in T]
    if val_fraction == 0:
        return everything, None
    split = T - validation_length(T, H, val_fraction)
    n_train = split - H - L + 1  # starts in [L, split - H]
    n_valid = T - H - np.maximum(split, L) + 1  # starts in [max(split, L), T - H]
    if (n_train < 1).any() or (n_valid < min_val_windows).any():
        return everything, None
    return [(0, int(s)) for s in split], [(int(s), int(t)) for s, t in zip(split, T, strict=True)]
