"""Dates read right or refused: day/month order, two-digit years, formats, integer dates."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import ok, run
from trellis_ts import TrellisForecaster
from trellis_ts.data import read_csv, to_panel
from trellis_ts.data.io.dates import integer_dates, parse_time
from trellis_ts.errors import DataError

SMALL = dict(
    d_model=16, n_heads=2, n_layers=1, n_slots=8, chunk_size=4, max_epochs=1, verbose=False
)
CLI = [
    "--d-model",
    "16",
    "--n-layers",
    "1",
    "--n-slots",
    "8",
    "--max-epochs",
    "1",
    "--model",
    "encoder",
    "-q",
]
MONTHS = pd.date_range("1949-01-01", periods=144, freq="MS")
DAYS = pd.date_range("1981-01-01", periods=400, freq="D")


def frame(times: pd.DatetimeIndex, fmt: str | None, name="Month") -> pd.DataFrame:
    t = np.arange(len(times))
    written = times.strftime(fmt) if fmt else times
    return pd.DataFrame({name: written, "y": 100 + t + 10 * np.sin(2 * np.pi * t / 12)})


def write(tmp_path, df: pd.DataFrame, name="data.csv"):
    path = tmp_path / name
    df.to_csv(path, index=False)
    return path


def first_forecast_time(stdout: str, column: str) -> pd.Timestamp:
    return pd.Timestamp(pd.read_csv(StringIO(stdout))[column].iloc[0])


# ------------------------------------------------------------------------------ day/month order


def test_a_day_above_12_settles_day_first(tmp_path):
    df = frame(DAYS, "%d/%m/%Y", "Date")
    panel = to_panel(df)
    assert panel.freq == "D" and panel.index[0][12] == pd.Timestamp("1981-01-13")
    result = ok("forecast", write(tmp_path, df), *CLI)
    assert first_forecast_time(result.stdout, "Date") == DAYS[-1] + pd.Timedelta("1D")


def test_a_month_above_12_settles_month_first():
    panel = to_panel(frame(DAYS, "%m/%d/%Y", "Date"))
    assert panel.index[0][12] == pd.Timestamp("1981-01-13")


def test_ambiguous_dates_ask_for_dayfirst(tmp_path):
    df = frame(MONTHS, "%d/%m/%Y")  # 01/02/1949: nothing above 12
    with pytest.raises(DataError, match="dayfirst=True for day/month, dayfirst=False"):
        to_panel(df)
    data = write(tmp_path, df)
    result = run("forecast", data, *CLI)
    assert result.exit_code == 2 and result.stdout == ""
    assert "'01/01/1949' that read as day/month or as month/day" in result.stderr
    assert "pass --dayfirst for day/month, --monthfirst for month/day, or --date-format" in (
        result.stderr
    )
    # Before: read month-first, "missing timestamp 1949-01-13", and with --fill-gaps a forecast
    # dated 1960-01-13 with exit 0. Now --dayfirst reads it as monthly data.
    result = ok("forecast", data, "--dayfirst", *CLI)
    assert first_forecast_time(result.stdout, "Month") == pd.Timestamp("1961-01-01")
    assert to_panel(df, dayfirst=True).freq == "MS"


def test_dayfirst_that_contradicts_the_values_is_an_error(tmp_path):
    df = frame(DAYS, "%d/%m/%Y", "Date")
    with pytest.raises(DataError, match="month would be above 12 with dayfirst=False"):
        to_panel(df, dayfirst=False)
    result = run("forecast", write(tmp_path, df), "--monthfirst", *CLI)
    assert result.exit_code == 2 and "with --monthfirst; pass --dayfirst" in result.stderr


def test_fit_remembers_dayfirst_for_predict():
    df = frame(MONTHS, "%d/%m/%Y")
    f = TrellisForecaster(**SMALL).fit(df, dayfirst=True)
    assert f.columns_["dayfirst"] is True
    pd.testing.assert_frame_equal(f.predict(df), f.predict())


def test_date_format_option(tmp_path):
    df = frame(MONTHS, "%d.%m.%Y")
    with pytest.raises(DataError, match="date_format="):
        to_panel(df)
    assert to_panel(df, date_format="%d.%m.%Y").freq == "MS"
    result = ok("forecast", write(tmp_path, df), "--date-format", "%d.%m.%Y", *CLI)
    assert first_forecast_time(result.stdout, "Month") == pd.Timestamp("1961-01-01")
    bad = run("forecast", write(tmp_path, df), "--date-format", "%Y-%m-%d", *CLI)
    assert bad.exit_code == 2 and "'01.01.1949', which does not match --date-format" in bad.stderr


# ------------------------------------------------------------------------------ two-digit years


@pytest.mark.parametrize(("fmt", "example"), [("%b-%y", "Jan-49"), ("%d/%m/%y", "01/01/49")])
def test_two_digit_years_are_refused(fmt, example, tmp_path):
    df = frame(MONTHS, fmt)
    with pytest.raises(DataError, match=f"without a four-digit year \\('{example}'\\)"):
        to_panel(df)
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "--date-format" in result.stderr  # before: 2061, exit 0


def test_two_digit_years_with_a_format_warn_when_they_land_in_the_future(tmp_path):
    df = frame(MONTHS, "%b-%y")
    with pytest.warns(UserWarning, match="'Dec-60' is 2060-12-01, in the future"):
        panel = to_panel(df, date_format="%b-%y")
    assert panel.freq == "MS"
    result = ok("forecast", write(tmp_path, df), "--date-format", "%b-%y", *CLI)
    assert "warning: time column 'Month': --date-format %b-%y reads" in result.stderr


def test_a_year_month_column_without_century_is_an_error_naming_it(tmp_path):
    # shampoo sales: "1-01" .. "3-12"; before, the column vanished and the index was the time
    df = pd.DataFrame(
        {"Month": [f"{1 + i // 12}-{1 + i % 12:02d}" for i in range(36)], "Sales": np.arange(36.0)}
    )
    with pytest.raises(DataError, match="time column 'Month' has dates without a four-digit year"):
        to_panel(df)
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "'Month'" in result.stderr


# ------------------------------------------------------------------------------ integer dates


def test_excel_serial_dates_are_never_forecast(tmp_path):
    serial = (DAYS - pd.Timestamp("1899-12-30")).days
    df = pd.DataFrame({"Date": serial, "Temp": np.sin(np.arange(400) / 7)})
    with pytest.raises(DataError, match="'Date' holds integers that look like Excel serial dates"):
        to_panel(df)
    data = write(tmp_path, df)
    result = run("forecast", data, *CLI)
    assert result.exit_code == 2  # before: 'Date' forecast as a series (29974.97...), exit 0
    assert "--time-col Date --date-format excel" in result.stderr
    panel = to_panel(df, time_col="Date", date_format="excel")
    assert panel.freq == "D" and panel.index[0][0] == pd.Timestamp("1981-01-01")
    result = ok("forecast", data, "--time-col", "Date", "--date-format", "excel", *CLI)
    assert first_forecast_time(result.stdout, "Date") == DAYS[-1] + pd.Timedelta("1D")
    with pytest.warns(UserWarning, match="read as integer time steps"):
        assert to_panel(df, time_col="Date").freq == 1  # explicit: integer time, said so


def test_epoch_seconds_are_refused_or_read_with_unix(tmp_path):
    hours = pd.date_range("2024-01-01", periods=200, freq="h")
    df = pd.DataFrame({"ts": hours.asi8 // 10**9, "load": np.cos(np.arange(200) / 5)})
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "epoch seconds (1704067200 = 2024-01-01" in result.stderr
    assert to_panel(df, time_col="ts", date_format="unix").freq == "h"


def test_integer_dates_are_told_apart_from_values():
    assert integer_dates(pd.Series([20240130, 20240131, 20240201]))[0] == "yyyymmdd"
    assert integer_dates(pd.Series(range(1990, 2000)))[0] == "year"
    assert integer_dates(pd.Series([3, 8, 2, 40_000])) is None  # not increasing
    assert integer_dates(pd.Series([30_000.5, 30_001.5, 30_002.5])) is None  # not integers
    assert integer_dates(pd.Series([30_000, 30_013, 30_020])) is None  # no calendar step


def test_a_year_column_is_integer_time(tmp_path):
    df = pd.DataFrame({"Year": range(1900, 2000), "Sunspots": np.abs(np.sin(np.arange(100)))})
    panel = to_panel(df)
    assert panel.layout.time_col == "Year" and panel.names == ("Sunspots",) and panel.freq == 1
    csv = write(tmp_path, df)
    assert list(read_csv(csv).columns) == ["Year", "Sunspots"]
    result = ok("forecast", csv, *CLI)
    assert pd.read_csv(StringIO(result.stdout))["Year"].iloc[0] == 2000


# ------------------------------------------------------------------------------ week, quarter labels


WEEKS = pd.date_range("1991-02-04", periods=60, freq="W-MON")
QUARTERS = pd.date_range("1998-01-01", periods=40, freq="QS")


@pytest.mark.parametrize(
    "times,labels,freq",
    [
        (WEEKS, [d.strftime("%G W%V") for d in WEEKS], "W-MON"),  # tsibble yearweek
        (WEEKS, [d.strftime("%G-W%V") for d in WEEKS], "W-MON"),
        (QUARTERS, QUARTERS.to_period("Q").strftime("%Y Q%q"), "QS-OCT"),  # tsibble yearquarter
        (QUARTERS, QUARTERS.to_period("Q").strftime("%YQ%q"), "QS-OCT"),
        (QUARTERS, QUARTERS.to_period("Q").strftime("%Y-Q%q"), "QS-OCT"),
        (MONTHS, MONTHS.strftime("%Y %b"), "MS"),  # tsibble yearmonth
    ],
)
def test_week_quarter_and_month_labels_read_with_their_frequency(times, labels, freq):
    # '1991 W06' and '1998 Q1' could not be read before (an integer grid took their place).
    df = pd.DataFrame({"Period": list(labels), "y": np.arange(len(times), dtype=float)})
    panel = to_panel(df)
    assert panel.layout.time_col == "Period" and panel.freq == freq
    assert panel.index[0].equals(pd.DatetimeIndex(times)), panel.index[0][:3]


@pytest.mark.parametrize(
    "values,message",
    [
        (["2021 W52", "2021 W53"], "'2021 W53', not an ISO week"),  # 2021 has 52 ISO weeks
        (["1998 Q4", "1998 Q5"], "'1998 Q5', not a quarter 1 to 4"),
        (["1998 Q1", "1998 W02"], "mixes quarter labels such as '1998 Q1' with '1998 W02'"),
    ],
)
def test_bad_period_labels_are_named(values, message):
    df = pd.DataFrame({"date": values * 3, "y": 1.0, "id": np.repeat(["a", "b", "c"], 2)})
    with pytest.raises(DataError, match=message):
        to_panel(df, time_col="date", id_col="id")


def test_cli_writes_forecast_timestamps_back_as_the_input_labels(tmp_path):
    path = tmp_path / "weekly.csv"
    labels = [d.strftime("%G W%V") for d in WEEKS]  # ends 1992 W13
    pd.DataFrame(
        {"rownames": np.arange(1, 61), "Week": labels, "Value": 100 + np.sin(np.arange(60) / 4)}
    ).to_csv(path, index=False)
    out = tmp_path / "fc.csv"
    ok("forecast", path, "--prediction-length", "3", "--context-length", "12", *CLI, "-o", out)
    fc = pd.read_csv(out)
    assert list(fc.columns) == ["Week", "Value"]  # rownames left out
    assert list(fc["Week"]) == ["1992 W14", "1992 W15", "1992 W16"]
    path = tmp_path / "quarterly.csv"
    pd.DataFrame(
        {"Quarter": QUARTERS.to_period("Q").strftime("%Y Q%q"), "Trips": 50 + np.arange(40.0) % 4}
    ).to_csv(path, index=False)
    model = tmp_path / "m"
    ok("fit", path, "--model-dir", model, "--prediction-length", "2", "--context-length", "8", *CLI)
    result = ok("predict", "--model-dir", model)
    assert [r.split(",")[0] for r in result.stdout.splitlines()] == [
        "Quarter",
        "2008 Q1",
        "2008 Q2",
    ]
    ok(
        "evaluate",
        path,
        "--model-dir",
        model,
        "--n-windows",
        "1",
        "--forecasts",
        tmp_path / "bt.csv",
        "-q",
    )
    rows = pd.read_csv(tmp_path / "bt.csv")
    assert list(rows["timestamp"]) == ["2007 Q3", "2007 Q4"] and rows["cutoff"][0] == "2007 Q2"


# ------------------------------------------------------------------ issue 32: time zones and DST

PARIS_SPRING = pd.date_range("2024-03-29", periods=120, freq="h", tz="Europe/Paris")  # 31 March


def _local_text(times: pd.DatetimeIndex) -> list[str]:
    """ISO text with each value's own offset, as a logger in local time writes it."""
    return [t.isoformat() for t in times]


def test_offsets_that_change_across_dst_are_read_as_utc_instants():
    text = pd.Index(
        ["2024-03-31T01:00:00+01:00", "2024-03-31T03:00:00+02:00", "2024-03-31T04:00:00+02:00"]
    )
    expected = pd.DatetimeIndex(
        ["2024-03-31 00:00", "2024-03-31 01:00", "2024-03-31 02:00"], tz="UTC"
    )
    assert parse_time(text, "date").equals(expected)  # before: "pass date_format="
    # before: a traceback ("Tz-aware datetime.datetime cannot be converted ...")
    assert parse_time(text, "date", date_format="%Y-%m-%dT%H:%M:%S%z").equals(expected)
    one_offset = parse_time(
        pd.Index(["2024-01-01T00:00:00+05:30", "2024-01-01T01:00:00+05:30"]), "date"
    )
    assert str(one_offset[0]) == "2024-01-01 00:00:00+05:30"  # one offset: kept as written


def test_local_time_across_dst_forecasts_through_the_cli_in_utc(tmp_path):
    from tests.cli.test_commands import TINY

    values = np.sin(np.arange(len(PARIS_SPRING)) * 2 * np.pi / 24)
    data = tmp_path / "local.csv"
    pd.DataFrame({"date": _local_text(PARIS_SPRING), "load": values}).to_csv(data, index=False)
    out = tmp_path / "fc.csv"
    ok("forecast", data, *TINY, "-o", out)
    dates = pd.to_datetime(pd.read_csv(out)["date"])
    last = PARIS_SPRING[-1].tz_convert("UTC")
    assert list(dates) == list(pd.date_range(last, periods=7, freq="h")[1:])
    ok("forecast", data, *TINY, "--date-format", "%Y-%m-%dT%H:%M:%S%z", "-o", out)


def test_a_named_zone_keeps_its_local_days_and_survives_save_and_load(tmp_path):
    from tests.conftest import TINY
    from trellis_ts import TrellisForecaster

    days = pd.date_range("2024-01-01", periods=90, freq="D", tz="Europe/Paris")  # to 30 March
    df = pd.DataFrame({"date": days, "a": np.sin(np.arange(90) * 2 * np.pi / 7)})
    params = {**TINY, "context_length": 24, "prediction_length": 6, "patch_len": 8}
    fitted = TrellisForecaster(**params).fit(df)  # before: "not on the 'D' grid" past 31 March
    dates = fitted.predict()["date"]
    assert [str(t) for t in dates[:3]] == [
        "2024-03-31 00:00:00+01:00",
        "2024-04-01 00:00:00+02:00",
        "2024-04-02 00:00:00+02:00",
    ]
    fitted.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")
    assert str(loaded.history_.index[0].tz) == "Europe/Paris"  # before: a fixed +01:00
    assert loaded.predict()["date"].equals(dates)
    hours = pd.DataFrame({"date": PARIS_SPRING, "a": np.arange(len(PARIS_SPRING)) % 24 * 1.0})
    fc = TrellisForecaster(**{**params, "prediction_length": 6}).fit(hours).predict()
    assert (np.diff(fc["date"].map(pd.Timestamp.timestamp)) == 3600).all()
