"""The command line of the forecasting loop: intervals (--level), backtest forecasts and plots."""

from __future__ import annotations

import json
import sys

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.cli.test_commands import TINY, write_wide
from trellis_ts.cli import commands as cli
from trellis_ts.cli.research import expand_multi_value
from trellis_ts.data import make_demo_frame

runner = CliRunner()


def run(*args):
    return runner.invoke(cli.app, expand_multi_value([str(a) for a in args]))


def ok(*args):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture
def fitted(tmp_path):
    data = write_wide(tmp_path / "data.csv", n=300)
    model_dir = tmp_path / "model"
    ok("fit", data, "--model-dir", model_dir, *TINY)
    return data, model_dir


def test_predict_and_forecast_write_interval_columns(fitted, tmp_path):
    data, model_dir = fitted
    out, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    ok("predict", "--model-dir", model_dir, "--level", "80", "95", "-o", out, "--plot", png, "-q")
    fc = pd.read_csv(out)
    names = ["load_1", "load_2", "load_3"]
    assert list(fc.columns) == ["date", *names] + [
        f"{n}_{side}{lvl}" for lvl in (80, 95) for side in ("lo", "hi") for n in names
    ]
    assert (fc["load_1_lo95"] <= fc["load_1_lo80"]).all()
    assert (fc["load_1_lo80"] < fc["load_1"]).all()
    assert png.stat().st_size > 10_000
    out2 = tmp_path / "fc2.csv"
    ok("forecast", data, *TINY, "--loss", "quantile", "--level", "90", "-o", out2)
    columns = list(pd.read_csv(out2).columns)
    assert "load_1_q0.1" in columns and "load_3_lo90" in columns and "load_3_hi90" in columns


def test_evaluate_writes_backtest_forecasts_and_a_plot(fitted, tmp_path):
    data, model_dir = fitted
    rows, png, metrics = tmp_path / "rows.csv", tmp_path / "backtest.png", tmp_path / "m.csv"
    result = ok(
        "evaluate",
        data,
        "--model-dir",
        model_dir,
        "--n-windows",
        "3",
        "--level",
        "80",
        "--forecasts",
        rows,
        "--plot",
        png,
        "-o",
        metrics,
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["outputs"] == {"metrics": str(metrics), "forecasts": str(rows), "plot": str(png)}
    assert 0 <= summary["metrics"]["coverage80"] <= 1 and summary["metrics"]["width80"] > 0
    fc = pd.read_csv(rows, parse_dates=["cutoff", "timestamp"])
    assert list(fc.columns) == [
        "series",
        "cutoff",
        "timestamp",
        "horizon",
        "actual",
        "forecast",
        "forecast_lo80",
        "forecast_hi80",
    ]
    assert len(fc) == 3 * 3 * 6 and fc["horizon"].max() == 6
    source = pd.read_csv(data, parse_dates=["date"]).set_index("date")
    first = fc[fc["series"] == "load_2"]
    np.testing.assert_allclose(
        first["actual"], source.loc[first["timestamp"], "load_2"], rtol=1e-12
    )
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 10_000
    assert "coverage80" in pd.read_csv(metrics).columns


def test_backtest_figure_draws_non_overlapping_windows_with_bands(fitted):
    from trellis_ts import TrellisForecaster
    from trellis_ts.plotting import backtest_figure

    data, model_dir = fitted
    model = TrellisForecaster.load(model_dir)
    result = model.rolling_forecasts(pd.read_csv(data), step=2, level=[80, 95])
    fig = backtest_figure(result.panel, result.forecasts(), max_windows=4)
    assert "4 of" in fig.texts[0].get_text()
    ax = fig.axes[0]
    assert len(ax.collections) == 4 * 2  # 4 windows, two shaded levels each
    assert len(ax.lines) == 1 + 4 + 4  # history, forecasts, cutoff markers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["predict", "--level", "100"], "integer percentages between 1 and 99"),
        (["forecast", "--level", "80", "--val-fraction", "0"], "--val-fraction is 0"),
        (["evaluate", "--level", "0"], "integer percentages between 1 and 99"),
    ],
)
def test_level_mistakes_are_one_line(args, message, fitted, tmp_path):
    data, model_dir = fitted
    out = tmp_path / "out.csv"
    extra = ["--model-dir", model_dir] if args[0] != "forecast" else TINY
    result = run(args[0], data, *extra, *args[1:], "-o", out)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not out.exists()


def test_a_model_without_calibration_says_so_before_reading_data(tmp_path):
    data = tmp_path / "data.csv"
    make_demo_frame(200, 2).to_csv(data, index=False)
    model_dir = tmp_path / "m"
    ok("fit", data, "--model-dir", model_dir, *TINY, "--val-fraction", "0")
    result = run("predict", tmp_path / "nothing.csv", "--model-dir", model_dir, "--level", "80")
    assert result.exit_code == 2 and "no calibration for intervals" in result.stderr
    assert "--val-fraction" in result.stderr  # in the command line's words


def test_level_takes_several_values_after_one_flag():
    argv = ["predict", "--level", "80", "95", "--model-dir", "m"]
    assert expand_multi_value(argv) == [
        "predict",
        "--level",
        "80",
        "--level",
        "95",
        "--model-dir",
        "m",
    ]
    assert sys.argv  # the entry point rewrites sys.argv[1:] the same way (cli.main)
