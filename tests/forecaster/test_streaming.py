"""The streaming forecaster: a read in pieces equals a read whole, a backtest's forecast at a
cutoff equals predict on the data up to it, the state survives save/load, covariates and
quantiles work, and the settings it cannot take are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data.features.running import decay_for, mean_std, moments
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.streaming.state import StreamState, advance, forecast_state
from trellis_ts.models.spec import ModelSpec
from trellis_ts.models.streaming import StreamingModel

P, H = 4, 6
STREAM = {
    **{k: v for k, v in TINY.items() if k not in ("patch_stride",)},
    "context_length": 24,
    "prediction_length": H,
    "patch_len": P,
    "streaming": True,
    "crop_tokens": 8,
    "burn_in_tokens": 4,
    "attention_window": 4,
    "min_steps": 0,
    "target_transform": "none",
}


def frame(n=160, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "a": np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n) + 0.01 * t,
            "b": 10 + 3 * np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n),
        }
    )


@pytest.mark.parametrize("window", [None, 7])
def test_running_moments_read_in_pieces_equal_one_read(window):
    x = np.random.default_rng(0).normal(5, 3, size=200)
    decay = decay_for(window)
    whole = moments(x, decay)
    first = moments(x[:77], decay)
    rest = moments(x[77:], decay, first[-1])
    np.testing.assert_array_equal(np.vstack([first, rest]), whole)
    mean, std = mean_std(whole[-1])
    if window is None:
        assert mean == pytest.approx(x.mean()) and std == pytest.approx(x.std(), rel=1e-5)
    flat_mean, flat_std = mean_std(moments(np.full(10, 3.0), decay)[-1])
    assert flat_mean == pytest.approx(3.0) and 0 < flat_std < 1e-2


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
@pytest.mark.parametrize("cuts", [(5,), (1, 2, 3), (6, 7, 30)])
def test_a_state_advanced_in_pieces_equals_one_read(mixer, cuts):
    torch.manual_seed(0)
    spec = ModelSpec(
        context_length=24,
        prediction_length=H,
        patch_len=P,
        patch_stride=P,
        d_model=8,
        n_heads=2,
        n_layers=2,
        n_slots=4,
        chunk_size=4,
        streaming=True,
        mixer=mixer,
        attention_window=3,
    )
    model = StreamingModel(spec).eval()
    rng = np.random.default_rng(1)
    series = [rng.normal(size=41).cumsum(), rng.normal(size=58) + 4]
    whole = StreamState.empty(model, ["a", "b"], 0)
    advance(model, whole, [0, 1], series, decay=0.98)
    pieces = StreamState.empty(model, ["a", "b"], 0)
    bounds = [0, *cuts, None]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        advance(model, pieces, [0, 1], [s[lo:hi] for s in series], decay=0.98)

    def forecast(state):
        return forecast_state(
            model, state.outputs, state.token_stats, state.partial, state.seen % P, state.recent
        )

    np.testing.assert_allclose(forecast(pieces), forecast(whole), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(pieces.sums, whole.sums)
    np.testing.assert_array_equal(pieces.recent, whole.recent)
    assert pieces.nbytes() == whole.nbytes()


@pytest.fixture(scope="module", params=["trellis", "attention"])
def fitted(request):
    return TrellisForecaster(**STREAM, mixer=request.param).fit(frame().iloc[:120])


def test_predict_after_fit_equals_a_fresh_read_of_the_fit_data(fitted):
    stored = fitted.predict()
    fresh = fitted.predict(frame().iloc[:120])
    pd.testing.assert_frame_equal(stored, fresh, rtol=1e-5, atol=1e-5)
    assert stored["date"].iloc[0] == frame()["date"].iloc[120]
    assert np.isfinite(stored[["a", "b"]].to_numpy()).all()


def test_a_backtest_forecast_at_a_cutoff_equals_predict_on_the_data_up_to_it(fitted):
    df = frame()
    table = fitted.backtest(df, step=1, n_windows=20, return_forecasts=True)
    for cut in (141, 143, 150):  # inside a patch and at its end
        expected = fitted.predict(df.iloc[:cut])
        rows = table[table["cutoff"] == df["date"].iloc[cut - 1]]
        for name in ("a", "b"):
            got = rows[rows["series"] == name]["forecast"].to_numpy()
            np.testing.assert_allclose(got, expected[name].to_numpy(), rtol=1e-5, atol=1e-5)


def test_the_state_survives_save_and_load(fitted, tmp_path):
    fitted.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.predict(), fitted.predict())
    assert loaded.stream_.nbytes() == fitted.stream_.nbytes()


def test_intervals_come_from_the_held_out_end(fitted):
    out = fitted.predict(level=[80])
    assert (out["a_lo80"] <= out["a"]).all() and (out["a"] <= out["a_hi80"]).all()


def test_quantiles_and_covariates_stream():
    df = frame()
    df["promo"] = (np.arange(len(df)) % 7 == 0).astype(float)
    df["load"] = np.random.default_rng(2).normal(size=len(df))
    f = TrellisForecaster(**STREAM, loss="quantile", calendar_features="auto").fit(
        df.iloc[:120], target=["a", "b"], future_covariates="promo", past_covariates="load"
    )
    future = f.make_future_frame()
    future["promo"] = 1.0
    out = f.predict(future=future, quantiles=[0.1, 0.9])
    assert (out["a_q0.1"] <= out["a"]).all() and (out["a"] <= out["a_q0.9"]).all()
    table = f.backtest(df, step=1, n_windows=12, return_forecasts=True)
    cut = 150
    fut = df.iloc[cut : cut + H][["date", "promo"]]
    expected = f.predict(df.iloc[:cut], future=fut)
    rows = table[(table["cutoff"] == df["date"].iloc[cut - 1]) & (table["series"] == "b")]
    np.testing.assert_allclose(rows["forecast"], expected["b"], rtol=1e-5, atol=1e-5)


def test_a_history_shorter_than_a_patch_cannot_be_forecast(fitted):
    state = fitted.stream_
    assert not np.isnan(state.token_stats).any()
    with pytest.raises(DataError, match="first full patch of patch_len=4"):
        fitted.predict(frame().iloc[:3])
    short = fitted.predict(frame().iloc[:10])  # fewer steps than context_length: it reads them
    assert np.isfinite(short[["a", "b"]].to_numpy()).all()


@pytest.mark.parametrize(
    "settings, words",
    [
        ({"model": "dlinear"}, "model='encoder'"),
        ({"phi": "silu"}, "phi='identity'"),
        ({"patch_stride": 2}, "patch_stride"),
        ({"head": "pool"}, "own head"),
    ],
)
def test_settings_streaming_cannot_take_are_refused(settings, words):
    with pytest.raises(ConfigError, match=words):
        TrellisForecaster(**(STREAM | settings)).fit(frame())


# ------------------------------------------------------------------ update


def _state_arrays(f):
    s = f.stream_
    layers = [{k: v.clone() for k, v in layer.items()} for layer in s.layers]
    return (list(s.names), s.seen.copy(), s.sums.copy(), s.partial.copy(), s.recent.copy(), layers)


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
def test_update_in_pieces_equals_one_update_and_a_fresh_read(mixer):
    df = frame(200)
    f = TrellisForecaster(**STREAM, mixer=mixer).fit(df.iloc[:120])
    g = TrellisForecaster(**STREAM, mixer=mixer).fit(df.iloc[:120])
    a, b, c = df.iloc[120:123], df.iloc[123:124], df.iloc[124:157]  # splits inside patches
    f.update(a).update(b).update(c)
    g.update(pd.concat([a, b, c]))
    fresh = f.predict(df.iloc[:157])
    for got in (f.predict(), g.predict()):
        pd.testing.assert_frame_equal(got, fresh, rtol=1e-5, atol=1e-5)
    assert f.predict()["date"].iloc[0] == df["date"].iloc[157]
    assert int(f.stream_.seen[0]) == 157 and f.stream_.nbytes() == g.stream_.nbytes()


def test_new_ids_start_a_state_and_failed_updates_change_nothing(tmp_path):
    rng = np.random.default_rng(4)
    n = 140
    t = pd.date_range("2024-01-01", periods=n, freq="h")
    long = pd.concat(
        [
            pd.DataFrame(
                {"unique_id": k, "ds": t, "y": 5 * i + np.sin(np.arange(n) / 4) + rng.random(n)}
            )
            for i, k in enumerate(["x", "y", "z"])
        ]
    )
    old = long[long["unique_id"] != "z"]
    f = TrellisForecaster(**STREAM).fit(old[old["ds"] < t[100]])
    before, forecast = _state_arrays(f), f.predict()
    bad = old[old["ds"] >= t[100]].copy()
    bad.loc[bad.index[3], "y"] = np.nan
    for rows in (bad, old[old["ds"] >= t[98]], old[old["ds"] >= t[102]]):
        with pytest.raises(DataError):
            f.update(rows)
        after = _state_arrays(f)
        assert after[0] == before[0]
        for x, y in zip(after[1:5], before[1:5], strict=True):
            np.testing.assert_array_equal(x, y)
        pd.testing.assert_frame_equal(f.predict(), forecast)
    rest = long[(long["ds"] >= t[100]) | (long["unique_id"] == "z")]
    f.update(rest[rest["ds"] < t[110]]).update(rest[rest["ds"] >= t[110]])
    assert f.stream_.names == ["x", "y", "z"] and int(f.stream_.seen[2]) == n
    fresh = f.predict(long)
    pd.testing.assert_frame_equal(f.predict(), fresh, rtol=1e-5, atol=1e-5)
    f.save(tmp_path / "m")
    pd.testing.assert_frame_equal(TrellisForecaster.load(tmp_path / "m").predict(), f.predict())


def test_a_streaming_backtest_checks_its_windows_as_a_window_backtest_does(fitted):
    with pytest.raises(ConfigError, match="step=0 must be a positive integer"):
        fitted.backtest(frame(), step=0)
    with pytest.raises(DataError, match="shorter than context_length"):
        fitted.backtest(frame().iloc[:20])
