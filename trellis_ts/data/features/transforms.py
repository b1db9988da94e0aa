"""Target transforms: what the model is trained on, and how forecasts are mapped back.

* "none": the values as they are.
* "auto": the values as they are for the model; `InputScaling` records which targets were never
  negative in the fit data, and their forecasts are clamped at 0 (`clamp`).
* "log1p": trained on log(1 + y), forecasts mapped back with exp(z) - 1 and clamped at 0; for
  counts and sizes whose spread grows with their level (sales, sunspots, traffic).
* "nonnegative": trained on y, forecasts (and quantiles) clamped at 0.

Both non-identity transforms need targets >= 0 and say which series breaks that. Quantiles go
through the same monotone maps, so they stay ordered.
"""

from __future__ import annotations

import numpy as np

from trellis_ts.data.features.names import TARGET_TRANSFORMS
from trellis_ts.errors import DataError

__all__ = ["TARGET_TRANSFORMS", "clamp", "forward", "inverse"]


def forward(name: str, values: np.ndarray, label: str) -> np.ndarray:
    """The values the model sees for one series ``[T]`` (DataError for negatives)."""
    if name in ("none", "auto"):
        return values
    finite = values[np.isfinite(values)]
    if finite.size and finite.min() < 0:
        raise DataError(
            f"{label} has a negative value ({finite.min():g}) but target_transform={name!r} is "
            "for values >= 0 (counts, sizes); use target_transform='none' for this data."
        )
    return np.log1p(values) if name == "log1p" else values


def inverse(name: str, values: np.ndarray) -> np.ndarray:
    """Forecasts in the data's units from the model's (any shape); never below 0 unless "none"
    or "auto" (which `clamp` floors per series)."""
    if name in ("none", "auto"):
        return values
    out = np.expm1(values) if name == "log1p" else values
    return np.maximum(out, 0.0)


def clamp(values: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``values`` ``[n, ...]`` with the rows where ``rows`` (bool ``[n]``) is true floored at 0."""
    if not rows.any():
        return values
    shape = (-1,) + (1,) * (values.ndim - 1)
    return np.where(rows.reshape(shape), np.maximum(values, 0.0), values)
