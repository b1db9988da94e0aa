"""Reading, validating and writing back time-series frames.

The model is channel-independent, so the canonical form is a list of univariate series: a
`Panel`. `to_panel` accepts the two layouts users bring from NeuralForecast/GluonTS workflows,
and `to_frame` writes results back in the same layout, names and column order:

* wide: one row per timestamp, one column per channel; time in a column or in the index;
* long: columns ``[unique_id, ds, y]`` (or an id, a time and a value column found by
  `trellis_ts.data.columns`), one row per (series, timestamp).

Every problem a user can cause raises `DataError` with a message that names the offending value.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.columns import Columns, assign_columns
from trellis_ts.data.dates import parse_time
from trellis_ts.data.timegrid import as_int, fmt_time, parse_freq, regularize
from trellis_ts.errors import DataError

__all__ = ["Panel", "future_index", "panel_from_arrays", "to_frame", "to_panel"]

_MISSING_POLICIES = ("error", "interpolate", "ffill")


@dataclass(frozen=True)
class Panel:
    """Univariate series in canonical form + what is needed to write results back in the input's format.

    ``values[i]`` is a float64 array ``[T_i]`` and ``index[i]`` its time index (DatetimeIndex or an
    integer Index) of the same length; series keep the input's order (wide: column order; long:
    order of first appearance of each id). In the wide layout every series shares one index.
    """

    values: tuple[np.ndarray, ...]
    index: tuple[pd.Index, ...]
    names: tuple[str, ...]
    layout: str
    freq: str | int | None
    time_col: str | None
    id_col: str | None
    target_col: str | None
    index_name: str | None
    ids: tuple | None
    # Wide layout: the original column labels (they may be non-str, e.g. 0..C-1 from a numpy array),
    # so results are written back under exactly the input's labels. None means "use names".
    columns: tuple | None = None

    @property
    def n_series(self) -> int:
        return len(self.values)

    def lengths(self) -> np.ndarray:
        """int64 ``[n_series]``: the number of time steps of each series."""
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def describe(self) -> str:
        """The columns taken, in words: "long data: 3 series in 'store', time 'date', target 'sales'"."""
        time = f"time {self.time_col!r}" if self.time_col is not None else "time in the index"
        if self.layout == "long":
            return (f"long data: {self.n_series:,} series in {self.id_col!r}, {time}, "
                    f"target {self.target_col!r}")  # fmt: skip
        names = ", ".join(repr(n) for n in self.names[:4]) + (", ..." if self.n_series > 4 else "")
        what = names if self.n_series == 1 else f"{self.n_series:,} columns ({names})"
        return f"wide data: {time}, forecasting {what}"


# ------------------------------------------------------------------------------------ to_panel


def to_panel(
    df: pd.DataFrame,
    *,
    time_col: Any = None,
    id_col: Any = None,
    target: Any = None,
    freq: str | int | None = None,
    missing: str = "error",
    fill_gaps: bool = False,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> Panel:
    """Validate a wide or long frame and convert it to a `Panel` (one univariate series each).

    Long layout when ``id_col`` is given, when there is a "unique_id" column, or when the time
    column repeats timestamps and one text column names the series; otherwise wide (see
    `trellis_ts.data.columns`). ``missing`` is "error", "interpolate" or "ffill";
    ``fill_gaps=True`` reindexes irregular timestamps to ``freq`` (new rows are then handled by
    ``missing``). ``dayfirst`` settles dates like 01/02/2020 (None: from the values, or an
    error when they do not settle it); ``date_format`` is a strptime format, or "excel", "unix",
    "unix_ms" for integer dates. Columns left unused are named in one warning.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(df).__name__}; load CSV files with read_csv()."
        )
    if not isinstance(missing, str) or missing not in _MISSING_POLICIES:
        raise DataError(
            f"missing={missing!r} is not a policy; use 'error', 'interpolate' or 'ffill'."
        )
    if dayfirst is not None and not isinstance(dayfirst, (bool, np.bool_)):
        raise DataError(f"dayfirst={dayfirst!r} must be True, False or None.")
    if date_format is not None and not isinstance(date_format, str):
        raise DataError(f"date_format={date_format!r} must be a format string such as '%d.%m.%Y'.")
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"the data frame is empty (shape {df.shape}); pass rows and value columns.")
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise DataError(f"column {dup!r} appears more than once; give every column a unique name.")
    if freq is not None and not isinstance(freq, (int, np.integer)):
        parse_freq(freq, is_datetime=True)  # fail fast on a misspelt alias
    cols = assign_columns(df, time_col=time_col, id_col=id_col, target=target,
                          date_format=date_format)  # fmt: skip
    label = f"time column {cols.time_col!r}" if cols.time_col is not None else "the index"
    times = parse_time(cols.time_raw, label, dayfirst=dayfirst, date_format=cols.date_format)
    if cols.layout == "long":
        return _long_panel(df, cols, times, freq, missing, fill_gaps)
    return _wide_panel(df, cols, times, freq, missing, fill_gaps)


def _wide_panel(df, cols: Columns, times, freq, missing, fill_gaps) -> Panel:
    tcol, targets = cols.time_col, cols.targets
    label = f"time column {tcol!r}" if tcol is not None else "the index"
    # Fortran order keeps each channel contiguous, so the per-series arrays below are plain views.
    mat = np.empty((len(df), len(targets)), dtype=np.float64, order="F")
    for j, col in enumerate(targets):
        mat[:, j] = _to_float(df[col], f"column {col!r}")
    t = as_int(times)
    if (np.diff(t) < 0).any():
        _warn_unsorted(label)
        order = np.argsort(t, kind="stable")
        times, t, mat = times[order], t[order], np.asfortranarray(mat[order])
    dup = np.flatnonzero(np.diff(t) == 0)
    if dup.size:
        raise DataError(
            f"{label} has duplicate timestamp {fmt_time(times, dup[0])}; keep one row per "
            "timestamp, or pass id_col= naming the series column if the file is long (one row "
            "per series and timestamp)."
        )
    codes = np.zeros(len(t), dtype=np.int64)
    grid = regularize(times, codes, 1, freq, fill_gaps, lambda c: "")
    if grid.dest is not None:
        full = np.full((grid.counts[0], mat.shape[1]), np.nan, order="F")
        full[grid.dest] = mat
        mat = full
    idx = grid.indexes[0]
    values = tuple(
        _fill_missing(mat[:, j], missing, f"column {c!r}", idx) for j, c in enumerate(targets)
    )
    return Panel(
        values=values,
        index=(idx,) * len(values),
        names=tuple(str(c) for c in targets),
        layout="wide",
        freq=grid.freq,
        time_col=tcol,
        id_col=None,
        target_col=None,
        index_name=df.index.name if tcol is None else None,
        ids=None,
        columns=tuple(targets),
    )


def _long_panel(df, cols: Columns, times, freq, missing, fill_gaps) -> Panel:
    id_col, time_col, target = cols.id_col, cols.time_col, cols.targets[0]
    codes, uniques = pd.factorize(df[id_col], sort=False)  # ids in order of first appearance
    if (codes < 0).any():
        raise DataError(
            f"column {id_col!r} has an empty id at row {int(np.argmax(codes < 0))}; "
            "drop or fill those rows."
        )
    ids = tuple(uniques.tolist())
    names = tuple(str(u) for u in ids)
    if len(set(names)) < len(names):
        raise DataError(f"ids in column {id_col!r} collide when written as text; make them unique.")
    label = f"time column {time_col!r}"
    y = _to_float(df[target], f"column {target!r}")
    t = as_int(times)
    codes = codes.astype(np.int64, copy=False)
    # Group rows by id with one stable sort (skipped when already grouped); only if times are
    # out of order within an id, sort by time first and regroup: (id, time) order, no row loops.
    order = None if (np.diff(codes) >= 0).all() else _argsort_codes(codes, len(ids))
    c1 = codes if order is None else codes[order]
    t1 = t if order is None else t[order]
    same = c1[1:] == c1[:-1]
    if (same & (t1[1:] < t1[:-1])).any():
        _warn_unsorted(label + " within each id")
        by_time = np.argsort(t, kind="stable")
        order = by_time[_argsort_codes(codes[by_time], len(ids))]
        t1 = t[order]
    dup = np.flatnonzero(same & (t1[1:] == t1[:-1]))
    if order is not None:
        times, y = times[order], y[order]
    if dup.size:
        raise DataError(
            f"series {names[c1[dup[0]]]!r} has duplicate timestamp {fmt_time(times, dup[0])} "
            f"in {label}; keep one row per (id, time)."
        )
    grid = regularize(times, c1, len(ids), freq, fill_gaps, lambda c: f" (id {names[c]!r})")
    if grid.dest is not None:
        full = np.full(int(grid.counts.sum()), np.nan)
        full[grid.dest] = y
        y = full
    starts = np.concatenate([[0], np.cumsum(grid.counts)[:-1]])
    bad = np.logical_or.reduceat(~np.isfinite(y), starts)
    parts = np.split(y, starts[1:])
    for i in np.flatnonzero(bad):  # a loop over flawed series only
        parts[i] = _fill_missing(parts[i], missing, f"series {names[i]!r}", grid.indexes[i])
    return Panel(
        values=tuple(parts),
        index=tuple(grid.indexes),
        names=names,
        layout="long",
        freq=grid.freq,
        time_col=time_col,
        id_col=id_col,
        target_col=target,
        index_name=None,
        ids=ids,
    )


def _argsort_codes(codes: np.ndarray, n_series: int) -> np.ndarray:
    """Stable argsort of series codes; 16-bit keys let numpy use its O(n) radix sort."""
    return np.argsort(codes.astype(np.uint16) if n_series <= 1 << 16 else codes, kind="stable")


def _warn_unsorted(label: str) -> None:
    warnings.warn(
        f"rows were not sorted by {label}; sorted them. Sort the frame first to silence this.",
        UserWarning,
        stacklevel=4,
    )


def _to_float(col: pd.Series, label: str) -> np.ndarray:
    """float64 ``[n]``; missing cells become NaN, text that is not a number raises."""
    if pd.api.types.is_bool_dtype(col.dtype) or pd.api.types.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    num = pd.to_numeric(col, errors="coerce")
    bad = num.isna().to_numpy() & col.notna().to_numpy()
    if bad.any():
        value = col.iloc[int(np.argmax(bad))]
        hint = ""
        if re.fullmatch(r"\s*-?\d+,\d+\s*", str(value)):
            hint = " (looks like a decimal comma: pass decimal=',' to read_csv)"
        raise DataError(
            f"{label} has a non-numeric value {value!r}{hint}; fix it, or choose other columns "
            "with target=."
        )
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def _fill_missing(v: np.ndarray, missing: str, label: str, index: pd.Index) -> np.ndarray:
    """Apply the missing-value policy to one series ``[T]`` (NaN and +-inf count as missing)."""
    ok = np.isfinite(v)
    if ok.all():
        return v
    n_bad = int(len(v) - ok.sum())
    if n_bad == len(v):
        raise DataError(f"{label} has no finite values ({n_bad} missing); drop it or fix the data.")
    if missing == "error":
        first = index[int(np.argmin(ok))]
        raise DataError(
            f"{label} has {n_bad} missing or infinite values (first at {first}); pass "
            "missing='interpolate' or missing='ffill', or clean the data."
        )
    x = np.arange(len(v))
    if missing == "interpolate":
        # np.interp holds the first/last finite value beyond the ends: that is the ffill/bfill.
        return np.interp(x, x[ok], v[ok])
    last = np.maximum.accumulate(np.where(ok, x, -1))  # position of the latest finite value
    return v[np.where(last < 0, int(np.argmax(ok)), last)]  # leading gap takes the first value


# ------------------------------------------------------------------------------ writing back


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
    if panel.layout == "wide":
        first = index[0]
        if any(not ix.equals(first) for ix in index[1:]):
            raise DataError("a wide result needs one shared time index for all series.")
        labels = panel.columns if panel.columns is not None else panel.names
        data = {c: vals[i] for i, c in enumerate(labels)}
        for suffix, arr in extras.items():
            data.update({f"{c}_{suffix}": arr[i] for i, c in enumerate(labels)})
        if panel.time_col is None:
            return pd.DataFrame(data, index=first.rename(panel.index_name))
        out = pd.DataFrame(data)
        out.insert(0, panel.time_col, first)
        return out
    times = index[0].append(list(index[1:])) if panel.n_series > 1 else index[0]
    data = {
        panel.id_col: pd.Index(list(panel.ids)).repeat(horizon),
        panel.time_col: times,
        panel.target_col: vals.ravel(),
    }
    data.update({f"{panel.target_col}_{s}": arr.ravel() for s, arr in extras.items()})
    return pd.DataFrame(data)


def _result_array(a: Any, panel: Panel, label: str, horizon: int | None) -> np.ndarray:
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != panel.n_series or (horizon and arr.shape[1] != horizon):
        want = f"[{panel.n_series}, {horizon or 'H'}]"
        raise DataError(f"{label} has shape {arr.shape}; expected {want} (one row per series).")
    return arr


def panel_from_arrays(
    values: list[np.ndarray] | np.ndarray,
    *,
    names: list[str] | None = None,
    start: str = "2020-01-01",
    freq: str = "h",
) -> Panel:
    """A wide panel from arrays (a list of 1-D arrays, or a 2-D array ``[n_series, T]``)."""
    if isinstance(values, np.ndarray):
        arrays = [values] if values.ndim == 1 else list(values)
    else:
        arrays = list(values)
    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    if not arrays or any(a.ndim != 1 or a.size == 0 for a in arrays):
        raise DataError("panel_from_arrays needs non-empty 1-D arrays (or a 2-D [n_series, T]).")
    for i, a in enumerate(arrays):
        if not np.isfinite(a).all():
            raise DataError(f"array {i} holds NaN or infinite values; clean it first.")
    names = [f"series_{i}" for i in range(len(arrays))] if names is None else list(names)
    if len(names) != len(arrays):
        raise DataError(
            f"got {len(names)} names for {len(arrays)} arrays; pass one name per array."
        )
    off = parse_freq(freq, is_datetime=True)
    cache: dict[int, pd.DatetimeIndex] = {}
    index = tuple(
        cache.setdefault(len(a), pd.date_range(start, periods=len(a), freq=off)) for a in arrays
    )
    return Panel(
        values=tuple(arrays),
        index=index,
        names=tuple(str(n) for n in names),
        layout="wide",
        freq=off.freqstr,
        time_col=None,
        id_col=None,
        target_col=None,
        index_name=None,
        ids=None,
    )
