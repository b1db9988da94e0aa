"""One frequency -> unit table behind the sizes, the seasonal period and the calendar features."""

from __future__ import annotations

import pytest
from pandas.tseries.frequencies import to_offset

from trellis_ts.data.features.calendar import calendar_features_for
from trellis_ts.data.frequency import base_unit, frequency_unit, seasonal_period


@pytest.mark.parametrize(
    "freq, unit",
    [
        ("15min", "min"),
        ("2h", "h"),
        ("bh", "bh"),
        ("3D", "D"),
        ("C", "B"),
        ("W-MON", "W"),
        ("SMS", "SM"),
        ("MS", "M"),
        ("BME", "M"),
        ("BQS", "Q"),
        ("QE-NOV", "Q"),
        ("YS", "Y"),
        ("BYE", "Y"),
        ("ms", "ms"),
    ],
)
def test_base_unit_ignores_multiple_anchor_and_spelling(freq, unit):
    assert base_unit(to_offset(freq)) == unit


@pytest.mark.parametrize(
    "plain, business",
    [
        ("B", "C"),
        ("ME", "BME"),
        ("MS", "BMS"),
        ("QE", "BQE"),
        ("QS", "BQS"),
        ("YE", "BYE"),
        ("YS", "BYS"),
    ],
)
def test_business_spellings_share_their_unit_everywhere(plain, business):
    # Before one table, business month/quarter data had season 1 (month data 12) and BQS data
    # the generic sizes (QS data the quarterly ones).
    assert seasonal_period(business) == seasonal_period(plain)
    assert frequency_unit(business)[1] == frequency_unit(plain)[1]
    assert calendar_features_for("auto", business) == calendar_features_for("auto", plain)


def test_seasonal_period_by_unit():
    freqs = ("15min", "h", "2h", "D", "B", "W", "MS", "BME", "QS")
    assert [seasonal_period(f) for f in freqs] == [96, 24, 12, 7, 5, 52, 12, 12, 4]
    assert seasonal_period("bh") == seasonal_period("SMS") == seasonal_period("YS") == 1
    assert seasonal_period(None) == seasonal_period(1) == seasonal_period("nonsense") == 1
