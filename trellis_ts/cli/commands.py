"""The forecasting commands (`forecast`, `fit`, `predict`, `update`, `evaluate`): a thin Typer layer
over `TrellisForecaster`.

Options are shared through `Annotated` aliases and decorators: `data_options` (input),
`model_options` (one option per `TrellisConfig` field, so defaults live only in the config) and
`user_errors` (a `TrellisUserError` becomes one `error: ...` line and exit status 2). A new
command stacks them under `@app.command()`. The model code (torch, Lightning) is imported only
once the options and the data have been checked (`prepare`), so `--help`, `--version` and a
bad file or option answer in well under a second.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from trellis_ts.cli.app import app, stopped_by_signals, user_errors
from trellis_ts.cli.inputs import DataSource, prepare
from trellis_ts.cli.options import (
    Force,
    Future,
    Json,
    Level,
    ModelDir,
    Output,
    Plot,
    QuantilesOut,
    Quiet,
    check_model_dir,
    check_quantiles,
    data_options,
    float_list,
    model_options,
    output_option,
)
from trellis_ts.cli.outputs import check_outputs, staged_outputs
from trellis_ts.cli.report import print_metrics, report


def with_auto(settings: dict) -> dict:
    """The command line's default model: "auto" (an encoder when quantiles or streaming are
    asked for: the auto model gives point forecasts, with conformal intervals, from windows)."""
    if "model" in settings:
        return settings
    encoder = settings.get("loss") == "quantile" or settings.get("streaming")
    return settings | {"model": "encoder" if encoder else "auto"}


def new_forecaster(settings: dict, *, quiet: bool):
    """An unfitted forecaster (its settings were checked by `prepare`)."""
    from trellis_ts import TrellisForecaster

    return TrellisForecaster(**(settings | {"verbose": not quiet}))


def train(forecaster, df, columns: dict, **fit_kwargs: Any):
    """Fit; Lightning's progress bar goes to stderr so that stdout stays clean for data."""
    with contextlib.redirect_stdout(sys.stderr):
        return forecaster.fit(df, **columns, **fit_kwargs)


def load_model(model_dir: Path, columns: dict):
    """A saved forecaster; column options given on the command line replace its own."""
    from trellis_ts import TrellisForecaster

    forecaster = TrellisForecaster.load(model_dir)
    forecaster.columns_ = {**forecaster.columns_, **columns}
    return forecaster


def _model_and_data(model_dir: Path, data: DataSource, level, *, required: bool = True):
    """The saved model and the data. A bad file fails before the model loads (torch), except
    with --level: a model that cannot give intervals says so before the data is read."""
    if level:
        forecaster = load_model(model_dir, data.columns)
        forecaster.calibration_for(level)
        return forecaster, data.read(required=required)
    df = data.read(required=required)
    return load_model(model_dir, data.columns), df


def labelled(frame, layout, columns=None):
    """``frame`` with its timestamps written as the input's week, quarter or month labels
    (`1998 Q1`) when its time was written so: the time column or index, else ``columns``."""
    import pandas as pd

    from trellis_ts.data.io.dates import format_times

    if layout.time_format is None:
        return frame
    frame = frame.copy()
    if columns is None and layout.time_in_index:
        frame.index = format_times(frame.index, layout.time_format)
        return frame
    for column in columns or [layout.time_col]:
        frame[column] = format_times(pd.DatetimeIndex(frame[column]), layout.time_format)
    return frame


def csv_writer(frame, forecaster, data: DataSource):
    """Writes ``frame`` (in the model's layout) as CSV to a path or stream: the input's separator
    and decimal mark, timestamps in the input's label style (`labelled`), and a time index as a
    first column named like it (or "step")."""
    layout = forecaster.history_.layout
    label = (frame.index.name or "step") if layout.time_in_index else None
    frame = labelled(frame, layout)

    def to_csv(target) -> None:
        frame.to_csv(
            target,
            sep=data.out_sep,
            decimal=data.decimal,
            index=layout.time_in_index,
            index_label=label,
        )

    return to_csv


def write_forecast(
    forecaster,
    df,
    data: DataSource,
    *,
    output,
    plot,
    quantiles_out,
    level=None,
    history_df=None,
    future=None,
    before_commit: Callable[[], None] | None = None,
) -> dict:
    """Predict from `df` (None: the end of the fit data) and the --future file, write -o/--plot
    or print the CSV.

    The plot shows `history_df` (default `df`, else the stored context). `before_commit` runs
    once the outputs are written but before they replace anything (forecast saves its model
    there: if that fails, no output is left either). Returns the outputs.
    """
    config = forecaster.config_
    levels = float_list("--quantiles-out", quantiles_out) if quantiles_out else None
    if levels is None and config.loss == "quantile":
        levels = config.quantiles
    known = data.read_future(future, forecaster.history_.layout)
    fc = forecaster.predict(df, future=known, quantiles=levels, level=level)
    to_csv = csv_writer(fc, forecaster, data)

    outputs: dict[str, str] = {}
    with staged_outputs() as stage:
        if output is not None:
            stage(output, to_csv)
            outputs["forecast"] = str(output)
        if plot is not None:
            from trellis_ts.plotting import plot_forecast, save_figure

            fig = plot_forecast(forecaster, fc, df if history_df is None else history_df)
            stage(plot, lambda p: save_figure(fig, p, plot.suffix.lower()[1:]))
            outputs["plot"] = str(plot)
        if before_commit is not None:
            before_commit()
    if output is None:
        to_csv(sys.stdout)
    return outputs


def check_future(data: DataSource, future: Path | None) -> None:
    """Before training: future covariates need --future, and that file must exist."""
    from trellis_ts.errors import ConfigError, DataError

    if future is not None and not future.is_file():
        raise DataError(f"--future {future} does not exist; check the path")
    if data.columns.get("future_covariates") and future is None:
        raise ConfigError(
            "--future-covariates need their values over the horizon: pass --future FILE (the time "
            "column, the id column of a long file, and each future covariate for the "
            "--prediction-length steps after the data's end)"
        )


def check_interval_levels(level, settings: dict | None = None) -> None:
    """Fail on bad --level values (and on a fit that cannot calibrate) before any training."""
    from trellis_ts.errors import ConfigError
    from trellis_ts.forecaster.backtest import check_levels

    check_levels(level)
    if level and settings is not None and settings.get("val_fraction") == 0:
        raise ConfigError(
            "--level needs a validation part to calibrate the intervals, but --val-fraction is 0; "
            "use a positive --val-fraction"
        )


def _saved_fit(model_dir: Path) -> tuple[dict, dict] | None:
    """The settings and column options of a saved model, from its model.json alone (no torch);
    None when that file cannot be read so (loading the model then says why)."""
    import json

    from trellis_ts.forecaster.config import TrellisConfig

    try:
        meta = json.loads((model_dir / "model.json").read_text())
        # As load_state reads it: saved before target_transform existed means "none".
        params = TrellisConfig.from_dict({"target_transform": "none", **meta["config"]}).params()
        columns = {k: v for k, v in dict(meta["columns"]).items() if v is not None}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return None
    return params, columns


def _kept_by_fit(model_dir: Path, checkpoints: Path) -> Callable[[], str]:
    def kept() -> str:
        if (checkpoints / "last.ckpt").is_file():
            return (
                f"nothing was saved to {model_dir}; the last finished epoch is kept in "
                f"{checkpoints}: rerun the same command with --resume to continue"
            )
        return f"no epoch had finished; nothing was saved to {model_dir}"

    return kept


# ------------------------------------------------------------------ commands


@app.command()
@user_errors
@model_options
@data_options(covariates=True)
def forecast(
    data: DataSource,
    future: Future = None,
    output: Output = None,
    plot: Plot = None,
    quantiles_out: QuantilesOut = None,
    level: Level = None,
    model_dir: Annotated[Path | None, output_option("Also save the fitted model here.")] = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
    settings: dict | None = None,
) -> None:
    """Fit a model on the data and forecast the steps after its end.

    Sizes not given (--prediction-length, --context-length, --patch-len, --patch-stride) are
    chosen from the data's frequency and length, and said in one line before training.
    """
    settings = with_auto(settings)
    check_outputs(
        inputs=(data.csv, future), force=force, model_dir=model_dir, output=output, plot=plot
    )
    check_interval_levels(level, settings)
    if model_dir is not None:
        check_model_dir(model_dir)
    check_future(data, future)
    if quantiles_out:  # fail now rather than after training
        from trellis_ts.forecaster.config import TrellisConfig

        check_quantiles(TrellisConfig(**settings), quantiles_out)
    panel = prepare(data, settings)
    forecaster = new_forecaster(settings, quiet=quiet)
    with stopped_by_signals(lambda: "nothing was written"):
        train(forecaster, panel, data.columns)
    from trellis_ts.forecaster.training import is_main_process

    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes
        return
    save = None if model_dir is None else (lambda: forecaster.save(model_dir))
    outputs = write_forecast(
        forecaster,
        None,
        data,
        output=output,
        plot=plot,
        quantiles_out=quantiles_out,
        level=level,
        history_df=panel,
        future=future,
        before_commit=save,
    )
    if model_dir is not None:
        outputs["model_dir"] = str(model_dir)
    report("forecast", forecaster, outputs, quiet=quiet, as_json=as_json)


@app.command()
@user_errors
@model_options
@data_options(covariates=True)
def fit(
    data: DataSource,
    model_dir: ModelDir,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted fit of the same data and options from its "
            "last checkpoint (kept in <model-dir>.checkpoints until the model is saved)."
        ),
    ] = False,
    warm_start: Annotated[
        bool,
        typer.Option(
            help="Continue training the model saved in --model-dir on this data (same columns "
            "or ids) for --max-epochs more, then replace it in place. Only training options "
            "(--max-epochs, --learning-rate, ...) may be given."
        ),
    ] = False,
    rescale: Annotated[
        bool,
        typer.Option(help="With --warm-start: recompute the per-series scaling on this data."),
    ] = False,
    quiet: Quiet = False,
    as_json: Json = False,
    settings: dict | None = None,
) -> None:
    """Fit a model on the data and save it to --model-dir (for predict and evaluate).

    SIGINT or SIGTERM stops it with status 130 or 143; the last finished epoch stays in
    <model-dir>.checkpoints for --resume.
    """
    from trellis_ts.errors import ConfigError
    from trellis_ts.forecaster.checkpoints import check_checkpoint_dir, remove_checkpoints

    check_model_dir(model_dir)
    if rescale and not warm_start:
        raise ConfigError("--rescale only applies with --warm-start; add --warm-start or drop it")
    checkpoints = model_dir.with_name(model_dir.name + ".checkpoints")
    check_checkpoint_dir(checkpoints)  # removed after the save: it must hold only our files
    if warm_start:
        if not (model_dir / "model.json").is_file():
            raise ConfigError(
                f"--warm-start continues the model in --model-dir, but {model_dir} holds none; "
                "fit it first without --warm-start"
            )
        saved = _saved_fit(model_dir)
        if saved is not None:  # the data's checks (log1p's negatives) before torch loads
            panel = prepare(data, saved[0] | settings, {**saved[1], **data.columns})
        forecaster = load_model(model_dir, {})
        forecaster.set_params(**(settings | {"verbose": not quiet}))
        if saved is None:
            panel = prepare(data, forecaster.get_params(), {**forecaster.columns_, **data.columns})
    else:
        settings = with_auto(settings)
        panel = prepare(data, settings)
        forecaster = new_forecaster(settings, quiet=quiet)
    with stopped_by_signals(_kept_by_fit(model_dir, checkpoints)):
        train(
            forecaster,
            panel,
            data.columns,
            checkpoint_dir=checkpoints,
            resume=resume,
            **({"warm_start": True, "rescale": rescale} if warm_start else {}),
        )
    from trellis_ts.forecaster.training import is_main_process

    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes it
        return
    forecaster.save(model_dir)  # a new directory swapped in whole: never half old, half new
    remove_checkpoints(checkpoints)  # only the files fit wrote, never anyone else's
    outputs = {"model_dir": str(model_dir)}
    report("fit", forecaster, outputs, quiet=quiet, as_json=as_json)


STORED_END = "CSV file with the history to forecast from (default: the model's stored end)."


@app.command()
@user_errors
@data_options(STORED_END)
def predict(
    data: DataSource,
    model_dir: ModelDir,
    future: Future = None,
    output: Output = None,
    plot: Plot = None,
    quantiles_out: QuantilesOut = None,
    level: Level = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Forecast with a saved model from the end of the data, or of its stored history.

    Without a data file the forecast starts after the history the model stores: its fit data
    and the rows given to `trellis-ts update`. Column options: the model's.
    """
    started = time.perf_counter()
    check_outputs(
        inputs=(data.csv, future), force=force, model_dir=model_dir, output=output, plot=plot
    )
    check_interval_levels(level)
    check_model_dir(model_dir, existing=True)
    forecaster, df = _model_and_data(model_dir, data, level, required=False)
    outputs = write_forecast(
        forecaster,
        df,
        data,
        output=output,
        plot=plot,
        quantiles_out=quantiles_out,
        level=level,
        future=future,
    )
    report("predict", forecaster, outputs, quiet=quiet, as_json=as_json, started=started)


@app.command()
@user_errors
@data_options("CSV file of new rows: the fit's columns, continuing each series after its end.")
def update(
    data: DataSource,
    model_dir: ModelDir,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Append new rows to a saved model's history and save it in place, without refitting.

    `trellis-ts predict --model-dir M` then forecasts from the new end. The rows are read with
    the model's column options; a failed update leaves the model directory as it was.
    """
    started = time.perf_counter()
    check_model_dir(model_dir, existing=True)
    df = data.read()  # a bad file fails before the model loads
    forecaster = load_model(model_dir, data.columns)
    before = dict(zip(forecaster.history_.names, forecaster.history_.index, strict=True))
    forecaster.update(df)
    forecaster.save(model_dir)  # a new directory swapped in whole: never half old, half new
    history = forecaster.history_
    ends = {n: ix[-1] for n, ix in zip(history.names, history.index, strict=True)}
    touched = [n for n in history.names if n not in before or before[n][-1] != ends[n]]
    new = sum(n not in before for n in history.names)
    end = max(ends[n] for n in touched)
    record = {
        "command": "update",
        "seconds": round(time.perf_counter() - started, 3),
        "rows": len(df),
        "series": len(touched),
        "new_series": new,
        "end": str(end),
        "updates": forecaster.summary_.extra.get("updates"),
        "outputs": {"model_dir": str(model_dir)},
    }
    if as_json:
        typer.echo(json.dumps(record))
    elif not quiet:
        series = f"{len(touched)} series" + (f" ({new} new)" if new else "")
        typer.echo(
            f"Added {len(df)} rows to {series} of {model_dir}; the history now ends at {end}."
        )


@app.command("future-frame")
@user_errors
@data_options(STORED_END)
def future_frame(
    data: DataSource,
    model_dir: ModelDir,
    output: Annotated[
        Path | None,
        output_option("Write the frame to this CSV file (default: stdout).", "--output", "-o"),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Write the frame that --future needs: the timestamps (and ids) of the steps after the data's
    end, the calendar columns filled and one empty column per future covariate to fill."""
    started = time.perf_counter()
    check_outputs(inputs=(data.csv,), force=force, model_dir=model_dir, output=output)
    check_model_dir(model_dir, existing=True)
    forecaster, df = _model_and_data(model_dir, data, None, required=False)
    frame = forecaster.make_future_frame(df)
    to_csv = csv_writer(frame, forecaster, data)
    outputs = {}
    if output is None:
        to_csv(sys.stdout)
    else:
        with staged_outputs() as stage:
            stage(output, to_csv)
        outputs["future_frame"] = str(output)
    report("future-frame", forecaster, outputs, quiet=quiet, as_json=as_json, started=started)


@app.command()
@user_errors
@data_options()
def evaluate(
    data: DataSource,
    model_dir: ModelDir,
    n_windows: Annotated[
        int | None, typer.Option(help="Newest windows per series to score (default: all).")
    ] = None,
    step: Annotated[
        int | None, typer.Option(help="Steps between windows (default: the prediction length).")
    ] = None,
    level: Level = None,
    baselines: Annotated[
        bool,
        typer.Option(
            help="Also score the seasonal naive, AutoETS and AutoTheta on the same "
            "windows (each estimated before a series' first window)."
        ),
    ] = False,
    output: Annotated[
        Path | None,
        output_option("Write the metrics of every window to this CSV file.", "--output", "-o"),
    ] = None,
    forecasts: Annotated[
        Path | None,
        output_option(
            "Write the backtest forecasts to this CSV file: one row per series, cutoff "
            "and horizon step (series, cutoff, timestamp, horizon, actual, forecast, ...)."
        ),
    ] = None,
    plot: Annotated[
        Path | None, output_option("Draw the backtest windows over the history (.png).")
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Score a saved model on rolling windows at the end of the data (MSE, MAE, MASE, sMAPE in
    percent, 0-200).

    Windows that forecast time steps the model was fitted on are in-sample: a warning says so.
    """
    started = time.perf_counter()
    check_outputs(
        inputs=(data.csv,),
        force=force,
        model_dir=model_dir,
        output=output,
        forecasts=forecasts,
        plot=plot,
    )
    check_interval_levels(level)
    check_model_dir(model_dir, existing=True)
    forecaster, df = _model_and_data(model_dir, data, level)
    from trellis_ts.forecaster.backtest import aggregate_metrics

    result = forecaster.rolling_forecasts(df, n_windows=n_windows, step=step, level=level)
    table = result.metrics()
    metrics = aggregate_metrics(table)
    scores = [c for c in metrics if c != "n_windows"]
    outputs = {}
    write = {"sep": data.out_sep, "decimal": data.decimal, "index": False}
    with staged_outputs() as stage:
        if output is not None:
            stage(output, lambda p: table.to_csv(p, **write))
            outputs["metrics"] = str(output)
        if forecasts is not None:
            rows = labelled(result.forecasts(), result.panel.layout, ["cutoff", "timestamp"])
            stage(forecasts, lambda p: rows.to_csv(p, **write))
            outputs["forecasts"] = str(forecasts)
        if plot is not None:
            from trellis_ts.plotting import backtest_figure, save_figure

            fig = backtest_figure(result.panel, result.forecasts())
            stage(plot, lambda p: save_figure(fig, p, plot.suffix.lower()[1:]))
            outputs["plot"] = str(plot)
    extra = {}
    if baselines:
        from trellis_ts.forecaster.statistical import STATISTICAL, baseline_scores
        from trellis_ts.metrics import seasonal_period

        w = result.windows
        extra["baselines"] = baseline_scores(
            result.panel,
            w.series,
            w.start,
            forecaster.config_.prediction_length,
            seasonal_period(result.panel.freq),
        )
    if not as_json:
        print_metrics(table, scores, metrics)
        for name, mase in extra.get("baselines", {}).items():
            typer.echo(
                f"{STATISTICAL[name]}: MASE {mase:.4g} on the same windows "
                f"(this model: {metrics['mase']:.4g})"
            )
    report(
        "evaluate",
        forecaster,
        outputs,
        quiet=quiet,
        as_json=as_json,
        started=started,
        metrics=metrics,
        **extra,
    )
