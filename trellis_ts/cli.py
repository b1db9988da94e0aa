"""The `trellis-ts` command line: a thin Typer layer over `TrellisForecaster`.

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
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

import trellis_ts
from trellis_ts.cli_options import (
    DataSource,
    Force,
    Json,
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
    stopped_by_signals,
    user_errors,
)
from trellis_ts.cli_outputs import check_outputs, staged_outputs
from trellis_ts.config import SIZE_FIELDS

app = typer.Typer(
    name="trellis-ts",
    help="Forecast time series from CSV files with Trellis models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trellis-ts {trellis_ts.__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Forecast time series from CSV files with Trellis models."""


def prepare(data: DataSource, settings: dict):
    """The data as a checked `Panel`, before any model code loads: bad options, files, columns,
    dates and sizes fail here in well under a second."""
    from trellis_ts.config import TrellisConfig
    from trellis_ts.data import to_panel
    from trellis_ts.sizing import resolve_sizes

    config = TrellisConfig(**settings)
    df = data.read()
    panel = to_panel(df, **data.columns, freq=config.freq, missing=config.missing,
                     fill_gaps=config.fill_gaps)  # fmt: skip
    resolve_sizes(config, panel.freq, panel.lengths(), panel.names)
    return panel


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


def write_forecast(forecaster, df, data: DataSource, *, output, plot, quantiles_out,
                   history_df=None) -> dict:  # fmt: skip
    """Predict from `df` (None: the end of the fit data), write -o/--plot or print the CSV.

    The plot shows `history_df` (default `df`, else the stored context). Returns the outputs.
    """
    config = forecaster.config_
    levels = float_list("--quantiles-out", quantiles_out) if quantiles_out else None
    if levels is None and config.loss == "quantile":
        levels = config.quantiles
    fc = forecaster.predict(df, quantiles=levels)
    time_in_index = forecaster.history_.layout == "wide" and forecaster.history_.time_col is None
    label = (fc.index.name or "step") if time_in_index else None

    def to_csv(target) -> None:
        fc.to_csv(target, sep=data.out_sep, decimal=data.decimal, index=time_in_index,
                  index_label=label)  # fmt: skip

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
    if output is None:
        to_csv(sys.stdout)
    return outputs


def report(command: str, forecaster, outputs: dict, *, quiet: bool, as_json: bool,
           started: float | None = None, **extra) -> None:  # fmt: skip
    """The closing summary: one JSON object on stdout, or short lines on stderr.

    `forecast` and `fit` report their training (epochs, validation loss, seconds, the sizes);
    `predict` and `evaluate` report their own seconds (since `started`), and the training of
    the model they used under "fit"."""
    summary, config = forecaster.summary_, forecaster.config_
    trained = {"epochs": summary.epochs, "best_val_loss": summary.best_val_loss,
               "seconds": round(summary.seconds, 3)}  # fmt: skip
    loss = "n/a (no validation split)" if summary.best_val_loss is None else (
        f"{summary.best_val_loss:.4g}")  # fmt: skip
    if command in ("forecast", "fit"):
        sizes = {k: getattr(config, k) for k in SIZE_FIELDS}
        record = {"command": command, **trained, "sizes": sizes,
                  "data": getattr(forecaster, "data_summary_", None)}  # fmt: skip
        line = (f"Trained {summary.epochs} epoch(s) in {summary.seconds:.1f} s; best validation "
                f"loss {loss}.")  # fmt: skip
    else:
        seconds = time.perf_counter() - started
        record = {"command": command, "seconds": round(seconds, 3), "fit": trained}
        verb = "Forecast" if command == "predict" else "Scored"
        line = (f"{verb} in {seconds:.1f} s with a model trained for {summary.epochs} epoch(s) "
                f"(best validation loss {loss}).")  # fmt: skip
    if as_json:
        typer.echo(json.dumps(_finite({**record, "outputs": outputs, **extra}), default=str))
    elif not quiet:
        typer.echo(line, err=True)
        for kind, path in outputs.items():
            typer.echo(f"Wrote {kind}: {path}", err=True)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


def _kept_by_fit(model_dir: Path, checkpoints: Path) -> Callable[[], str]:
    def kept() -> str:
        if (checkpoints / "last.ckpt").is_file():
            return (f"nothing was saved to {model_dir}; the last finished epoch is kept in "
                    f"{checkpoints}: rerun the same command with --resume to continue")  # fmt: skip
        return f"no epoch had finished; nothing was saved to {model_dir}"

    return kept


# ------------------------------------------------------------------ commands


@app.command()
@user_errors
@model_options
@data_options()
def forecast(
    data: DataSource,
    output: Output = None,
    plot: Plot = None,
    quantiles_out: QuantilesOut = None,
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
    check_outputs(inputs=(data.csv,), force=force, output=output, plot=plot)
    if model_dir is not None:
        check_model_dir(model_dir)
    if quantiles_out:  # fail now rather than after training
        from trellis_ts.config import TrellisConfig

        check_quantiles(TrellisConfig(**settings), quantiles_out)
    panel = prepare(data, settings)
    forecaster = new_forecaster(settings, quiet=quiet)
    with stopped_by_signals(lambda: "nothing was written"):
        train(forecaster, panel, data.columns)
    from trellis_ts.training import is_main_process

    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes
        return
    outputs = write_forecast(forecaster, None, data, output=output, plot=plot,
                             quantiles_out=quantiles_out, history_df=panel)  # fmt: skip
    if model_dir is not None:
        forecaster.save(model_dir)
        outputs["model_dir"] = str(model_dir)
    report("forecast", forecaster, outputs, quiet=quiet, as_json=as_json)


@app.command()
@user_errors
@model_options
@data_options()
def fit(
    data: DataSource,
    model_dir: ModelDir,
    resume: Annotated[
        bool,
        typer.Option(
            help="Continue an interrupted fit of the same data and options from its "
            "last checkpoint (kept in <model-dir>.checkpoints until the model is saved)."
        ),
    ] = False,  # fmt: skip
    quiet: Quiet = False,
    as_json: Json = False,
    settings: dict | None = None,
) -> None:
    """Fit a model on the data and save it to --model-dir (for predict and evaluate).

    SIGINT or SIGTERM stops it with status 130 or 143; the last finished epoch stays in
    <model-dir>.checkpoints for --resume.
    """
    import shutil

    check_model_dir(model_dir)
    checkpoints = model_dir.with_name(model_dir.name + ".checkpoints")
    panel = prepare(data, settings)
    forecaster = new_forecaster(settings, quiet=quiet)
    with stopped_by_signals(_kept_by_fit(model_dir, checkpoints)):
        train(forecaster, panel, data.columns, checkpoint_dir=checkpoints, resume=resume)
    from trellis_ts.training import is_main_process

    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes it
        return
    forecaster.save(model_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    outputs = {"model_dir": str(model_dir)}
    report("fit", forecaster, outputs, quiet=quiet, as_json=as_json)


@app.command()
@user_errors
@data_options("CSV file with the history to forecast from (default: the end of the fit data).")
def predict(
    data: DataSource,
    model_dir: ModelDir,
    output: Output = None,
    plot: Plot = None,
    quantiles_out: QuantilesOut = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Forecast with a saved model from the end of the data (column options: the model's)."""
    started = time.perf_counter()
    check_outputs(inputs=(data.csv,), force=force, output=output, plot=plot)
    check_model_dir(model_dir, existing=True)
    df = data.read(required=False)  # a bad file fails before the model loads
    forecaster = load_model(model_dir, data.columns)
    outputs = write_forecast(forecaster, df, data, output=output, plot=plot,
                             quantiles_out=quantiles_out)  # fmt: skip
    report("predict", forecaster, outputs, quiet=quiet, as_json=as_json, started=started)


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
    output: Annotated[
        Path | None,
        output_option("Write the metrics of every window to this CSV file.", "--output", "-o"),
    ] = None,
    force: Force = False,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Score a saved model on rolling windows at the end of the data (MSE, MAE, MASE, sMAPE).

    Windows that forecast time steps the model was fitted on are in-sample: a warning says so.
    """
    started = time.perf_counter()
    check_outputs(inputs=(data.csv,), force=force, output=output)
    check_model_dir(model_dir, existing=True)
    df = data.read()  # a bad file fails before the model loads
    from trellis_ts.evaluation import aggregate_metrics

    forecaster = load_model(model_dir, data.columns)
    table = forecaster.backtest(df, n_windows=n_windows, step=step)
    metrics = aggregate_metrics(table)
    scores = [c for c in metrics if c != "n_windows"]
    outputs = {}
    if output is not None:
        with staged_outputs() as stage:
            stage(output, lambda p: table.to_csv(p, sep=data.out_sep, decimal=data.decimal,
                                                 index=False))  # fmt: skip
        outputs["metrics"] = str(output)
    if not as_json:
        print_metrics(table, scores, metrics)
    report("evaluate", forecaster, outputs, quiet=quiet, as_json=as_json, started=started,
           metrics=metrics)  # fmt: skip


def print_metrics(table, scores: list[str], metrics: dict, max_rows: int = 20) -> None:
    """A table on stdout: mean metrics per series (at most `max_rows`) and over everything."""
    from rich.console import Console
    from rich.table import Table

    per_series = table.groupby("series", sort=False)[scores].mean()
    counts = table.groupby("series", sort=False).size()
    view = Table(title=f"Rolling-window metrics ({metrics['n_windows']} windows)")
    for name in ["series", "windows", *scores]:
        view.add_column(name, justify="left" if name == "series" else "right")
    for name, row in per_series.head(max_rows).iterrows():
        view.add_row(str(name), str(counts[name]), *(f"{row[c]:.4g}" for c in scores))
    if len(per_series) > max_rows:
        more = f"... {len(per_series) - max_rows} more (-o writes all)"
        view.add_row(more, *[""] * (len(scores) + 1))
    view.add_row("all", str(metrics["n_windows"]), *(f"{metrics[c]:.4g}" for c in scores),
                 style="bold")  # fmt: skip
    Console(soft_wrap=True).print(view)


def main() -> None:
    """Entry point of the `trellis-ts` script, `python -m trellis_ts` and the root `cli.py`."""
    from trellis_ts.cli_research import expand_multi_value

    app(args=expand_multi_value(sys.argv[1:]), prog_name="trellis-ts")


# The research commands (tune, benchmark) register on `app` when their module is imported.
from trellis_ts import cli_research  # noqa: E402, F401

if __name__ == "__main__":
    main()
