"""The `trellis-ts` command line: a thin Typer layer over `TrellisForecaster`.

Options are shared through `Annotated` aliases and decorators: `data_options` (input),
`model_options` (one option per `TrellisConfig` field, so defaults live only in the config) and
`user_errors` (a `TrellisUserError` becomes one `error: ...` line and exit status 2). A new
command stacks them under `@app.command()`. The library is imported inside the commands, so
`--help` does not wait for Lightning.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import json
import math
import os
import re
import sys
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from trellis_ts.config import FIELD_HELP, TrellisConfig, config_fields
from trellis_ts.errors import ConfigError, TrellisUserError

app = typer.Typer(
    name="trellis-ts",
    help="Forecast time series from CSV files with Trellis models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,
)

INPUT, OUTPUT, MODEL = "Input", "Output", "Model (defaults: TrellisConfig)"
# The --demo series: 7 hourly channels, about 6 weeks. Long enough for the default context (336) and
# horizon (96) with a validation split; short enough to train in about a minute on 2 cores.
DEMO_STEPS = 1000


def _in(help: str, *decls: str) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=INPUT)


def _out(help: str, *decls: str) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=OUTPUT)


CsvArg = Annotated[
    Path | None,
    typer.Argument(help="CSV file: wide (time + numeric columns) or long (unique_id, ds, y).",
                   show_default=False),
]  # fmt: skip
Demo = Annotated[bool, _in("Use the built-in synthetic series instead of a CSV.", "--demo")]
TimeCol = Annotated[str | None, _in("Time column (default: detected).")]
Target = Annotated[
    list[str] | None,
    _in("Column(s) to forecast: repeat it or give a comma list (default: all numeric columns; "
        "y in a long file)."),
]  # fmt: skip
IdCol = Annotated[str | None, _in("Series id column of a long file (default: unique_id).")]
Sep = Annotated[str | None, _in("Column separator (default: detected).")]
Decimal = Annotated[str, _in("Decimal mark of the numbers, e.g. ','.")]
ModelDir = Annotated[
    Path, typer.Option(help="Directory of a model saved by `trellis-ts fit`.", show_default=False)
]
Output = Annotated[
    Path | None, _out("Write the forecast to this CSV file (default: stdout).", "--output", "-o")
]
Plot = Annotated[Path | None, _out("Save history + forecast per series as an image (.png).")]
QuantilesOut = Annotated[
    str | None,
    _out("Quantile columns to write, e.g. 0.1,0.9 (models fitted with --loss quantile; "
         "default: every trained level)."),
]  # fmt: skip
Quiet = Annotated[bool, _out("No progress bar and no summary.", "--quiet", "-q")]
Json = Annotated[bool, _out("Print the summary as one JSON object on stdout.", "--json")]


# ------------------------------------------------------------------ shared machinery


def user_errors(func: Callable) -> Callable:
    """User mistakes become `error: <message>` on stderr and exit status 2; warnings become
    `warning: <message>` lines. Any other exception is a bug and keeps its traceback."""

    @functools.wraps(func)
    def run(*args: Any, **kwargs: Any) -> Any:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            try:
                return func(*args, **kwargs)
            except TrellisUserError as exc:
                typer.echo(f"error: {cli_words(' '.join(str(exc).split()))}", err=True)
                raise typer.Exit(2) from None

    return run


_API_NAMES = [f.name for f in config_fields()] + ["time_col", "id_col", "target", "sep", "decimal"]


def cli_words(message: str) -> str:
    """Name options as the command line spells them: "context_length=0" -> "--context-length 0"."""
    pattern = r"\b(" + "|".join(_API_NAMES) + r")=(?!=) ?"
    return re.sub(pattern, lambda m: f"--{m.group(1).replace('_', '-')} ", message)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {' '.join(str(message).split())}", err=True)


def extend_command(func: Callable, name: str, params: list[inspect.Parameter], build: Callable,
                   *, first: bool = False) -> Callable:  # fmt: skip
    """Replace the parameter `name` of a command by the options `params` (Typer reads the
    signature); the command receives `build({option: value})` as `name`."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p.replace(kind=p.KEYWORD_ONLY) for p in signature.parameters.values() if p.name != name]
    names = [p.name for p in params]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        given = {n: kwargs.pop(n) for n in names}
        return func(**kwargs, **{name: build(given)})

    command.__signature__ = signature.replace(parameters=params + kept if first else kept + params)
    return command


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


@dataclasses.dataclass(frozen=True)
class DataSource:
    """The input options of a command: where the data is and how to read its columns."""

    csv: Path | None
    demo: bool
    time_col: str | None
    target: list[str] | None
    id_col: str | None
    sep: str | None
    decimal: str

    def read(self, *, required: bool = True):
        """The frame of the CSV file or the demo series (None when neither and not required)."""
        from trellis_ts.data import make_demo_frame, read_csv

        if self.demo and self.csv is not None:
            raise ConfigError(f"got both a CSV file ({self.csv}) and --demo; pass only one")
        if self.demo:
            return make_demo_frame(n_steps=DEMO_STEPS)
        if self.csv is None and not required:
            return None
        if self.csv is None:
            raise ConfigError("no data given; pass a CSV file, or --demo for the built-in series")
        return read_csv(self.csv, sep=self.sep, decimal=self.decimal)

    @property
    def columns(self) -> dict:
        """The column options that were given (a saved model's own fill in the rest)."""
        names = [t.strip() for item in self.target or [] for t in item.split(",") if t.strip()]
        given = {"time_col": self.time_col, "id_col": self.id_col, "target": names or None}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def out_sep(self) -> str:
        """Outputs use the input's separator; ';' when numbers have a decimal comma."""
        return self.sep or (";" if self.decimal == "," else ",")


def data_options(csv_help: str | None = None) -> Callable[[Callable], Callable]:
    """Add the input options (CSV argument, --demo, columns, --sep, --decimal) to a command,
    which receives them as a `DataSource` parameter `data`."""
    csv = CsvArg if csv_help is None else Annotated[
        Path | None, typer.Argument(help=csv_help, show_default=False)]  # fmt: skip
    params = [_param("csv", csv), _param("demo", Demo, False), _param("time_col", TimeCol),
              _param("target", Target), _param("id_col", IdCol), _param("sep", Sep),
              _param("decimal", Decimal, ".")]  # fmt: skip
    return lambda func: extend_command(func, "data", params, lambda v: DataSource(**v), first=True)


def model_options(func: Callable) -> Callable:
    """Add one option per `TrellisConfig` field (except `verbose`: see --quiet) to a command.

    The command receives the options that were given as a dict `settings`, parsed to the
    fields' types; options left out are absent, so the config's defaults apply.
    """
    hints = typing.get_type_hints(TrellisConfig)
    fields = [f for f in config_fields() if f.name != "verbose"]
    params = [_param(f.name, _option_type(f, hints[f.name])) for f in fields]

    def settings(given: dict) -> dict:
        return {k: _parse_field(k, v, hints[k]) for k, v in given.items() if v is not None}

    return extend_command(func, "settings", params, settings)


def _option_type(field: dataclasses.Field, kind: Any) -> Any:
    """`Annotated[type | None, Option]` for one config field; help = FIELD_HELP + default."""
    flag = "--" + field.name.replace("_", "-")
    default = field.default
    shown = ",".join(f"{q:g}" for q in default) if isinstance(default, tuple) else str(default)
    native = kind if kind in (bool, int, float) else None
    metavar = None if native else "<q,q,...>" if field.name == "quantiles" else "<str>"
    option = typer.Option(
        f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
        help=f"{FIELD_HELP.get(field.name, '')} Default: {shown.lower()}.".lstrip(),
        show_default=False,
        rich_help_panel=MODEL,
        metavar="<int|none>" if _optional_int(kind) else metavar,
    )
    return Annotated[(native or str) | None, option]


def _optional_int(kind: Any) -> bool:
    return typing.get_origin(kind) is not None and int in typing.get_args(kind)


def _parse_field(name: str, value: Any, kind: Any) -> Any:
    """A config value from the text of its option (types the command line has no parser for)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "quantiles":
        return float_list("--quantiles", text)
    if name in ("freq", "devices"):  # an integer step / device count, or a name
        return int(text) if text.isdigit() else text
    if _optional_int(kind):
        if text.lower() != "none" and not text.lstrip("-").isdigit():
            option = "--" + name.replace("_", "-")
            raise ConfigError(f"{option} {value!r} is not an integer; pass a number or none")
        return None if text.lower() == "none" else int(text)
    return text


def float_list(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(q) for q in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a comma list of numbers; pass e.g. 0.1,0.5,0.9"
        ) from None


def check_outputs(**paths: Path | None) -> None:
    """Fail before any work when an output file cannot be written."""
    from trellis_ts.plotting import check_plot_path

    for option, path in paths.items():
        if path is None:
            continue
        if path.is_dir():
            raise ConfigError(f"--{option} {path} is a directory; pass a file name")
        if not path.parent.is_dir():
            raise ConfigError(
                f"--{option} {path}: directory {path.parent} does not exist; create it first"
            )
        if option == "plot":
            check_plot_path(path)


def check_model_dir(path: Path) -> None:
    """Refuse a foreign --model-dir before training, not after minutes of it."""
    foreign = path.exists() and not (path / "model.json").is_file()
    if foreign and (not path.is_dir() or any(path.iterdir())):
        raise ConfigError(
            f"--model-dir {path} exists and is not a trellis-ts model directory; "
            "choose a new or empty directory"
        )


def check_quantiles(config: TrellisConfig, quantiles_out: str) -> None:
    """--quantiles-out needs a quantile model: say so before training, not after."""
    levels = float_list("--quantiles-out", quantiles_out)
    if config.loss != "quantile" or not set(levels) <= set(config.quantiles):
        raise ConfigError(
            f"--quantiles-out {quantiles_out} needs --loss quantile and levels among "
            f"--quantiles {','.join(f'{q:g}' for q in config.quantiles)}"
        )


@contextlib.contextmanager
def staged_outputs() -> Iterator[Callable[[Path, Callable[[Path], None]], None]]:
    """`stage(path, write)` writes to a temporary file beside `path`; all are renamed into
    place when the block succeeds and removed when it fails, so nothing partial is left."""
    staged: list[tuple[Path, Path]] = []

    def stage(path: Path, write: Callable[[Path], None]) -> None:
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
        staged.append((tmp, path))
        write(tmp)

    try:
        yield stage
        for tmp, path in staged:
            os.replace(tmp, path)
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def new_forecaster(settings: dict, *, quiet: bool):
    """An unfitted forecaster; invalid model options fail here, before any data is read."""
    from trellis_ts import TrellisForecaster

    forecaster = TrellisForecaster(**(settings | {"verbose": not quiet}))
    forecaster.make_config()
    return forecaster


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


def report(command: str, summary, outputs: dict, *, quiet: bool, as_json: bool, **extra) -> None:
    """The closing summary: one JSON object on stdout, or short lines on stderr."""
    if as_json:
        record = {"command": command, "epochs": summary.epochs,
                  "best_val_loss": summary.best_val_loss, "seconds": round(summary.seconds, 3),
                  "outputs": outputs, **extra}  # fmt: skip
        typer.echo(json.dumps(_finite(record)))
    elif not quiet:
        loss = (
            "n/a (no validation split)"
            if summary.best_val_loss is None
            else f"{summary.best_val_loss:.4g}"
        )
        what = "Trained" if command in ("forecast", "fit") else "The model was trained for"
        typer.echo(f"{what} {summary.epochs} epoch(s) in {summary.seconds:.1f} s; "
                   f"best validation loss {loss}.", err=True)  # fmt: skip
        for kind, path in outputs.items():
            typer.echo(f"Wrote {kind}: {path}", err=True)


def _finite(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    return value


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
    model_dir: Annotated[Path | None, _out("Also save the fitted model here.")] = None,
    quiet: Quiet = False,
    as_json: Json = False,
    settings: dict | None = None,
) -> None:
    """Fit a model on the data and forecast the steps after its end."""
    check_outputs(output=output, plot=plot)
    if model_dir is not None:
        check_model_dir(model_dir)
    forecaster = new_forecaster(settings, quiet=quiet)
    if quantiles_out:  # fail now rather than after training
        check_quantiles(forecaster.make_config(), quantiles_out)
    df = data.read()
    train(forecaster, df, data.columns)
    from trellis_ts.training import is_main_process

    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes
        return
    outputs = write_forecast(forecaster, None, data, output=output, plot=plot,
                             quantiles_out=quantiles_out, history_df=df)  # fmt: skip
    if model_dir is not None:
        forecaster.save(model_dir)
        outputs["model_dir"] = str(model_dir)
    report("forecast", forecaster.summary_, outputs, quiet=quiet, as_json=as_json)


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
    """Fit a model on the data and save it to --model-dir (for predict and evaluate)."""
    import shutil

    from trellis_ts.training import is_main_process

    check_model_dir(model_dir)
    checkpoints = model_dir.with_name(model_dir.name + ".checkpoints")
    forecaster = new_forecaster(settings, quiet=quiet)
    train(forecaster, data.read(), data.columns, checkpoint_dir=checkpoints, resume=resume)
    if not is_main_process():  # every DDP rank holds the same model; rank 0 writes it
        return
    forecaster.save(model_dir)
    shutil.rmtree(checkpoints, ignore_errors=True)
    outputs = {"model_dir": str(model_dir)}
    report("fit", forecaster.summary_, outputs, quiet=quiet, as_json=as_json)


@app.command()
@user_errors
@data_options("CSV file with the history to forecast from (default: the end of the fit data).")
def predict(
    data: DataSource,
    model_dir: ModelDir,
    output: Output = None,
    plot: Plot = None,
    quantiles_out: QuantilesOut = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Forecast with a saved model from the end of the data (column options: the model's)."""
    check_outputs(output=output, plot=plot)
    forecaster = load_model(model_dir, data.columns)
    outputs = write_forecast(forecaster, data.read(required=False), data, output=output,
                             plot=plot, quantiles_out=quantiles_out)  # fmt: skip
    report("predict", forecaster.summary_, outputs, quiet=quiet, as_json=as_json)


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
        Path | None, _out("Write the metrics of every window to this CSV file.", "--output", "-o")
    ] = None,
    quiet: Quiet = False,
    as_json: Json = False,
) -> None:
    """Score a saved model on rolling windows at the end of the data (MSE, MAE, MASE, sMAPE)."""
    check_outputs(output=output)
    from trellis_ts.estimator import aggregate_metrics

    forecaster = load_model(model_dir, data.columns)
    table = forecaster.backtest(data.read(), n_windows=n_windows, step=step)
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
    report("evaluate", forecaster.summary_, outputs, quiet=quiet, as_json=as_json,
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
