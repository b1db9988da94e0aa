"""Backtest forecasts: one row per series, cutoff and horizon step, consistent with predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY as BASE_TINY
from trellis_ts import TrellisForecaster
from trellis_ts.errors import ConfigError

TINY = {**BASE_TINY, "context_length": 24, "prediction_length": 6}
COLUMNS = ["series", "cutoff", "timestamp", "horizon", "actual", "forecast"]


def wide_frame(n: int = 200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "a": 10 + np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
            "b": 3 * np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n),
        }
    )


def test_backtest_forecasts_rows_match_the_data_and_predict():
    df = wide_frame()
    model = TrellisForecaster(**TINY).fit(df.iloc[:150])
    fc = model.backtest(df, n_windows=3, step=4, return_forecasts=True)
    assert list(fc.columns) == COLUMNS
    assert len(fc) == 2 * 3 * 6 and list(fc["horizon"].iloc[:6]) == [1, 2, 3, 4, 5, 6]
    assert fc.groupby("series").size().to_dict() == {"a": 18, "b": 18}
    assert sorted(fc["cutoff"].unique()) == list(df["date"].iloc[[-6 - 1 - 8, -6 - 1 - 4, -6 - 1]])
    # actual: the data's value at each timestamp; every timestamp after its cutoff
    values = df.set_index("date")
    for name in ("a", "b"):
        rows = fc[fc["series"] == name]
        np.testing.assert_array_equal(rows["actual"], values.loc[rows["timestamp"], name])
    assert ((fc["timestamp"] - fc["cutoff"]) == pd.to_timedelta(fc["horizon"], unit="h")).all()
    # each window's forecast is what predict gives from the history up to its cutoff
    for cutoff, rows in fc.groupby("cutoff"):
        expected = model.predict(df[df["date"] <= cutoff])
        got = rows.pivot(index="timestamp", columns="series", values="forecast")
        np.testing.assert_allclose(
            got[["a", "b"]].to_numpy(), expected[["a", "b"]].to_numpy(), rtol=1e-5, atol=1e-6
        )


def test_metrics_and_forecasts_agree():
    df = wide_frame()
    model = TrellisForecaster(**TINY).fit(df.iloc[:150])
    table = model.backtest(df, step=6, level=[80])
    fc = model.backtest(df, step=6, level=[80], return_forecasts=True)
    assert len(fc) == 6 * len(table)
    err = fc.groupby(["series", "cutoff"], sort=False).apply(
        lambda r: np.mean((r["forecast"] - r["actual"]) ** 2), include_groups=False
    )
    np.testing.assert_allclose(err.to_numpy(), table["mse"].to_numpy(), rtol=1e-9)
    inside = (fc["actual"] >= fc["forecast_lo80"]) & (fc["actual"] <= fc["forecast_hi80"])
    assert inside.mean() == pytest.approx(table["coverage80"].mean())
    assert {"coverage80", "width80"} <= set(model.evaluate(df, level=[80]))


def test_quantile_and_interval_columns_and_long_layout():
    df = wide_frame()
    long = df.melt(id_vars="date", var_name="store", value_name="sales")
    model = TrellisForecaster(**TINY, loss="quantile").fit(
        long.iloc[: len(long) - 10], id_col="store", time_col="date", target="sales"
    )
    fc = model.backtest(long, n_windows=2, level=[50, 90], return_forecasts=True)
    assert list(fc.columns) == COLUMNS + [
        "forecast_q0.1",
        "forecast_q0.5",
        "forecast_q0.9",
        "forecast_lo50",
        "forecast_hi50",
        "forecast_lo90",
        "forecast_hi90",
    ]
    assert set(fc["series"]) == {"a", "b"} and len(fc) == 2 * 2 * 6
    np.testing.assert_array_equal(fc["forecast"], fc["forecast_q0.5"])
    assert (fc["forecast_lo90"] <= fc["forecast_lo50"]).all()
    assert (fc["forecast_hi50"] <= fc["forecast_hi90"]).all()


def test_bad_backtest_arguments():
    model = TrellisForecaster(**TINY).fit(wide_frame())
    with pytest.raises(ConfigError, match="step=0 must be a positive integer"):
        model.backtest(wide_frame(), step=0, return_forecasts=True)
    with pytest.raises(ConfigError, match="n_windows"):
        model.backtest(wide_frame(), n_windows=0)
