"""Plots give each series its own dates; evaluate says when it scores in-sample."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from tests.cli.test_commands import ok, write_wide
from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import to_panel
from trellis_ts.plotting import forecast_figure


def staggered() -> pd.DataFrame:
    """Three hourly series that end months apart (a long file such as ERCOT's or M5's)."""
    parts = []
    for i, start in enumerate(["2021-01-01", "2021-06-01", "2022-01-01"]):
        times = pd.date_range(start, periods=120, freq="h")
        parts.append(
            pd.DataFrame(
                {"unique_id": f"s{i}", "ds": times, "y": 5 + np.sin(np.arange(120) / 4 + i)}
            )
        )
    return pd.concat(parts, ignore_index=True)


def _ranges(fig) -> list[tuple[float, float]]:
    return [tuple(round(x, 3) for x in ax.get_xlim()) for ax in fig.axes if ax.get_visible()]


def test_each_panel_gets_its_own_range_when_dates_differ():
    panel = to_panel(staggered())
    future = [pd.date_range(ix[-1], periods=5, freq="h")[1:] for ix in panel.index]
    fc = pd.DataFrame(
        [(f"s{i}", t, 1.0) for i, times in enumerate(future) for t in times],
        columns=["unique_id", "ds", "y"],
    )
    ranges = _ranges(forecast_figure(panel, fc, context_length=24))
    assert len(set(ranges)) == 3  # before: one shared axis, each series a sliver
    for lo, hi in ranges:
        assert hi - lo < 30  # days: each panel spans its own few days, not the whole year


def test_series_on_one_grid_share_the_axis():
    wide = pd.DataFrame(
        {
            "date": pd.date_range("2021", periods=100, freq="h"),
            "a": np.arange(100.0),
            "b": np.ones(100),
        }
    )
    panel = to_panel(wide)
    fc = pd.DataFrame(
        {"date": pd.date_range("2021-01-05 04:00", periods=4, freq="h"), "a": 1.0, "b": 1.0}
    )
    assert len(set(_ranges(forecast_figure(panel, fc, context_length=24)))) == 1


def test_cli_plot_of_staggered_series(tmp_path, monkeypatch):
    import trellis_ts.plotting as plotting

    figures = []
    save = plotting.save_figure
    monkeypatch.setattr(
        plotting, "save_figure", lambda fig, *a: (figures.append(fig), save(fig, *a))
    )
    data = tmp_path / "long.csv"
    staggered().to_csv(data, index=False)
    png = tmp_path / "fc.png"
    ok(
        "forecast",
        data,
        "--context-length",
        "24",
        "--prediction-length",
        "6",
        "--model",
        "encoder",
        "--max-epochs",
        "1",
        "--d-model",
        "16",
        "--n-layers",
        "1",
        "-q",
        "-o",
        tmp_path / "fc.csv",
        "--plot",
        png,
    )
    assert png.stat().st_size > 10_000 and len(set(_ranges(figures[0]))) == 3


# ------------------------------------------------------------------------------ in-sample


@pytest.fixture(scope="module")
def split():
    from trellis_ts.data import make_demo_frame

    df = make_demo_frame(400, 2)
    return df, df.iloc[:-60]  # the fit sees all but the last 60 hours


def test_evaluate_warns_when_it_scores_the_fit_data(split):
    df, train = split
    f = TrellisForecaster(**TINY).fit(train)
    with pytest.warns(
        UserWarning, match="scored windows forecast time steps the model was fitted on"
    ):
        f.evaluate(df)  # rolling windows reach back into the training rows
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # held out: no warning
        held_out = df.tail(TINY["context_length"] + 60)
        metrics = f.evaluate(held_out)
    assert metrics["n_windows"] == 2 * (60 // TINY["prediction_length"])


def test_cli_evaluate_says_the_score_is_in_sample(tmp_path):
    data = write_wide(tmp_path / "train.csv")
    model_dir = tmp_path / "m"
    tiny = [
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
        "--max-epochs",
        "1",
        "--model",
        "encoder",
        "--quiet",
    ]
    ok("fit", data, "--model-dir", model_dir, *tiny)
    result = ok("evaluate", data, "--model-dir", model_dir, "--n-windows", "2")
    warning = [x for x in result.stderr.splitlines() if x.startswith("warning:")]
    assert len(warning) == 1 and "the score is in-sample" in warning[0]  # before: no word


def test_date_axis_offset_names_the_dates_shown():
    # 26-30 April, the last tick 1 May: matplotlib's offset said "2023-May" beside April's days.
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    times = pd.date_range("2023-04-26", "2023-04-30 23:00", freq="h")
    panel = to_panel(pd.DataFrame({"date": times[:-3], "y": np.arange(len(times) - 3.0)}))
    fc = pd.DataFrame({"date": times[-3:], "y": [1.0, 2.0, 3.0]})
    fig = forecast_figure(panel, fc, context_length=len(times))
    FigureCanvasAgg(fig).draw()
    axis = fig.axes[0].xaxis
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()][:5] == [
        "26",
        "27",
        "28",
        "29",
        "30",
    ]
    assert axis.get_offset_text().get_text() == "2023-Apr"


def test_smape_is_in_percent_and_windows_are_counted_per_series(tmp_path):
    from trellis_ts.cli.report import window_count
    from trellis_ts.metrics import point_metrics

    assert point_metrics(np.array([1.0, 1.0]), np.array([3.0, 1.0]), 1.0)["smape"] == 50.0
    assert window_count(pd.Series([3, 3, 3])) == "3 windows x 3 series"  # it said "9 windows"
    assert window_count(pd.Series([1])) == "1 window"
    assert window_count(pd.Series([2, 3])) == "5 windows over 2 series (2-3 each)"
    data = write_wide(tmp_path / "d.csv")
    ok(
        "fit",
        data,
        "--model-dir",
        tmp_path / "m",
        "--d-model",
        "16",
        "--n-layers",
        "1",
        "--n-slots",
        "8",
        "--max-epochs",
        "1",
        "--context-length",
        "48",
        "--prediction-length",
        "12",
        "-q",
    )
    table = ok("evaluate", data, "--model-dir", tmp_path / "m", "--n-windows", "3", "-q").stdout
    assert "Rolling-window metrics (3 windows x 3 series)" in table and "smape %" in table
