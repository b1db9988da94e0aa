"""Reading, validating and writing back frames (trellis_ts.data.io.frames)."""

from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import pytest

from trellis_ts.data import future_index, panel_from_arrays, read_csv, to_frame, to_panel
from trellis_ts.errors import DataError


def wide(n: int = 6, freq: str = "h", start: str = "2020-01-01", **cols) -> pd.DataFrame:
    cols = cols or {"a": np.arange(n, dtype=float), "b": np.arange(n, dtype=float) * 10}
    return pd.DataFrame({"date": pd.date_range(start, periods=n, freq=freq), **cols})


def long3() -> pd.DataFrame:
    """Three ids of lengths 4, 6, 3 (daily), ids interleaved-free, in order B, A, C."""
    rows = []
    for uid, n in (("B", 4), ("A", 6), ("C", 3)):
        for k in range(n):
            rows.append((uid, pd.Timestamp("2021-03-01") + pd.Timedelta(days=k), float(k)))
    return pd.DataFrame(rows, columns=["unique_id", "ds", "y"])


# ------------------------------------------------------------------------------ wide layout


@pytest.mark.parametrize(("freq", "alias"), [("h", "h"), ("D", "D"), ("15min", "15min")])
def test_wide_time_column_frequencies(freq, alias):
    df = wide(8, freq)
    df["date"] = df["date"].astype(str)  # text timestamps, as read from a CSV
    panel = to_panel(df)
    assert panel.layout.format == "wide" and panel.freq == alias and panel.layout.time_col == "date"
    assert panel.names == ("a", "b")
    np.testing.assert_array_equal(panel.values[1], np.arange(8) * 10.0)
    assert panel.index[0].equals(pd.date_range("2020-01-01", periods=8, freq=freq))
    assert panel.values[0].dtype == np.float64 and list(panel.lengths()) == [8, 8]


def test_wide_datetime_index_round_trip():
    df = wide(5, "D").set_index("date")
    panel = to_panel(df)
    assert panel.layout.time_col is None and panel.layout.index_name == "date" and panel.freq == "D"
    assert panel.layout.time_in_index and not to_panel(df.reset_index()).layout.time_in_index
    out = to_frame(panel, np.ones((2, 3)))
    assert isinstance(out.index, pd.DatetimeIndex) and out.index.name == "date"
    assert out.index.equals(pd.date_range("2020-01-06", periods=3, freq="D", name="date"))
    assert list(out.columns) == ["a", "b"]


@pytest.mark.parametrize("step", [1, 5])
def test_integer_index_is_integer_time(step):
    df = pd.DataFrame({"x": np.arange(6.0), "y": np.arange(6.0)}, index=np.arange(6) * step + 10)
    panel = to_panel(df)
    assert panel.freq == step and panel.layout.time_col is None
    out = to_frame(panel, np.zeros((2, 3)))
    assert list(out.index) == [10 + 6 * step, 10 + 7 * step, 10 + 8 * step]
    assert list(out.columns) == ["x", "y"]


def test_integer_time_column_and_saved_row_index(tmp_path):
    df = pd.DataFrame({"step": [0, 2, 4, 6], "v": [1.0, 2.0, 3.0, 4.0]})
    panel = to_panel(df, time_col="step")
    assert panel.freq == 2 and panel.layout.time_col == "step"
    out = to_frame(panel, np.zeros((1, 2)))
    assert list(out.columns) == ["step", "v"] and list(out["step"]) == [8, 10]
    path = tmp_path / "saved.csv"
    wide(4).to_csv(path)  # writes the RangeIndex as an unnamed first column
    with pytest.warns(UserWarning, match="'Unnamed: 0' holds the row numbers"):
        assert to_panel(read_csv(path)).names == ("a", "b")


def test_range_index_without_time_column():
    panel = to_panel(pd.DataFrame(np.arange(12.0).reshape(6, 2)))  # numpy-born frame
    assert panel.freq == 1 and panel.names == ("0", "1") and panel.layout.columns == (0, 1)
    out = to_frame(panel, np.zeros((2, 2)))
    assert list(out.columns) == [0, 1] and list(out.index) == [6, 7]  # original labels back


def test_round_trip_future_timestamps_and_column_order():
    df = pd.DataFrame(
        {
            "zeta": np.arange(5.0),
            "time": pd.date_range("2022-02-28 22:00", periods=5, freq="h"),
            "alpha": np.arange(5.0) + 1,
            "label": list("abcde"),  # text columns are not forecast
        }
    )
    panel = to_panel(df)
    assert panel.names == ("zeta", "alpha")
    out = to_frame(
        panel, np.array([[1.0, 2.0], [3.0, 4.0]]), columns_suffix={"q0.1": np.zeros((2, 2))}
    )
    assert list(out.columns) == ["time", "zeta", "alpha", "zeta_q0.1", "alpha_q0.1"]
    assert list(out["time"]) == [pd.Timestamp("2022-03-01 03:00"), pd.Timestamp("2022-03-01 04:00")]
    assert list(out["alpha"]) == [3.0, 4.0]


def test_explicit_target_order_is_kept():
    panel = to_panel(wide(4, c=np.ones(4), a=np.zeros(4), b=np.ones(4)), target=["b", "c"])
    assert panel.names == ("b", "c")
    assert list(to_frame(panel, np.zeros((2, 1))).columns) == ["date", "b", "c"]


def test_time_zone_is_kept():
    df = wide(4, "h", start="2020-03-01 00:00+01:00")
    out = to_frame(to_panel(df), np.zeros((2, 2)))
    assert str(out["date"].dt.tz) == str(df["date"].dt.tz)
    assert out["date"].iloc[0] == df["date"].iloc[-1] + pd.Timedelta(hours=1)


# ------------------------------------------------------------------------------ long layout


def test_long_three_ids_different_lengths_round_trip():
    panel = to_panel(long3())
    assert panel.layout.format == "long" and panel.names == ("B", "A", "C") and panel.freq == "D"
    assert not panel.layout.time_in_index
    assert list(panel.lengths()) == [4, 6, 3]
    assert panel.index[1][-1] == pd.Timestamp("2021-03-06")
    out = to_frame(panel, np.arange(6.0).reshape(3, 2), columns_suffix={"q0.9": np.ones((3, 2))})
    assert list(out.columns) == ["unique_id", "ds", "y", "y_q0.9"]
    assert list(out["unique_id"]) == ["B", "B", "A", "A", "C", "C"]
    assert list(out["ds"][:2]) == [pd.Timestamp("2021-03-05"), pd.Timestamp("2021-03-06")]
    assert out["ds"].iloc[2] == pd.Timestamp("2021-03-07")


def test_long_custom_columns_and_integer_ids():
    df = long3().rename(columns={"unique_id": "store", "ds": "day", "y": "sales"})
    df["store"] = df["store"].map({"A": 1, "B": 2, "C": 3})
    panel = to_panel(df, id_col="store", time_col="day", target="sales")
    assert panel.ids == (2, 1, 3) and panel.names == ("2", "1", "3")
    out = to_frame(panel, np.zeros((3, 1)))
    assert list(out.columns) == ["store", "day", "sales"]
    assert out["store"].dtype.kind == "i" and list(out["store"]) == [2, 1, 3]


def test_long_unsorted_rows_warn_and_sort():
    df = long3().sample(frac=1.0, random_state=1)
    with pytest.warns(UserWarning, match="not sorted"):
        panel = to_panel(df)
    by_name = dict(zip(panel.names, panel.values, strict=True))
    np.testing.assert_array_equal(by_name["A"], np.arange(6.0))


def test_long_ids_must_share_a_frequency():
    df = long3()
    df.loc[df["unique_id"] == "C", "ds"] = pd.date_range("2021-03-01", periods=3, freq="h")
    with pytest.raises(DataError, match="not on the 'D' grid"):
        to_panel(df)


def test_long_performance_is_vectorised():
    n_ids, n_steps = 300, 1000
    df = pd.DataFrame(
        {
            "unique_id": np.repeat(np.arange(n_ids), n_steps),
            "ds": np.tile(pd.date_range("2020", periods=n_steps, freq="h").values, n_ids),
            "y": np.random.default_rng(0).random(n_ids * n_steps),
        }
    )
    t0 = time.perf_counter()
    panel = to_panel(df)
    assert time.perf_counter() - t0 < 2.0 and panel.n_series == n_ids


# --------------------------------------------------------------------------------- CSV files


def test_read_csv_semicolon_and_decimal_comma(tmp_path):
    path = tmp_path / "eu.csv"
    path.write_text(
        "date;a;b\n2020-01-01 00:00;1,5;2\n2020-01-01 01:00;2,5;3\n2020-01-01 02:00;3,5;4\n"
    )
    df = read_csv(path, decimal=",")
    assert list(df.columns) == ["date", "a", "b"]
    np.testing.assert_allclose(to_panel(df).values[0], [1.5, 2.5, 3.5])
    with pytest.raises(DataError, match="decimal=','"):
        to_panel(read_csv(path))  # decimal commas read as text are reported, not dropped


def test_read_csv_semicolon_and_tab(tmp_path):
    for sep in (";", "\t"):
        path = tmp_path / "f.csv"
        path.write_text(
            sep.join(["ds", "v"]) + "\n" + "\n".join(f"{i}{sep}{i}.5" for i in range(4))
        )
        df = read_csv(path)
        assert list(df.columns) == ["ds", "v"] and df["v"].iloc[1] == 1.5


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("a,b\n", "no data rows"),
        ("a,b\n1,2\n3,4,5\n", "could not parse"),
    ],
)
def test_read_csv_errors(tmp_path, content, match):
    path = tmp_path / "x.csv"
    if content is not None:
        path.write_text(content)
    with pytest.raises(DataError, match=match):
        read_csv(path)


def test_read_csv_directory(tmp_path):
    with pytest.raises(DataError, match="is a directory"):
        read_csv(tmp_path)


# ------------------------------------------------------------------- timestamps and frequency


def test_unsorted_wide_rows_are_sorted_with_one_warning():
    df = wide(5).iloc[[0, 3, 1, 4, 2]]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        panel = to_panel(df)
    assert [str(w.message) for w in caught if "not sorted" in str(w.message)].__len__() == 1
    np.testing.assert_array_equal(panel.values[0], np.arange(5.0))
    assert panel.index[0].is_monotonic_increasing


def test_gap_fill_with_missing_policies():
    df = wide(6).drop(index=[2, 3])  # hours 2 and 3 missing; a = 0, 1, 4, 5
    with pytest.raises(
        DataError, match="missing timestamp 2020-01-01 02:00:00 after 2020-01-01 01:00"
    ):
        to_panel(df)
    with pytest.raises(DataError, match="2 missing"):
        to_panel(df, fill_gaps=True)  # the new rows are NaN and missing="error"
    interp = to_panel(df, fill_gaps=True, missing="interpolate")
    np.testing.assert_allclose(interp.values[0], [0, 1, 2, 3, 4, 5])
    assert len(interp.index[0]) == 6 and interp.freq == "h"
    filled = to_panel(df, fill_gaps=True, missing="ffill")
    np.testing.assert_allclose(filled.values[0], [0, 1, 1, 1, 4, 5])


def test_missing_values_policies_and_ends():
    df = wide(6, a=np.array([np.nan, 1.0, np.inf, 3.0, np.nan, np.nan]))
    with pytest.raises(DataError, match=r"column 'a' has 4 missing .*first at 2020-01-01 00:00"):
        to_panel(df)
    np.testing.assert_allclose(to_panel(df, missing="interpolate").values[0], [1, 1, 2, 3, 3, 3])
    np.testing.assert_allclose(to_panel(df, missing="ffill").values[0], [1, 1, 1, 3, 3, 3])


def test_long_gap_fill_per_id():
    df = long3().drop(index=[1])  # id B loses day 2
    panel = to_panel(df, fill_gaps=True, missing="interpolate")
    np.testing.assert_allclose(panel.values[0], [0, 1, 2, 3])
    assert list(panel.lengths()) == [4, 6, 3]


def test_calendar_frequency_month_start():
    df = wide(5, "MS").drop(index=[2])
    panel = to_panel(df, freq="MS", fill_gaps=True, missing="interpolate")
    assert panel.freq == "MS" and panel.index[0][2] == pd.Timestamp("2020-03-01")
    assert to_frame(panel, np.zeros((2, 1)))["date"].iloc[0] == pd.Timestamp("2020-06-01")


def test_explicit_freq_allows_two_rows():
    assert to_panel(wide(2), freq="h").freq == "h"
    with pytest.raises(DataError, match="too few to infer the frequency"):
        to_panel(wide(2))


def test_future_index():
    idx = future_index(pd.Timestamp("2020-01-31"), "ME", 2)
    assert list(idx) == [pd.Timestamp("2020-02-29"), pd.Timestamp("2020-03-31")]
    assert list(future_index(7, 2, 3)) == [9, 11, 13]


def test_panel_from_arrays():
    panel = panel_from_arrays(np.arange(12.0).reshape(2, 6), names=["p", "q"], freq="D")
    assert panel.names == ("p", "q") and panel.freq == "D" and list(panel.lengths()) == [6, 6]
    assert to_frame(panel, np.zeros((2, 1))).index[0] == pd.Timestamp("2020-01-07")


# ------------------------------------------------------------------------------- user errors


@pytest.mark.parametrize(
    ("make", "kwargs", "match"),
    [
        (lambda: pd.DataFrame(), {}, "empty"),
        (lambda: wide(4), {"target": "nope"}, "target column 'nope' not found; available"),
        (lambda: wide(4), {"time_col": "when"}, "time_col='when' is not a column"),
        (lambda: wide(4, a=["x"] * 4), {}, "no numeric column"),
        (
            lambda: wide(4, a=["1", "2", "oops", "4"]),
            {},
            "column 'a' has a non-numeric value 'oops'",
        ),
        (lambda: wide(4, a=[np.nan] * 4), {"missing": "ffill"}, "no finite values"),
        (lambda: wide(4), {"missing": "zero"}, "missing='zero' is not a policy"),
        (lambda: wide(4), {"freq": "fortnight"}, "freq='fortnight' is not a pandas frequency"),
        (lambda: wide(4), {"freq": 3}, "integer step but the time values are datetimes"),
        (
            lambda: wide(4, a=np.ones(4), other=pd.date_range("2000", periods=4)),
            {},
            "several columns",
        ),
        (lambda: pd.DataFrame({"v": np.ones(4)}, index=list("wxyz")), {}, "no time column found"),
        (
            lambda: long3().drop(columns="y"),
            {"id_col": "unique_id"},
            "no numeric column to forecast",
        ),
        (lambda: long3(), {"id_col": "shop"}, "id_col='shop' is not a column"),
        (lambda: long3(), {"target": ["y", "y"]}, "one target column"),
    ],
)
def test_user_errors(make, kwargs, match):
    with pytest.raises(DataError, match=match):
        to_panel(make(), **kwargs)


def test_bad_and_duplicate_timestamps():
    df = wide(4)
    df["date"] = ["2020-01-01 00:00", "2020-01-01 01:00", "not a date", "2020-01-01 03:00"]
    with pytest.raises(DataError, match="not a timestamp: 'not a date'"):
        to_panel(df)
    df = wide(4)
    df.loc[2, "date"] = df.loc[1, "date"]
    with pytest.raises(DataError, match="duplicate timestamp 2020-01-01 01:00"):
        to_panel(df)
    dup = pd.concat([long3(), long3().iloc[[5]]])  # also out of order: warns, then raises
    with (
        pytest.raises(DataError, match="series 'A' has duplicate timestamp 2021-03-02"),
        pytest.warns(UserWarning, match="not sorted"),
    ):
        to_panel(dup)


def test_irregular_steps_are_reported():
    df = wide(6)
    df.loc[3, "date"] += pd.Timedelta(minutes=30)
    with pytest.raises(DataError, match="not on the 'h' grid"):
        to_panel(df)


def test_non_frame_and_duplicate_columns():
    with pytest.raises(DataError, match="expected a pandas DataFrame"):
        to_panel(np.zeros((3, 2)))
    df = pd.DataFrame(np.zeros((4, 2)), columns=["a", "a"])
    with pytest.raises(DataError, match="column 'a' appears more than once"):
        to_panel(df)


def test_to_frame_shape_is_checked():
    panel = to_panel(wide(4))
    with pytest.raises(DataError, match="expected"):
        to_frame(panel, np.zeros((3, 2)))


def test_a_single_non_string_target_name():
    # A frame whose columns are integers: target=0 names one column, as target="y" would.
    df = pd.DataFrame({"ds": pd.date_range("2024", periods=30, freq="h"), 0: np.arange(30.0)})
    assert to_panel(df, time_col="ds", target=0).names == ("0",)
