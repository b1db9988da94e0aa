"""Reading and validating time-series frames into a `Panel`.

The model is channel-independent, so the canonical form is a list of univariate series: a
`Panel`. `to_panel` accepts the two layouts users bring from NeuralForecast/GluonTS workflows
(`trellis_ts.data.writing.to_frame` writes results back in the same layout, names and order):

* wide: one row per timestamp, one column per channel; time in a column or in the index;
* long: columns ``[unique_id, ds, y]``, one row per (series, timestamp).

Covariate columns (`trellis_ts.data.covariates`) are read beside the targets, through the same
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

from trellis_ts.data.covariates import ColumnRoles, Covariates, static_table
from trellis_ts.data.layout import FrameLayout
from trellis_ts.data.timegrid import as_int, fmt_time, parse_freq, parse_time, regularize
from trellis_ts.errors import DataError

__all__ = ["Panel", "panel_from_arrays", "to_panel"]

_LONG_COLUMNS = ("unique_id", "ds", "y")
_TIME_HINTS = ("date", "time", "timestamp", "datetime", "ds")
_MISSING_POLICIES = ("error", "interpolate", "ffill")
_SAMPLE = 50  # values inspected to guess what a text column holds (cheap on huge frames)
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
) -> Panel:
    """Validate a wide or long frame and convert it to a `Panel` (one univariate series each).

    Long layout when ``id_col`` is given or the frame has columns "unique_id", "ds", "y";
    otherwise wide. ``missing`` is "error", "interpolate" or "ffill" (for targets and
    time-varying covariates alike); ``fill_gaps=True`` reindexes irregular timestamps to
    ``freq`` (new rows are then handled by ``missing``). Covariate columns are inputs only: in a
    wide frame they are left out of the default targets (every numeric column).
    """
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame, got {type(df).__name__}; load CSV files with read_csv()."
        )
    if not isinstance(missing, str) or missing not in _MISSING_POLICIES:
        raise DataError(
            f"missing={missing!r} is not a policy; use 'error', 'interpolate' or 'ffill'."
        )
    if df.shape[0] == 0 or df.shape[1] == 0:
        raise DataError(f"the data frame is empty (shape {df.shape}); pass rows and value columns.")
    if df.columns.has_duplicates:
        dup = df.columns[df.columns.duplicated()][0]
        raise DataError(f"column {dup!r} appears more than once; give every column a unique name.")
    if freq is not None and not isinstance(freq, (int, np.integer)):
        parse_freq(freq, is_datetime=True)  # fail fast on a misspelt alias
    roles = ColumnRoles.of(past_covariates, future_covariates, static_covariates)
    if id_col is not None or set(_LONG_COLUMNS) <= set(df.columns):
        return _long_panel(df, time_col, id_col, target, roles, freq, missing, fill_gaps)
    return _wide_panel(df, time_col, target, roles, freq, missing, fill_gaps)


def _role_label(roles: ColumnRoles, name: Any) -> str:
    return f"{roles.role_of(name)} covariate {name!r}"


def _split_dynamic(dyn: np.ndarray, roles: ColumnRoles) -> tuple[np.ndarray, np.ndarray]:
    """``[T, P + F]`` → (past ``[T, P]``, future ``[T, F]``)."""
    return dyn[:, : len(roles.past)], dyn[:, len(roles.past) :]


def _wide_panel(df, time_col, target, roles, freq, missing, fill_gaps) -> Panel:
    raw, tcol = _locate_time(df, time_col)
    label = f"time column {tcol!r}" if tcol is not None else "the index"
    times = parse_time(raw, label)
    targets = _wide_targets(df, tcol, target, exclude=roles.columns)
    roles.check(df, time_col=tcol, id_col=None, targets=targets)
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
            f"{label} has duplicate timestamp {fmt_time(times, dup[0])}; keep one row per timestamp."
        )
    codes = np.zeros(len(t), dtype=np.int64)
    grid = regularize(times, codes, 1, freq, fill_gaps, lambda c: "")
    if grid.dest is not None:
        full = np.full((grid.counts[0], mat.shape[1]), np.nan, order="F")
        full[grid.dest] = mat
        mat = full
    idx = grid.indexes[0]
    filled = [_fill_missing(mat[:, j], missing, labels[j], idx) for j in range(len(columns))]
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
    return Panel(values=values, index=(idx,) * len(values), names=names, freq=grid.freq,
                 layout=layout, covariates=covariates)  # fmt: skip


def _long_panel(df, time_col, id_col, target, roles, freq, missing, fill_gaps) -> Panel:
    id_col = "unique_id" if id_col is None else id_col
    time_col = "ds" if time_col is None else time_col
    if isinstance(target, (list, tuple)):
        if len(target) != 1:
            raise DataError(
                f"the long layout forecasts one target column, got target={list(target)!r}; "
                "pass a single column name."
            )
        target = target[0]
    if target is None:
        if "y" not in df.columns:
            raise DataError(
                f"no target column 'y' in the long frame; pass target= naming one of {_cols(df)}."
            )
        target = "y"
    for role, col in (("id_col", id_col), ("time_col", time_col), ("target", target)):
        if col not in df.columns:
            raise DataError(
                f"{role}={col!r} is not a column; available columns: {_cols(df)} "
                "(call df.reset_index() first if it is the index)."
            )
    if len({id_col, time_col, target}) < 3:
        raise DataError(
            f"id_col={id_col!r}, time_col={time_col!r} and target={target!r} must be 3 different columns."
        )
    roles.check(df, time_col=time_col, id_col=id_col, targets=[target])
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
    times = parse_time(df[time_col], label)
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
        parts[i] = _fill_missing(parts[i], missing, f"series {names[i]!r}", grid.indexes[i])
    dyn_parts = np.split(dyn, starts[1:])
    if dyn.shape[1]:
        bad = np.logical_or.reduceat(~np.isfinite(dyn), starts, axis=0)  # [n_series, D]
        for i, k in zip(*np.nonzero(bad), strict=True):
            where = f"{_role_label(roles, roles.dynamic[k])} of series {names[i]!r}"
            dyn_parts[i] = dyn_parts[i].copy()
            dyn_parts[i][:, k] = _fill_missing(dyn_parts[i][:, k], missing, where, grid.indexes[i])
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
    return Panel(values=tuple(parts), index=tuple(grid.indexes), names=names, freq=grid.freq,
                 layout=layout, ids=ids, covariates=covariates)  # fmt: skip


def _argsort_codes(codes: np.ndarray, n_series: int) -> np.ndarray:
    """Stable argsort of series codes; 16-bit keys let numpy use its O(n) radix sort."""
    return np.argsort(codes.astype(np.uint16) if n_series <= 1 << 16 else codes, kind="stable")


def _cols(df: pd.DataFrame) -> list:
    return list(df.columns)


def _warn_unsorted(label: str) -> None:
    warnings.warn(
        f"rows were not sorted by {label}; sorted them. Sort the frame first to silence this.",
        UserWarning,
        stacklevel=4,
    )


def _text_sample(col: pd.Series | pd.Index) -> pd.Series | None:
    """First non-null values of an object/string column, or None for other dtypes."""
    if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
        return None
    sample = pd.Series(np.asarray(col[: _SAMPLE * 20], dtype=object)).dropna().iloc[:_SAMPLE]
    return sample if len(sample) else None


def _mostly_numeric(sample: pd.Series) -> bool:
    text = sample.astype(str).str.strip().str.replace(",", ".", regex=False)
    return bool(pd.to_numeric(text, errors="coerce").notna().mean() >= 0.5)


def _looks_like_time(col: pd.Series | pd.Index, name: Any) -> bool:
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return True
    sample = _text_sample(col)
    if sample is None or _mostly_numeric(sample):
        return False
    if str(name).strip().lower() in _TIME_HINTS:
        return True  # a text column named like time is time: parsing names the bad values
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(parsed.notna().mean() >= 0.5)


def _locate_time(df: pd.DataFrame, time_col: Any) -> tuple[Any, Any]:
    """Return (raw time values, time column name or None when time is the index)."""
    idx = df.index
    if time_col is not None:
        if time_col in df.columns:
            return df[time_col], time_col
        if idx.name is not None and idx.name == time_col:
            return idx, None
        raise DataError(f"time_col={time_col!r} is not a column; available columns: {_cols(df)}.")
    if isinstance(idx, pd.DatetimeIndex):
        return idx, None
    if isinstance(idx, pd.PeriodIndex):
        raise DataError(
            "the index is a PeriodIndex; convert it with df.index = df.index.to_timestamp()."
        )
    found = [c for c in df.columns if _looks_like_time(df[c], c)]
    if len(found) > 1:
        raise DataError(
            f"several columns look like timestamps ({found}); pass time_col= to pick one."
        )
    if found:
        return df[found[0]], found[0]
    if _looks_like_time(idx, idx.name) or (
        pd.api.types.is_integer_dtype(idx.dtype) and not isinstance(idx, pd.MultiIndex)
    ):
        return idx, None
    raise DataError(
        f"no time column found among {_cols(df)} and the index is not datetime or integer; "
        "pass time_col= naming the time column."
    )


def _wide_targets(df: pd.DataFrame, tcol: Any, target: Any, exclude: tuple = ()) -> list:
    """The target columns: ``target``, or every numeric column but the time and ``exclude``."""
    if target is None:
        out = []
        for c in df.columns:
            if c == tcol or c in exclude or pd.api.types.is_bool_dtype(df[c].dtype):
                continue
            if _is_saved_row_index(df[c], c):
                warnings.warn(
                    f"column {c!r} looks like a row index saved to CSV (0, 1, 2, ...); it is not "
                    "forecast. Pass target= to choose the value columns explicitly.",
                    UserWarning,
                    stacklevel=4,
                )
            elif pd.api.types.is_numeric_dtype(df[c].dtype):
                out.append(c)
            elif (sample := _text_sample(df[c])) is not None and _mostly_numeric(sample):
                out.append(c)  # numbers stored as text: keep it so conversion names the bad value
        if not out:
            raise DataError(
                f"no numeric column to forecast among {_cols(df)}; pass target= naming the value "
                "columns (and decimal=',' to read_csv if numbers use a decimal comma)."
            )
        return out
    targets = (
        [target] if isinstance(target, str) or not hasattr(target, "__iter__") else list(target)
    )
    if not targets:
        raise DataError("target=[] names no column; pass at least one value column.")
    for c in targets:
        if c not in df.columns:
            raise DataError(f"target column {c!r} not found; available columns: {_cols(df)}.")
        if c == tcol:
            raise DataError(f"column {c!r} is the time column; it cannot also be a target.")
    if len(set(targets)) < len(targets):
        raise DataError(f"target={targets!r} lists a column twice; list each column once.")
    return targets


def _is_saved_row_index(col: pd.Series, name: Any) -> bool:
    """pandas names a header-less first column "Unnamed: 0"; 0..n-1 in it is df.to_csv()'s index."""
    return (
        str(name).startswith("Unnamed:")
        and pd.api.types.is_integer_dtype(col.dtype)
        and bool((col.to_numpy() == np.arange(len(col))).all())
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
    return Panel(values=tuple(arrays), index=index, names=tuple(str(n) for n in names),
                 freq=off.freqstr, layout=FrameLayout(format="wide"))  # fmt: skip
