"""The command line's options: the input and output options shared by the commands, one option
per `TrellisConfig` field (`model_options`, so defaults stay in the config), and how a command's
signature receives them (`data_options` gives a `DataSource`, `model_options` a dict
`settings`). `--help` shows the common options; `--help-all` shows every one."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from trellis_ts.cli.app import SHORT_FLAGS
from trellis_ts.cli.inputs import DataSource
from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import FIELD_HELP, SIZE_FIELDS, TrellisConfig, config_fields

INPUT, OUTPUT, MODEL = "Input", "Output", "Model (defaults: TrellisConfig)"


# What `--help` shows; the rest is under `--help-all`, so that a command's help fits a screen.
COMMON_MODEL_OPTIONS = (
    "prediction_length",
    "context_length",
    "freq",
    "model",
    "mixer",
    "streaming",
    "loss",
    "quantiles",
    "max_epochs",
    "random_state",
)


MORE = (
    "More options (covariates, date formats, separators, model sizes, training, devices): "
    "--help-all."
)


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
    typer.Option(
        "--help-all",
        callback=_help_all,
        is_eager=True,
        expose_value=False,
        help="Show every option, the advanced ones too.",
    ),
]


CsvArg = Annotated[
    Path | None,
    typer.Argument(
        help="CSV file: wide (time + numeric columns) or long (unique_id, ds, y).",
        show_default=False,
    ),
]


Demo = Annotated[
    bool, input_option("Use the built-in synthetic series instead of a CSV.", "--demo")
]


TimeCol = Annotated[str | None, input_option("Time column (default: detected).")]


Target = Annotated[
    list[str] | None,
    input_option(
        "Column(s) to forecast: repeat it or give a comma list (default: all numeric columns; "
        "y in a long file)."
    ),
]


IdCol = Annotated[
    str | None,
    input_option(
        "Series id column of a long file, or a comma list of the columns that together "
        "name the series, e.g. Region,State,Purpose (default: detected)."
    ),
]


Sep = Annotated[str | None, input_option("Column separator (default: detected).", advanced=True)]


PastCovariates = Annotated[
    str | None,
    input_option(
        "Comma list of columns known up to the forecast origin only: inputs, never "
        "forecast (e.g. load,temp).",
        advanced=True,
    ),
]


FutureCovariates = Annotated[
    str | None,
    input_option(
        "Comma list of columns known over the horizon too (e.g. promo,temp_fc); "
        "forecasts then need --future.",
        advanced=True,
    ),
]


StaticCovariates = Annotated[
    str | None,
    input_option(
        "Comma list of columns with one value per series (e.g. region); text is a category.",
        advanced=True,
    ),
]


Future = Annotated[
    Path | None,
    input_option(
        "CSV with the time column (and id column) and every future covariate for the "
        "steps after each series' end (`trellis-ts future-frame` writes it to fill).",
        advanced=True,
    ),
]


DayFirst = Annotated[
    bool | None,
    input_option(
        "Read dates like 01/02/2020 as day/month (--dayfirst) or month/day "
        "(--monthfirst); default: from the values (a day above 12), else an error.",
        "--dayfirst/--monthfirst",
        advanced=True,
    ),
]


DateFormat = Annotated[
    str | None,
    input_option(
        "How to read the time column: a strptime format such as %d.%m.%Y or %b-%y, "
        "or excel / unix / unix_ms for integer dates (default: detected).",
        advanced=True,
    ),
]


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
    output_option(
        "Quantile columns to write, e.g. 0.1,0.9 (models fitted with --loss quantile; "
        "default: every trained level).",
        advanced=True,
    ),
]


Level = Annotated[
    list[int] | None,
    output_option(
        "Add conformal prediction intervals at these levels in percent, e.g. --level 80 95 "
        "(columns <column>_lo80, <column>_hi80, ...; any model).",
        "--level",
    ),
]


Quiet = Annotated[bool, output_option("No progress bar and no summary.", "--quiet", "-q")]


Force = Annotated[
    bool, output_option("Allow an output to replace the input file.", "--force", advanced=True)
]


Json = Annotated[
    bool, output_option("Print the summary as one JSON object on stdout.", "--json", advanced=True)
]


def extend_command(
    func: Callable,
    name: str,
    params: list[inspect.Parameter],
    build: Callable,
    *,
    first: bool = False,
) -> Callable:
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
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation
    )


def data_options(
    csv_help: str | None = None, *, covariates: bool = False
) -> Callable[[Callable], Callable]:
    """Add the input options (CSV argument, --demo, columns, --sep, --decimal, dates) to a
    command, which receives them as a `DataSource` parameter `data`; with ``covariates``, also
    the covariate roles (for the commands that fit: a saved model keeps its own)."""
    csv = (
        CsvArg
        if csv_help is None
        else Annotated[Path | None, typer.Argument(help=csv_help, show_default=False)]
    )
    params = [
        _param("csv", csv),
        _param("demo", Demo, False),
        _param("time_col", TimeCol),
        _param("target", Target),
        _param("id_col", IdCol),
        _param("sep", Sep),
        _param("decimal", Decimal, "."),
        _param("dayfirst", DayFirst),
        _param("date_format", DateFormat),
    ]
    if covariates:
        params += [
            _param("past_covariates", PastCovariates),
            _param("future_covariates", FutureCovariates),
            _param("static_covariates", StaticCovariates),
        ]
    params.append(_param("help_all", HelpAll, False))

    def build(values: dict) -> DataSource:
        values.pop("help_all", None)
        return DataSource(**values)

    def decorate(func: Callable) -> Callable:
        command = extend_command(func, "data", params, build, first=True)
        command.__doc__ = f"{(func.__doc__ or '').rstrip()}\n\n{MORE}"
        return command

    return decorate


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
    metavar = (
        None
        if native
        else "<q,q,...>"
        if field.name == "quantiles"
        else "<auto|none|a,b,...>"
        if field.name == "calendar_features"
        else "<str>"
    )
    option = typer.Option(
        f"{flag}/--no-{flag[2:]}" if kind is bool else flag,
        *([SHORT_FLAGS[field.name]] if field.name in SHORT_FLAGS else []),
        help=f"{FIELD_HELP.get(field.name, '')} Default: {shown.lower()}.".lstrip(),
        show_default=False,
        rich_help_panel=MODEL,
        hidden=field.name not in COMMON_MODEL_OPTIONS,
        metavar="<int|none>"
        if _optional(kind, int)
        else "<float|none>"
        if _optional(kind, float)
        else metavar,
    )
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
