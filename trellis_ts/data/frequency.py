"""Everything the toolkit knows about a frequency, in one place: the unit its steps count in,
its natural season (MASE's naive benchmark, the seasonal naive), the usual horizon and
context for it (the sizes `fit` picks), and the calendar features `"auto"` gives it.

Torch-free and light: the command line reads it before loading the model code.
"""

from __future__ import annotations

import pandas as pd

__all__ = [
    "CALENDAR_BY_UNIT",
    "GENERIC",
    "SIZES_BY_UNIT",
    "base_unit",
    "frequency_unit",
    "seasonal_period",
]

# An offset's name (before any "-" anchor) -> the unit its steps count in, one spelling per unit:
# pandas >= 2.2 names "ME", "h", "min", "YE"; pandas 2.1 "M", "H", "T", "A". The sizes, the
# seasonal period and the calendar features all read the unit from here.
_BASE_UNITS = {
    **dict.fromkeys(("s", "S"), "s"),
    **dict.fromkeys(("min", "T"), "min"),
    **dict.fromkeys(("h", "H"), "h"),
    **dict.fromkeys(("bh", "BH"), "bh"),  # business hours: 8 a day, not 24
    **dict.fromkeys(("B", "C"), "B"),  # C: custom business days
    **dict.fromkeys(("M", "ME", "MS", "BM", "BME", "BMS"), "M"),
    **dict.fromkeys(("SM", "SME", "SMS"), "SM"),  # semi-monthly: 24 a year, not 12
    **dict.fromkeys(("Q", "QE", "QS", "BQ", "BQE", "BQS"), "Q"),
    **dict.fromkeys(("Y", "YE", "YS", "A", "AS", "BA", "BAS", "BY", "BYE", "BYS"), "Y"),
}


def base_unit(offset: pd.DateOffset) -> str:
    """The unit an offset's steps count in, whatever its multiple, anchor or spelling: "s",
    "min", "h", "bh", "D", "B", "W", "SM", "M", "Q", "Y" ("15min" -> "min", "W-MON" -> "W",
    "BME" -> "M"); finer or unusual units as pandas names them ("ms", "cbh")."""
    name = offset.name.split("-")[0]
    return _BASE_UNITS.get(name, name)


# Seasonal period used by MASE's naive benchmark, by the base unit of the frequency (minutes and
# hours: one day of steps, so it depends on the multiple too).
_SEASONALITY = {"D": 7, "B": 5, "W": 52, "M": 12, "Q": 4}
_STEPS_PER_DAY = {"min": 1440, "h": 24}


def seasonal_period(freq: str | int | None) -> int:
    """The natural season of a frequency: 24 for hourly, 7 for daily, 96 for 15-minute, 1 if unknown."""
    if not isinstance(freq, str):
        return 1
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return 1
    unit = base_unit(offset)
    if unit in _STEPS_PER_DAY:
        return max(1, _STEPS_PER_DAY[unit] // max(offset.n, 1))
    return _SEASONALITY.get(unit, 1)


# base unit of the frequency -> (name, horizon, context)
SIZES_BY_UNIT: dict[str, tuple[str, int, int]] = {
    "s": ("secondly", 96, 336),
    "min": ("minutely", 96, 336),
    "h": ("hourly", 96, 336),
    "D": ("daily", 14, 56),
    "B": ("business-daily", 10, 40),
    "W": ("weekly", 13, 52),
    "M": ("monthly", 12, 48),
    "Q": ("quarterly", 8, 32),
    "Y": ("yearly", 6, 24),
}
GENERIC = ("regular", 96, 336)  # integer time steps or an unusual frequency


def frequency_unit(freq: str | int | None) -> tuple[str, tuple[str, int, int]]:
    """The size table's entry for a frequency: (its name, (name, horizon, context))."""
    if not isinstance(freq, str):
        return GENERIC[0] if freq is None else "integer-step", GENERIC
    try:
        offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError:
        return freq, GENERIC
    unit = base_unit(offset)
    entry = SIZES_BY_UNIT.get(unit)
    if entry is None:  # milliseconds and finer, business hours, semi-months: a regular grid
        return offset.freqstr, GENERIC
    name = entry[0] if offset.n == 1 else f"{offset.n}-{_unit_word(unit)}"
    return name, entry


def _unit_word(unit: str) -> str:
    return {
        "s": "second",
        "min": "minute",
        "h": "hourly",
        "D": "day",
        "B": "business-day",
        "W": "week",
        "M": "month",
        "Q": "quarter",
        "Y": "year",
    }[unit]


# What "auto" gives, by the frequency's base unit (`base_unit`; GluonTS makes the same choice).
CALENDAR_BY_UNIT = (
    (("s", "min"), ("minute", "hour", "dayofweek", "dayofmonth", "dayofyear")),
    (("h", "bh"), ("hour", "dayofweek", "dayofmonth", "dayofyear")),
    (("D", "B"), ("dayofweek", "dayofmonth", "dayofyear")),
    (("W",), ("dayofmonth", "weekofyear")),
    (("M", "SM"), ("month",)),
    (("Q",), ("quarter",)),
)
