"""Options and shared machinery of the command line, and its one `app`.

The command modules (`commands`, `research`) register on `app` here and share `prepare` (the data
read and checked before the model code loads). `model_options` adds one option per `TrellisConfig` field (defaults stay in the config),
`data_options` the input options (received as a `DataSource`), `user_errors` turns every
`TrellisUserError` into one `error: ...` line and exit status 2, and `stopped_by_signals` turns
SIGINT/SIGTERM into exit status 130/143 with a line saying what was kept. Nothing here imports
torch: options and data are checked before the model code loads. (Outputs: `cli_outputs`.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import re
import signal
import threading
import typing
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

import trellis_ts
from trellis_ts.errors import ConfigError, TrellisUserError
from trellis_ts.forecaster.config import FIELD_HELP, SIZE_FIELDS, TrellisConfig, config_fields

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


INPUT, OUTPUT, MODEL = "Input", "Output", "Model (defaults: TrellisConfig)"
# The --demo series: 7 hourly channels, 50 days. Long enough for the sizes hourly data gets
# (context 336, horizon 96) with a validation split that trains well (at 1,000 steps early
# stopping ended after one good epoch and the forecast was ragged); README gives its time.
DEMO_STEPS = 1200


# What `--help` shows; the rest is under `--help-all`, so that a command's help fits a screen.
COMMON_MODEL_OPTIONS = ("prediction_length", "context_length", "freq", "model", "mixer", "loss",
                        "quantiles", "max_epochs", "random_state")  # fmt: skip
MORE = ("More options (covariates, date formats, separators, model sizes, training, devices): "
        "--help-all.")  # fmt: skip


def input_option(help: str, *decls: str, advanced: bool = False) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=INPUT, hidden=advanced)


def output_option(help: str, *decls: str, advanced: bool = False) -> Any:
    return typer.Option(*decls, help=help, rich_help_panel=OUTPUT, hidden=advanced)


def _help_all(ctx: typer.Context, value: bool) -> None:
    """`--help-all`: the command's help with every option, the advanced ones too."""
    if not value or ctx.resilient_parsing:
        return
    for param in ctx.command.params:
        param.hidden = False
    ctx.command.help = (ctx.command.help or "").replace(MORE, "").rstrip()
    typer.echo(ctx.get_help())
    raise typer.Exit()


HelpAll = Annotated[
    bool,
    typer.Option("--help-all", callback=_help_all, is_eager=True, expose_value=False,
                 help="Show every option, the advanced ones too."),
]  # fmt: skip


CsvArg = Annotated[
    Path | None,
    typer.Argument(help="CSV file: wide (time + numeric columns) or long (unique_id, ds, y).",
                   show_default=False),
]  # fmt: skip
Demo = Annotated[
    bool, input_option("Use the built-in synthetic series instead of a CSV.", "--demo")
]
TimeCol = Annotated[str | None, input_option("Time column (default: detected).")]
Target = Annotated[
    list[str] | None,
    input_option("Column(s) to forecast: repeat it or give a comma list (default: all numeric columns; "
        "y in a long file)."),
]  # fmt: skip
IdCol = Annotated[
    str | None,
    input_option("Series id column of a long file, or a comma list of the columns that together "
                 "name the series, e.g. Region,State,Purpose (default: detected)."),
]  # fmt: skip
Sep = Annotated[str | None, input_option("Column separator (default: detected).", advanced=True)]
PastCovariates = Annotated[
    str | None,
    input_option("Comma list of columns known up to the forecast origin only: inputs, never "
                 "forecast (e.g. load,temp).", advanced=True),
]  # fmt: skip
FutureCovariates = Annotated[
    str | None,
    input_option("Comma list of columns known over the horizon too (e.g. promo,temp_fc); "
                 "forecasts then need --future.", advanced=True),
]  # fmt: skip
StaticCovariates = Annotated[
    str | None,
    input_option("Comma list of columns with one value per series (e.g. region); text is a "
                 "category.", advanced=True),
]  # fmt: skip
Future = Annotated[
    Path | None,
    input_option("CSV with the time column (and id column) and every future covariate for the "
                 "steps after each series' end (`trellis-ts future-frame` writes it to fill).",
                 advanced=True),
]  # fmt: skip
DayFirst = Annotated[
    bool | None,
    input_option("Read dates like 01/02/2020 as day/month (--dayfirst) or month/day "
                 "(--monthfirst); default: from the values (a day above 12), else an error.",
                 "--dayfirst/--monthfirst", advanced=True),
]  # fmt: skip
DateFormat = Annotated[
    str | None,
    input_option("How to read the time column: a strptime format such as %d.%m.%Y or %b-%y, "
                 "or excel / unix / unix_ms for integer dates (default: detected).", advanced=True),
]  # fmt: skip
Decimal = Annotated[str, input_option("Decimal mark of the numbers, e.g. ','.", advanced=True)]
ModelDir = Annotated[
    Path, typer.Option(help="Directory of a model saved by `trellis-ts fit`.", show_default=False)
]
Output = Annotated[
    Path | None,
    output_option("Write the forecast to this CSV file (default: stdout).", "--output", "-o"),
]
Plot = Annotated[
    Path | None, output_option("Save history + forecast per series as an image (.png).")
]
QuantilesOut = Annotated[
    str | None,
    output_option("Quantile columns to write, e.g. 0.1,0.9 (models fitted with --loss quantile; "
         "default: every trained level).", advanced=True),
]  # fmt: skip
Level = Annotated[
    list[int] | None,
    output_option("Add conformal prediction intervals at these levels in percent, e.g. --level 80 95 "
                  "(columns <column>_lo80, <column>_hi80, ...; any model).", "--level"),
]  # fmt: skip
Quiet = Annotated[bool, output_option("No progress bar and no summary.", "--quiet", "-q")]
Force = Annotated[
    bool, output_option("Allow an output to replace the input file.", "--force", advanced=True)
]
Json = Annotated[
    bool, output_option("Print the summary as one JSON object on stdout.", "--json", advanced=True)
]


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


_API_NAMES = [f.name for f in config_fields()] + ["time_col", "id_col", "target", "sep",
              "decimal", "dayfirst", "date_format", "n_windows", "step", "past_covariates",
              "future_covariates", "static_covariates", "future"]  # fmt: skip
# Options whose flag is not the field's name (the field's own spelling works too).
SHORT_FLAGS = {"calendar_features": "--calendar"}
# Boolean settings: `name=True` / `name=False` is this pair of flags on the command line.
_FLAGS = {f.name: (f"--{f.name.replace('_', '-')}", f"--no-{f.name.replace('_', '-')}")
          for f in config_fields() if f.type in ("bool", bool)} | {
          "dayfirst": ("--dayfirst", "--monthfirst")}  # fmt: skip
_SETTING = re.compile(
    r"\b(" + "|".join(sorted(_API_NAMES, key=len, reverse=True)) + r")"
    r"(?:=(?!=)('[^']*'|\"[^\"]*\"|[^\s,;)]+)?)?"
)


def cli_words(message: str) -> str:
    """Name settings as the command line spells them: "context_length=0" -> "--context-length 0",
    "fill_gaps=True" -> "--fill-gaps", "shorten context_length" -> "shorten --context-length"."""

    def option(m: re.Match) -> str:
        name, value = m.group(1), m.group(2)
        if "=" not in m.group(0) and "_" not in name:
            return m.group(0)  # a plain word such as "model" or "target" in a sentence
        if name in _FLAGS and value in ("True", "False"):
            return _FLAGS[name][0 if value == "True" else 1]
        flag = SHORT_FLAGS.get(name, f"--{name.replace('_', '-')}")
        if value is None:
            return flag
        if value[:1] in "'\"" and " " not in value:
            value = value[1:-1]
        return f"{flag} {value}"

    message = message.replace("make_future_frame()", "`trellis-ts future-frame`")
    return _SETTING.sub(option, message)


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    typer.echo(f"warning: {cli_words(' '.join(str(message).split()))}", err=True)


def extend_command(func: Callable, name: str, params: list[inspect.Parameter], build: Callable,
                   *, first: bool = False) -> Callable:  # fmt: skip
    """Replace the parameter `name` of a command by the options `params` (Typer reads the
    signature); the command receives `build({option: value})` as `name`."""
    signature = inspect.signature(func, eval_str=True)
    kept = [p.replace(kind=p.KEYWORD_ONLY) for p in signature.parameters.values() if p.name != name]
    names = [p.name for p in params]

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        given = {n: kwargs.pop(n, None) for n in names}  # (an option not exposed is absent)
        return func(**kwargs, **{name: build(given)})

    command.__signature__ = signature.replace(parameters=params + kept if first else kept + params)
    return command


def _param(name: str, annotation: Any, default: Any = None) -> inspect.Parameter:
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                             annotation=annotation)  # fmt: skip


def _comma_list(values: list[str] | str | None) -> list[str]:
    items = [values] if isinstance(values, str) else values or []
    return [t.strip() for item in items for t in item.split(",") if t.strip()]


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
    dayfirst: bool | None = None
    date_format: str | None = None
    past_covariates: str | None = None
    future_covariates: str | None = None
    static_covariates: str | None = None

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

    def read_future(self, path: Path | None, layout):
        """The --future CSV (None when not given), read like the data; a frame whose time was
        its index gets that index back from the first column."""
        from trellis_ts.data import read_csv

        if path is None:
            return None
        frame = read_csv(path, sep=self.sep, decimal=self.decimal)
        if layout.time_in_index:
            frame = frame.set_index(frame.columns[0])
        return frame

    @property
    def columns(self) -> dict:
        """The column options that were given (a saved model's own fill in the rest)."""
        ids = _comma_list(self.id_col)
        given = {"time_col": self.time_col, "id_col": (ids[0] if len(ids) == 1 else ids) or None,
                 "target": _comma_list(self.target) or None,
                 "dayfirst": self.dayfirst, "date_format": self.date_format}  # fmt: skip
        for role in ("past_covariates", "future_covariates", "static_covariates"):
            given[role] = _comma_list(getattr(self, role)) or None
        return {k: v for k, v in given.items() if v is not None}

    @property
    def out_sep(self) -> str:
        """Outputs use the input's separator; ';' when numbers have a decimal comma."""
        return self.sep or (";" if self.decimal == "," else ",")


def data_options(
    csv_help: str | None = None, *, covariates: bool = False
) -> Callable[[Callable], Callable]:
    """Add the input options (CSV argument, --demo, columns, --sep, --decimal, dates) to a
    command, which receives them as a `DataSource` parameter `data`; with ``covariates``, also
    the covariate roles (for the commands that fit: a saved model keeps its own)."""
    csv = CsvArg if csv_help is None else Annotated[
        Path | None, typer.Argument(help=csv_help, show_default=False)]  # fmt: skip
    params = [_param("csv", csv), _param("demo", Demo, False), _param("time_col", TimeCol),
              _param("target", Target), _param("id_col", IdCol), _param("sep", Sep),
              _param("decimal", Decimal, "."), _param("dayfirst", DayFirst),
              _param("date_format", DateFormat)]  # fmt: skip
    if covariates:
        params += [_param("past_covariates", PastCovariates),
                   _param("future_covariates", FutureCovariates),
                   _param("static_covariates", StaticCovariates)]  # fmt: skip
    params.append(_param("help_all", HelpAll, False))

    def build(values: dict) -> DataSource:
        values.pop("help_all", None)
        return DataSource(**values)

    def decorate(func: Callable) -> Callable:
        command = extend_command(func, "data", params, build, first=True)
        command.__doc__ = f"{(func.__doc__ or '').rstrip()}\n\n{MORE}"
        return command

    return decorate


def prepare(data: DataSource, settings: dict, columns: dict | None = None):
    """The data as a checked `Panel`, before any model code loads: bad options, files, columns,
    dates and sizes fail here in well under a second. `columns`: the reading options (default
    the command line's)."""
    from trellis_ts.data import to_panel
    from trellis_ts.forecaster.sizing import resolve_sizes

    config = TrellisConfig(**settings)
    df = data.read()
    panel = to_panel(df, **(data.columns if columns is None else columns), freq=config.freq,
                     missing=config.missing, fill_gaps=config.fill_gaps)  # fmt: skip
    resolve_sizes(config, panel.freq, panel.lengths(), panel.names)
    return panel


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
    if isinstance(default, tuple):
        shown = ",".join(f"{q:g}" if isinstance(q, float) else str(q) for q in default) or "none"
    else:
        shown = str(default)
    if field.name in SIZE_FIELDS:
        shown = "sized to the data"
    native = kind if kind in (bool, int, float) else None
    metavar = (None if native else "<q,q,...>" if field.name == "quantiles"
               else "<auto|none|a,b,...>" if field.name == "calendar_features" else "<str>")  # fmt: skip
    option = typer.Option(
        f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
        *([SHORT_FLAGS[field.name]] if field.name in SHORT_FLAGS else []),
        help=f"{FIELD_HELP.get(field.name, '')} Default: {shown.lower()}.".lstrip(),
        show_default=False,
        rich_help_panel=MODEL,
        hidden=field.name not in COMMON_MODEL_OPTIONS,
        metavar="<int|none>" if _optional(kind, int) else "<float|none>" if _optional(kind, float)
        else metavar,
    )  # fmt: skip
    return Annotated[(native or str) | None, option]


def _optional(kind: Any, number: type) -> bool:
    """Whether a field's type is `number | None`."""
    return typing.get_origin(kind) is not None and number in typing.get_args(kind)


def _parse_field(name: str, value: Any, kind: Any) -> Any:
    """A config value from the text of its option (types the command line has no parser for)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if name == "quantiles":
        return float_list("--quantiles", text)
    if name == "calendar_features":
        return () if text.lower() == "none" else text  # TrellisConfig splits the comma list
    if name in ("freq", "devices"):  # an integer step / device count, or a name
        return int(text) if text.isdigit() else text
    for number, what in ((int, "an integer"), (float, "a number")):
        if _optional(kind, number):
            if text.lower() == "none":
                return None
            try:
                return number(text)
            except ValueError:
                option = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{option} {value!r} is not {what}; pass a number or none"
                ) from None
    return text


def float_list(option: str, text: str) -> tuple[float, ...]:
    try:
        return tuple(float(q) for q in text.split(","))
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a comma list of numbers; pass e.g. 0.1,0.5,0.9"
        ) from None


def check_model_dir(path: Path, *, existing: bool = False) -> None:
    """Refuse a foreign --model-dir before training, not after minutes of it; with `existing`,
    one that holds no model (predict, evaluate) before loading any model code."""
    if existing:
        if not (path / "model.json").is_file():
            raise ConfigError(
                f"--model-dir {path} is not a trellis-ts model directory (it needs model.json "
                "and weights.safetensors); pass a directory written by `trellis-ts fit`"
            )
        return
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
def stopped_by_signals(kept: Callable[[], str]) -> Iterator[None]:
    """SIGINT and SIGTERM stop the block: one line `interrupted by SIGTERM: <kept()>` and exit
    status 128 + the signal (130, 143), instead of Lightning's status 0 or 1."""
    from trellis_ts.errors import Interrupted

    def stop(signum, frame):
        raise Interrupted(signum)

    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    for signum in previous:
        signal.signal(signum, stop)
    try:
        yield
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        typer.echo(f"interrupted by {signal.Signals(signum).name}: {kept()}", err=True)
        raise typer.Exit(128 + signum) from None
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
