"""Non-negative targets: `target_transform` keeps counts and sizes from going below zero, by
default ("auto") for targets never negative in the fit data."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import ok, run
from trellis_ts import TrellisForecaster
from trellis_ts.data.features import transforms
from trellis_ts.errors import DataError

SMALL = dict(
    d_model=16,
    n_heads=2,
    n_layers=1,
    n_slots=8,
    chunk_size=4,
    max_epochs=2,
    prediction_length=24,
    verbose=False,
)


def sunspots(n=600, seed=0) -> pd.DataFrame:
    """Monthly counts: active phases of an 11-year cycle, zero in between (45% zeros)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    phase = np.sin(2 * np.pi * t / 132)
    s = np.clip(40 * phase, 0, None) ** 1.5 / 6 + rng.gamma(0.5, 2, n) * (phase > 0)
    return pd.DataFrame({"Month": pd.date_range("1900-01-01", periods=n, freq="MS"), "Sunspots": s})


@pytest.fixture(scope="module")
def forecasts():
    out = {}
    for name in ("none", "nonnegative", "log1p"):
        f = TrellisForecaster(**SMALL, loss="quantile", target_transform=name).fit(sunspots())
        out[name] = (f, f.predict(quantiles=[0.1, 0.9]))
    return out


def test_plain_forecasts_of_these_counts_go_below_zero(forecasts):
    _, fc = forecasts["none"]
    assert fc.drop(columns="Month").to_numpy().min() < 0  # the case the transforms are for


@pytest.mark.parametrize("name", ["nonnegative", "log1p"])
def test_transformed_forecasts_and_quantiles_never_go_below_zero(forecasts, name, tmp_path):
    f, fc = forecasts[name]
    values = fc.drop(columns="Month").to_numpy()
    assert np.isfinite(values).all() and values.min() >= 0
    assert (fc["Sunspots_q0.1"] <= fc["Sunspots_q0.9"]).all()  # still ordered
    assert f.config_.target_transform == name
    f.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")  # stored with the model
    assert loaded.config_.target_transform == name
    pd.testing.assert_frame_equal(loaded.predict(quantiles=[0.1, 0.9]), fc)
    assert loaded.evaluate(sunspots(700, seed=1).iloc[-200:], n_windows=2)["mae"] >= 0


def test_negative_data_is_refused_by_the_non_negative_transforms():
    df = sunspots()
    df.loc[10, "Sunspots"] = -3.0
    with pytest.raises(DataError, match="series 'Sunspots' has a negative value \\(-3\\)"):
        TrellisForecaster(**SMALL, target_transform="log1p").fit(df)


def test_inverse_maps_back_and_clamps():
    z = np.array([-5.0, 0.0, np.log1p(3.0)])
    np.testing.assert_allclose(transforms.inverse("log1p", z), [0.0, 0.0, 3.0])
    np.testing.assert_allclose(transforms.inverse("nonnegative", np.array([-1.0, 2.0])), [0, 2])
    np.testing.assert_allclose(transforms.inverse("none", np.array([-1.0])), [-1.0])


def test_command_line_option(tmp_path):
    data = tmp_path / "sunspots.csv"
    sunspots().to_csv(data, index=False)
    args = [
        "--d-model",
        "16",
        "--n-layers",
        "1",
        "--n-slots",
        "8",
        "--max-epochs",
        "2",
        "--model",
        "encoder",
        "--prediction-length",
        "24",
        "--loss",
        "quantile",
        "-q",
    ]
    result = ok("forecast", data, *args, "--target-transform", "nonnegative")
    fc = pd.read_csv(StringIO(result.stdout))
    assert fc.drop(columns="Month").to_numpy().min() >= 0 and len(fc.columns) == 5
    bad = run("forecast", data, "--target-transform", "clip")
    assert bad.exit_code == 2
    assert (
        "--target-transform clip is not valid; choose one of: auto, none, log1p, nonnegative"
        in bad.stderr
    )


def test_intervals_follow_the_transform(forecasts):
    f, _ = forecasts["log1p"]
    fc = f.predict(level=[80])
    low, point, high = fc["Sunspots_lo80"], fc["Sunspots"], fc["Sunspots_hi80"]
    assert (low >= 0).all() and (low <= point).all() and (point <= high).all()


def test_log1p_trains_and_forecasts_on_the_scaled_log_values():
    # The model's series are log1p of the data scaled by their own mean and std (about 0 and 1),
    # not the raw values scaled by the log's statistics; its forecasts come back in data units.
    from trellis_ts.data import to_panel
    from trellis_ts.forecaster.inputs import InputScaling

    df = sunspots().assign(Sunspots=lambda d: 100 + 50 * d["Sunspots"])
    panel = to_panel(df)
    series = InputScaling.fit(panel, transform="log1p").series_set(panel).target[0]
    assert abs(series.mean()) < 1e-4 and abs(series.std() - 1) < 1e-3
    f = TrellisForecaster(**SMALL, target_transform="log1p").fit(df)
    fc = f.predict()["Sunspots"]
    assert (
        np.isfinite(fc).all()
        and fc.between(df["Sunspots"].min() / 2, df["Sunspots"].max() * 2).all()
    )


def test_predict_and_backtest_transform_the_history_once(forecasts, monkeypatch):
    # The scaled series and the statistics that scale the forecasts back come from one pass of
    # the transform over the history (per series; intervals would transform the contexts too).
    f, before = forecasts["log1p"]
    calls = []
    forward = transforms.forward
    monkeypatch.setattr(transforms, "forward", lambda *a: calls.append(a[2]) or forward(*a))
    pd.testing.assert_frame_equal(f.predict(quantiles=[0.1, 0.9]), before)
    assert calls == ["series 'Sunspots'"]
    calls.clear()
    with pytest.warns(UserWarning, match="in-sample"):  # the fit data: fine for counting
        f.backtest(sunspots(), n_windows=2)
    assert calls == ["series 'Sunspots'"]


# ------------------------------------------------------------------------------ "auto" (default)


def pedestrians(n=24 * 40, seed=0) -> pd.DataFrame:
    """Hourly counts, near zero at night: plain forecasts dip below zero there."""
    rng = np.random.default_rng(seed)
    h = np.arange(n) % 24
    day = np.clip(np.sin(np.pi * (h - 6) / 14), 0, None) * (h >= 6) * (h <= 20)
    return pd.DataFrame(
        {
            "Date_Time": pd.date_range("2015-01-01", periods=n, freq="h"),
            "Count": rng.poisson(1500 * day**3 + 2),
        }
    )


HOURLY = SMALL | dict(context_length=96)


@pytest.mark.filterwarnings("ignore:.*in-sample")  # backtests on the fit data: fine here
def test_counts_are_clamped_at_zero_by_default_and_said_so(tmp_path):
    # Pedestrian counts were forecast negative (27 of 192 backtest values) without a word.
    df = pedestrians()
    plain = TrellisForecaster(**HOURLY, target_transform="none").fit(df)  # the way to turn it off
    rows = plain.backtest(df, n_windows=8, return_forecasts=True)
    assert (rows["forecast"] < 0).any() and "clamped" not in plain.data_summary_
    f = TrellisForecaster(**HOURLY).fit(df)
    assert f.config_.target_transform == "auto"
    assert "; forecasts clamped at 0 (never negative in the data; target_transform='none'" in (
        f.data_summary_
    )
    assert f.summary_.extra["clamped_at_zero"] == ["Count"]
    fc = f.predict(level=[80])
    assert fc.drop(columns="Date_Time").to_numpy().min() >= 0  # forecasts and interval bounds
    rows = f.backtest(df, n_windows=8, level=[80], return_forecasts=True)  # the same forecasts
    assert rows[["forecast", "forecast_lo80", "forecast_hi80"]].to_numpy().min() >= 0
    assert f.evaluate(df, n_windows=8)["mae"] < plain.evaluate(df, n_windows=8)["mae"] * 1.5
    f.save(tmp_path / "m")
    pd.testing.assert_frame_equal(TrellisForecaster.load(tmp_path / "m").predict(level=[80]), fc)


def test_only_targets_never_negative_are_clamped():
    df = pedestrians().assign(Temp=lambda d: np.sin(np.arange(len(d)) / 24 * 2 * np.pi) * 5 - 1)
    f = TrellisForecaster(**HOURLY, loss="quantile").fit(df)
    assert f.scaling_.nonnegative == ("Count",)
    assert "forecasts of 'Count' clamped at 0" in f.data_summary_
    fc = f.predict(quantiles=[0.1, 0.9])
    assert fc.filter(like="Count").to_numpy().min() >= 0 and fc["Temp_q0.1"].min() < 0
    long = pd.concat([pedestrians().assign(site=s) for s in ("a", "b")], ignore_index=True)
    long.loc[5, "Count"] = -1  # one negative value: the long target is not a count
    f = TrellisForecaster(**HOURLY).fit(long)
    assert f.scaling_.nonnegative == () and "clamped" not in f.data_summary_


def test_a_model_saved_before_target_transform_keeps_its_forecasts_unclamped():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "saved_models" / "v0.1.0"
    loaded = TrellisForecaster.load(folder / "model")  # its config has no target_transform
    assert loaded.config_.target_transform == "none" and loaded.scaling_.nonnegative == ()
    assert loaded.predict()["b"].min() < 0  # as that version forecast it
