"""Covariate columns: their roles, the checks on them, and their values in a `Panel`.

Three roles, with the names Darts and NeuralForecast users know:

* past covariates: known up to the forecast origin only (the six loads beside ETTh1's `OT`);
* future covariates: known over the forecast horizon as well (a promotions calendar, a weather
  forecast); their history is used too;
* static covariates: one value per series (a store's region); numbers are used as they are,
  text as categories.

Covariates are inputs only: they are never forecast. Every mistake in naming them is a
`DataError` that names the column and the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.errors import DataError

__all__ = ["ROLES", "ColumnRoles", "Covariates", "static_table"]

ROLES = ("past", "future", "static")
_ARGUMENT = {role: f"{role}_covariates" for role in ROLES}


def _names(value: Any, argument: str) -> tuple:
    if value is None:
        return ()
    names = (value,) if isinstance(value, str) or not hasattr(value, "__iter__") else tuple(value)
    seen = set()
    for name in names:
        if name in seen:
            raise DataError(f"{argument} lists column {name!r} twice; list each column once.")
        seen.add(name)
    return names


@dataclass(frozen=True)
class ColumnRoles:
    """The covariate columns by role (labels as in the frame); none by default."""

    past: tuple = ()
    future: tuple = ()
    static: tuple = ()

    @classmethod
    def of(cls, past: Any = None, future: Any = None, static: Any = None) -> ColumnRoles:
        """Roles from the user's arguments (a name or a list of names each); a column given
        in two roles is an error."""
        roles = cls(
            *(_names(v, _ARGUMENT[r]) for r, v in zip(ROLES, (past, future, static), strict=True))
        )
        owner: dict = {}
        for role in ROLES:
            for name in getattr(roles, role):
                if name in owner:
                    raise DataError(
                        f"column {name!r} is both a {owner[name]} and a {role} covariate; put "
                        f"it in one of {_ARGUMENT[owner[name]]}= and {_ARGUMENT[role]}= only."
                    )
                owner[name] = role
        return roles

    @property
    def dynamic(self) -> tuple:
        """The time-varying covariate columns: past ones, then future ones."""
        return self.past + self.future

    @property
    def columns(self) -> tuple:
        return self.past + self.future + self.static

    def role_of(self, name: Any) -> str:
        return next(r for r in ROLES if name in getattr(self, r))

    def check(self, df: pd.DataFrame, *, time_col: Any, id_col: Any, targets: Sequence) -> None:
        """Every covariate is a column of ``df`` other than the time, id and target columns."""
        for name in self.columns:
            role = self.role_of(name)
            if name not in df.columns:
                raise DataError(
                    f"{role} covariate {name!r} is not a column; available columns: "
                    f"{list(df.columns)}."
                )
            ids = id_col if isinstance(id_col, (list, tuple)) else (id_col,)
            for others, what in (((time_col,), "the time column"), (ids, "the id column")):
                if any(other is not None and name == other for other in others):
                    raise DataError(
                        f"{role} covariate {name!r} is {what}; drop it from {_ARGUMENT[role]}=."
                    )
            if name in targets:
                raise DataError(
                    f"column {name!r} is both a target and a {role} covariate; a covariate is an "
                    f"input only and is never forecast: drop it from target= or from "
                    f"{_ARGUMENT[role]}=."
                )


@dataclass(frozen=True)
class Covariates:
    """The covariate values of a panel's series.

    Time-varying values are held per *group* of series that share one time axis: a wide frame's
    channels form one group (one copy of the covariates serves them all), each series of a long
    frame is its own. ``past[g]`` float64 ``[T_g, P]`` and ``future[g]`` ``[T_g, F]`` (the
    history part of the future covariates) line up with the time index of every series of
    group g; ``group[i]`` is series i's group. ``static`` has one row per series: numeric
    columns are real values, the others categories.
    """

    past: tuple[np.ndarray, ...]
    future: tuple[np.ndarray, ...]
    static: pd.DataFrame
    group: np.ndarray

    @classmethod
    def none(cls, lengths: Sequence[int], *, shared: bool) -> Covariates:
        """No covariate columns: zero-width arrays (one group when the series share a time axis)."""
        groups = lengths[:1] if shared else lengths
        empty = tuple(np.zeros((int(n), 0)) for n in groups)
        group = np.zeros(len(lengths), np.int64) if shared else np.arange(len(lengths))
        return cls(empty, empty, pd.DataFrame(index=range(len(lengths))), group)

    def first_members(self) -> list[int]:
        """The first series of each group: the one whose time index the group's rows follow."""
        # One pass (not a scan per group: a long frame has a group per series). Every group has
        # a series; one without would read series 0, as a scan's argmax did.
        first = np.zeros(len(self.past), dtype=np.int64)
        groups, at = np.unique(self.group, return_index=True)
        first[groups] = at
        return first.tolist()

    def tail(self, length: int) -> Covariates:
        """The last ``length`` steps of the time-varying values."""
        return Covariates(
            tuple(p[-length:].copy() for p in self.past),
            tuple(f[-length:].copy() for f in self.future),
            self.static,
            self.group,
        )

    def take(self, series: Sequence[int]) -> Covariates:
        """The covariates of the series ``series`` (in that order)."""
        series = np.asarray(series, dtype=np.int64)
        used, group = np.unique(self.group[series], return_inverse=True)
        return Covariates(
            tuple(self.past[g] for g in used),
            tuple(self.future[g] for g in used),
            self.static.iloc[series].reset_index(drop=True),
            group.astype(np.int64),
        )


def static_table(
    df: pd.DataFrame, columns: Sequence, codes: np.ndarray | None, names: Sequence[str]
) -> pd.DataFrame:
    """One row per series with the value of each static covariate column.

    ``codes`` int64 ``[n_rows]`` gives each row's series (a long frame), or None (a wide frame:
    one value for the whole frame, shared by all its series). A value that varies within a
    series, or is missing, is an error naming the column and the first such series.
    """
    n_series = len(names)
    table = {}
    for name in columns:
        col = df[name]
        values, uniques = pd.factorize(col, sort=False)
        where = codes if codes is not None else np.zeros(len(col), dtype=np.int64)
        if (values < 0).any():
            row = int(np.argmax(values < 0))
            series = f" in series {names[where[row]]!r}" if codes is not None else ""
            raise DataError(
                f"static covariate {name!r} is empty{series} (row {row}); give every series its "
                "value."
            )
        first = np.full(n_series if codes is not None else 1, -1, dtype=np.int64)
        # the first row of each series (rows may come in any order)
        order = np.argsort(where, kind="stable")
        starts = np.flatnonzero(np.r_[True, where[order][1:] != where[order][:-1]])
        first[where[order][starts]] = values[order][starts]
        bad = values != first[where]
        if bad.any():
            row = int(np.argmax(bad))
            seen = (uniques[first[where[row]]], uniques[values[row]])
            series = f"series {names[where[row]]!r}" if codes is not None else "the frame"
            raise DataError(
                f"static covariate {name!r} varies within {series} ({seen[0]!r} and "
                f"{seen[1]!r}); a static covariate holds one value per series: pass it as a past "
                "or future covariate instead."
            )
        per_series = first if codes is not None else np.repeat(first, n_series)
        table[name] = pd.Series(uniques.take(per_series))
    return pd.DataFrame(table, index=range(n_series))
