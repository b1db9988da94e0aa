"""Split-conformal intervals: coverage on held-out data, shape, per-series thresholds, errors.

Each fit is a tiny model on synthetic sines with Gaussian noise, whose true spread is known.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import TINY as BASE_TINY
from trellis_ts import TrellisForecaster
from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.conformal import PER_SERIES_MIN_WINDOWS

TINY = {**BASE_TINY, "context_length": 24, "prediction_length": 6, "learning_rate": 1e-2}
BUDGET = dict(TINY, max_epochs=4, windows_per_epoch=1024)


def sine_frame(n: int, sigmas=(0.5, 0.5, 0.5), seed: int = 0) -> pd.DataFrame:
    """Daily sines (level 5, amplitude 2) plus N(0, sigma^2) noise, one column per sigma."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    columns = {
        f"s{i}": 5 + 2 * np.sin(2 * np.pi * t / 24 + i) + s * rng.standard_normal(n)
        for i, s in enumerate(sigmas)
    }
    return pd.DataFrame({"date": pd.date_range("2024-01-01", periods=n, freq="h"), **columns})


def inside(fc: pd.DataFrame, truth: pd.DataFrame, names, level: int) -> np.ndarray:
    return np.stack(
        [
            (truth[n].to_numpy() >= fc[f"{n}_lo{level}"].to_numpy())
            & (truth[n].to_numpy() <= fc[f"{n}_hi{level}"].to_numpy())
            for n in names
        ]
    )


@pytest.mark.parametrize("loss", ["mse", "quantile"])
def test_intervals_cover_held_out_noise_at_their_level(loss):
    """80% and 95% intervals on 1,500 held-out values of sine + N(0, 0.5^2) noise.

    Sampling error of a coverage is about 1 point at 80% and 0.6 at 95% (1,500 values), the
    calibration's own (525 pooled windows per step) about as much again. The tolerances (5 and
    3 points) still fail the plausible mistakes: no correction of a point model (no width), a
    +-1 sigma band (68%), intervals of the wrong level (80 for 95), scores not scaled back.
    """
    df = sine_frame(900 + 500)
    train, test = df.iloc[:900], df.iloc[900 - 24 :]
    model = TrellisForecaster(**BUDGET, loss=loss).fit(train)
    assert model.calibration_.kind == ("band" if loss == "quantile" else "residual")
    assert model.calibration_.groups == []  # 175 windows per series: pooled
    metrics = model.evaluate(test, level=[80, 95])  # non-overlapping windows
    assert metrics["n_windows"] == 3 * (500 // 6)
    assert metrics["coverage80"] == pytest.approx(0.80, abs=0.05), metrics
    assert metrics["coverage95"] == pytest.approx(0.95, abs=0.03), metrics
    # 2 * 1.28 sigma and 2 * 1.96 sigma wide, plus the model's own error
    assert 1.0 < metrics["width80"] < 1.8 and 1.6 < metrics["width95"] < 2.8, metrics

    fc = model.predict(level=[95, 80])
    names = ["s0", "s1", "s2"]
    expected = ["date", *names] + [
        f"{n}_{side}{lvl}" for lvl in (80, 95) for side in ("lo", "hi") for n in names
    ]
    assert list(fc.columns) == expected
    for n in names:  # nested, and around the point forecast
        assert (fc[f"{n}_lo95"] <= fc[f"{n}_lo80"]).all() and (fc[f"{n}_lo80"] <= fc[n]).all()
        assert (fc[n] <= fc[f"{n}_hi80"]).all() and (fc[f"{n}_hi80"] <= fc[f"{n}_hi95"]).all()
        assert (fc[f"{n}_hi80"] - fc[f"{n}_lo80"]).min() > 0.5


def test_each_series_gets_its_own_thresholds_when_it_has_enough_windows():
    # s0 is nearly noiseless, s1 noisy: pooled thresholds would over-cover s0 and under-cover s1.
    df = sine_frame(1400 + 600, sigmas=(0.1, 1.0), seed=1)
    train, test = df.iloc[:1400], df.iloc[1400 - 24 :]
    model = TrellisForecaster(**BUDGET).fit(train)
    calibration = model.calibration_
    assert calibration.groups == ["s0", "s1"]
    assert min(calibration.counts[1:]) >= PER_SERIES_MIN_WINDOWS
    table = model.backtest(test, level=[80])
    per_series = table.groupby("series")["coverage80"].mean()
    assert per_series["s0"] == pytest.approx(0.8, abs=0.07), per_series
    assert per_series["s1"] == pytest.approx(0.8, abs=0.07), per_series
    widths = table.groupby("series")["width80"].mean()
    assert widths["s1"] > 4 * widths["s0"]


def test_new_ids_use_the_pooled_thresholds():
    df = sine_frame(400, sigmas=(0.5, 0.5))
    long = df.melt(id_vars="date", var_name="unique_id", value_name="y").rename(
        columns={"date": "ds"}
    )
    model = TrellisForecaster(**TINY).fit(long)
    other = long.assign(unique_id=long["unique_id"].map({"s0": "s0", "s1": "new"}))
    fc = model.predict(other, level=[80])
    assert list(fc.columns) == ["unique_id", "ds", "y", "y_lo80", "y_hi80"]
    assert set(fc["unique_id"]) == {"s0", "new"}
    assert np.isfinite(fc[["y_lo80", "y_hi80"]].to_numpy()).all()
    assert (fc["y_lo80"] < fc["y"]).all() and (fc["y"] < fc["y_hi80"]).all()


def test_intervals_are_saved_and_loaded(tmp_path):
    model = TrellisForecaster(**TINY, loss="quantile").fit(sine_frame(400))
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["conformal"]["kind"] == "band" and meta["conformal"]["counts"][0] > 0
    loaded = TrellisForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(level=[80, 95]), model.predict(level=[80, 95]))


def test_without_a_validation_part_intervals_are_a_clear_error():
    model = TrellisForecaster(**{**TINY, "val_fraction": 0.0}).fit(sine_frame(300))
    assert model.calibration_ is None
    assert len(model.predict()) == 6  # point forecasts still work
    with pytest.raises(ConfigError, match="no calibration for intervals.*val_fraction > 0"):
        model.predict(level=[80])
    with pytest.raises(ConfigError, match="no calibration"):
        model.backtest(sine_frame(300), level=[80])


def test_levels_are_checked():
    # One series of 60 steps: a validation part of 12 steps holds 7 windows.
    model = TrellisForecaster(**TINY).fit(sine_frame(60, sigmas=(0.5,)))
    assert model.calibration_.counts == [7]
    assert len(model.predict(level=[80])) == 6  # needs 4 windows
    with pytest.raises(ConfigError, match="a 95% interval needs at least 19 calibration windows"):
        model.predict(level=[95])
    for bad in ([80.5], [0], [100], ["80"], [True]):
        with pytest.raises(ConfigError, match="integer percentages between 1 and 99"):
            model.predict(level=bad)
