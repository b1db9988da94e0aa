"""Nothing dropped silently, and long files read without guesswork (trellis_ts.data.io.columns)."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import ok, run
from trellis_ts.data import to_panel
from trellis_ts.errors import DataError

CLI = ["--d-model", "16", "--n-layers", "1", "--n-slots", "8", "--max-epochs", "1"]
HOURS = pd.date_range("2024-01-01", periods=200, freq="h")


def long(id_name="unique_id", time_name="timestamp", value_name="value", **extra) -> pd.DataFrame:
    parts = []
    for i in range(3):
        part = pd.DataFrame({id_name: f"s{i}", time_name: HOURS,
                             value_name: 5 + np.sin(np.arange(200) / 3 + i)})  # fmt: skip
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
    df = pd.DataFrame({"date": HOURS, "load": np.sin(np.arange(200) / 4), "temp": 1.0,
                       "note": "ok", "holiday": False, "updated": HOURS.astype(str)})  # fmt: skip
    with pytest.warns(UserWarning) as caught:
        panel = to_panel(df, time_col="date", target="load")
    assert panel.names == ("load",)
    (message,) = [str(w.message) for w in caught]
    assert message.startswith(
        "columns not used: 'temp' (numeric, not in target), 'note' (text), 'holiday' "
        "(true/false), 'updated' (a second time column)"
    )
    # Before: 'note' and the others vanished without a word. Now one warning line on stderr.
    result = ok("forecast", write(tmp_path, df), "--time-col", "date", "--target", "load", *CLI,
                "-o", tmp_path / "fc.csv")  # fmt: skip
    warnings = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert warnings == ["warning: " + message.replace("target=", "--target").replace(
        "time_col=", "--time-col").replace("id_col=", "--id-col")]  # fmt: skip


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
        (("unique_id", "timestamp", "value"), "long data: 3 series in 'unique_id', time 'timestamp', target 'value'"),
        (("store", "date", "sales"), "long data: 3 series in 'store', time 'date', target 'sales'"),
    ],
)  # fmt: skip
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
    with pytest.raises(DataError) as info:
        to_panel(df)
    message = str(info.value)
    assert "several columns could name the series (['store', 'region'])" in message
    assert (
        "id_col= naming one and target= naming the value column (one of ['sales', 'price'])"
        in message
    )
    result = run("forecast", write(tmp_path, df), *CLI)
    assert result.exit_code == 2 and "pass --id-col naming one and --target naming" in result.stderr
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
    df = pd.DataFrame({name: np.arange(first, first + 30), "date": pd.date_range(
        "2020-01-06", periods=30, freq="W-MON"), "value": np.arange(30.0)})  # fmt: skip
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
