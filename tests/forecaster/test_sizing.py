"""Sizes chosen from the data: horizon, context and patches where the user set none."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from tests.cli.test_commands import ok, run
from trellis_ts import TrellisForecaster
from trellis_ts.errors import DataError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.sizing import default_sizes, resolve_sizes

SMALL = dict(
    d_model=16, n_heads=2, n_layers=1, n_slots=8, chunk_size=4, max_epochs=1, verbose=False
)
CLI_SMALL = [
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


def monthly(n=144) -> pd.DataFrame:
    t = np.arange(n)
    y = 100 + 2 * t + 20 * np.sin(2 * np.pi * t / 12)
    return pd.DataFrame({"Month": pd.date_range("1949-01-01", periods=n, freq="MS"), "y": y})


def hourly(n: int) -> pd.DataFrame:
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2024-01-01", periods=n, freq="h"),
            "load": 10 + np.sin(2 * np.pi * t / 24),
        }
    )


@pytest.mark.parametrize(
    ("freq", "rows", "sizes"),
    [
        ("h", 17_420, (96, 336, 16, 8)),  # ETTh1: the benchmark sizes
        ("h", 1_200, (96, 336, 16, 8)),  # the --demo series
        ("15min", 69_680, (96, 336, 16, 8)),
        ("MS", 144, (12, 48, 8, 4)),  # airline passengers
        ("MS", 36, (6, 11, 1, 1)),  # shampoo sales: shrunk to fit
        ("D", 3_650, (14, 56, 8, 4)),
        ("W-SUN", 200, (13, 52, 8, 4)),
        (1, 150, (25, 47, 4, 2)),  # integer time
    ],
)
def test_sizes_follow_frequency_and_length(freq, rows, sizes):
    sized = resolve_sizes(TrellisConfig(), freq, [rows]).config
    got = (sized.prediction_length, sized.context_length, sized.patch_len, sized.patch_stride)
    assert got == sizes
    # the fit's validation split keeps at least one window of each kind
    n_val = max(sized.prediction_length, round(0.2 * rows))
    assert rows - n_val - sized.prediction_length - sized.context_length + 1 >= 1


def test_summary_line_and_what_the_user_set():
    line = resolve_sizes(TrellisConfig(), "h", [17_420]).line()
    assert line == "hourly, 17,420 rows: context 336, horizon 96, patches 16/8 (sized to the data)"
    given = resolve_sizes(TrellisConfig(prediction_length=24), "h", [500, 900], names=["a", "b"])
    assert given.line().startswith("hourly, shortest series 500 rows: context ")
    assert "(context, patch length, patch stride sized to the data)" in given.line()
    assert given.config.prediction_length == 24


def test_given_sizes_are_kept_and_checked():
    sized = resolve_sizes(TrellisConfig(patch_len=8), "MS", [144]).config
    assert (sized.patch_len, sized.patch_stride) == (8, 4)  # stride: half the given patch
    with pytest.raises(DataError, match="context_length \\+ prediction_length = 201 are needed"):
        resolve_sizes(TrellisConfig(context_length=200), "MS", [144], names=["y"])
    with pytest.raises(DataError, match="8 time steps, too few"):
        resolve_sizes(TrellisConfig(), "h", [8])


def test_gluonts_and_benchmark_sizes_stay_the_hourly_ones():
    assert default_sizes(TrellisConfig(prediction_length=24)).context_length == 336
    from trellis_ts.benchmark.runner import resolve_config

    base = resolve_config("trellis")
    assert (base.patch_len, base.patch_stride) == (16, 8)


def test_library_fit_sizes_the_model_and_keeps_params_unset(tmp_path):
    f = TrellisForecaster(**SMALL)
    f.fit(monthly())
    c = f.config_
    assert (c.prediction_length, c.context_length, c.patch_len, c.patch_stride) == (12, 48, 8, 4)
    assert f.get_params()["context_length"] is None and clone(f).get_params() == f.get_params()
    assert "monthly, 144 rows: context 48, horizon 12, patches 8/4" in f.data_summary_
    fc = f.predict()
    assert len(fc) == 12 and fc["Month"].iloc[0] == pd.Timestamp("1961-01-01")
    f.save(tmp_path / "m")
    loaded = TrellisForecaster.load(tmp_path / "m")
    assert loaded.config_.context_length == 48 and loaded.get_params()["context_length"] == 48
    pd.testing.assert_frame_equal(loaded.predict(), fc)


def test_cli_states_the_sizes_in_one_line(tmp_path):
    data = tmp_path / "airline.csv"
    monthly().to_csv(data, index=False)
    result = ok("forecast", data, *CLI_SMALL, "-o", tmp_path / "fc.csv")
    line = [x for x in result.stderr.splitlines() if "context 48" in x]
    assert line == [
        "wide data: time 'Month', forecasting 'y'; monthly, 144 rows: context 48, "
        "horizon 12, patches 8/4 (sized to the data); forecasts clamped at 0 (never "
        "negative in the data; target_transform='none' keeps them as they are)"
    ]
    assert len(pd.read_csv(tmp_path / "fc.csv")) == 12


def test_cli_hourly_file_gets_the_benchmark_sizes(tmp_path):
    data = tmp_path / "hourly.csv"
    hourly(1_200).to_csv(data, index=False)
    result = ok(
        "forecast",
        data,
        *CLI_SMALL,
        "--windows-per-epoch",
        "64",
        "--json",
        "-o",
        tmp_path / "fc.csv",
    )
    summary = json.loads(result.stdout)
    assert summary["sizes"] == {
        "context_length": 336,
        "prediction_length": 96,
        "patch_len": 16,
        "patch_stride": 8,
    }
    assert "hourly, 1,200 rows: context 336, horizon 96, patches 16/8" in summary["data"]


def test_setting_errors_name_the_option_on_the_command_line(tmp_path):
    data = tmp_path / "airline.csv"
    monthly().to_csv(data, index=False)
    result = run("forecast", data, "--context-length", "200", "-o", tmp_path / "fc.csv")
    assert result.exit_code == 2
    assert "--context-length + --prediction-length = 201 are needed; shorten --context-length" in (
        result.stderr
    )
    with pytest.raises(DataError, match="shorten context_length"):
        TrellisForecaster(**SMALL, context_length=200).fit(monthly())


def test_tuning_space_is_sized_to_the_data(tmp_path):
    from trellis_ts.tuning.search import tune

    study, _ = tune(
        monthly(),
        n_trials=3,
        storage=f"sqlite:///{tmp_path / 't.db'}",
        base_params=SMALL,
        space=None,
        refit=False,
    )
    for trial in study.trials:
        params = trial.user_attrs["params"]
        assert params["prediction_length"] == 12  # one horizon for every trial
        assert params["context_length"] in (24, 48, 72)  # around 48, as far as 144 rows allow
        assert params["patch_len"] <= params["context_length"] // 2


def test_a_warm_start_keeps_the_sizes_chosen_at_fit():
    f = TrellisForecaster(**SMALL).fit(monthly())
    f.fit(monthly(150), warm_start=True)  # sizes unset: the fitted ones, not new ones
    c = f.config_
    assert (c.prediction_length, c.context_length, c.patch_len, c.patch_stride) == (12, 48, 8, 4)


def test_building_a_model_fills_unset_patches_by_the_same_rule():
    from trellis_ts.errors import ConfigError
    from trellis_ts.forecaster.sizing import model_spec, with_patches
    from trellis_ts.models import build_model

    config = TrellisConfig(context_length=48, prediction_length=12, d_model=8, n_slots=4)
    assert (with_patches(config).patch_len, with_patches(config).patch_stride) == (8, 4)
    assert with_patches(config) == resolve_sizes(config, "MS", [144]).config  # what fit chooses
    assert build_model(model_spec(config)).config.n_patches == 12
    with pytest.raises(ConfigError, match="prediction_length not set"):
        model_spec(TrellisConfig(context_length=48))
