"""The command line (trellis_ts.cli.commands): every command on every input layout, and user errors.

Everything trains tiny models for one epoch, so the whole file runs in seconds per fit.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from trellis_ts.cli import commands as cli
from trellis_ts.cli import outputs as cli_outputs
from trellis_ts.data import make_demo_frame
from trellis_ts.errors import DataError
from trellis_ts.forecaster.config import FIELD_HELP, config_fields

ROOT = Path(__file__).resolve().parents[2]
H = 6
TINY = [
    "--model",
    "encoder",
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
    "--max-epochs",
    "1",
    "--quiet",
]
runner = CliRunner()


def run(*args: str | Path):
    return runner.invoke(cli.app, [str(a) for a in args])


def ok(*args: str | Path):
    result = run(*args)
    assert result.exit_code == 0, result.output
    return result


# ------------------------------------------------------------------ input files


def write_wide(path: Path, n: int = 200) -> Path:
    make_demo_frame(n, 3).to_csv(path, index=False)
    return path


def write_long(path: Path) -> Path:
    """Three stores of 120 hourly steps, with non-default column names."""
    demo = make_demo_frame(120, 3)
    frames = [
        pd.DataFrame({"store": f"s{i}", "date": demo["date"], "sales": demo[f"load_{i}"]})
        for i in (1, 2, 3)
    ]
    pd.concat(frames).to_csv(path, index=False)
    return path


def write_integer(path: Path) -> Path:
    """No time column: the row number is the time."""
    demo = make_demo_frame(150, 2)
    demo[["load_1", "load_2"]].to_csv(path, index=False)
    return path


def write_european(path: Path) -> Path:
    """';'-separated with decimal commas, daily."""
    demo = make_demo_frame(150, 2, freq="D")
    demo.to_csv(path, index=False, sep=";", decimal=",")
    return path


LAYOUTS = {
    # name: (writer, extra CLI options, how to read outputs back, expected time column)
    "wide": (write_wide, [], {}, "date"),
    "long": (
        write_long,
        ["--id-col", "store", "--time-col", "date", "--target", "sales"],
        {},
        "date",
    ),
    "integer": (write_integer, [], {}, "step"),
    "european": (write_european, ["--decimal", ","], {"sep": ";", "decimal": ","}, "date"),
}


def next_times(data: pd.DataFrame, layout: str, horizon: int) -> list:
    """The `horizon` time stamps after the end of the data (of each id for long data)."""
    if layout == "integer":
        return list(range(len(data), len(data) + horizon))
    if layout == "long":
        out = []
        for _, rows in data.groupby("store", sort=False):
            last = pd.Timestamp(rows["date"].iloc[-1])
            out += list(pd.date_range(last, periods=horizon + 1, freq="h")[1:])
        return out
    times = pd.to_datetime(data["date"])
    step = times.iloc[-1] - times.iloc[-2]
    return list(pd.date_range(times.iloc[-1] + step, periods=horizon, freq=step))


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_command_on_every_layout(layout, tmp_path):
    writer, options, read, time_col = LAYOUTS[layout]
    data_file = writer(tmp_path / f"{layout}.csv")
    data = pd.read_csv(data_file, **read)

    # forecast: CSV with the input's columns and the next timestamps, and a plot.
    out, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    ok("forecast", data_file, *options, *TINY, "-o", out, "--plot", png)
    fc = pd.read_csv(out, **read)
    expected_columns = list(data.columns) if layout != "integer" else ["step", *data.columns]
    assert list(fc.columns) == expected_columns
    got = list(fc[time_col]) if layout == "integer" else list(pd.to_datetime(fc[time_col]))
    assert got == next_times(data, layout, H)
    assert np.isfinite(fc.drop(columns=[time_col, "store"], errors="ignore").to_numpy()).all()
    assert png.stat().st_size > 10_000 and png.read_bytes()[:4] == b"\x89PNG"

    # fit -> predict (from the stored end, and from the CSV: the same) -> evaluate
    model_dir = tmp_path / "model"
    ok("fit", data_file, "--model-dir", model_dir, *options, *TINY)
    assert (model_dir / "model.json").is_file()
    sep, decimal = read.get("sep", ","), read.get("decimal", ".")
    formats = ["--sep", sep, "--decimal", decimal, "-q"]
    stored = ok("predict", "--model-dir", model_dir, *formats).stdout  # the CSV goes to stdout
    from_csv = ok("predict", data_file, "--model-dir", model_dir, *formats).stdout
    assert stored == from_csv and stored.splitlines()[0] == sep.join(expected_columns)
    result = ok(
        "evaluate",
        data_file,
        "--model-dir",
        model_dir,
        "--n-windows",
        "2",
        "--decimal",
        decimal,
        "--json",
    )
    metrics = json.loads(result.stdout)["metrics"]
    n_series = 3 if layout in ("wide", "long") else 2
    assert metrics["n_windows"] == 2 * n_series
    assert {"mse", "mae", "mase", "smape"} <= set(metrics)


def test_forecast_json_summary_and_model_dir(tmp_path):
    data_file = write_wide(tmp_path / "data.csv")
    out, model_dir = tmp_path / "fc.csv", tmp_path / "model"
    result = ok("forecast", data_file, *TINY, "-o", out, "--model-dir", model_dir, "--json")
    summary = json.loads(result.stdout)  # stdout holds exactly one JSON object
    assert summary["command"] == "forecast" and summary["epochs"] == 1
    assert summary["best_val_loss"] > 0 and summary["seconds"] > 0
    assert summary["outputs"] == {"forecast": str(out), "model_dir": str(model_dir)}
    # predict from the saved model reproduces the forecast
    again = tmp_path / "again.csv"
    ok("predict", "--model-dir", model_dir, "-o", again, "-q")
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(again))


def test_summary_and_metrics_table(tmp_path):
    data_file = write_wide(tmp_path / "data.csv")
    model_dir = tmp_path / "m"
    options = [a for a in TINY if a != "--quiet"]
    result = ok("fit", data_file, "--model-dir", model_dir, *options)
    assert "Trained 1 epoch(s)" in result.stderr and f"model_dir: {model_dir}" in result.stderr
    table = tmp_path / "windows.csv"
    result = ok("evaluate", data_file, "--model-dir", model_dir, "--step", "12", "-o", table)
    assert "Rolling-window metrics" in result.stdout and "mase" in result.stdout
    windows = pd.read_csv(table)
    assert list(windows.columns[:2]) == ["series", "cutoff"] and len(windows) > 3


def test_quantile_forecast_writes_band_columns(tmp_path):
    data_file = write_wide(tmp_path / "data.csv")
    out, png = tmp_path / "fc.csv", tmp_path / "fc.png"
    ok(
        "forecast",
        data_file,
        *TINY,
        "--loss",
        "quantile",
        "--quantiles-out",
        "0.1,0.9",
        "-o",
        out,
        "--plot",
        png,
    )
    columns = list(pd.read_csv(out).columns)
    assert columns[:4] == ["date", "load_1", "load_2", "load_3"]
    assert "load_1_q0.1" in columns and "load_3_q0.9" in columns and len(columns) == 10
    assert png.stat().st_size > 10_000


def test_demo_forecast(tmp_path):
    # The README's job on the built-in series, with a tiny model for one epoch.
    out, png = tmp_path / "forecast.csv", tmp_path / "forecast.png"
    ok("forecast", "--demo", *TINY, "--windows-per-epoch", "512", "-o", out, "--plot", png)
    fc = pd.read_csv(out)
    assert list(fc.columns) == list(make_demo_frame().columns) and len(fc) == H
    assert png.stat().st_size > 10_000


# ------------------------------------------------------------------ options from TrellisConfig


def test_every_config_field_is_an_option_with_help():
    command = typer.main.get_command(cli.app).commands["forecast"]
    options = {p.name: p for p in command.params}
    for field in config_fields():
        assert field.name in FIELD_HELP, f"FIELD_HELP lacks {field.name}"
        if field.name == "verbose":  # --quiet
            continue
        option = options[field.name]
        assert option.opts[0] == "--" + field.name.replace("_", "-")
        assert option.default is None and FIELD_HELP[field.name] in option.help
        assert "Default:" in option.help
    assert "--no-revin" in options["revin"].secondary_opts


def test_options_are_parsed_to_the_config_types(tmp_path, monkeypatch):
    seen = {}

    def stop(forecaster, df, columns):
        seen.update(forecaster.get_params(), columns=columns)
        raise DataError("stop here")

    monkeypatch.setattr(cli, "train", stop)
    result = run(
        "forecast",
        "--demo",
        "--no-revin",
        "--quantiles",
        "0.2,0.5,0.8",
        "--devices",
        "1",
        "--random-state",
        "none",
        "--dropout",
        "0.3",
        "--freq",
        "h",
        "--windows-per-epoch",
        "50",
        "--target",
        "load_1,load_2",
        "--target",
        "load_3",
    )
    assert result.exit_code == 2 and "stop here" in result.stderr
    assert seen["revin"] is False and seen["quantiles"] == (0.2, 0.5, 0.8)
    assert seen["devices"] == 1 and seen["random_state"] is None and seen["dropout"] == 0.3
    assert seen["freq"] == "h" and seen["windows_per_epoch"] == 50
    assert seen["verbose"] is True and seen["context_length"] is None  # sized to the data
    assert seen["columns"] == {"target": ["load_1", "load_2", "load_3"]}


# ------------------------------------------------------------------ user errors


def _files(tmp_path: Path) -> dict[str, Path]:
    files = {"wide": write_wide(tmp_path / "wide.csv")}
    for name, text in {
        "empty": "",
        "text": "a,b\nx,y\nz,w\n",
        "short": "date,v\n" + "".join(f"2021-01-01 {h:02d}:00,{h}\n" for h in range(8)),
        "badtime": "date,v\n2021-01-01,1\nnot a date,2\n2021-01-03,3\n",
        "gappy": "date,v\n" + "".join(f"2021-01-01 {h:02d}:00,{h}\n" for h in (0, 1, 2, 4, 5)),
    }.items():
        files[name] = tmp_path / f"{name}.csv"
        files[name].write_text(text)
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    (corrupt / "model.json").write_text("{not json")
    (corrupt / "weights.safetensors").write_bytes(b"\0" * 10)
    files["corrupt"] = corrupt
    return files


ERRORS = [
    # (arguments; {name} is a file from _files), the message that must appear
    ("forecast {tmp}/nope.csv", "does not exist"),
    ("forecast {empty}", "is empty"),
    ("forecast {text}", "no numeric column"),
    ("forecast {wide} --target nope", "target column 'nope' not found"),
    ("forecast {wide} --time-col when", "--time-col when is not a column"),
    ("forecast {short}", "8 time steps, too few"),
    ("forecast {wide} --context-length 336", "are needed; shorten --context-length"),
    ("forecast {badtime}", "not a timestamp"),
    (
        "forecast {gappy} --freq h",
        "pass --fill-gaps with --missing interpolate (or --missing ffill)",
    ),
    ("forecast {wide} --mixer foo", "--mixer foo is not valid; choose one of"),
    ("forecast {wide} --context-length 0", "--context-length 0 must be a positive integer"),
    ("forecast {wide} --quantiles 0.1,x", "not a comma list of numbers"),
    ("forecast {wide} --random-state seven", "--random-state 'seven' is not an integer"),
    ("forecast {wide} --quantiles-out 0.1", "needs --loss quantile"),
    ("forecast {wide} --demo", "pass only one"),
    ("forecast", "no data given"),
    ("forecast {wide} --plot {tmp}/plot.txt", "image suffix"),
    ("forecast {wide} -o {tmp}/missing/fc.csv", "does not exist; create it first"),
    ("fit {wide} --model-dir {wide}", "is not a trellis-ts model directory"),
    ("predict {wide} --model-dir {tmp}/nowhere", "is not a trellis-ts model directory"),
    ("predict {wide} --model-dir {corrupt}", "is corrupted"),
    ("evaluate {short} --model-dir {corrupt}", "is corrupted"),
]


@pytest.mark.parametrize(("args", "message"), ERRORS, ids=[args for args, _ in ERRORS])
def test_user_error_is_one_line_and_exit_2(args, message, tmp_path):
    files = _files(tmp_path)
    out = tmp_path / "out.csv"
    argv = args.format(tmp=tmp_path, **files).split()
    if argv[0] != "fit" and "-o" not in argv:
        argv += ["-o", str(out)]
    result = run(*argv)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output and not out.exists()


def test_error_after_training_writes_nothing(tmp_path):
    data_file = write_wide(tmp_path / "data.csv")
    model_dir, out = tmp_path / "m", tmp_path / "fc.csv"
    ok("fit", data_file, "--model-dir", model_dir, *TINY)
    result = run("predict", "--model-dir", model_dir, "--quantiles-out", "0.5", "-o", out)
    assert (
        result.exit_code == 2
        and "fit it with --loss quantile" in result.stderr
        and not out.exists()
    )
    other = tmp_path / "other.csv"
    make_demo_frame(200, 2).to_csv(other, index=False)  # lacks load_3
    result = run("predict", other, "--model-dir", model_dir, "-o", out)
    assert result.exit_code == 2 and "load_3" in result.stderr and not out.exists()
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir())  # no temporary files


def test_usage_errors_keep_exit_status_2():
    result = run("forecast", "--no-such-option")
    assert result.exit_code == 2 and "No such option" in result.output
    result = run("forecast", "--demo", "--context-length", "abc")
    assert result.exit_code == 2


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(cli, "train", broken)
    result = run("forecast", "--demo", *TINY)
    assert result.exit_code == 1 and isinstance(result.exception, RuntimeError)


def test_staged_outputs_leave_nothing_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(ValueError), cli_outputs.staged_outputs() as stage:
        stage(target, lambda p: p.write_text("half"))
        raise ValueError("fails after the write")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ entry points and plots


def test_help_lists_every_command():
    result = ok("--help")
    for command in ("forecast", "fit", "predict", "evaluate"):
        assert command in result.stdout
    assert "--context-length" in ok("forecast", "--help").stdout


@pytest.mark.parametrize("entry", [["cli.py"], ["-m", "trellis_ts"]])
def test_entry_points_run_the_same_app(entry):
    done = subprocess.run(
        [sys.executable, *entry, "--help"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert all(c in done.stdout for c in ("forecast", "fit", "predict", "evaluate"))


def test_plot_of_many_series_says_how_many_are_shown():
    from trellis_ts.data import to_panel
    from trellis_ts.plotting import forecast_figure

    rows = [
        (f"id{i}", t, float(t.hour + i))
        for i in range(15)
        for t in pd.date_range("2021-01-01", periods=30, freq="h")
    ]
    panel = to_panel(pd.DataFrame(rows, columns=["unique_id", "ds", "y"]))
    future = pd.date_range("2021-01-02 06:00", periods=4, freq="h")
    fc = pd.DataFrame(
        [(f"id{i}", t, 1.0) for i in range(15) for t in future], columns=["unique_id", "ds", "y"]
    )
    fig = forecast_figure(panel, fc, context_length=8)
    assert "12 of 15 series" in fig.texts[0].get_text()
    assert sum(ax.get_visible() for ax in fig.axes) == 12
