"""Which column is what: time, series id, targets, and the columns left unused.

`assign_columns` settles the layout and the role of every column of a frame, from the options
given and from what the columns hold:

* long when ``id_col`` is given, when there is a ``unique_id`` column, or when the time column
  repeats its timestamps and text columns name the series: one, or several that together key
  them (a tourism panel's `Region,State,Purpose`: ``id_col`` is then that tuple, see `_key_of`);
  the time column is ``ds`` or the one that looks like time, the target ``y`` or the only
  numeric column;
* wide otherwise: one time column (or the index), every numeric column a target by default.

Anything ambiguous is one error listing the columns and the options that settle it; every
column left unused is named in one warning line; integer columns that look like dates (Excel
serials, epoch seconds) are never taken as values to forecast. A row-number column written by R
(`rownames`) or a spreadsheet (an empty header, `Unnamed: 0`) is an index, never a series: it is
left out with a note. Covariate columns
(`trellis_ts.data.features.covariates`) are inputs the caller has placed already: they take no other
role here and are not "unused".
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.io.dates import DATE_FORMATS, PERIOD_LABEL, integer_dates
from trellis_ts.errors import DataError

__all__ = ["Columns", "assign_columns"]

_TIME_NAMES = ("date", "time", "timestamp", "datetime", "ds")  # text named so is time
_TIME_WORDS = ("month", "year", "week", "day", "period", "quarter", "hour")
_DATE_SHAPE = re.compile(
    r"(?i)^\s*(\d{1,4}[/.\-]\d{1,2}([/.\-]\d{1,4})?|\d{1,2}[\s\-/.]?[a-z]{3,9}[\s\-/.,]+\d{2,4}"
    r"|[a-z]{3,9}[\s\-/.,]+\d{1,4}([\s\-/.,]+\d{2,4})?)([\sT].*)?$"
)
_READ_AS = {**{k: k for k in DATE_FORMATS}, "yyyymmdd": "%Y%m%d"}  # date_format for each kind
_SAMPLE = 50  # values inspected to guess what a text column holds (cheap on huge frames)


@dataclass
class Columns:
    """The roles of a frame's columns. ``time_col`` None: time is the index. ``id_col`` is a
    column, or a tuple of columns that together name the series."""

    layout: str
    time_raw: Any
    time_col: Any
    id_col: Any = None
    targets: list = field(default_factory=list)
    unused: dict = field(default_factory=dict)  # column -> why it is not used
    date_format: str | None = None


def assign_columns(
    df: pd.DataFrame,
    *,
    time_col: Any = None,
    id_col: Any = None,
    target: Any = None,
    date_format: str | None = None,
    covariates: tuple = (),
) -> Columns:
    """Settle the layout and the role of every column but the ``covariates`` (see the module
    docstring)."""
    id_col = _id_option(id_col)
    given = {"target": target, "time_col": time_col, "id_col": id_col}  # for the advice
    named = {c for c in (time_col, *as_list(id_col or [])) if c is not None}
    named |= set(as_list(target or []))
    row_numbers = [
        c
        for c in df.columns
        if c not in named and c not in set(covariates) and _is_row_numbers(df[c], c)
    ]
    hidden = tuple(covariates) + tuple(row_numbers)
    df = _Visible(df, hidden) if hidden else df
    for role, col in (("id_col", id_col), ("time_col", time_col)):
        for part in col if isinstance(col, tuple) else (col,):
            if (
                part is not None
                and part not in df.columns
                and not (role == "time_col" and df.index.name is not None and df.index.name == part)
            ):
                raise DataError(
                    f"{role}={part!r} is not a column; available columns: {list(df.columns)} "
                    "(call df.reset_index() first if it is the index)."
                )
    if id_col is None and "unique_id" in df.columns:
        id_col = "unique_id"
    if id_col is None and time_col is None and "ds" in df.columns:
        time_col = "ds"
    if id_col is None:
        id_col = _detect_id(df, time_col, target, date_format)
    if id_col is not None:
        cols = _long(df, time_col, id_col, target, date_format)
    else:
        cols = _wide(df, time_col, target, date_format)
    _warn_unused(cols, given)
    if row_numbers:
        listed = ("column " if len(row_numbers) == 1 else "columns ") + ", ".join(
            repr(c) for c in row_numbers
        )
        warnings.warn(
            f"{listed} holds the row numbers of an R or spreadsheet export (1, 2, 3, ... "
            "or 0, 1, 2, ...), an index and not a series; it is left out.",
            UserWarning,
            stacklevel=3,
        )
    return cols


# ------------------------------------------------------------------------------ long


class _Visible:
    """A frame seen without some of its columns (no copy): what the rules below read."""

    def __init__(self, df: pd.DataFrame, hidden: tuple) -> None:
        self._df = df
        self.columns = pd.Index([c for c in df.columns if c not in set(hidden)])
        self.index = df.index

    def __getitem__(self, column):
        return self._df[column]


def _detect_id(df, time_col, target, date_format) -> Any:
    """The id column of a long frame given without options, or None for a wide frame."""
    times = (
        [time_col] if time_col is not None else [c for c in df.columns if looks_like_time(df[c], c)]
    )
    if len(times) != 1 or times[0] not in df.columns or not df[times[0]].duplicated().any():
        return None
    ids = [c for c in df.columns if c != times[0] and _id_like(df[c])]
    if len(ids) == 1:
        return ids[0]
    key = _key_of(df, times[0], ids) if len(ids) > 1 else None
    if key is not None:
        return key[0] if len(key) == 1 else key
    if len(ids) > 1:
        numeric = [
            c
            for c in df.columns
            if c not in ids and c != times[0] and pd.api.types.is_numeric_dtype(df[c].dtype)
        ]
        target_hint = (
            ""
            if target is not None or len(numeric) < 2
            else (f" and target= naming the value column (one of {numeric})")
        )
        raise DataError(
            f"time column {times[0]!r} repeats its timestamps, as in a long file with several "
            f"series, and several columns could name the series ({ids}) but together they "
            f"still repeat a timestamp; pass id_col= naming the column, or the list of columns, "
            f"that name the series{target_hint} (or time_col= if {times[0]!r} is not the time)."
        )
    return None


def _key_of(df, time_col, candidates: list) -> tuple | None:
    """The text columns that together name the series of a long frame, or None.

    Together the ``candidates`` must give each (series, time) pair one row. A candidate that
    varies within the series the others name (a weekday label) is not part of the key; one that
    is constant within them (State beside Region) is kept, as tsibble keys keep it.
    """
    codes = {c: pd.factorize(df[c], use_na_sentinel=False)[0] for c in candidates}
    time = pd.factorize(df[time_col], use_na_sentinel=False)[0]

    def groups(cols: list) -> np.ndarray:
        return (
            pd.DataFrame({c: codes[c] for c in cols}).groupby(cols, sort=False).ngroup().to_numpy()
        )

    def unique_times(cols: list) -> bool:
        return not pd.DataFrame({"g": groups(cols), "t": time}).duplicated().any()

    key = list(candidates)
    if not unique_times(key):
        return None
    for c in candidates:
        rest = [k for k in key if k != c]
        if not rest or not unique_times(rest):
            continue  # c is needed to tell the series apart
        within = pd.DataFrame({"g": groups(rest), "c": codes[c]}).groupby("g")["c"].nunique()
        if (within > 1).any():
            key = rest  # c varies within a series: a label of the rows, not of the series
    return tuple(key)


def _id_option(id_col: Any) -> Any:
    """``id_col`` as given: a column, or a tuple of several (a one-column list is that column)."""
    if isinstance(id_col, (list, tuple)):
        if not id_col:
            raise DataError("id_col=[] names no column; pass the series id column(s).")
        if len(set(id_col)) < len(id_col):
            raise DataError(f"id_col={list(id_col)!r} lists a column twice; list each once.")
        return id_col[0] if len(id_col) == 1 else tuple(id_col)
    return id_col


def _id_like(col: pd.Series) -> bool:
    sample = text_sample(col)
    if sample is None or mostly_numeric(sample):
        return False
    n_unique = col.nunique(dropna=True)
    return 1 < n_unique < len(col)


def _long(df, time_col, id_col, target, date_format) -> Columns:
    if time_col is not None and time_col not in df.columns:
        raise DataError(
            f"time_col={time_col!r} is not a column; available columns: {list(df.columns)} "
            "(call df.reset_index() first if it is the index)."
        )
    keys = id_col if isinstance(id_col, tuple) else (id_col,)
    if time_col is None and "ds" in df.columns and "ds" not in keys:
        time_col = "ds"  # NeuralForecast's name
    if time_col is None:
        found = [c for c in df.columns if c not in keys and looks_like_time(df[c], c)]
        if len(found) != 1:
            what = (
                "no column looks like time"
                if not found
                else f"several columns look like time ({found})"
            )
            raise DataError(
                f"the long frame (series in {id_col!r}) needs one time column, but {what}; "
                f"pass time_col= naming it (columns: {list(df.columns)})."
            )
        time_col = found[0]
    if isinstance(target, (list, tuple)):
        if len(target) != 1:
            raise DataError(
                f"the long layout forecasts one target column, got target={list(target)!r}; "
                "pass a single column name."
            )
        target = target[0]
    rest = [c for c in df.columns if c not in (*keys, time_col)]
    if target is None:
        if "y" in df.columns and "y" not in (*keys, time_col):
            target = "y"
        else:
            numeric = [c for c in rest if _numeric_like(df[c])]
            if len(numeric) != 1:
                what = (
                    "no numeric column" if not numeric else f"several numeric columns ({numeric})"
                )
                raise DataError(
                    f"the long frame (series in {id_col!r}, time in {time_col!r}) has {what} to "
                    f"forecast; pass target= naming one of {rest}."
                )
            target = numeric[0]
    if target not in df.columns:
        raise DataError(
            f"target={target!r} is not a column; available columns: {list(df.columns)}."
        )
    if len({*keys, time_col, target}) < len(keys) + 2:
        raise DataError(
            f"id_col={id_col!r}, time_col={time_col!r} and target={target!r} must be different "
            "columns."
        )
    unused = {c: _why_unused(df[c], c, "target") for c in rest if c != target}
    return Columns("long", df[time_col], time_col, id_col, [target], unused, date_format)


# ------------------------------------------------------------------------------ wide


def _wide(df, time_col, target, date_format) -> Columns:
    raw, tcol, date_format = _locate_time(df, time_col, target, date_format)
    unused: dict = {}
    if target is None:
        targets = []
        for c in df.columns:
            if c == tcol:
                continue
            if not _numeric_like(df[c]):
                unused[c] = _why_unused(df[c], c, "target")
                continue
            dates = integer_dates(df[c])
            if dates is not None and dates[0] != "year":
                if tcol is None:  # the dates are likely the time: never forecast them
                    raise DataError(_integer_dates_message(c, dates))
                unused[c] = f"integers that look like {dates[1]}"
            elif dates is not None and _named_like_time(c):
                unused[c] = "a second time column"
            else:
                targets.append(c)
        if not targets:
            raise DataError(
                f"no numeric column to forecast among {list(df.columns)}; pass target= naming the "
                "value columns (and decimal=',' to read_csv if numbers use a decimal comma)."
            )
    else:
        targets = (
            [target] if isinstance(target, str) or not hasattr(target, "__iter__") else list(target)
        )
        if not targets:
            raise DataError("target=[] names no column; pass at least one value column.")
        for c in targets:
            if c not in df.columns:
                raise DataError(
                    f"target column {c!r} not found; available columns: {list(df.columns)}."
                )
            if c == tcol:
                raise DataError(f"column {c!r} is the time column; it cannot also be a target.")
        if len(set(targets)) < len(targets):
            raise DataError(f"target={targets!r} lists a column twice; list each column once.")
        unused = {
            c: _why_unused(df[c], c, "target") for c in df.columns if c != tcol and c not in targets
        }
    return Columns("wide", raw, tcol, None, targets, unused, date_format)


def _locate_time(df: pd.DataFrame, time_col: Any, target: Any, date_format):
    """(raw time values, time column name or None for the index, date_format to use)."""
    idx = df.index
    if time_col is not None:
        if time_col in df.columns:
            col = df[time_col]
            dates = integer_dates(col) if date_format is None else None
            if dates is not None and dates[0] != "year":
                warnings.warn(
                    f"time column {time_col!r} holds integers that look like {dates[1]}; they are "
                    f"read as integer time steps (pass date_format={_READ_AS[dates[0]]!r} to read "
                    "them as dates).",
                    UserWarning,
                    stacklevel=5,
                )
            return col, time_col, date_format
        return idx, None, date_format  # assign_columns checked that the index has this name
    if isinstance(idx, pd.DatetimeIndex):
        return idx, None, date_format
    if isinstance(idx, pd.PeriodIndex):
        raise DataError(
            "the index is a PeriodIndex; convert it with df.index = df.index.to_timestamp()."
        )
    found = [c for c in df.columns if looks_like_time(df[c], c)]
    if len(found) > 1:
        raise DataError(
            f"several columns look like timestamps ({found}); pass time_col= to pick one."
        )
    if found:
        return df[found[0]], found[0], date_format
    years = [
        c
        for c in df.columns
        if _named_like_time(c) and (d := integer_dates(df[c])) is not None and d[0] == "year"
    ]
    if len(years) == 1 and (target is None or years[0] not in as_list(target)):
        return df[years[0]], years[0], date_format  # integer years: integer time steps
    if looks_like_time(idx, idx.name) or (
        pd.api.types.is_integer_dtype(idx.dtype) and not isinstance(idx, pd.MultiIndex)
    ):
        return idx, None, date_format
    raise DataError(
        f"no time column found among {list(df.columns)} and the index is not datetime or integer; "
        "pass time_col= naming the time column."
    )


def _integer_dates_message(col, dates: tuple[str, str]) -> str:
    kind, what = dates
    return (
        f"column {col!r} holds integers that look like {what}, not values to forecast; pass "
        f"time_col={col!r} date_format={_READ_AS[kind]!r} to read them as dates, time_col={col!r} "
        "alone to use them as integer time steps, or target= naming the value columns."
    )


# ------------------------------------------------------------------------------ what columns hold


def text_sample(col: pd.Series | pd.Index) -> pd.Series | None:
    """First non-null values of an object/string column, or None for other dtypes."""
    if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
        return None
    sample = pd.Series(np.asarray(col[: _SAMPLE * 20], dtype=object)).dropna().iloc[:_SAMPLE]
    return sample if len(sample) else None


def mostly_numeric(sample: pd.Series) -> bool:
    text = sample.astype(str).str.strip().str.replace(",", ".", regex=False)
    return bool(pd.to_numeric(text, errors="coerce").notna().mean() >= 0.5)


def _numeric_like(col: pd.Series) -> bool:
    """Numbers, or numbers stored as text (kept so that conversion names the bad value)."""
    if pd.api.types.is_bool_dtype(col.dtype):
        return False
    if pd.api.types.is_numeric_dtype(col.dtype):
        return True
    sample = text_sample(col)
    return sample is not None and mostly_numeric(sample)


def _named_like_time(name: Any) -> bool:
    low = str(name).strip().lower()
    return low in _TIME_NAMES or low in _TIME_WORDS or "date" in low or "time" in low


def looks_like_time(col: pd.Series | pd.Index, name: Any) -> bool:
    """Datetimes, or text whose values look like dates (a column named like time, or dates)."""
    if pd.api.types.is_datetime64_any_dtype(col.dtype):
        return True
    sample = text_sample(col)
    if sample is None or mostly_numeric(sample):
        return False
    if str(name).strip().lower() in _TIME_NAMES:
        return True  # a text column named like time is time: parsing names the bad values
    text = sample.astype(str)
    if not text.str.contains(r"\d").mean() >= 0.5:
        return False  # weekday names, labels: no digits, no dates
    if text.str.match(_DATE_SHAPE).mean() >= 0.5 or text.str.match(PERIOD_LABEL).mean() >= 0.5:
        return True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    except (ValueError, TypeError, OverflowError):
        return False
    return bool(parsed.notna().mean() >= 0.5)


# Names row numbers get: R's `rownames` (Rdatasets, as.data.frame), an empty header (R's
# write.csv, spreadsheets) that pandas reads as "Unnamed: 0", readr's "...1".
_ROW_NUMBER_NAME = re.compile(r"(?i)^\s*(rownames|unnamed: \d+|\.\.\.\d+)?\s*$")


def _is_row_numbers(col: pd.Series, name: Any) -> bool:
    """A column named like saved row numbers that holds 0..n-1 or 1..n, strictly by 1."""
    if not isinstance(name, str) or not _ROW_NUMBER_NAME.match(name):
        return False
    if not pd.api.types.is_integer_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return False
    v = col.to_numpy()
    return len(v) > 0 and v[0] in (0, 1) and bool((np.diff(v) == 1).all())


def _why_unused(col: pd.Series, name: Any, option: str) -> str:
    if pd.api.types.is_bool_dtype(col.dtype):
        return "true/false"
    if looks_like_time(col, name):
        return "a second time column"
    if _numeric_like(col):
        dates = integer_dates(col) if pd.api.types.is_numeric_dtype(col.dtype) else None
        if dates is not None and dates[0] != "year":
            return f"integers that look like {dates[1]}"
        return f"numeric, not in {option}"
    return "text"


def _warn_unused(cols: Columns, given: dict) -> None:
    """One warning naming the unused columns, with advice on the options not given yet: which
    ones settle the choice, or how to use a column once every option was given."""
    unused = cols.unused
    if not unused:
        return
    listed = ", ".join(f"{c!r} ({why})" for c, why in unused.items())
    why = set(unused.values())
    options = [
        f"{name}="
        for name, wanted in (
            ("target", True),
            ("time_col", "a second time column" in why),
            ("id_col", cols.layout == "long" and "text" in why),
        )
        if wanted and given[name] is None
    ]
    if options:
        advice = f"pass {' and '.join(options)} to choose the columns explicitly"
    elif cols.layout == "wide":
        advice = (
            "to use one, add it to target= to forecast it, or pass it as a covariate "
            "(past_covariates=, ...) to use it as an input"
        )
    else:
        advice = "to use one as an input, pass it as a covariate (past_covariates=, ...)"
    warnings.warn(f"columns not used: {listed}; {advice}.", UserWarning, stacklevel=4)


def as_list(target: Any) -> list:
    """A column name or a list of them, as a list (names may be any hashable, e.g. 0)."""
    return [target] if isinstance(target, str) or not hasattr(target, "__iter__") else list(target)
