"""`TrellisForecaster.update`: new rows joined onto the stored history without a refit.

Parity: `update(a); update(b)`, `update(concat(a, b))` and `predict(full history)` give the same
forecasts, for the window models and the auto models, wide and long, with covariates and new
ids; a failed update leaves the model exactly as it was; save/load keeps the updated tails.
"""

from __future__ import annotations

import copy
from itertools import pairwise

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import make_promotion_frame
from trellis_ts.errors import DataError

L, H = 24, 6
PARAMS = {**TINY, "context_length": L, "prediction_length": H, "patch_len": 8, "patch_stride": 4}
AUTO = dict(d_model=8, n_heads=1, n_layers=1, n_slots=8, chunk_size=4, max_epochs=1, verbose=False)


def wide(n=120, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "a": 10 + np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
            "b": 5 + np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
        }
    )


def long(n=120, n_series=3):
    return make_promotion_frame(n_steps=n, n_series=n_series, seed=1)


def by_time(df: pd.DataFrame, time_col: str, *cuts: int) -> list[pd.DataFrame]:
    """`df` cut at the `cuts`-th timestamps: the rows before the first cut, between, after."""
    times = np.sort(df[time_col].unique())
    edges = [times[0], *(times[c] for c in cuts), times[-1] + np.timedelta64(1, "ns")]
    return [df[(df[time_col] >= lo) & (df[time_col] < hi)] for lo, hi in pairwise(edges)]


def same(left: pd.DataFrame, right: pd.DataFrame) -> None:
    pd.testing.assert_frame_equal(
        left.reset_index(drop=True), right.reset_index(drop=True), rtol=1e-6, atol=1e-8
    )


def state(f: TrellisForecaster):
    """What an update may change, to compare before and after a failed one."""
    h = f.history_
    cov = h.covariates
    return (
        h.names,
        h.ids,
        [v.tolist() for v in h.values],
        [list(ix) for ix in h.index],
        [p.tolist() for p in cov.past],
        [p.tolist() for p in cov.future],
        cov.static.to_dict(),
        cov.group.tolist(),
        copy.deepcopy(f.summary_.extra),
    )


# ------------------------------------------------------------------ parity


@pytest.mark.parametrize("model", ["encoder", "dlinear", "seasonal_naive"])
def test_wide_updates_match_a_fresh_predict_of_the_whole_history(model):
    df = wide()
    fit, a, b = df.iloc[:80], df.iloc[80:93], df.iloc[93:]  # 13 rows: mid-patch
    f = TrellisForecaster(**PARAMS, model=model).fit(fit)
    g = copy.deepcopy(f)
    full = f.predict(df, level=[80])
    assert f.update(a) is f
    f.update(b)
    same(f.predict(level=[80]), full)
    same(g.update(pd.concat([a, b])).predict(level=[80]), full)
    assert len(f.history_.values[0]) == L and f.history_.index[0][-1] == df["date"].iloc[-1]
    assert f.summary_.extra["updates"] == 2
    assert f.fit_span_["last"][0] == fit["date"].iloc[-1]  # evaluate still knows the fit's span


def test_long_updates_with_covariates_and_future_values():
    df = long()
    df["size"] = df["unique_id"].map({"store_0": 1.0, "store_1": 2.5, "store_2": 4.0})
    fit, a, b = by_time(df, "ds", 90, 101)
    columns = dict(
        past_covariates=["temperature"],
        future_covariates=["promo"],
        static_covariates=["region", "size"],
    )
    f = TrellisForecaster(**PARAMS).fit(fit, **columns)
    g = copy.deepcopy(f)
    future = f.make_future_frame(df).assign(promo=1.0)
    full = f.predict(df, future=future)
    f.update(a).update(b)
    ahead = f.make_future_frame()
    assert (ahead.groupby("unique_id")["ds"].min() > df["ds"].max()).all()
    same(ahead, future.drop(columns="promo").assign(promo=np.nan))
    same(f.predict(future=future), full)
    same(g.update(pd.concat([a, b])).predict(future=future), full)
    with pytest.raises(DataError, match="future="):
        f.predict()


def test_quantile_model_keeps_its_quantiles_after_update():
    df = wide()
    f = TrellisForecaster(**PARAMS, loss="quantile").fit(df.iloc[:90])
    full = f.predict(df, quantiles=[0.1, 0.9], level=[80])
    same(f.update(df.iloc[90:]).predict(quantiles=[0.1, 0.9], level=[80]), full)


@pytest.mark.parametrize("model", ["auto", "ets", "theta"])
def test_auto_models_update_like_a_fresh_predict(model, tmp_path):
    df = wide(n=150)
    fit, a, b = df.iloc[:110], df.iloc[110:127], df.iloc[127:]
    f = TrellisForecaster(model=model, context_length=L, prediction_length=H, **AUTO).fit(fit)
    g = copy.deepcopy(f)
    full = f.predict(df, level=[80])
    f.update(a).update(b)
    same(f.predict(level=[80]), full)
    same(g.update(pd.concat([a, b])).predict(level=[80]), full)
    assert len(f.history_.values[0]) == len(df)  # shorter than the tail an auto model keeps
    f.save(tmp_path / "m")
    same(TrellisForecaster.load(tmp_path / "m").predict(level=[80]), full)


def test_auto_long_series_of_unequal_lengths_keep_their_own_tails():
    df = long(n=100)[["unique_id", "ds", "y"]]
    df = df[~((df["unique_id"] == "store_0") & (df["ds"] < df["ds"].min() + pd.Timedelta("10D")))]
    fit, a = by_time(df, "ds", 80)
    f = TrellisForecaster(model="theta", context_length=L, prediction_length=H, **AUTO).fit(fit)
    same(f.predict(), f.predict(fit))
    same(f.update(a).predict(), f.predict(df))


@pytest.mark.parametrize(
    "times",
    [
        pd.RangeIndex(0, 120),  # integer time in the index
        pd.date_range("2024-01-05", periods=120, freq="D", tz="Europe/Paris"),  # 23/25 h days
        pd.date_range("2000-01-31", periods=120, freq="ME"),  # a calendar offset
    ],
    ids=["integer", "zoned days", "month ends"],
)
def test_time_axes_join_on_their_grid(times):
    df = wide().drop(columns="date").set_index(times)
    freq = "ME" if getattr(times, "freqstr", None) == "ME" else None
    f = TrellisForecaster(**PARAMS, freq=freq, fill_gaps=True, missing="interpolate")
    f.fit(df.iloc[:70])  # March's change of clocks falls inside the update of zoned days
    rows = df.iloc[75:]  # five steps missing at the join
    full = f.predict(pd.concat([df.iloc[:70], rows]))
    same(f.update(rows.iloc[:30]).update(rows.iloc[30:]).predict(), full)


# ------------------------------------------------------------------ new series


def test_new_ids_start_a_series_and_forecast_once_they_hold_a_context():
    df = long(n=120, n_series=4).drop(columns="temperature")
    old = df[df["unique_id"] != "store_3"]
    fit, _ = by_time(old, "ds", 80)
    f = TrellisForecaster(**PARAMS).fit(fit, past_covariates="promo", static_covariates="region")
    new = df[(df["unique_id"] == "store_3") | (df["ds"] >= df["ds"].unique()[80])]
    times = df["ds"].unique()
    early = np.where(new["unique_id"] == "store_3", new["ds"] < times[10], new["ds"] < times[90])
    first, second = new[early], new[~early]
    f.update(first)
    assert f.history_.names[-1] == "store_3" and len(f.history_.values[-1]) < L
    with pytest.raises(DataError, match="store_3.*context_length"):
        f.predict()
    f.update(second)
    assert f.history_.names == ("store_0", "store_1", "store_2", "store_3")
    # a new id is scaled by its last context_length values: those the forecast reads
    same(f.predict(), f.predict(pd.concat([fit, new])))


def test_a_new_column_of_a_wide_frame_is_an_extra_column():
    df = wide()
    f = TrellisForecaster(**PARAMS).fit(df.iloc[:90])
    with pytest.raises(DataError, match="extra column 'c'"):
        f.update(df.iloc[90:].assign(c=1.0))


# ------------------------------------------------------------------ gaps and missing values


@pytest.mark.parametrize("missing", ["interpolate", "ffill"])
def test_gaps_and_missing_values_are_filled_as_a_fresh_read_fills_them(missing):
    df = wide()
    f = TrellisForecaster(**PARAMS, fill_gaps=True, missing=missing).fit(df.iloc[:80])
    g = copy.deepcopy(f)
    rows = df.iloc[84:].copy()  # four steps missing at the join
    rows.loc[rows.index[5:8], "a"] = np.nan
    whole = pd.concat([df.iloc[:80], rows])
    full = f.predict(whole)
    same(f.update(rows.iloc[:20]).update(rows.iloc[20:]).predict(), full)
    same(g.update(rows).predict(), full)


# ------------------------------------------------------------------ errors leave the model as it was


def _wide_errors(df):
    rows = df.iloc[95:]  # after the good update to row 94
    nan = rows.copy()
    nan.loc[nan.index[3], "b"] = np.nan
    daily = rows.assign(date=pd.date_range(df["date"].iloc[94] + pd.Timedelta("1D"), periods=25))
    return {
        "at or before": (df.iloc[93:], "at or before its last timestamp"),
        "gap": (df.iloc[97:], "missing timestamp .* fill_gaps"),
        "nan": (nan, "column 'b' has 1 missing"),
        "missing column": (rows.drop(columns="b"), "lack column 'b'"),
        "extra column": (rows.assign(c=0.0), "extra column 'c'"),
        "frequency": (daily, "frequency 'D' but the model was fitted at 'h'"),
        "duplicates": (pd.concat([rows.iloc[:3], rows.iloc[2:5]]), "duplicate timestamp"),
        "empty": (rows.iloc[:0], "empty"),
        "not a frame": (rows.to_numpy(), "DataFrame"),
        "off the grid": (rows.assign(date=rows["date"] + pd.Timedelta("30min")), "grid"),
    }


@pytest.mark.parametrize("case", list(_wide_errors(wide())))
def test_a_failed_update_is_one_error_and_changes_nothing(case):
    df = wide()
    f = TrellisForecaster(**PARAMS).fit(df.iloc[:90])
    f.update(df.iloc[90:95])  # a good update first: the failed one must not undo it either
    before, forecast = state(f), f.predict(level=[80])
    rows, message = _wide_errors(df)[case]
    with pytest.raises(DataError, match=message) as caught:
        f.update(rows)
    assert "\n" not in str(caught.value)
    assert state(f) == before
    same(f.predict(level=[80]), forecast)


def test_long_errors_name_the_series_and_change_nothing():
    df = long().drop(columns=["promo", "region"])
    df["size"] = df["unique_id"].map({"store_0": 1.0, "store_1": 2.5, "store_2": 4.0})
    fit, rows = by_time(df, "ds", 90)
    f = TrellisForecaster(**PARAMS).fit(
        fit, past_covariates="temperature", static_covariates="size"
    )
    before, forecast = state(f), f.predict()
    late = rows[~((rows["unique_id"] == "store_1") & (rows["ds"] == rows["ds"].min()))]
    nan = rows.copy()
    nan.loc[nan.index[nan["unique_id"] == "store_2"][4], "temperature"] = np.nan
    moved = rows.assign(size=np.where(rows["unique_id"] == "store_0", 9.0, rows["size"]))
    for bad, message in [
        (late, "missing timestamp .* series 'store_1'"),
        (nan, "past covariate 'temperature' of series 'store_2' has 1 missing"),
        (moved, "static covariate 'size' of series 'store_0' is 9.0"),
        (pd.concat([fit.iloc[-3:], rows]), "series 'store_2' start at .* at or before"),
        (rows.drop(columns="temperature"), "lack column 'temperature'"),
    ]:
        with pytest.raises(DataError, match=message):
            f.update(bad)
        assert state(f) == before
    same(f.predict(), forecast)


def test_log1p_refuses_negative_new_values_and_changes_nothing():
    df = wide()
    f = TrellisForecaster(**PARAMS, target_transform="log1p").fit(df.iloc[:90])
    before = state(f)
    with pytest.raises(DataError, match="negative"):
        f.update(df.iloc[90:].assign(a=-1.0))
    assert state(f) == before


def test_update_before_fit_is_not_fitted_error():
    with pytest.raises(NotFittedError):
        TrellisForecaster(**PARAMS).update(wide())


# ------------------------------------------------------------------ persistence


def test_save_and_load_keep_the_updated_tail(tmp_path):
    df = long().drop(columns=["promo", "region"])
    fit, a = by_time(df, "ds", 90)
    f = TrellisForecaster(**PARAMS).fit(fit, past_covariates="temperature")
    f.update(a)
    f.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")
    assert [list(ix) for ix in loaded.history_.index] == [list(ix) for ix in f.history_.index]
    assert loaded.summary_.extra["updates"] == 1
    same(loaded.predict(), f.predict())
