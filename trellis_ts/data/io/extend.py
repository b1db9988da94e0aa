"""New rows after a stored history: reading them in a fit's layout and joining them on.

What `TrellisForecaster.update` checks and joins, written for any model that keeps a history
`Panel` (a window model's last context, a streaming model's partial patch):

* `read_rows` reads a frame of new rows with exactly the fit's columns (`FrameLayout`) at the
  fit's frequency, its missing values left as NaN;
* `extend_panel` checks that each series' rows continue it (after its last timestamp, on its
  time grid), fills a gap at the join and the missing values the way a fresh read of the whole
  history would (the fit's `fill_gaps` and `missing` policies), and returns the extended panel
  and the panel of just the added steps.

Both only read their arguments: a failure (a `DataError` that names the series, column or
timestamp) leaves nothing half done.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.features.covariates import Covariates
from trellis_ts.data.io.frames import Panel, fill_missing, id_columns, to_panel
from trellis_ts.data.io.layout import FrameLayout
from trellis_ts.data.io.timegrid import future_index, parse_freq
from trellis_ts.errors import DataError

__all__ = ["expected_columns", "extend_panel", "read_rows"]


def expected_columns(layout: FrameLayout, names=()) -> list:
    """The columns a frame of `layout` has: (id,) time, target(s) and covariates; `names` are
    the wide targets when the layout does not list them (models saved before it did)."""
    time = [] if layout.time_col is None else [layout.time_col]
    if layout.format == "long":
        targets = [*id_columns(layout.id_col), *time, layout.target_col]
    else:
        targets = [*time, *(layout.columns if layout.columns is not None else names)]
    return targets + list(layout.covariates)


def read_rows(
    df: pd.DataFrame,
    layout: FrameLayout,
    *,
    freq: str | int,
    fill_gaps: bool = False,
    dayfirst: bool | None = None,
    date_format: str | None = None,
    names=(),
) -> Panel:
    """The new rows `df` as a `Panel` read with the columns of `layout` at `freq`, missing
    values kept as NaN (`extend_panel` fills them). A column missing or extra, an empty frame,
    duplicate timestamps or rows off the `freq` grid raise `DataError`."""
    if not isinstance(df, pd.DataFrame):
        raise DataError(
            f"expected a pandas DataFrame of new rows, got {type(df).__name__}; load them with pandas"
        )
    expected = expected_columns(layout, names)
    lacking = [c for c in expected if c not in df.columns]
    if lacking:
        raise DataError(
            f"the new rows lack column {lacking[0]!r}; pass the fit's columns {expected}"
        )
    extra = [c for c in df.columns if c not in expected]
    if extra:
        what = (
            "a series the model was not fitted on"
            if layout.format == "wide"
            else "the model does not read it"
        )
        raise DataError(
            f"the new rows have an extra column {extra[0]!r} ({what}); pass only the fit's "
            f"columns {expected}"
        )
    if len(df) == 0:
        raise DataError("the frame of new rows is empty; pass at least one row")
    options = {
        "time_col": layout.time_col,
        "id_col": layout.id_col if layout.format == "long" else None,
        "target": (
            layout.target_col
            if layout.format == "long"
            else list(layout.columns if layout.columns is not None else names)
        ),
        "past_covariates": list(layout.past_covariates) or None,
        "future_covariates": list(layout.future_covariates) or None,
        "static_covariates": list(layout.static_covariates) or None,
        "missing": "keep",
        "fill_gaps": fill_gaps,
        "dayfirst": dayfirst,
        "date_format": date_format,
    }
    try:
        return to_panel(df, freq=freq, **options)
    except DataError as exc:
        _check_frequency(df, options, freq)
        raise exc from None


def _check_frequency(df: pd.DataFrame, options: dict, freq) -> None:
    """A clearer error when rows that do not fit the grid of `freq` are regular at another."""
    try:
        seen = to_panel(df, freq=None, **options).freq
    except DataError:
        return
    if seen != freq:
        raise DataError(
            f"the new rows are at frequency {seen!r} but the model was fitted at {freq!r}; "
            "pass rows at the fitted frequency"
        )


def extend_panel(
    history: Panel, rows: Panel, *, missing: str = "error", fill_gaps: bool = False
) -> tuple[Panel, Panel]:
    """`(extended, added)`: `history` with `rows` joined after each series' end, and the added
    steps alone.

    `rows` (from `read_rows`) holds new steps of some of the series of `history` (matched by
    name; a wide frame's rows hold every column) and, in a long layout, maybe new series: those
    are appended after the known ones in their order in `rows`. `extended` keeps the series of
    `history` in order, their time-varying covariates joined too; `added` holds only the series
    that got rows, in `extended`'s order, each with its new steps (a gap filled at the join
    included) and their covariates. A row at or before a series' last timestamp, off its time
    grid, a gap at the join that `fill_gaps` does not allow, a missing value that `missing`
    does not fill, a static covariate that changes value: `DataError`.
    """
    if rows.layout.format != history.layout.format:
        raise DataError(
            f"the history is a {history.layout.format} frame but the new rows are "
            f"{rows.layout.format}; pass rows in the same layout"
        )
    wide = history.layout.format == "wide"
    known = {n: i for i, n in enumerate(history.names)}
    if wide:
        extra = [n for n in rows.names if n not in known]
        if extra:
            raise DataError(
                f"the new rows have an extra column {extra[0]!r}; pass only the fitted columns"
            )
        lacking = [n for n in history.names if n not in rows.names]
        if lacking:
            raise DataError(
                f"the new rows lack column {lacking[0]!r}; pass every fitted column "
                f"{list(history.names)}"
            )
    old = [j for j, n in enumerate(rows.names) if n in known]
    new = [j for j, n in enumerate(rows.names) if n not in known]
    joined = {known[rows.names[j]]: j for j in old}  # history series -> rows series

    offset = _offset(history.freq)
    gaps = {i: _join(history, rows, i, j, offset, fill_gaps) for i, j in joined.items()}
    values, index = list(history.values), list(history.index)
    label = "column" if wide else "series"
    for i, j in joined.items():
        gap = gaps[i]
        stacked = np.concatenate([history.values[i], np.full(len(gap), np.nan), rows.values[j]])
        parts = [history.index[i], *([gap] if len(gap) else []), rows.index[j]]
        index[i] = parts[0].append(parts[1:])
        values[i] = fill_missing(stacked, missing, f"{label} {history.names[i]!r}", index[i])
    for j in new:  # a new series: its rows alone, as a fresh read of them would fill them
        values.append(
            fill_missing(rows.values[j], missing, f"series {rows.names[j]!r}", rows.index[j])
        )
        index.append(rows.index[j])

    covariates = _covariates(history, rows, joined, new, gaps, index, missing)
    extended = dataclasses.replace(
        history,
        values=tuple(values),
        index=tuple(index),
        names=history.names + tuple(rows.names[j] for j in new),
        ids=None if history.ids is None else history.ids + tuple(rows.ids[j] for j in new),
        covariates=covariates,
    )
    touched = sorted(joined) + list(range(history.n_series, extended.n_series))
    counts = {i: len(extended.values[i]) - len(history.values[i]) for i in joined}
    counts |= {history.n_series + k: len(rows.values[j]) for k, j in enumerate(new)}
    added = _last_steps(extended.take(touched), [counts[i] for i in touched])
    return extended, added


def _offset(freq: Any) -> Any:
    """The step of `freq`: an int for integer time, else a pandas offset."""
    if isinstance(freq, (int, np.integer)) and not isinstance(freq, bool):
        return int(freq)
    return parse_freq(freq, is_datetime=True)


def _join(history: Panel, rows: Panel, i: int, j: int, offset: Any, fill_gaps: bool) -> pd.Index:
    """The timestamps missing between series `i`'s end and its first new row `j` (empty when
    the rows start right after it); `DataError` when they do not continue the series."""
    name, last, first = history.names[i], history.index[i][-1], rows.index[j][0]
    series = f"series {name!r}" if history.layout.format == "long" else f"column {name!r}"
    zones = [str(getattr(t, "tz", None)) for t in (last, first)]
    if zones[0] != zones[1]:
        raise DataError(
            f"the new rows of {series} have time zone {zones[1]} but its history has "
            f"{zones[0]}; pass times in the fitted zone"
        )
    if first <= last:
        raise DataError(
            f"the new rows of {series} start at {first}, at or before its last timestamp "
            f"{last}; pass only rows after it"
        )
    if _next(last, offset) == first:  # the usual case: the rows start right after the end
        return rows.index[j][:0]
    steps = _steps_after(
        last, first, history.freq, offset, limit=10 * len(rows.values[j]) + 100_000
    )
    if steps is None:
        raise DataError(
            f"the new row at {first} of {series} is not on the {history.freq!r} grid after its "
            f"last timestamp {last}; pass rows at the fitted frequency"
        )
    if len(steps) > 1 and not fill_gaps:
        raise DataError(
            f"missing timestamp {steps[0]} between the end of {series} ({last}) and its new "
            f"rows (from {first}); pass the rows in between, or fit with fill_gaps=True and "
            "missing='interpolate' (or missing='ffill') to fill such gaps"
        )
    return steps[:-1]


def _next(last: Any, offset: Any) -> Any:
    """The step after `last` where one step is a fixed length (None where it is not: calendar
    offsets, and days in a time zone, which may last 23 or 25 hours)."""
    if isinstance(offset, int):
        return int(last) + offset
    if isinstance(offset, pd.offsets.Tick) and (last.tz is None or offset.nanos % (86_400 * 10**9)):
        return last + pd.Timedelta(offset.nanos)
    return None


def _steps_after(last: Any, first: Any, freq: Any, offset: Any, *, limit: int) -> pd.Index | None:
    """The `freq` steps after `last` up to `first` included, or None if `first` is not one."""
    if isinstance(offset, int):
        n, off_grid = divmod(int(first) - int(last), offset)
    else:
        if isinstance(offset, pd.offsets.Tick):  # round: a day in a zone may last 23 or 25 hours
            n, off_grid = round((first - last) / pd.Timedelta(offset.nanos)), 0
        else:
            n, off_grid = len(pd.date_range(last, first, freq=offset)) - 1, 0
    if off_grid or n < 1:
        return None
    if n > limit:
        raise DataError(
            f"the new rows start {n} steps of {freq!r} after the history's end ({last}); "
            "check their timestamps"
        )
    steps = future_index(last, freq, n)
    return steps if steps[-1] == first else None


def _covariates(history, rows, joined, new, gaps, index, missing) -> Covariates:
    """The covariates of the extended panel: each group's time-varying values joined like its
    first series' targets, new series' groups and static rows appended."""
    cov, add = history.covariates, rows.covariates
    layout = history.layout
    labels = [f"past covariate {c!r}" for c in layout.past_covariates]
    labels += [f"future covariate {c!r}" for c in layout.future_covariates]
    _check_static(history, rows, joined)
    n_past = len(layout.past_covariates)
    past, future = list(cov.past), list(cov.future)
    for g, first in enumerate(cov.first_members()):
        if first not in joined:
            continue
        j = joined[first]
        h = rows.covariates.group[j]
        where = index[first]  # the joined time index of the group's first series
        for parts, extra, offset in ((past, add.past, 0), (future, add.future, n_past)):
            block = np.concatenate(
                [parts[g], np.full((len(gaps[first]), parts[g].shape[1]), np.nan), extra[h]]
            )
            of = "" if layout.format == "wide" else f" of series {history.names[first]!r}"
            for k in range(block.shape[1]):
                block[:, k] = fill_missing(block[:, k], missing, f"{labels[offset + k]}{of}", where)
            parts[g] = block
    group = cov.group.tolist()
    for j in new:
        h = add.group[j]
        of = f" of series {rows.names[j]!r}"
        blocks = []
        for extra, offset in ((add.past, 0), (add.future, n_past)):
            block = extra[h].copy()
            for k in range(block.shape[1]):
                block[:, k] = fill_missing(
                    block[:, k], missing, f"{labels[offset + k]}{of}", rows.index[j]
                )
            blocks.append(block)
        group.append(len(past))
        past.append(blocks[0])
        future.append(blocks[1])
    static = cov.static
    if new:
        static = pd.concat([cov.static, add.static.iloc[new]], ignore_index=True).reset_index(
            drop=True
        )
    return Covariates(tuple(past), tuple(future), static, np.asarray(group, dtype=np.int64))


def _check_static(history: Panel, rows: Panel, joined: dict) -> None:
    """A known series' static covariates keep their values (a fresh read would refuse a change)."""
    for column in history.layout.static_covariates:
        stored = history.covariates.static[column].tolist()  # Python values, as messages show
        given = rows.covariates.static[column].tolist()
        for i, j in joined.items():
            before, after = stored[i], given[j]
            if before != after:
                raise DataError(
                    f"static covariate {column!r} of series {history.names[i]!r} is {after!r} in "
                    f"the new rows but was {before!r}; a static covariate holds one value per series"
                )


def _last_steps(panel: Panel, counts: list[int]) -> Panel:
    """The last `counts[i]` steps of each series of `panel` (and of its covariates' groups)."""
    cov = panel.covariates
    firsts = cov.first_members()
    covariates = dataclasses.replace(
        cov,
        past=tuple(p[len(p) - counts[f] :] for p, f in zip(cov.past, firsts, strict=True)),
        future=tuple(x[len(x) - counts[f] :] for x, f in zip(cov.future, firsts, strict=True)),
    )
    return dataclasses.replace(
        panel,
        values=tuple(v[len(v) - n :] for v, n in zip(panel.values, counts, strict=True)),
        index=tuple(ix[len(ix) - n :] for ix, n in zip(panel.index, counts, strict=True)),
        covariates=covariates,
    )
