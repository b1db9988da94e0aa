"""Every bad input of the data checks, through the library and through the command line.

One table: how to spoil a frame, and the phrase the message must contain. The library raises a
`TrellisUserError`; the command line prints one `error:` line, exits with status 2, and writes
no output file.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import run
from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.errors import TrellisUserError

PARAMS = {**TINY, "context_length": 24, "prediction_length": 6, "patch_len": 8, "patch_stride": 4}
CLI_PARAMS = [
    "--context-length",
    "24",
    "--prediction-length",
    "6",
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
    "--chunk-size",
    "4",
    "--max-epochs",
    "1",
    "--model",
    "encoder",
    "--quiet",
]


def good(n=120, freq="h", scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq=freq),
            "a": scale * (10 + np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n)),
            "b": scale * (5 + np.cos(2 * np.pi * t / 12) + 0.1 * rng.standard_normal(n)),
        }
    )


def _set(df, row, col, value):
    df = df.astype({col: object}) if isinstance(value, str) else df.copy()
    df.loc[row, col] = value
    return df


FIT_ERRORS = {
    "empty frame": (lambda: good().iloc[:0], "empty|no data rows"),
    "no numeric column": (lambda: pd.DataFrame({"date": good()["date"], "x": "text"}), "numeric"),
    "text in a target": (lambda: _set(good(), 5, "a", "oops"), "'a'"),
    "NaN in a target": (lambda: _set(good(), 7, "b", np.nan), "missing"),
    "inf in a target": (lambda: _set(good(), 7, "b", np.inf), "'b'"),
    "duplicate timestamps": (
        lambda: (
            good()
            .drop(index=10)
            .reset_index(drop=True)
            .pipe(lambda d: pd.concat([d.iloc[:10], d.iloc[[9]], d.iloc[10:]], ignore_index=True))
        ),
        "duplicate",
    ),
    "missing time step": (lambda: good().drop(index=30).reset_index(drop=True), "fill_gaps"),
    "unparseable timestamps": (lambda: _set(good(), 3, "date", "not a date"), "timestamp"),
    "too short": (lambda: good(n=20), "30"),
}


@pytest.mark.parametrize("case", FIT_ERRORS)
def test_fit_errors_through_the_library(case):
    make, phrase = FIT_ERRORS[case]
    with pytest.raises(TrellisUserError) as info:
        TrellisForecaster(**PARAMS).fit(make())
    assert re.search(phrase, str(info.value))


@pytest.mark.parametrize("case", FIT_ERRORS)
def test_fit_errors_through_the_cli(case, tmp_path):
    make, phrase = FIT_ERRORS[case]
    data, out = tmp_path / "data.csv", tmp_path / "fc.csv"
    make().to_csv(data, index=False)
    result = run("forecast", data, "-o", out, *CLI_PARAMS)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    phrase = phrase.replace("fill_gaps", "fill-gaps")  # the CLI names options as flags
    assert re.search(phrase, lines[0]) and not out.exists()


PREDICT_ERRORS = {
    "a fitted column is missing": (lambda: good(200)[["date", "a"]], "'b'"),
    "another frequency": (lambda: good(200, freq="D"), "frequency"),
    "history shorter than the context": (lambda: good(200).iloc[-10:], "context_length"),
}


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("bad") / "model"
    forecaster = TrellisForecaster(**PARAMS).fit(good(200))
    forecaster.save(model_dir)
    return forecaster, model_dir


@pytest.mark.parametrize("case", PREDICT_ERRORS)
def test_predict_errors_through_the_library_and_the_cli(case, fitted, tmp_path):
    forecaster, model_dir = fitted
    make, phrase = PREDICT_ERRORS[case]
    with pytest.raises(TrellisUserError, match=phrase.replace("'", ".")):
        forecaster.predict(make())
    data, out = tmp_path / "new.csv", tmp_path / "fc.csv"
    make().to_csv(data, index=False)
    result = run("predict", data, "--model-dir", model_dir, "-o", out)
    assert result.exit_code == 2 and result.stderr.startswith("error: "), result.output
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_columns_in_another_order_are_matched_by_name(fitted):
    forecaster, _ = fitted
    df = good(200)
    pd.testing.assert_frame_equal(
        forecaster.predict(df), forecaster.predict(df[["b", "date", "a"]])
    )


def test_unsorted_timestamps_are_sorted_with_a_warning(tmp_path):
    df = good().sample(frac=1.0, random_state=0)
    with pytest.warns(UserWarning, match="sort"):
        fc = TrellisForecaster(**PARAMS).fit(df).predict()
    assert fc["date"].iloc[0] == good()["date"].iloc[-1] + pd.Timedelta("1h")
    data = tmp_path / "shuffled.csv"
    df.to_csv(data, index=False)
    result = run("forecast", data, "-o", tmp_path / "fc.csv", *CLI_PARAMS)
    assert result.exit_code == 0 and "warning:" in result.stderr


@pytest.mark.parametrize("policy", ["interpolate", "ffill"])
def test_missing_value_policies_fill_instead_of_failing(policy):
    df = _set(_set(good(), 7, "b", np.nan), 50, "a", np.nan)
    fc = TrellisForecaster(**PARAMS, missing=policy).fit(df).predict()
    assert np.isfinite(fc[["a", "b"]].to_numpy()).all()


def test_gaps_are_filled_only_when_asked():
    df = good().drop(index=30).reset_index(drop=True)
    fc = TrellisForecaster(**PARAMS, fill_gaps=True, missing="interpolate").fit(df).predict()
    assert len(fc) == 6 and np.isfinite(fc[["a", "b"]].to_numpy()).all()


@pytest.mark.parametrize("scale", [1e-9, 1e12])
def test_tiny_and_huge_magnitudes_keep_their_scale(scale):
    fc = TrellisForecaster(**PARAMS).fit(good(scale=scale)).predict()
    values = fc[["a", "b"]].to_numpy()
    assert np.isfinite(values).all()
    assert (values > 1 * scale).all() and (values < 20 * scale).all()


def test_constant_series_forecast_stays_near_the_constant():
    df = good()
    df["b"] = 42.0
    fc = TrellisForecaster(**PARAMS).fit(df).predict()
    assert np.isfinite(fc["b"]).all()
    np.testing.assert_allclose(fc["b"].to_numpy(), 42.0, rtol=0.05)
