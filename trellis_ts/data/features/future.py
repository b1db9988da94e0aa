"""The future frame: the rows after each series' end that forecasts with future covariates need.

`future_frame` writes the frame for the user to fill (timestamps, ids, calendar columns filled,
future covariate columns empty) in the layout of the fit data; `read_future` reads a filled one
back and checks it: every future covariate present, numeric and complete for each of the
``prediction_length`` steps after every series' end, with the column and first timestamp named
when not.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trellis_ts.data.features.calendar import calendar_values
from trellis_ts.data.io.dates import parse_time
from trellis_ts.data.io.frames import Panel, id_columns, series_keys, to_float
from trellis_ts.data.io.timegrid import future_index
from trellis_ts.data.io.writing import id_frame, with_time
from trellis_ts.errors import DataError

__all__ = ["future_frame", "read_future"]

_HOW = "make_future_frame() returns the frame to fill"


def future_frame(panel: Panel, horizon: int, calendar: tuple[str, ...] = ()) -> pd.DataFrame:
    """The ``horizon`` steps after each series of ``panel``, in its layout: the time column (the
    index if the input had time there) and the id column of a long frame, each future covariate
    column empty (NaN), and the calendar feature columns filled."""
    layout = panel.layout
    names = list(layout.future_covariates)
    blocks = []
    for first in panel.covariates.first_members():
        times = future_index(panel.index[first][-1], panel.freq, horizon)
        columns = {c: np.full(horizon, np.nan) for c in names}
        columns |= dict(zip(calendar, calendar_values(times, calendar).T, strict=True))
        blocks.append((first, times, columns))
    if layout.format == "wide":
        _, times, columns = blocks[0]
        return with_time(columns, times, layout)
    frames = [
        pd.DataFrame(
            {**id_frame(layout, [panel.ids[i]], horizon), layout.time_col: times, **columns}
        )
        for i, times, columns in blocks
    ]
    return pd.concat(frames, ignore_index=True)


def read_future(
    future: pd.DataFrame | None,
    panel: Panel,
    horizon: int,
    *,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> list[np.ndarray]:
    """The future covariates over the horizon of each group of ``panel``: ``[horizon, F]`` each,
    from the user's ``future`` frame (rows before or beyond the horizon are not read); its dates
    are read as the fit's were (``dayfirst``, ``date_format``)."""
    layout = panel.layout
    names = list(layout.future_covariates)
    if future is None:
        raise DataError(
            f"the model uses future covariates {names}: pass future= with their values for the "
            f"{horizon} steps after the end of each series ({_HOW})."
        )
    if not isinstance(future, pd.DataFrame):
        raise DataError(f"future must be a pandas DataFrame, got {type(future).__name__}; {_HOW}.")
    missing = [c for c in names if c not in future.columns]
    if missing:
        raise DataError(
            f"future covariate(s) {missing} are missing from future (it has columns "
            f"{list(future.columns)}); add them, with values for the {horizon} steps after each "
            f"series' end ({_HOW})."
        )
    if not layout.time_in_index and layout.time_col not in future.columns:
        raise DataError(
            f"future has no time column {layout.time_col!r}; give it the timestamps of the "
            f"forecast horizon ({_HOW})."
        )
    raw = future.index if layout.time_in_index else future[layout.time_col]
    times = parse_time(raw, "future's time", dayfirst=dayfirst, date_format=date_format)
    values = np.stack(
        [to_float(future[c], f"future covariate {c!r}", "covariates are numbers") for c in names],
        axis=1,
    )
    if layout.format == "wide":
        return [_horizon_rows(times, values, panel, 0, "", horizon)]
    lacking = [c for c in id_columns(layout.id_col) if c not in future.columns]
    if lacking:
        raise DataError(f"future has no id column {lacking[0]!r}; give each row its series' id.")
    firsts = panel.covariates.first_members()
    rows_of = _rows_of(series_keys(future, layout.id_col), [panel.ids[i] for i in firsts])
    out = []
    for first, rows in zip(firsts, rows_of, strict=True):
        where = f" (series {panel.names[first]!r})"
        if not rows.size:
            raise DataError(
                f"future has no rows for series {panel.names[first]!r}; give every series the "
                f"{horizon} steps after its end ({_HOW})."
            )
        out.append(_horizon_rows(times[rows], values[rows], panel, first, where, horizon))
    return out


def _rows_of(ids: pd.Series | pd.MultiIndex, wanted: list) -> list[np.ndarray]:
    """The positions of the rows of each id in ``wanted``, ascending (empty for an id with none):
    one pass over the rows, not one per id, which a long frame of many series needs."""
    codes, uniques = pd.factorize(ids, sort=False)  # a missing id is -1 and matches none
    order = np.argsort(codes, kind="stable")  # the rows id by id, in row order within each
    bounds = np.searchsorted(codes[order], np.arange(len(uniques) + 1))
    at = pd.Index(uniques).get_indexer(wanted)
    return [order[bounds[k] : bounds[k + 1]] if k >= 0 else order[:0] for k in at]


def _horizon_rows(times, values, panel: Panel, first: int, where: str, horizon: int) -> np.ndarray:
    """``values`` at the ``horizon`` timestamps after series ``first``'s end, checked."""
    last = panel.index[first][-1]
    wanted = future_index(last, panel.freq, horizon)
    index = pd.Index(times)
    if index.has_duplicates:
        dup = index[index.duplicated()][0]
        raise DataError(f"future has the timestamp {dup} twice{where}; keep one row per step.")
    at = index.get_indexer(wanted)
    if (at < 0).any():
        j = int(np.argmax(at < 0))
        first_missing = wanted[j]
        if (at[j:] < 0).all():
            raise DataError(
                f"future is too short{where}: it has {j} of the {horizon} steps after the "
                f"history's end {last}; the first missing timestamp is {first_missing}. Give "
                f"future covariate values up to {wanted[-1]} ({_HOW})."
            )
        raise DataError(
            f"future has a gap{where}: timestamp {first_missing} is missing between {last} and "
            f"{wanted[-1]}; give a row for every one of the {horizon} steps ({_HOW})."
        )
    out = values[at]
    bad = ~np.isfinite(out)
    if bad.any():
        step, k = np.argwhere(bad)[0]
        raise DataError(
            f"future covariate {panel.layout.future_covariates[k]!r} is missing (NaN) at "
            f"{wanted[step]}{where}; fill every value of the {horizon} steps after the history."
        )
    return out
