"""Calendar features: future-known inputs computed from the timestamps alone.

Each feature is one column in [-0.5, 0.5] (the position within its cycle, as GluonTS's time
features and Informer's "timeF" encoding scale them), computed for the history and for the
forecast horizon alike, so the user supplies nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from trellis_ts.data.features.names import CALENDAR_FEATURES
from trellis_ts.data.frequency import CALENDAR_BY_UNIT, base_unit
from trellis_ts.errors import ConfigError

__all__ = ["CALENDAR_FEATURES", "calendar_features_for", "calendar_values", "check_calendar_names"]

# name -> (position within the cycle, counted from 0; the last position)
_FEATURES: dict[str, tuple[Callable[[pd.DatetimeIndex], np.ndarray], int]] = {
    "minute": (lambda t: t.minute, 59),
    "hour": (lambda t: t.hour, 23),
    "dayofweek": (lambda t: t.dayofweek, 6),
    "dayofmonth": (lambda t: t.day - 1, 30),
    "dayofyear": (lambda t: t.dayofyear - 1, 365),
    "weekofyear": (lambda t: np.asarray(t.isocalendar().week, dtype=np.int64) - 1, 52),
    "month": (lambda t: t.month - 1, 11),
    "quarter": (lambda t: t.quarter - 1, 3),
}
if tuple(_FEATURES) != CALENDAR_FEATURES:  # the names are listed in names.py for the config
    raise RuntimeError("data/features/names.py and the calendar features disagree")


def calendar_features_for(features: str | Sequence[str], freq: str | int | None) -> tuple[str, ...]:
    """The feature names a setting means for data at ``freq``: ``"auto"`` picks them from the
    frequency (none for integer time or yearly data), a list is checked against the data."""
    if isinstance(freq, (int, np.integer)) or freq is None:
        if features == "auto" or not features:
            return ()
        raise ConfigError(
            f"calendar_features={list(features)} need timestamps, but the data has integer time "
            "steps; give the time column as dates, or set calendar_features to none"
        )
    if features != "auto":
        return tuple(features)
    unit = base_unit(to_offset(freq))
    for units, chosen in CALENDAR_BY_UNIT:
        if unit in units:
            return chosen
    return ()


def calendar_values(times: pd.Index, features: Sequence[str]) -> np.ndarray:
    """float64 ``[len(times), len(features)]``: each feature's position in its cycle, scaled to
    [-0.5, 0.5]. ``times`` is a DatetimeIndex or a PeriodIndex."""
    out = np.empty((len(times), len(features)), dtype=np.float64)
    for k, name in enumerate(features):
        position, last = _FEATURES[name]
        out[:, k] = np.asarray(position(times), dtype=np.float64) / last - 0.5
    return out


def check_calendar_names(layout, calendar: Sequence[str]) -> None:
    """A calendar feature is a column of the future frame: its name must not be the time, id or
    a future covariate column's (`layout` is the data's `FrameLayout`)."""
    ids = layout.id_col if isinstance(layout.id_col, tuple) else (layout.id_col,)
    taken = {layout.time_col, *ids, *layout.future_covariates}
    clash = [c for c in calendar if c in taken]
    if clash:
        raise ConfigError(
            f"calendar feature {clash[0]!r} has the name of a column of the data; rename that "
            "column, or leave the feature out of calendar_features"
        )
