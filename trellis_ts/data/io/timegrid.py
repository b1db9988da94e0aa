"""Frequencies: parsing them and putting series on a regular time grid (dates.py reads times).

Times are a DatetimeIndex (ns, maybe tz-aware) or an int64 array (integer time). Grid checks run
on int64 (ns or steps) so a 4M-row long frame needs no per-row Python work.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pandas.tseries.frequencies import to_offset

from trellis_ts.errors import DataError

__all__ = ["Grid", "as_int", "fmt_time", "future_index", "parse_freq", "regularize"]


def parse_freq(freq: Any, *, is_datetime: bool) -> pd.DateOffset | int:
    """A pandas offset for datetime time, a positive int step for integer time."""
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, bool):
        if is_datetime:
            raise DataError(
                f"freq={freq!r} is an integer step but the time values are datetimes; "
                "pass an alias such as 'h' or 'D'."
            )
        if freq <= 0:
            raise DataError(f"freq={freq} is not a positive integer step; pass e.g. freq=1.")
        return int(freq)
    if not is_datetime:
        raise DataError(f"freq={freq!r} does not fit integer time steps; pass an integer, e.g. 1.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # old spellings like "H" still work
            return to_offset(freq)
    except (ValueError, TypeError):
        raise DataError(
            f"freq={freq!r} is not a pandas frequency alias; use one like 'h', 'D', '15min' or 'W-SUN'."
        ) from None


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
    last = pd.Timestamp(last)
    if last.tz is not None and _days(off):  # local days of the zone, across DST changes
        local = pd.date_range(start=last.tz_localize(None) + off, periods=horizon, freq=off)
        return local.tz_localize(last.tz, ambiguous="NaT", nonexistent="shift_forward")
    return pd.date_range(start=last + off, periods=horizon, freq=off)


_DAY = 86_400 * 10**9


def _days(step: Any) -> bool:
    """A fixed step of whole days: counted in local days when the times have a zone."""
    return isinstance(step, pd.offsets.Tick) and step.nanos % _DAY == 0


def as_int(times: pd.DatetimeIndex | np.ndarray) -> np.ndarray:
    return times.asi8 if isinstance(times, pd.DatetimeIndex) else times


def fmt_time(times: pd.DatetimeIndex | np.ndarray, j: int) -> str:
    return str(times[int(j)])


@dataclass(frozen=True)
class Grid:
    freq: str | int
    dest: np.ndarray | None  # row -> position in the reindexed concatenation; None: no gaps
    counts: np.ndarray  # int64 [n_series], lengths after reindexing
    indexes: list[pd.Index]


def regularize(
    times: pd.DatetimeIndex | np.ndarray,
    codes: np.ndarray,
    n_series: int,
    freq: Any,
    fill_gaps: bool,
    where: Callable[[int], str],
) -> Grid:
    """Put each series on a regular grid. Rows must be sorted by (code, time) without duplicates.

    ``codes`` int64 ``[n]`` gives each row's series; ``where(code)`` words a series in messages.
    """
    is_dt = isinstance(times, pd.DatetimeIndex)
    t = as_int(times)
    counts = np.bincount(codes, minlength=n_series).astype(np.int64)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    if freq is not None:
        step = parse_freq(freq, is_datetime=is_dt)
    else:
        step = _infer_step(times, t, codes, starts, counts)
    tick = step if not is_dt else (step.nanos if isinstance(step, pd.offsets.Tick) else None)
    alias = step.freqstr if is_dt else step
    wall = is_dt and times.tz is not None and _days(step)
    if wall:  # daily steps in a zone: local days (23 or 25 hours across a DST change)
        t = times.tz_localize(None).asi8
    if tick is not None:  # fixed step: pure integer arithmetic
        rel = t - t[starts][codes]
        off_grid = np.flatnonzero(rel % tick)
        pos = rel // tick
    else:  # calendar offsets (month ends, business days): one date_range per series
        pos = np.empty(len(t), dtype=np.int64)
        for lo, n in zip(starts, counts, strict=True):
            grid = pd.date_range(times[lo], times[lo + n - 1], freq=step)
            pos[lo : lo + n] = grid.get_indexer(times[lo : lo + n])
        off_grid = np.flatnonzero(pos < 0)
    if off_grid.size:
        j, c = off_grid[0], codes[off_grid[0]]
        raise DataError(
            f"timestamp {fmt_time(times, j)}{where(c)} is not on the {alias!r} grid starting at "
            f"{fmt_time(times, starts[c])}; pass freq= matching the spacing of the data."
        )
    full = pos[starts + counts - 1] + 1
    if (full == counts).all():
        return Grid(
            alias, None, counts, [_cut(times, lo, n) for lo, n in zip(starts, counts, strict=True)]
        )
    if not fill_gaps:
        j = np.flatnonzero((codes[1:] == codes[:-1]) & (np.diff(pos) > 1))[0]
        raise DataError(
            f"missing timestamp {times[j] + step} after {fmt_time(times, j)}{where(codes[j])}; "
            f"pass fill_gaps=True with missing='interpolate' (or missing='ffill') to reindex to "
            f"{alias!r}."
        )
    total = int(full.sum())
    if total > 10 * len(t) + 100_000:  # a wrong freq would otherwise allocate a huge frame
        raise DataError(
            f"reindexing to freq {alias!r} would create {total} rows from {len(t)}; check freq=."
        )
    new_starts = np.concatenate([[0], np.cumsum(full)[:-1]])
    if tick is not None:
        new_codes = np.repeat(np.arange(n_series), full)
        new_t = t[starts][new_codes] + (np.arange(total) - new_starts[new_codes]) * tick
        if is_dt:
            new_t = pd.DatetimeIndex(new_t.view("M8[ns]"))
            if wall:
                new_t = new_t.tz_localize(times.tz, ambiguous="NaT", nonexistent="shift_forward")
            elif times.tz:
                new_t = new_t.tz_localize("UTC").tz_convert(times.tz)
        indexes = [_cut(new_t, lo, n) for lo, n in zip(new_starts, full, strict=True)]
    else:
        indexes = [
            pd.date_range(times[lo], periods=n, freq=step)
            for lo, n in zip(starts, full, strict=True)
        ]
    return Grid(alias, new_starts[codes] + pos, full, indexes)


def _cut(times: pd.DatetimeIndex | np.ndarray, lo: int, n: int) -> pd.Index:
    part = times[lo : lo + n]
    return part if isinstance(part, pd.Index) else pd.Index(part)


def _infer_step(times, t, codes, starts, counts) -> pd.DateOffset | int:
    j = int(np.argmax(counts))
    if counts[j] < 3:
        raise DataError(
            f"only {counts[j]} timestamps per series, too few to infer the frequency; pass freq= "
            "(e.g. 'h', 'D', or 1 for integer time)."
        )
    if isinstance(times, pd.DatetimeIndex):
        alias = pd.infer_freq(times[starts[j] : starts[j] + counts[j]])
        if alias is not None:
            return parse_freq(alias, is_datetime=True)
    # infer_freq gives up on gaps: the most common step is then the best guess (gaps get reported).
    diffs = np.diff(t)[codes[1:] == codes[:-1]][:1_000_000]
    vals, cnt = np.unique(diffs, return_counts=True)
    step = int(vals[np.argmax(cnt)])
    return to_offset(pd.Timedelta(step, "ns")) if isinstance(times, pd.DatetimeIndex) else step
