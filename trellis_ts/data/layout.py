"""How a frame was laid out, and writing results back in that layout.

`FrameLayout` is what `to_panel` learned about the user's frame (wide or long, the time, id and
value columns, which columns are covariates of which kind); it holds names only, never values,
and saves as JSON with `dataclasses.asdict`. `to_frame` writes forecasts back with it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from trellis_ts.data.timegrid import parse_freq
from trellis_ts.errors import DataError

if TYPE_CHECKING:
    from trellis_ts.data.frames import Panel

__all__ = ["FrameLayout", "future_index", "to_frame"]


@dataclass(frozen=True)
class FrameLayout:
    """The input frame's format and column roles (labels as the user gave them).

    * ``format``: "wide" (one column per series) or "long" (``id_col``, ``time_col``,
      ``target_col``, one row per series and time step);
    * ``time_col``: None when time is the index (wide), whose name is then ``index_name``;
    * ``columns``: wide: the target columns' original labels (they may be non-str, e.g. 0..C-1
      from a numpy array), so results are written back under exactly those labels;
    * the covariate columns by role: known up to the forecast origin (``past_covariates``),
      known over the horizon too (``future_covariates``), constant per series
      (``static_covariates``).
    """

    format: str
    time_col: Any = None
    id_col: Any = None
    target_col: Any = None
    index_name: Any = None
    columns: tuple | None = None
    past_covariates: tuple = ()
    future_covariates: tuple = ()
    static_covariates: tuple = ()

    @property
    def covariates(self) -> tuple:
        """Every covariate column, past then future then static."""
        return self.past_covariates + self.future_covariates + self.static_covariates

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> FrameLayout:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def future_index(last: Any, freq: str | int | Any, horizon: int) -> pd.Index:
    """The ``horizon`` time stamps after ``last`` at ``freq``: DatetimeIndex or integer Index."""
    if horizon < 0:
        raise DataError(f"horizon={horizon} is negative; pass the number of future steps (>= 0).")
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, bool):
        step = int(freq)
        start = int(last) + step
        return pd.RangeIndex(start, start + step * horizon, step)
    if isinstance(last, (int, np.integer)):
        raise DataError(f"last={last!r} is an integer but freq={freq!r} is a calendar frequency.")
    off = parse_freq(freq, is_datetime=True)
    return pd.date_range(start=pd.Timestamp(last) + off, periods=horizon, freq=off)


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
    if index is None:
        index = tuple(future_index(ix[-1], panel.freq, horizon) for ix in panel.index)
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
    times = index[0].append(list(index[1:])) if panel.n_series > 1 else index[0]
    data = {
        layout.id_col: pd.Index(list(panel.ids)).repeat(horizon),
        layout.time_col: times,
        layout.target_col: vals.ravel(),
    }
    data.update({f"{layout.target_col}_{s}": arr.ravel() for s, arr in extras.items()})
    return pd.DataFrame(data)


def with_time(columns: dict, times: pd.Index, layout: FrameLayout) -> pd.DataFrame:
    """A wide frame of ``columns`` whose rows are stamped with ``times``: in a first column, or
    in the index when the input had its time there."""
    if layout.time_col is None:
        return pd.DataFrame(columns, index=times.rename(layout.index_name))
    return pd.DataFrame({layout.time_col: times, **columns})


def _result_array(a: Any, panel: Panel, label: str, horizon: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != panel.n_series or (horizon and arr.shape[1] != horizon):
        want = f"[{panel.n_series}, {horizon or 'H'}]"
        raise DataError(f"{label} has shape {arr.shape}; expected {want} (one row per series).")
    return arr
