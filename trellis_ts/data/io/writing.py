"""Writing results back in the layout, names and column order of the user's frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.io.frames import Panel
from trellis_ts.data.io.layout import FrameLayout
from trellis_ts.data.io.timegrid import future_index
from trellis_ts.errors import DataError

__all__ = ["id_frame", "to_frame", "with_time"]


def to_frame(
    panel: Panel,
    values: np.ndarray,
    index: tuple[pd.Index, ...] | None = None,
    columns_suffix: dict[str, np.ndarray] | None = None,
) -> pd.DataFrame:
    """Write results ``values`` float ``[n_series, H]`` back in the layout and names of ``panel``.

    ``index[i]`` gives the H time stamps of series i (default: the H steps after its last one).
    ``columns_suffix`` maps a suffix to extra ``[n_series, H]`` arrays: wide adds columns
    ``f"{name}_{suffix}"`` after the point columns, long adds ``f"{target_col}_{suffix}"``.
    """
    vals = _result_array(values, panel, "values", None)
    horizon = vals.shape[1]
    extras = {
        s: _result_array(a, panel, f"columns_suffix[{s!r}]", horizon)
        for s, a in (columns_suffix or {}).items()
    }
    if index is None:  # one index per distinct end (series that end together share it)
        made: dict[Any, pd.Index] = {}
        ends = [ix[-1] for ix in panel.index]
        for end in ends:
            if end not in made:
                made[end] = future_index(end, panel.freq, horizon)
        index = tuple(made[end] for end in ends)
    if len(index) != panel.n_series or any(len(ix) != horizon for ix in index):
        raise DataError(
            f"index must hold {panel.n_series} time indexes of length {horizon} (one per series)."
        )
    layout = panel.layout
    if layout.format == "wide":
        first = index[0]
        if any(not ix.equals(first) for ix in index[1:]):
            raise DataError("a wide result needs one shared time index for all series.")
        labels = layout.columns if layout.columns is not None else panel.names
        data = {c: vals[i] for i, c in enumerate(labels)}
        for suffix, arr in extras.items():
            data.update({f"{c}_{suffix}": arr[i] for i, c in enumerate(labels)})
        return with_time(data, first, layout)
    if all(ix is index[0] for ix in index):  # shared: one take instead of n appends
        times = index[0][np.tile(np.arange(horizon), panel.n_series)]
    else:
        times = index[0].append(list(index[1:])) if panel.n_series > 1 else index[0]
    data = id_frame(layout, panel.ids, horizon)
    data |= {layout.time_col: times, layout.target_col: vals.ravel()}
    data.update({f"{layout.target_col}_{s}": arr.ravel() for s, arr in extras.items()})
    return pd.DataFrame(data)


def id_frame(layout: FrameLayout, ids, repeat) -> dict:
    """The id column(s) of a long frame for series ``ids`` (tuples of values when the series
    are named by several columns), each id repeated ``repeat`` times (an int or one per id)."""
    if not isinstance(layout.id_col, tuple):
        return {layout.id_col: pd.Index(list(ids)).repeat(repeat)}
    return {
        col: pd.Index([key[k] for key in ids]).repeat(repeat) for k, col in enumerate(layout.id_col)
    }


def with_time(columns: dict, times: pd.Index, layout: FrameLayout) -> pd.DataFrame:
    """A wide frame of ``columns`` whose rows are stamped with ``times``: in a first column, or
    in the index when the input had its time there."""
    if layout.time_in_index:
        return pd.DataFrame(columns, index=times.rename(layout.index_name))
    return pd.DataFrame({layout.time_col: times, **columns})


def _result_array(a: Any, panel: Panel, label: str, horizon: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != panel.n_series or (horizon and arr.shape[1] != horizon):
        want = f"[{panel.n_series}, {horizon or 'H'}]"
        raise DataError(f"{label} has shape {arr.shape}; expected {want} (one row per series).")
    return arr
