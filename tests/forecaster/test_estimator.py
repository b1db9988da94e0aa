"""TrellisForecaster: the scikit-learn contract, formats and timestamps, persistence, learning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from trellis_ts import TrellisForecaster
from trellis_ts.data import make_demo_frame
from trellis_ts.errors import ConfigError, DataError


def wide_frame(n=240, freq="h", channels=("a", "b"), seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    data = {
        c: 10 + np.sin(2 * np.pi * t / 24 + i) + 0.1 * rng.standard_normal(n)
        for i, c in enumerate(channels)
    }
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq=freq), **data})


def test_contract(tiny):
    f = TrellisForecaster(**tiny)
    with pytest.raises(NotFittedError):
        f.predict()
    assert clone(f).get_params() == f.get_params()
    f.set_params(d_model=8, n_heads=1)
    assert f.get_params()["d_model"] == 8
    assert f.fit(wide_frame()) is f
    assert hasattr(f, "model_") and not hasattr(clone(f), "model_")


def test_invalid_parameter_raises_at_fit_not_init(tiny):
    f = TrellisForecaster(**{**tiny, "mixer": "lstm"})  # storing is fine
    with pytest.raises(ConfigError, match="mixer"):
        f.fit(wide_frame())


@pytest.mark.parametrize("freq", ["h", "D", "15min"])
def test_wide_forecast_has_future_timestamps_and_columns(tiny, freq):
    df = wide_frame(freq=freq)
    fc = TrellisForecaster(**tiny).fit(df).predict()
    assert list(fc.columns) == ["date", "a", "b"]
    expected = pd.date_range(df["date"].iloc[-1], periods=13, freq=freq)[1:]
    assert (pd.DatetimeIndex(fc["date"]) == expected).all()
    assert np.isfinite(fc[["a", "b"]].to_numpy()).all()


def test_datetime_index_and_integer_index(tiny):
    df = wide_frame().set_index("date")
    fc = TrellisForecaster(**tiny).fit(df).predict()
    assert isinstance(fc.index, pd.DatetimeIndex) and fc.index[0] == df.index[-1] + pd.Timedelta(
        "1h"
    )
    plain = wide_frame().drop(columns="date")
    fc_int = TrellisForecaster(**tiny).fit(plain).predict()
    assert list(fc_int.columns) == ["a", "b"] and list(fc_int.index) == list(range(240, 252))


def test_long_frame_with_three_ids(tiny):
    parts = []
    for i, n in enumerate([200, 240, 260]):
        d = wide_frame(n=n, channels=("y",), seed=i)
        parts.append(pd.DataFrame({"unique_id": f"s{i}", "ds": d["date"], "y": d["y"]}))
    df = pd.concat(parts, ignore_index=True)
    fc = TrellisForecaster(**tiny).fit(df).predict()
    assert list(fc.columns) == ["unique_id", "ds", "y"]
    assert fc.groupby("unique_id").size().to_dict() == {"s0": 12, "s1": 12, "s2": 12}
    for i, part in enumerate(parts):
        first = fc.loc[fc["unique_id"] == f"s{i}", "ds"].iloc[0]
        assert first == part["ds"].iloc[-1] + pd.Timedelta("1h")


def test_predict_on_new_history_matches_columns_by_name(tiny):
    df = wide_frame(n=300)
    f = TrellisForecaster(**tiny).fit(df.iloc[:240])
    fc = f.predict(df)
    fc_swapped = f.predict(df[["date", "b", "a"]])
    pd.testing.assert_frame_equal(fc, fc_swapped)
    assert fc["date"].iloc[0] == df["date"].iloc[-1] + pd.Timedelta("1h")
    with pytest.raises(DataError, match="missing"):
        f.predict(df[["date", "a"]])
    with pytest.raises(DataError, match="context_length=48"):
        f.predict(df.iloc[-20:])


def test_same_seed_same_forecast_and_save_load_is_bit_identical(tiny, tmp_path):
    df = wide_frame()
    first = TrellisForecaster(**tiny, random_state=3).fit(df)
    second = TrellisForecaster(**tiny, random_state=3).fit(df)
    pd.testing.assert_frame_equal(first.predict(), second.predict(), check_exact=True)
    first.save(tmp_path / "model")
    loaded = TrellisForecaster.load(tmp_path / "model")
    pd.testing.assert_frame_equal(loaded.predict(), first.predict(), check_exact=True)
    pd.testing.assert_frame_equal(loaded.predict(df), first.predict(df), check_exact=True)
    assert loaded.get_params() == first.get_params()


def test_evaluate_and_backtest(tiny):
    df = wide_frame(n=300)
    f = TrellisForecaster(**tiny).fit(df.iloc[:240])
    table = f.backtest(df, n_windows=2)
    assert len(table) == 4 and set(table["series"]) == {"a", "b"}
    metrics = f.evaluate(df, step=12)
    assert metrics["n_windows"] == 2 * ((300 - 48 - 12) // 12 + 1)
    assert all(np.isfinite(metrics[k]) for k in ("mse", "mae", "mase", "smape"))


def test_quantile_forecasts(tiny):
    f = TrellisForecaster(**tiny, loss="quantile", quantiles=(0.1, 0.5, 0.9)).fit(wide_frame())
    fc = f.predict(quantiles=[0.1, 0.9])
    assert list(fc.columns) == ["date", "a", "b", "a_q0.1", "b_q0.1", "a_q0.9", "b_q0.9"]
    assert (fc["a_q0.1"] <= fc["a"]).all() and (fc["a"] <= fc["a_q0.9"]).all()
    with pytest.raises(ConfigError, match="not trained"):
        f.predict(quantiles=[0.3])
    metrics = f.evaluate(wide_frame(n=120, seed=1))
    assert 0 <= metrics["coverage"] <= 1 and metrics["wql"] > 0


def test_model_learns_a_noiseless_seasonal_series(tiny):
    df = make_demo_frame(n_steps=1200, n_channels=2, noise=0.0, seed=1)
    train, test = df.iloc[:-12], df.iloc[-12:]
    params = {**tiny, "max_epochs": 8, "d_model": 32, "learning_rate": 3e-3}
    fc = TrellisForecaster(**params).fit(train).predict()
    cols = [c for c in df.columns if c != "date"]
    err = ((fc[cols].to_numpy() - test[cols].to_numpy()) ** 2).mean()
    mean_baseline = ((train[cols].iloc[-48:].mean().to_numpy() - test[cols].to_numpy()) ** 2).mean()
    assert err < 0.1 * mean_baseline, (err, mean_baseline)


def test_etth1_api(tiny, etth1_path):
    df = pd.read_csv(etth1_path).iloc[:1500]
    f = TrellisForecaster(**tiny).fit(df)
    fc = f.predict()
    assert list(fc.columns) == list(df.columns)
    assert pd.Timestamp(fc["date"].iloc[0]) == pd.Timestamp(df["date"].iloc[-1]) + pd.Timedelta(
        "1h"
    )


@pytest.mark.parametrize("model", ["dlinear", "seasonal_naive"])
def test_baselines_through_the_estimator(tiny, model, tmp_path):
    df = wide_frame()
    f = TrellisForecaster(**tiny, model=model).fit(df)
    fc = f.predict()
    assert list(fc.columns) == ["date", "a", "b"] and len(fc) == 12
    if model == "seasonal_naive":  # hourly data: the season is one day
        assert f.config_.season_length == 24
        np.testing.assert_allclose(fc["a"].to_numpy(), df["a"].to_numpy()[-24:-12])
    f.save(tmp_path / model)
    pd.testing.assert_frame_equal(TrellisForecaster.load(tmp_path / model).predict(), fc)
