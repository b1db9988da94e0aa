"""Causal running statistics of a series, updated in O(1) per observation.

The streaming model normalises each patch by the mean and standard deviation of what the series
has shown up to the patch's end. They come from three exponentially weighted sums per series,
`(Σ wᵢ, Σ wᵢ xᵢ, Σ wᵢ xᵢ²)` with weights `decay ** age`: `decay = 1` is the running (cumulative)
form, `decay = 1 - 1 / window` a trailing form with an effective window of `window` steps. The
sums are the whole state (three floats), and the recurrence runs in float64 through
`scipy.signal.lfilter` whether a series comes whole or one row at a time, so the batch path and
the stream path give the same numbers.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

__all__ = ["decay_for", "moments", "mean_std", "RELATIVE_FLOOR"]

RELATIVE_FLOOR = 1e-6  # variance floor, relative to the mean square: a flat series stays finite


def decay_for(window: int | None) -> float:
    """The weight decay per step of a trailing window of `window` steps (None or 0: running)."""
    return 1.0 if not window else 1.0 - 1.0 / window


def moments(values: np.ndarray, decay: float, start: np.ndarray | None = None) -> np.ndarray:
    """The sums `[..., T, 3]` after each of `values [..., T]` (one series, or a batch of them
    with as many steps each), continuing from the sums `start [..., 3]` (None: nothing read)."""
    x = np.asarray(values, dtype=np.float64)
    signals = np.stack([np.ones_like(x), x, x * x], axis=-2)  # [..., 3, T]
    initial = np.zeros(signals.shape[:-1] + (1,))
    if start is not None:
        initial = decay * np.asarray(start, np.float64)[..., None]
    out, _ = lfilter([1.0], [1.0, -decay], signals, axis=-1, zi=initial)
    return np.swapaxes(out, -1, -2)


def mean_std(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation of `sums [..., 3]` (a zero series gets scale 1)."""
    weight = np.maximum(sums[..., 0], 1e-300)
    mean = sums[..., 1] / weight
    square = sums[..., 2] / weight
    var = np.maximum(square - mean * mean, 0.0) + RELATIVE_FLOOR * square
    std = np.sqrt(var)
    return mean, np.where(std > 0, std, 1.0)
