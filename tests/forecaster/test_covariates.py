"""Covariates through the estimator and the command line: each role on wide and long frames,
calendar features, the future frame, saving and loading, backtests, and every user error."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import run
from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import calendar_values, make_promotion_frame
from trellis_ts.errors import ConfigError, DataError, TrellisUserError
from trellis_ts.forecaster.persistence import CONFIG_FILE

L, H = 24, 6
PARAMS = {**TINY, "context_length": L, "prediction_length": H, "patch_len": 8, "patch_stride": 4}
CLI_PARAMS = [
    "--context-length",
    str(L),
    "--prediction-length",
    str(H),
    "--patch-len",
    "8",
    "--patch-stride",
    "4",
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
    "--quiet",
]


def wide(n=150, seed=0):
    """Hourly sales lifted by promotions, with a load and a temperature beside them."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    promo = (rng.random(n) < 0.2).astype(float)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "sales": 10 + np.sin(2 * np.pi * t / 24) + 3 * promo + 0.1 * rng.standard_normal(n),
            "load": 5 + np.cos(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n),
            "promo": promo,
            "temp": 20 + 3 * np.sin(2 * np.pi * t / 24) + rng.standard_normal(n),
        }
    )


def long(n=120, n_series=3):
    return make_promotion_frame(n_steps=n, n_series=n_series, seed=1)


def future_for(f: TrellisForecaster, df=None, **values) -> pd.DataFrame:
    frame = f.make_future_frame(df)
    for column, value in values.items():
        frame[column] = value
    return frame


# ------------------------------------------------------------------ each role, both layouts


def test_wide_roles_are_inputs_only_and_the_future_drives_the_forecast():
    df = wide()
    f = TrellisForecaster(**PARAMS).fit(df, past_covariates=["load"], future_covariates="promo")
    assert f.history_.names == ("sales", "temp")  # covariates leave the default targets
    assert f.inputs_.past_feat_dynamic_real == 1 and f.inputs_.feat_dynamic_real == 1
    none = f.predict(future=future_for(f, promo=0.0))
    assert list(none.columns) == ["date", "sales", "temp"]  # covariates are never forecast
    assert np.isfinite(none[["sales", "temp"]].to_numpy()).all()
    lifted = future_for(f, promo=0.0)
    lifted.loc[3, "promo"] = 1.0
    some = f.predict(future=lifted)
    assert not np.allclose(some["sales"], none["sales"])  # the horizon's values are read
    with pytest.raises(DataError, match="future="):
        f.predict()


def test_wide_static_covariates_hold_for_the_whole_frame():
    df = wide().assign(site="plant_a")
    f = TrellisForecaster(**PARAMS).fit(df, target="sales", static_covariates=["site"])
    assert f.inputs_.feat_static_cat == (1,) and np.isfinite(f.predict()["sales"]).all()
    with pytest.raises(DataError, match="varies within the frame"):
        TrellisForecaster(**PARAMS).fit(
            df.assign(site=np.where(df.index < 5, "a", "b")),
            target="sales",
            static_covariates=["site"],
        )


def test_long_roles_with_static_categories_and_numbers():
    df = long()
    df["size"] = df["unique_id"].map({"store_0": 1.0, "store_1": 2.5, "store_2": 4.0})
    f = TrellisForecaster(**PARAMS).fit(
        df,
        past_covariates=["temperature"],
        future_covariates=["promo"],
        static_covariates=["region", "size"],
    )
    inputs = f.inputs_
    assert (inputs.feat_static_real, inputs.feat_static_cat) == (1, (3,))
    fc = f.predict(future=future_for(f, promo=1.0))
    assert list(fc.columns) == ["unique_id", "ds", "y"] and len(fc) == 3 * H
    # a new id with an unseen region: treated as an unknown category, with a warning
    new = df[df["unique_id"] == "store_0"].assign(unique_id="store_9", region="west")
    with pytest.warns(UserWarning, match="unseen in fit"):
        out = f.predict(new, future=future_for(f, new, promo=0.0))
    assert out["unique_id"].unique().tolist() == ["store_9"]


@pytest.mark.parametrize("model", ["encoder", "dlinear"])
def test_static_and_past_covariates_reach_every_model(model):
    f = TrellisForecaster(**PARAMS, model=model).fit(
        long(), past_covariates="promo", static_covariates="region"
    )
    fc = f.predict()  # no future covariates: no future frame needed
    assert np.isfinite(fc["y"]).all() and f.inputs_.feat_static_cat == (3,)


def test_a_model_without_covariates_is_the_same_model():
    df = wide()[["date", "sales"]]
    plain = TrellisForecaster(**PARAMS).fit(df)
    assert not plain.inputs_.any and plain.model_.covariates is None
    again = TrellisForecaster(**PARAMS).fit(df)
    assert plain.predict().equals(again.predict())


def test_seasonal_naive_refuses_covariates():
    with pytest.raises(ConfigError, match="seasonal_naive"):
        TrellisForecaster(**PARAMS, model="seasonal_naive", season_length=24).fit(
            wide(), past_covariates=["load"]
        )


def test_dlinear_learns_a_future_driver():
    """Sales = level + lift on promotion days: the future covariate makes them predictable."""
    params = {
        **PARAMS,
        "model": "dlinear",
        "max_epochs": 30,
        "learning_rate": 1e-2,
        "early_stopping_patience": 30,
    }
    df = long(n=400, n_series=4)
    train, test = df[df["ds"] < df["ds"].min() + pd.Timedelta(days=300)], df
    scores = {}
    for arm, columns in (("none", {}), ("future", {"future_covariates": ["promo"]})):
        f = TrellisForecaster(**params).fit(train, **columns)
        scores[arm] = f.evaluate(test.groupby("unique_id").tail(100 + L), step=H)["mse"]
    assert scores["future"] < 0.5 * scores["none"], scores


# ------------------------------------------------------------------ calendar features


def test_calendar_features_auto_and_in_the_future_frame():
    f = TrellisForecaster(**PARAMS, calendar_features="auto").fit(wide()[["date", "sales"]])
    assert f.config_.calendar_features == ("hour", "dayofweek", "dayofmonth", "dayofyear")
    assert f.inputs_.feat_dynamic_real == 4
    frame = f.make_future_frame()
    expected = pd.date_range("2024-01-07 06:00", periods=H, freq="h")
    assert list(frame.columns) == ["date", "hour", "dayofweek", "dayofmonth", "dayofyear"]
    assert (pd.DatetimeIndex(frame["date"]) == expected).all()
    np.testing.assert_allclose(
        frame[["hour", "dayofweek"]], calendar_values(expected, ["hour", "dayofweek"])
    )
    assert f.predict().shape == (H, 2)  # calendar inputs need no future frame


def test_calendar_features_need_timestamps_and_free_names():
    integer = wide()[["sales", "promo"]]
    with pytest.raises(ConfigError, match="need timestamps"):
        TrellisForecaster(**PARAMS, calendar_features=("hour",)).fit(integer)
    assert (
        TrellisForecaster(**PARAMS, calendar_features="auto").fit(integer).inputs_.feat_dynamic_real
        == 0
    )
    clash = wide().rename(columns={"promo": "hour"})
    with pytest.raises(ConfigError, match="'hour'"):
        TrellisForecaster(**PARAMS, calendar_features=("hour",)).fit(
            clash, future_covariates=["hour"]
        )
    with pytest.raises(ConfigError, match="calendar_features"):
        TrellisForecaster(**PARAMS, calendar_features=("hours",)).fit(wide())


# ------------------------------------------------------------------ the future frame


def test_future_frames_of_every_layout():
    f = TrellisForecaster(**PARAMS).fit(long(), future_covariates=["promo"])
    frame = f.make_future_frame()
    assert list(frame.columns) == ["unique_id", "ds", "promo"] and frame["promo"].isna().all()
    last = long().groupby("unique_id")["ds"].max()
    for store, rows in frame.groupby("unique_id"):
        assert list(rows["ds"]) == list(pd.date_range(last[store], periods=H + 1, freq="D")[1:])
    integer = wide().drop(columns="date")  # time is the row number
    g = TrellisForecaster(**PARAMS).fit(integer, target="sales", future_covariates=["promo"])
    frame = g.make_future_frame()
    assert list(frame.index) == list(range(150, 150 + H)) and list(frame.columns) == ["promo"]
    assert np.isfinite(g.predict(future=frame.fillna(0.0))["sales"]).all()


def test_future_rows_outside_the_horizon_and_in_any_order_are_fine():
    f = TrellisForecaster(**PARAMS).fit(long(), future_covariates=["promo"])
    frame = future_for(f, promo=1.0)
    shuffled = frame.sample(frac=1.0, random_state=0)
    extra = pd.concat([shuffled, shuffled.assign(ds=shuffled["ds"] + pd.Timedelta(days=H))])
    pd.testing.assert_frame_equal(f.predict(future=extra), f.predict(future=frame))


# ------------------------------------------------------------------ persistence and backtests


def test_save_and_load_keep_roles_calendar_and_scaling(tmp_path):
    df = long()
    f = TrellisForecaster(**PARAMS, calendar_features="auto").fit(
        df,
        past_covariates=["temperature"],
        future_covariates=["promo"],
        static_covariates=["region"],
    )
    future = future_for(f, promo=1.0)
    f.save(tmp_path / "m")
    g = TrellisForecaster.load(tmp_path / "m")
    assert g.columns_ == f.columns_ and g.config_.calendar_features == f.config_.calendar_features
    assert g.inputs_ == f.inputs_ and g.scaling_ == f.scaling_
    pd.testing.assert_frame_equal(g.predict(future=future), f.predict(future=future))
    pd.testing.assert_frame_equal(g.predict(df, future=future), f.predict(df, future=future))
    pd.testing.assert_frame_equal(g.make_future_frame(), f.make_future_frame())


def test_models_saved_before_covariates_still_load(tmp_path):
    df = wide()[["date", "sales"]]
    f = TrellisForecaster(**PARAMS).fit(df)
    f.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / CONFIG_FILE).read_text())
    layout = meta["history"].pop("layout")  # rewrite as format 1 wrote it
    meta["history"] |= {
        "layout": layout["format"],
        "time_col": layout["time_col"],
        "id_col": None,
        "target_col": None,
        "index_name": None,
        "columns": layout["columns"],
    }
    meta["scaler"] = meta.pop("scaling")["target"]
    meta["columns"] = {k: meta["columns"][k] for k in ("time_col", "id_col", "target")}
    for key in ("inputs",):
        meta.pop(key)
    meta["config"].pop("calendar_features")
    meta["format_version"] = 1
    (tmp_path / "m" / CONFIG_FILE).write_text(json.dumps(meta))
    pd.testing.assert_frame_equal(TrellisForecaster.load(tmp_path / "m").predict(), f.predict())


def test_backtests_read_the_recorded_covariates():
    df = wide()
    f = TrellisForecaster(**PARAMS).fit(df, target="sales", future_covariates=["promo"])
    base = f.backtest(df, step=H)
    spoiled = df.assign(promo=1.0 - df["promo"])  # other promotions inside the windows
    assert len(base) == len(f.backtest(spoiled, step=H))
    assert not np.allclose(base["mse"], f.backtest(spoiled, step=H)["mse"])


# ------------------------------------------------------------------ user errors


def _future_without(f, drop=None, rows=None, nan_at=None):
    frame = future_for(f, promo=0.0)
    if drop:
        frame = frame.drop(columns=drop)
    if rows is not None:
        frame = frame.iloc[rows]
    if nan_at is not None:
        frame.loc[frame.index[nan_at], "promo"] = np.nan
    return frame


ERRORS = {
    # name: (fit columns, fit frame spoiler, phrase of the error at fit)
    "covariate is a target": (
        {"target": ["sales", "promo"], "future_covariates": ["promo"]},
        None,
        "both a target and a future covariate",
    ),
    "column in two buckets": (
        {"past_covariates": ["promo"], "future_covariates": ["promo"]},
        None,
        "both a past and a future covariate",
    ),
    "unknown covariate": (
        {"past_covariates": ["nope"]},
        None,
        "past covariate 'nope' is not a column",
    ),
    "text covariate": (
        {"past_covariates": ["load"]},
        lambda d: d.astype({"load": object}).assign(
            load=lambda x: x["load"].where(x.index != 9, "n/a")
        ),
        "past covariate 'load' has a non-numeric value 'n/a'",
    ),
}


@pytest.mark.parametrize("case", ERRORS)
def test_fit_errors(case):
    columns, spoil, phrase = ERRORS[case]
    df = wide() if spoil is None else spoil(wide())
    with pytest.raises(DataError, match=phrase):
        TrellisForecaster(**PARAMS).fit(df, **columns)


def test_static_covariate_that_varies_within_a_series():
    df = long()
    df.loc[(df["unique_id"] == "store_1") & (df.index % 7 == 3), "region"] = "elsewhere"
    with pytest.raises(DataError, match="static covariate 'region' varies within series 'store_1'"):
        TrellisForecaster(**PARAMS).fit(df, static_covariates=["region"])


@pytest.fixture(scope="module")
def fitted_future():
    return TrellisForecaster(**PARAMS).fit(
        long(), future_covariates=["promo"], static_covariates=["region"]
    )


FUTURE_ERRORS = {
    "missing column": ({"drop": ["promo"]}, r"future covariate\(s\) \['promo'\] are missing"),
    "too short": (
        {"rows": slice(0, H - 2)},
        "too short .* the first missing timestamp is 2022-05-05",
    ),
    "gap": (
        {"rows": [0, 1, 3, 4, 5] + list(range(H, 3 * H))},
        "gap .* timestamp 2022-05-03 00:00:00 is missing",
    ),
    "NaN": ({"nan_at": 2}, "'promo' is missing \\(NaN\\) at 2022-05-03"),
}


@pytest.mark.parametrize("case", FUTURE_ERRORS)
def test_future_errors_name_the_column_and_timestamp(case, fitted_future):
    spoil, phrase = FUTURE_ERRORS[case]
    with pytest.raises(DataError, match=phrase):
        fitted_future.predict(future=_future_without(fitted_future, **spoil))


def test_predict_on_data_without_a_fitted_covariate(fitted_future):
    with pytest.raises(
        DataError, match="fitted with static covariate 'region', which the data lacks"
    ):
        fitted_future.predict(
            long().drop(columns="region"), future=future_for(fitted_future, promo=0.0)
        )


# ------------------------------------------------------------------ the command line


def test_cli_fit_future_frame_predict_and_forecast(tmp_path):
    data = tmp_path / "promo.csv"
    long().to_csv(data, index=False)
    model = tmp_path / "m"
    result = run(
        "fit",
        data,
        "--model-dir",
        model,
        "--past-covariates",
        "temperature",
        "--future-covariates",
        "promo",
        "--static-covariates",
        "region",
        "--calendar",
        "auto",
        *CLI_PARAMS,
    )
    assert result.exit_code == 0, result.output
    future = tmp_path / "future.csv"
    assert run("future-frame", "--model-dir", model, "-o", future).exit_code == 0
    frame = pd.read_csv(future)
    assert list(frame.columns) == [
        "unique_id",
        "ds",
        "promo",
        "dayofweek",
        "dayofmonth",
        "dayofyear",
    ]
    frame["promo"] = 1.0
    frame.to_csv(future, index=False)
    out = tmp_path / "fc.csv"
    result = run("predict", "--model-dir", model, "--future", future, "-o", out)
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 3 * H
    result = run(
        "forecast",
        data,
        "--future-covariates",
        "promo",
        "--future",
        future,
        "-o",
        tmp_path / "fc2.csv",
        *CLI_PARAMS,
    )
    assert result.exit_code == 0, result.output


CLI_ERRORS = [
    # (fit options, predict options: None = the error is at fit; the message)
    (["--target", "y", "--past-covariates", "y"], None, "both a target and a past covariate"),
    (
        ["--past-covariates", "promo", "--future-covariates", "promo"],
        None,
        "both a past and a future covariate",
    ),
    (["--static-covariates", "promo"], None, "static covariate 'promo' varies within series"),
    (["--past-covariates", "region"], None, "past covariate 'region' has a non-numeric value"),
    (["forecast", "--future-covariates", "promo"], None, "values over the horizon: pass --future"),
    (
        ["forecast", "--future-covariates", "promo", "--future", "{tmp}/none.csv"],
        None,
        "does not exist",
    ),
    (["--calendar", "hours"], None, "--calendar ['hours'] must be distinct names"),
    (["--future-covariates", "promo"], ["--future", "{short}"], "too short"),
    (["--future-covariates", "promo"], ["--future", "{nocol}"], "are missing from future"),
    (["--future-covariates", "promo"], ["--future", "{nan}"], "is missing (NaN) at"),
    (["--future-covariates", "promo"], ["--future", "{gap}"], "has a gap"),
    (["--future-covariates", "promo"], [], "pass --future"),
    (["--past-covariates", "temperature"], ["{lacking}"], "which the data lacks"),
]


@pytest.mark.parametrize(
    ("fit_args", "predict_args", "message"), CLI_ERRORS, ids=[m for _, _, m in CLI_ERRORS]
)
def test_cli_errors_are_one_line_exit_2_and_write_nothing(
    fit_args, predict_args, message, tmp_path
):
    data = tmp_path / "promo.csv"
    long().to_csv(data, index=False)
    files = {"tmp": tmp_path}
    out = tmp_path / "out.csv"
    model = tmp_path / "m"
    if predict_args is None:
        command = ["forecast", data, "-o", out] if fit_args[0] == "forecast" else ["fit", data]
        fit_args = [a for a in fit_args if a != "forecast"]
        argv = [*command, "--model-dir", model, *fit_args, *CLI_PARAMS]
    else:
        ok = run("fit", data, "--model-dir", model, *fit_args, *CLI_PARAMS)
        assert ok.exit_code == 0, ok.output
        f = TrellisForecaster.load(model)
        good = future_for(f, promo=0.0) if f.history_.layout.future_covariates else None
        if good is not None:
            for name, frame in {
                "short": good.iloc[:2],
                "nocol": good.drop(columns="promo"),
                "nan": good.assign(promo=np.nan),
                "gap": good.drop(index=[1]),
            }.items():
                files[name] = tmp_path / f"{name}.csv"
                frame.to_csv(files[name], index=False)
        files["lacking"] = tmp_path / "lacking.csv"
        long().drop(columns="temperature").to_csv(files["lacking"], index=False)
        argv = ["predict", *predict_args, "--model-dir", model, "-o", out]
        model = tmp_path / "unused"
    argv = [str(a).format(**files) for a in argv]
    result = run(*argv)
    assert result.exit_code == 2, result.output
    # One error line (a warning about columns the command leaves unused may precede it).
    lines = [x for x in result.stderr.strip().splitlines() if not x.startswith("warning: ")]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0], lines[0]
    assert not out.exists() and not model.exists()


def test_errors_are_user_errors():
    assert issubclass(DataError, TrellisUserError) and issubclass(ConfigError, TrellisUserError)


def test_warm_start_keeps_the_covariates_and_their_scaling():
    df = long()
    f = TrellisForecaster(**PARAMS).fit(
        df.groupby("unique_id").head(90), future_covariates=["promo"], static_covariates=["region"]
    )
    scaling = f.scaling_
    f.fit(df, warm_start=True)  # the fitted roles, unless given
    assert f.scaling_ == scaling and f.columns_["future_covariates"] == ["promo"]
    assert np.isfinite(f.predict(future=future_for(f, promo=0.0))["y"]).all()
    with pytest.raises(DataError, match="needs the fitted covariates"):
        f.fit(df, warm_start=True, future_covariates=["temperature"])
