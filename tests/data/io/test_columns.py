"""Nothing dropped silently, and long files read without guesswork (trellis_ts.data.io.columns)."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import ok, run
from trellis_ts.data import to_panel
from trellis_ts.data.io.writing import to_frame
from trellis_ts.errors import DataError

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
]
HOURS = pd.date_range("2024-01-01", periods=200, freq="h")


def long(id_name="unique_id", time_name="timestamp", value_name="value", **extra) -> pd.DataFrame:
    parts = []
    for i in range(3):
        part = pd.DataFrame(
            {id_name: f"s{i}", time_name: HOURS, value_name: 5 + np.sin(np.arange(200) / 3 + i)}
        )
        for name, value in extra.items():
            part[name] = value
        parts.append(part)
    return pd.concat(parts, ignore_index=True)


def write(tmp_path, df: pd.DataFrame):
    path = tmp_path / "data.csv"
    df.to_csv(path, index=False)
    return path


# ------------------------------------------------------------------------------ unused columns


def test_every_unused_column_is_named_in_one_warning(tmp_path):
    df = pd.DataFrame(
        {
            "date": HOURS,
            "load": np.sin(np.arange(200) / 4),
            "temp": 1.0,
            "note": "ok",
            "holiday": False,
            "updated": HOURS.astype(str),
        }
    )
    with pytest.warns(UserWarning) as caught:
        panel = to_panel(df, time_col="date", target="load")
    assert panel.names == ("load",)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(
        "columns not used: 'temp' (numeric, not in target), 'note' (text), 'holiday' "
        "(true/false), 'updated' (a second time column)"
    )
    # Before: 'note' and the others vanished without a word. Now one warning line on stderr.
    result = ok(
        "forecast",
        write(tmp_path, df),
        "--time-col",
        "date",
        "--target",
        "load",
        *CLI,
        "-o",
        tmp_path / "fc.csv",
    )
    warnings = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert warnings == [
        "warning: "
        + message.replace("target=", "--target").replace("past_covariates=", "--past-covariates")
    ]


def test_unused_column_advice_fits_the_options_given():
    # It asked for target= and time_col= even when both were given.
    df = pd.DataFrame({"date": HOURS, "load": 1.0, "temp": 2.0, "note": "x"})
    with pytest.warns(UserWarning) as caught:
        to_panel(df, time_col="date", target="load")
    message = str(caught[0].message)
    assert "time_col=" not in message and "pass target=" not in message
    assert message.endswith(
        "to use one, add it to target= to forecast it, or pass it as a "
        "covariate (past_covariates=, ...) to use it as an input."
    )
    with pytest.warns(UserWarning, match="'note' .text.; pass target= to choose the columns"):
        to_panel(df)  # target not given: the option that chooses
    frame = long(time_name="ds", value_name="y", stamp=HOURS.astype(str))  # 'ds' is the time
    with pytest.warns(
        UserWarning, match="'stamp' .a second time column.; pass target= and time_col= to choose"
    ):
        to_panel(frame)
    with pytest.warns(UserWarning, match="'note' .text.; to use one as an input, pass it as a cov"):
        to_panel(long(note="x"), id_col="unique_id", target="value")


def test_default_targets_are_all_numeric_columns_and_text_is_named():
    df = pd.DataFrame({"date": HOURS, "a": 1.0, "b": 2, "label": "x"})
    with pytest.warns(UserWarning, match="columns not used: 'label' \\(text\\)"):
        assert to_panel(df).names == ("a", "b")


def test_text_in_a_value_column_is_an_error_naming_it(tmp_path):
    df = pd.DataFrame({"date": HOURS, "a": ["1.5"] * 199 + ["n/a?"]})
    with pytest.raises(DataError, match="column 'a' has a non-numeric value 'n/a\\?'"):
        to_panel(df)
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "'a'" in result.stderr


# ------------------------------------------------------------------------------ long files


@pytest.mark.parametrize(
    ("names", "taken"),
    [
        (
            ("unique_id", "timestamp", "value"),
            "long data: 3 series in 'unique_id', time 'timestamp', target 'value'",
        ),
        (("store", "date", "sales"), "long data: 3 series in 'store', time 'date', target 'sales'"),
    ],
)
def test_long_files_are_read_without_options(names, taken, tmp_path):
    df = long(*names)
    panel = to_panel(df)
    layout = panel.layout
    assert layout.format == "long" and (layout.id_col, layout.time_col, layout.target_col) == names
    assert panel.describe() == taken
    # Before: unique_id,timestamp,value took three errors, one option at a time.
    result = ok("forecast", write(tmp_path, df), *CLI)
    assert taken in result.stderr
    fc = pd.read_csv(StringIO(result.stdout))
    assert list(fc.columns) == list(names) and fc[names[0]].nunique() == 3


def test_ambiguous_long_file_lists_the_columns_and_options_at_once(tmp_path):
    df = long("store", "date", "sales", region="north", price=1.0)
    df["region"] = np.where(df["store"] == "s0", "north", "south")
    df = pd.concat([df, df[df["store"] == "s1"]])  # s1 twice: no key names the series
    with pytest.raises(DataError) as info:
        to_panel(df)
    message = str(info.value)
    assert "several columns could name the series (['store', 'region'])" in message
    assert (
        "id_col= naming the column, or the list of columns, that name the series and target= "
        "naming the value column (one of ['sales', 'price'])" in message
    )
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "that name the series and --target naming" in result.stderr


def test_a_label_constant_within_each_series_joins_the_key(tmp_path):
    # Before: an error asking which of 'store' and 'region' names the series. Both do: the key
    # is the pair, and both columns are written back.
    df = long("store", "date", "sales", price=1.0)
    df["region"] = np.where(df["store"] == "s0", "north", "south")
    with pytest.warns(UserWarning, match="'price'"):
        panel = to_panel(df, target="sales")
    assert panel.layout.id_col == ("store", "region") and panel.names[0] == "s0|north"
    ok("forecast", write(tmp_path, df), "--id-col", "store", "--target", "sales", *CLI, "-q")


def test_long_file_with_several_value_columns_asks_for_target(tmp_path):
    df = long("store", "date", "sales", price=1.0)
    with pytest.raises(DataError, match="several numeric columns \\(\\['sales', 'price'\\]\\)"):
        to_panel(df)
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "pass --target naming one of" in result.stderr
    with pytest.warns(UserWarning, match="'price' \\(numeric, not in target\\)"):
        assert to_panel(df, target="sales").layout.target_col == "sales"


def test_repeated_timestamps_without_an_id_column_suggest_one():
    df = pd.DataFrame({"date": np.repeat(HOURS[:5], 2), "v": np.arange(10.0)})
    with pytest.raises(DataError, match="duplicate timestamp .* pass id_col= naming the series"):
        to_panel(df)


# ------------------------------------------------------------------------------ row numbers


@pytest.mark.parametrize("name,first", [("rownames", 1), ("", 1), ("Unnamed: 0", 0)])
def test_row_numbers_of_r_and_spreadsheet_exports_are_an_index_not_a_series(name, first):
    # A weekly R export was forecast as two series, 'rownames' and the value.
    df = pd.DataFrame(
        {
            name: np.arange(first, first + 30),
            "date": pd.date_range("2020-01-06", periods=30, freq="W-MON"),
            "value": np.arange(30.0),
        }
    )
    with pytest.warns(UserWarning, match=f"column '{name}' holds the row numbers") as caught:
        panel = to_panel(df)
    assert panel.names == ("value",) and panel.freq == "W-MON"
    assert len(caught) == 1  # the note only: no 'columns not used' advice for it
    # In a long file too: the row numbers run over the whole file.
    frame = long().rename_axis(name).reset_index()
    frame[name] += first
    with pytest.warns(UserWarning, match="holds the row numbers"):
        assert to_panel(frame).names == ("s0", "s1", "s2")


def test_numbered_columns_that_are_not_row_numbers_stay():
    # Named otherwise, not starting at 0 or 1, or with a step other than 1: values, as before.
    df = pd.DataFrame({"date": HOURS[:20], "count": np.arange(1, 21), "": np.arange(3, 23)})
    panel = to_panel(df)
    assert panel.names == ("count", "")
    assert to_panel(df, target=["count", ""]).names == ("count", "")
    df[""] = np.arange(1, 21)
    assert to_panel(df, target=["count", ""]).names == ("count", "")  # named: taken


# ------------------------------------------------------------------------------ several key columns


def tourism(n_quarters: int = 24) -> pd.DataFrame:
    """A tsibble-style panel keyed by three text columns (State follows Region)."""
    quarters = pd.period_range("1998Q1", periods=n_quarters, freq="Q").strftime("%Y Q%q")
    rows = [
        (q, region, state, purpose, 100 + 10 * np.sin(k * np.pi / 2) + j)
        for j, ((region, state), purpose) in enumerate(
            (r, p)
            for r in [
                ("Adelaide", "South Australia"),
                ("Sydney", "New South Wales"),
                ("Hobart", "Tasmania"),
            ]
            for p in ["Business", "Holiday"]
        )
        for k, q in enumerate(quarters)
    ]
    return pd.DataFrame(rows, columns=["Quarter", "Region", "State", "Purpose", "Trips"])


def test_several_key_columns_name_the_series_together():
    # 304 tourism series were glued into one 24,320-row series; now each key is one series.
    df = tourism()
    panel = to_panel(df)
    assert panel.layout.id_col == ("Region", "State", "Purpose") and panel.n_series == 6
    assert panel.names[0] == "Adelaide|South Australia|Business"
    assert panel.ids[0] == ("Adelaide", "South Australia", "Business")
    assert panel.freq == "QS-OCT" and "6 series keyed by 'Region', 'State', 'Purpose'" in (
        panel.describe()
    )
    out = to_frame(panel, np.zeros((6, 2)))  # written back as the original columns
    assert list(out.columns) == ["Region", "State", "Purpose", "Quarter", "Trips"]
    assert out.iloc[2, :3].tolist() == ["Adelaide", "South Australia", "Holiday"]
    assert to_panel(df, id_col=["Region", "State", "Purpose"]).names == panel.names
    with pytest.warns(UserWarning, match="'State' .text."):
        assert to_panel(df, id_col=["Region", "Purpose"]).names[0] == "Adelaide|Business"


def test_a_label_that_varies_within_a_series_is_not_part_of_the_key():
    df = long(id_name="store")
    df["weekday"] = df["timestamp"].dt.day_name()  # text, but a property of the row
    with pytest.warns(UserWarning, match="'weekday' .text."):
        panel = to_panel(df)
    assert panel.layout.id_col == "store" and panel.names == ("s0", "s1", "s2")


def test_key_columns_that_still_repeat_a_timestamp_are_refused_with_the_fix():
    df = tourism().drop(columns="Purpose")
    with pytest.raises(DataError, match="pass id_col= naming the column, or the list of columns"):
        to_panel(df)
    with pytest.raises(DataError, match="id_col='Nowhere' is not a column"):
        to_panel(tourism(), id_col=["Region", "Nowhere"])


def test_cli_reads_and_writes_several_id_columns(tmp_path):
    path = tmp_path / "tourism.csv"
    tourism().to_csv(path, index=False)
    model = tmp_path / "m"
    ok(
        "fit",
        path,
        "--id-col",
        "Region,State,Purpose",
        "--model-dir",
        model,
        "--prediction-length",
        "2",
        "--context-length",
        "8",
        *CLI,
        "-q",
    )
    fc = pd.read_csv(StringIO(ok("predict", "--model-dir", model, "-q").stdout))
    assert list(fc.columns) == ["Region", "State", "Purpose", "Quarter", "Trips"]
    assert len(fc) == 12 and fc["Quarter"].tolist()[:2] == ["2004 Q1", "2004 Q2"]
    frame = pd.read_csv(StringIO(ok("future-frame", "--model-dir", model, "-q").stdout))
    assert list(frame.columns) == ["Region", "State", "Purpose", "Quarter"]
    ok("predict", path, "--model-dir", model, "--plot", tmp_path / "fc.png", "-q")
