"""Reading and validating time-series frames into a `Panel`.

The model is channel-independent, so the canonical form is a list of univariate series: a
`Panel`. `to_panel` accepts the two layouts users bring from NeuralForecast/GluonTS workflows
(`trellis_ts.data.io.writing.to_frame` writes results back in the same layout, names and order):

* wide: one row per timestamp, one column per channel; time in a column or in the index;
* long: columns ``[unique_id, ds, y]`` (or an id, a time and a value column found by
  `trellis_ts.data.io.columns`), one row per (series, timestamp).

Covariate columns (`trellis_ts.data.features.covariates`) are read beside the targets, through the same
sorting, gap filling and missing-value policy.

Every problem a user can cause raises `DataError` with a message that names the offending value.
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.features.covariates import ColumnRoles, Covariates, static_table
from trellis_ts.data.io.columns import Columns, as_list, assign_columns
from trellis_ts.data.io.dates import parse_time, period_label_format
from trellis_ts.data.io.layout import FrameLayout
from trellis_ts.data.io.timegrid import as_int, fmt_time, parse_freq, regularize
from trellis_ts.errors import DataError

__all__ = [
    "Panel",
    "id_columns",
    "id_name",
    "fill_missing",
    "panel_from_arrays",
    "series_keys",
    "to_float",
    "to_panel",
]

_MISSING_POLICIES = ("error", "interpolate", "ffill", "keep")
_TARGET_FIX = "fix it, or choose other columns with target="
_COVARIATE_FIX = (
    "covariates are numbers (encode a category as 0/1 columns, or pass a per-series label as a "
    "static covariate)"
)


@dataclass(frozen=True)
class Panel:
    """Univariate target series in canonical form, their covariates, and the frame's layout.

    ``values[i]`` is a float64 array ``[T_i]`` and ``index[i]`` its time index (DatetimeIndex or an
    integer Index) of the same length; series keep the input's order (wide: column order; long:
    order of first appearance of each id, whose values are ``ids``). In the wide layout every
    series shares one index. ``covariates`` holds the covariate values (zero-width when there
    are none); ``layout`` says how to write results back.
    """

    values: tuple[np.ndarray, ...]
    index: tuple[pd.Index, ...]
    names: tuple[str, ...]
    freq: str | int | None
    layout: FrameLayout
    ids: tuple | None = None
    covariates: Covariates | None = None  # None: built as "no covariates"

    def __post_init__(self) -> None:
        if self.covariates is None:
            lengths = self.lengths()
            shared = self.layout.format == "wide" and len(set(lengths.tolist())) <= 1
            object.__setattr__(self, "covariates", Covariates.none(lengths, shared=shared))

    @property
    def n_series(self) -> int:
        return len(self.values)

    def lengths(self) -> np.ndarray:
        """int64 ``[n_series]``: the number of time steps of each series."""
        return np.array([len(v) for v in self.values], dtype=np.int64)

    def describe(self) -> str:
        """The columns taken, in words: "long data: 3 series in 'store', time 'date', target 'sales'"."""
        layout = self.layout
        time = f"time {layout.time_col!r}" if layout.time_col is not None else "time in the index"
        if layout.format == "long":
            ids = (
                f"keyed by {', '.join(repr(c) for c in layout.id_col)}"
                if isinstance(layout.id_col, tuple)
                else f"in {layout.id_col!r}"
            )
            text = (
                f"long data: {self.n_series:,} series {ids}, {time}, target {layout.target_col!r}"
            )
        else:
            names = ", ".join(repr(n) for n in self.names[:4]) + (
                ", ..." if self.n_series > 4 else ""
            )
            what = names if self.n_series == 1 else f"{self.n_series:,} columns ({names})"
            text = f"wide data: {time}, forecasting {what}"
        roles = [(r, getattr(layout, f"{r}_covariates")) for r in ("past", "future", "static")]
        given = [f"{r} {list(c)}" for r, c in roles if c]
        return text + (f"; covariates: {', '.join(given)}" if given else "")

    def tail(self, length: int) -> Panel:
        """The last ``length`` steps of every series and its covariates."""
        return dataclasses.replace(
            self,
            values=tuple(v[-length:].copy() for v in self.values),
            index=tuple(ix[-length:] for ix in self.index),
            covariates=self.covariates.tail(length),
        )

    def take(self, series: list[int]) -> Panel:
        """The series at positions ``series``, in that order."""
        layout = self.layout
        if layout.columns is not None:
            layout = dataclasses.replace(layout, columns=tuple(layout.columns[i] for i in series))
        return dataclasses.replace(
            self,
            values=tuple(self.values[i] for i in series),
            index=tuple(self.index[i] for i in series),
            names=tuple(self.names[i] for i in series),
            ids=None if self.ids is None else tuple(self.ids[i] for i in series),
            layout=layout,
            covariates=self.covariates.take(series),
        )


# ------------------------------------------------------------------------------------ to_panel


def to_panel(
    df: pd.DataFrame,
    *,
    time_col: Any = None,
    id_col: Any = None,
    target: Any = None,
    past_covariates: Any = None,
    future_covariates: Any = None,
    static_covariates: Any = None,
    freq: str | int | None = None,
    missing: str = "error",
    fill_gaps: bool = False,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> Panel:
    """Validate a wide or long frame and convert it to a `Panel` (one univariate series each).

    Long layout when ``id_col`` is given, when there is a "unique_id" column, or when the time
    column repeats timestamps and one text column names the series; otherwise wide (see
    `trellis_ts.data.io.columns`). ``missing`` is "error", "interpolate" or "ffill" (or "keep":
    missing values stay NaN, for a caller that fills them later, as `extend_panel` does once it
    sees the history before them);
    ``fill_gaps=True`` reindexes irregular timestamps to ``freq`` (new rows are then handled by
    ``missing``). ``dayfirst`` settles dates like 01/02/2020 (None: from the values, or an
    error when they do not settle it); ``date_format`` is a strptime format, or "excel", "unix",
    "unix_ms" for integer dates. Columns left unused are named in one warning.

    Covariate columns are inputs only, read with the same policies as the targets (see
    `trellis_ts.data.features.covariates` for the roles): they never become targets, ids or time.
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
    roles = ColumnRoles.of(past_covariates, future_covariates, static_covariates)
    # Before the layout is settled, which never gives a covariate another role.
    targets = [] if target is None else as_list(target)
    roles.check(df, time_col=time_col, id_col=id_col, targets=targets)
    cols = assign_columns(
        df,
        time_col=time_col,
        id_col=id_col,
        target=target,
        date_format=date_format,
        covariates=roles.columns,
    )
    label = f"time column {cols.time_col!r}" if cols.time_col is not None else "the index"
    times = parse_time(cols.time_raw, label, dayfirst=dayfirst, date_format=cols.date_format)
    if cols.layout == "long":
        panel = _long_panel(df, cols, roles, times, freq, missing, fill_gaps)
    else:
        panel = _wide_panel(df, cols, roles, times, freq, missing, fill_gaps)
    style = period_label_format(cols.time_raw) if cols.date_format is None else None
    if style is None:
        return panel
    return dataclasses.replace(panel, layout=dataclasses.replace(panel.layout, time_format=style))


def _role_label(roles: ColumnRoles, name: Any) -> str:
    return f"{roles.role_of(name)} covariate {name!r}"


def _split_dynamic(dyn: np.ndarray, roles: ColumnRoles) -> tuple[np.ndarray, np.ndarray]:
    """``[T, P + F]`` → (past ``[T, P]``, future ``[T, F]``)."""
    return dyn[:, : len(roles.past)], dyn[:, len(roles.past) :]


def _wide_panel(df, cols: Columns, roles: ColumnRoles, times, freq, missing, fill_gaps) -> Panel:
    tcol, targets = cols.time_col, cols.targets
    label = f"time column {tcol!r}" if tcol is not None else "the index"
    columns = [*targets, *roles.dynamic]
    labels = [f"column {c!r}" for c in targets] + [_role_label(roles, c) for c in roles.dynamic]
    fixes = [_TARGET_FIX] * len(targets) + [_COVARIATE_FIX] * len(roles.dynamic)
    # Fortran order keeps each channel contiguous, so the per-series arrays below are plain views.
    mat = np.empty((len(df), len(columns)), dtype=np.float64, order="F")
    for j, col in enumerate(columns):
        mat[:, j] = to_float(df[col], labels[j], fixes[j])
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
    filled = [fill_missing(mat[:, j], missing, labels[j], idx) for j in range(len(columns))]
    values = tuple(filled[: len(targets)])
    names = tuple(str(c) for c in targets)
    dyn = np.stack(filled[len(targets) :], axis=1) if roles.dynamic else np.zeros((len(idx), 0))
    past, future = _split_dynamic(dyn, roles)
    covariates = Covariates(
        past=(past,),
        future=(future,),
        static=static_table(df, roles.static, None, names),
        group=np.zeros(len(values), dtype=np.int64),
    )
    layout = FrameLayout(
        format="wide",
        time_col=tcol,
        index_name=df.index.name if tcol is None else None,
        columns=tuple(targets),
        past_covariates=roles.past,
        future_covariates=roles.future,
        static_covariates=roles.static,
    )
    return Panel(
        values=values,
        index=(idx,) * len(values),
        names=names,
        freq=grid.freq,
        layout=layout,
        covariates=covariates,
    )


def _long_panel(df, cols: Columns, roles: ColumnRoles, times, freq, missing, fill_gaps) -> Panel:
    id_col, time_col, target = cols.id_col, cols.time_col, cols.targets[0]
    for col in id_columns(id_col):
        empty = df[col].isna().to_numpy()
        if empty.any():
            raise DataError(
                f"column {col!r} has an empty id at row {int(np.argmax(empty))}; "
                "drop or fill those rows."
            )
    codes, uniques = pd.factorize(series_keys(df, id_col), sort=False)  # first appearance order
    ids = tuple(uniques.tolist())
    names = tuple(id_name(u) for u in ids)
    if len(set(names)) < len(names):
        raise DataError(f"ids in column {id_col!r} collide when written as text; make them unique.")
    label = f"time column {time_col!r}"
    y = to_float(df[target], f"column {target!r}", _TARGET_FIX)
    dyn = np.empty((len(df), len(roles.dynamic)), dtype=np.float64)
    for k, col in enumerate(roles.dynamic):
        dyn[:, k] = to_float(df[col], _role_label(roles, col), _COVARIATE_FIX)
    t = as_int(times)
    codes = codes.astype(np.int64, copy=False)
    static = static_table(df, roles.static, codes, names)
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
        times, y, dyn = times[order], y[order], dyn[order]
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
        full = np.full((len(y), dyn.shape[1]), np.nan)
        full[grid.dest] = dyn
        dyn = full
    starts = np.concatenate([[0], np.cumsum(grid.counts)[:-1]])
    bad = np.logical_or.reduceat(~np.isfinite(y), starts)
    parts = np.split(y, starts[1:])
    for i in np.flatnonzero(bad):  # a loop over flawed series only
        parts[i] = fill_missing(parts[i], missing, f"series {names[i]!r}", grid.indexes[i])
    dyn_parts = np.split(dyn, starts[1:])
    if dyn.shape[1]:
        bad = np.logical_or.reduceat(~np.isfinite(dyn), starts, axis=0)  # [n_series, D]
        for i, k in zip(*np.nonzero(bad), strict=True):
            where = f"{_role_label(roles, roles.dynamic[k])} of series {names[i]!r}"
            dyn_parts[i] = dyn_parts[i].copy()
            dyn_parts[i][:, k] = fill_missing(dyn_parts[i][:, k], missing, where, grid.indexes[i])
    split = [_split_dynamic(d, roles) for d in dyn_parts]
    covariates = Covariates(
        past=tuple(p for p, _ in split),
        future=tuple(f for _, f in split),
        static=static,
        group=np.arange(len(ids), dtype=np.int64),
    )
    layout = FrameLayout(
        format="long",
        time_col=time_col,
        id_col=id_col,
        target_col=target,
        past_covariates=roles.past,
        future_covariates=roles.future,
        static_covariates=roles.static,
    )
    return Panel(
        values=tuple(parts),
        index=tuple(grid.indexes),
        names=names,
        freq=grid.freq,
        layout=layout,
        ids=ids,
        covariates=covariates,
    )


def id_columns(id_col: Any) -> tuple:
    """The columns that name the series: ``id_col``, or each of a tuple of them."""
    return id_col if isinstance(id_col, tuple) else (id_col,)


def series_keys(df: pd.DataFrame, id_col: Any) -> pd.Series | pd.MultiIndex:
    """Each row's series: the id column, or the rows of several as a MultiIndex (of tuples)."""
    if isinstance(id_col, tuple):
        return pd.MultiIndex.from_arrays([df[c] for c in id_col], names=list(id_col))
    return df[id_col]


def id_name(key: Any) -> str:
    """A series' name: its id as text; the values of several id columns joined by '|'."""
    return "|".join(str(k) for k in key) if isinstance(key, tuple) else str(key)


def _argsort_codes(codes: np.ndarray, n_series: int) -> np.ndarray:
    """Stable argsort of series codes; 16-bit keys let numpy use its O(n) radix sort."""
    return np.argsort(codes.astype(np.uint16) if n_series <= 1 << 16 else codes, kind="stable")


def _warn_unsorted(label: str) -> None:
    warnings.warn(
        f"rows were not sorted by {label}; sorted them. Sort the frame first to silence this.",
        UserWarning,
        stacklevel=4,
    )


def to_float(col: pd.Series, label: str, fix: str = _TARGET_FIX) -> np.ndarray:
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
        raise DataError(f"{label} has a non-numeric value {value!r}{hint}; {fix}.")
    return num.to_numpy(dtype=np.float64, na_value=np.nan)


def fill_missing(v: np.ndarray, missing: str, label: str, index: pd.Index) -> np.ndarray:
    """Apply the missing-value policy to one series ``[T]`` (NaN and +-inf count as missing).

    ``label`` names the series in messages, ``index`` gives its timestamps."""
    if missing == "keep":
        return v
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
        freq=off.freqstr,
        layout=FrameLayout(format="wide"),
    )
