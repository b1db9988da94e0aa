"""Time values read right or refused: day/month order, two-digit years, formats, integer dates.

* `01/02/1949` is 1 February or 2 January: a first field above 12 settles day-first, a second
  field above 12 month-first; when no value settles it the reader asks for ``dayfirst`` or
  ``date_format`` instead of guessing.
* Dates without a four-digit year (`Jan-49`, `1-01`) are refused unless ``date_format`` says how
  to read them (pandas would put `49` in 2049).
* ``date_format`` is a strptime format (`%d.%m.%Y`), or `excel` (serial day numbers, the 1900
  date system), `unix` (epoch seconds) or `unix_ms` (epoch milliseconds) for integer columns.
* Week and quarter labels (`1991 W06`, an ISO week, tsibble's `yearweek`; `1998 Q1`, `1998Q1`,
  `1998-Q1`) are read as the Monday of the week and the first day of the quarter;
  `period_label_format` names their style (and `1994 Jan`'s, tsibble's `yearmonth`) so that
  `format_times` writes results back in it.
* `integer_dates` tells integer columns that look like dates (Excel serials, epoch seconds,
  `20240131`, years) so that they are never forecast as if they were values.
* Time zones: datetimes of a named zone (a frame's `Europe/Paris` column) keep their zone, and
  daily or longer steps count in its local days across DST changes. Text with one UTC offset
  for all values keeps that offset; text whose offsets differ (local time across a DST change:
  `...01:00:00+01:00`, `...03:00:00+02:00`) is read as instants and converted to UTC, so the
  forecast is written in UTC (`+00:00`). Both with or without ``date_format`` (`%z`).
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

from trellis_ts.errors import DataError

__all__ = [
    "DATE_FORMATS",
    "PERIOD_LABEL",
    "format_times",
    "integer_dates",
    "parse_time",
    "period_label_format",
]

# Integer encodings of dates: date_format value -> (what to say, pd.to_datetime arguments)
DATE_FORMATS = {
    "excel": ("Excel serial dates", {"unit": "D", "origin": "1899-12-30"}),
    "unix": ("epoch seconds", {"unit": "s"}),
    "unix_ms": ("epoch milliseconds", {"unit": "ms"}),
}
_NUMERIC_DATE = re.compile(r"^\s*(\d{1,2})([/.\-])(\d{1,2})\2(\d{1,4})(?=$|[\sT])")
_MONTH_NAME = re.compile(
    r"(?i)\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?=$|[\s\-/.,\d])"
)
_SHORT_DATE = re.compile(r"^\s*\d{1,2}[/.\-]\d{1,2}\s*$")  # 1-01, 12/49: no four-digit year
_SAMPLE = 200
# `1991 W06`, `1991-W06`, `1991W06` (ISO weeks); `1998 Q1`, `1998Q1`, `1998-Q1` (quarters).
PERIOD_LABEL = re.compile(r"(?i)^\s*(\d{4})(\s*|-)(W|Q)(\d{1,2})\s*$")
_YEAR_MONTH = re.compile(r"^\s*\d{4}([\s\-]?)[A-Z][a-z]{2}\s*$")  # 1994 Jan (tsibble yearmonth)


def parse_time(
    raw: pd.Series | pd.Index,
    label: str,
    *,
    dayfirst: bool | None = None,
    date_format: str | None = None,
) -> pd.DatetimeIndex | np.ndarray:
    """Time values as a DatetimeIndex (ns) or an int64 array; DataError naming a bad value."""
    values = raw if isinstance(raw, pd.Index) else pd.Index(raw)
    na = np.asarray(values.isna())
    if na.any():
        raise DataError(
            f"{label} has an empty value at row {int(np.argmax(na))}; remove or fill that row."
        )
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return pd.DatetimeIndex(values).as_unit("ns")
    if date_format in DATE_FORMATS:
        return _integer_dates(values, label, date_format)
    if date_format is not None:
        return _with_format(values, label, date_format)
    if pd.api.types.is_integer_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        return values.to_numpy(dtype=np.int64)
    if not (values.dtype == object or pd.api.types.is_string_dtype(values.dtype)):
        raise DataError(
            f"{label} holds {values.dtype} values like {values[:1].tolist()[0]!r}, not datetimes or "
            "integers; pass time_col= naming the time column."
        )
    text = values.astype(str)
    first = text[0].strip()
    if PERIOD_LABEL.match(first):
        return _period_labels(text, label)
    if _NUMERIC_DATE.match(first):
        return _day_month(text, label, dayfirst)
    _refuse_short_years(text, label)
    return _infer(values, label)


def _infer(values: pd.Index, label: str) -> pd.DatetimeIndex:
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pandas warns when it cannot infer one format
        for fmt in (None, "ISO8601"):  # ISO8601 accepts "2020-01-01" next to "2020-01-01 01:00"
            try:
                out = pd.to_datetime(values, errors="coerce", format=fmt)
            except (ValueError, TypeError, OverflowError):
                continue
            if not isinstance(out, pd.DatetimeIndex):
                continue  # mixed time-zone offsets give an object Index
            if not out.isna().any():
                return out.as_unit("ns")
            if best is None or out.isna().sum() < best.isna().sum():
                best = out
    if best is None or best.isna().any():
        mixed = _mixed_offsets(values)
        if mixed is not None:
            return mixed
    if best is None:
        raise DataError(
            f"{label} could not be parsed as timestamps (e.g. {values[0]!r}); use one format "
            "and one time zone for all values, or pass date_format= (e.g. '%Y-%m-%d %H:%M')."
        )
    bad = values[int(np.argmax(np.asarray(best.isna())))]
    raise DataError(
        f"{label} has a value that is not a timestamp: {bad!r}; fix or remove it "
        "(or pass time_col= if this is not the time column)."
    )


def _period_labels(text: pd.Index, label: str) -> pd.DatetimeIndex:
    """ISO weeks (`1991 W06`) as their Monday, quarters (`1998 Q1`) as their first day."""
    unique = pd.Series(pd.unique(np.asarray(text, dtype=object)))
    parts = unique.str.extract(PERIOD_LABEL)
    kind = parts[2].str.upper()
    first = kind.iloc[0]
    bad = parts[0].isna() | (kind != first)
    if bad.any():
        raise DataError(
            f"{label} mixes {'week' if first == 'W' else 'quarter'} labels such as "
            f"{unique.iloc[0].strip()!r} with {unique[bad].iloc[0]!r}; write every value one way."
        )
    year, number = parts[0].astype(int).to_numpy(), parts[3].astype(int).to_numpy()
    if first == "Q":
        wrong = (number < 1) | (number > 4)
        days = pd.to_datetime({"year": year, "month": 3 * number.clip(1, 4) - 2, "day": 1})
    else:  # ISO week 1 holds 4 January; its Monday starts week 1
        jan4 = pd.to_datetime({"year": year, "month": 1, "day": 4})
        days = jan4 - pd.to_timedelta(jan4.dt.weekday, "D") + pd.to_timedelta(7 * (number - 1), "D")
        wrong = (number < 1) | (days.dt.isocalendar().week.to_numpy() != number)
    if wrong.any():
        what = "a quarter 1 to 4" if first == "Q" else "an ISO week 1 to 52 (53 in long years)"
        raise DataError(f"{label} has {unique[wrong].iloc[0]!r}, not {what}; fix the value.")
    lookup = pd.Series(days.to_numpy(), index=unique.to_numpy())
    return pd.DatetimeIndex(lookup[np.asarray(text, dtype=object)].to_numpy()).as_unit("ns")


def period_label_format(raw: pd.Series | pd.Index) -> str | None:
    """The style of week, quarter or year-month labels (`%G W%V`, `%Y Q%q`, `%Y %b`) for
    `format_times`, from the first value; None for other time values."""
    if not (raw.dtype == object or pd.api.types.is_string_dtype(raw.dtype)) or not len(raw):
        return None
    first = str(raw[0] if isinstance(raw, pd.Index) else raw.iloc[0]).strip()
    match = PERIOD_LABEL.match(first)
    if match:
        return f"{'%G' if match.group(3).upper() == 'W' else '%Y'}{match.group(2)}" + (
            f"{match.group(3)}%V" if match.group(3).upper() == "W" else f"{match.group(3)}%q"
        )
    match = _YEAR_MONTH.match(first)
    return f"%Y{match.group(1)}%b" if match else None


def format_times(times: pd.Index, fmt: str | None) -> pd.Index:
    """Timestamps as labels in `period_label_format`'s style (as they are for None)."""
    if fmt is None or not isinstance(times, pd.DatetimeIndex):
        return times
    if "%q" in fmt:  # quarters: only Period knows %q
        return pd.Index(times.to_period("Q").strftime(fmt), name=times.name)
    return pd.Index(times.strftime(fmt), name=times.name)


def _mixed_offsets(values: pd.Index, date_format: str | None = None) -> pd.DatetimeIndex | None:
    """Text with differing UTC offsets (local time across a DST change) as UTC instants; None
    when the values do not all parse so (then the caller says what is wrong)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in [date_format] if date_format else [None, "ISO8601"]:
            try:
                out = pd.to_datetime(values, errors="coerce", format=fmt, utc=True)
            except (ValueError, TypeError, OverflowError):
                continue
            if isinstance(out, pd.DatetimeIndex) and not out.isna().any():
                return out.as_unit("ns")
    return None


def _day_month(text: pd.Index, label: str, dayfirst: bool | None) -> pd.DatetimeIndex:
    """Dates written `a/b/year` (or with '.' or '-'): decide which of a and b is the day."""
    unique = pd.Series(pd.unique(np.asarray(text, dtype=object))).str.strip()
    parts = unique.str.extract(_NUMERIC_DATE)
    ok = parts[0].notna()
    if not ok.all():
        bad = unique[~ok].iloc[0]
        raise DataError(
            f"{label} mixes date formats ({text[0].strip()!r} and {bad!r}); write all dates one "
            "way, or pass date_format= to say how to read them."
        )
    year = parts[3]
    if (year.str.len() < 4).any():
        example = unique[year.str.len() < 4].iloc[0]
        sep = parts[1].iloc[0]
        raise DataError(
            f"{label} has dates without a four-digit year ({example!r}): the century is a guess; "
            f"pass date_format= to say how to read them (e.g. '%d{sep}%m{sep}%y')."
        )
    a, b = parts[0].astype(int), parts[2].astype(int)
    example = unique.iloc[0]
    if dayfirst is None:
        if a.max() > 12 and b.max() > 12:
            raise DataError(
                f"{label} has dates such as {unique[a > 12].iloc[0]!r} and "
                f"{unique[b > 12].iloc[0]!r} that neither day-first nor month-first reads; write "
                "all dates one way, or pass date_format=."
            )
        if a.max() <= 12 and b.max() <= 12:
            sep = parts[1].iloc[0]
            raise DataError(
                f"{label} has dates like {example!r} that read as day/month or as month/day (no "
                f"day above 12 settles it); pass dayfirst=True for day/month, dayfirst=False for "
                f"month/day, or date_format= (e.g. '%d{sep}%m{sep}%Y')."
            )
        dayfirst = bool(a.max() > 12)
    elif dayfirst and b.max() > 12:
        raise DataError(
            f"{label} has {unique[b > 12].iloc[0]!r}, whose month would be above 12 with "
            "dayfirst=True; pass dayfirst=False (month/day) or date_format=."
        )
    elif not dayfirst and a.max() > 12:
        raise DataError(
            f"{label} has {unique[a > 12].iloc[0]!r}, whose month would be above 12 with "
            "dayfirst=False; pass dayfirst=True (day/month) or date_format=."
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for fmt in (None, "mixed"):
            out = pd.to_datetime(text, errors="coerce", dayfirst=dayfirst, format=fmt)
            if isinstance(out, pd.DatetimeIndex) and not out.isna().any():
                return out.as_unit("ns")
    bad = text[int(np.argmax(np.asarray(out.isna())))]
    raise DataError(f"{label} has a value that is not a timestamp: {bad!r}; fix or remove it.")


def _refuse_short_years(text: pd.Index, label: str) -> None:
    """`Jan-49`, `1-01`: dates with no four-digit year, which pandas would place by guesswork."""
    sample = [v.strip() for v in text[:_SAMPLE]]
    short = [
        v
        for v in sample
        if not re.search(r"\d{4}", v)
        and (_SHORT_DATE.match(v) or (_MONTH_NAME.search(v) and re.search(r"\d", v)))
    ]
    if len(short) * 2 < len(sample) or not short:
        return
    example = short[0]
    hint = ""
    match = re.fullmatch(r"(?i)([a-z]{3})([\-/ .])(\d{2})", example)
    if match:
        hint = f" (e.g. '%b{match.group(2)}%y' for {example!r})"
    raise DataError(
        f"{label} has dates without a four-digit year ({example!r}): pandas would read the "
        f"century by guesswork; pass date_format= to say how to read them{hint}, or write "
        "four-digit years."
    )


def _with_format(values: pd.Index, label: str, date_format: str) -> pd.DatetimeIndex:
    text = pd.Index(values.astype(str)).str.strip()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = pd.to_datetime(text, format=date_format, errors="coerce")
    except (ValueError, TypeError) as exc:
        mixed = _mixed_offsets(text, date_format) if "Tz-aware" in str(exc) else None
        if mixed is None:
            raise DataError(f"date_format={date_format!r} is not a valid format ({exc}).") from None
        out = mixed
    if not isinstance(out, pd.DatetimeIndex):  # differing offsets: an object Index
        out = _mixed_offsets(text, date_format)
        if out is None:
            raise DataError(
                f"{label} could not be read with date_format={date_format!r}; check the format "
                "(strptime codes such as %Y-%m-%d %H:%M:%S%z)."
            )
    if out.isna().any():
        bad = values[int(np.argmax(np.asarray(out.isna())))]
        raise DataError(
            f"{label} has {bad!r}, which does not match date_format={date_format!r}; fix the "
            "value or the format (strptime codes such as %d.%m.%Y, or excel, unix, unix_ms)."
        )
    if "%y" in date_format and out.max() > pd.Timestamp.now(tz=out.tz):
        warnings.warn(
            f"{label}: date_format={date_format!r} reads two-digit years as 1969-2068, so "
            f"{values[int(np.argmax(np.asarray(out)))]!r} is {out.max().date()}, in the future; "
            "if these dates are older, write four-digit years.",
            UserWarning,
            stacklevel=4,
        )
    return pd.DatetimeIndex(out).as_unit("ns")


def _integer_dates(values: pd.Index, label: str, date_format: str) -> pd.DatetimeIndex:
    what, kwargs = DATE_FORMATS[date_format]
    numbers = pd.to_numeric(pd.Series(values), errors="coerce")
    if numbers.isna().any():
        bad = values[int(np.argmax(numbers.isna().to_numpy()))]
        raise DataError(
            f"{label} has {bad!r}, not a number; date_format={date_format!r} reads {what}."
        )
    try:
        out = pd.to_datetime(numbers.to_numpy(), **kwargs)
    except (ValueError, OverflowError, pd.errors.OutOfBoundsDatetime):
        raise DataError(
            f"{label} holds numbers outside the range of {what}; check date_format=."
        ) from None
    return pd.DatetimeIndex(out).as_unit("ns")


def integer_dates(col: pd.Series) -> tuple[str, str] | None:
    """(kind, description) when an integer column looks like dates, else None.

    Kinds: "excel", "unix", "unix_ms" (a `date_format` reads them), "yyyymmdd" (format
    '%Y%m%d') and "year" (integer years: good integer time as they are). The values must be
    integers, strictly increasing and spaced like a calendar.
    """
    if not pd.api.types.is_numeric_dtype(col.dtype) or pd.api.types.is_bool_dtype(col.dtype):
        return None
    v = col.to_numpy(dtype=np.float64, na_value=np.nan)
    if len(v) < 3 or not np.isfinite(v).all() or (v != np.round(v)).any():
        return None
    d = np.diff(v)
    if (d <= 0).any():
        return None
    lo, hi = v[0], v[-1]
    first = f"{int(lo)}"
    if lo >= 1000 and hi <= 2200 and (d == d[0]).all():
        return "year", f"years ({first}, ...)"
    if lo >= 10_000_101 and hi <= 22_001_231:
        parsed = pd.to_datetime(
            pd.Series(v.astype(np.int64).astype(str)), format="%Y%m%d", errors="coerce"
        )
        if parsed.notna().all():
            return "yyyymmdd", f"dates written as numbers ({first} = {parsed.iloc[0].date()})"
    calendar = (d == d[0]).all() and d[0] in (1, 7) or ((d >= 28) & (d <= 31)).all()
    calendar = calendar or ((d >= 90) & (d <= 92)).all() or ((d >= 365) & (d <= 366)).all()
    if lo >= 10_000 and hi <= 80_000 and calendar:
        day = (pd.Timestamp("1899-12-30") + pd.Timedelta(days=int(lo))).date()
        return "excel", f"Excel serial dates ({first} = {day})"
    if lo >= 3e8 and hi <= 4.2e9 and not (v % 60).any():
        return "unix", f"epoch seconds ({first} = {pd.Timestamp(int(lo), unit='s')})"
    if lo >= 3e11 and hi <= 4.2e12 and not (v % 60_000).any():
        return "unix_ms", f"epoch milliseconds ({first} = {pd.Timestamp(int(lo), unit='ms')})"
    return None
