"""The command line's one `app`, and how it answers: `user_errors` turns every
`TrellisUserError` into one `error: ...` line (settings named as the command line spells them,
`cli_words`) and exit status 2, warnings into `warning: ...` lines, and `stopped_by_signals`
SIGINT/SIGTERM into exit status 130/143 with a line saying what was kept.

The command modules (`commands`, `research`) register on `app`; their options come from
`options`, their input from `inputs`, their outputs from `outputs`. Nothing here imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import re
import signal
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import typer

import trellis_ts
from trellis_ts.errors import ModelFileError, TrellisUserError
from trellis_ts.forecaster.config import config_fields

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
                text = " ".join(str(exc).split())
                # A model file's contents are quoted as written, not as command-line options.
                typer.echo(
                    f"error: {text if isinstance(exc, ModelFileError) else cli_words(text)}",
                    err=True,
                )
                raise typer.Exit(2) from None

    return run


_API_NAMES = [f.name for f in config_fields()] + [
    "time_col",
    "id_col",
    "target",
    "sep",
    "decimal",
    "dayfirst",
    "date_format",
    "n_windows",
    "step",
    "past_covariates",
    "future_covariates",
    "static_covariates",
    "future",
]
# Options whose flag is not the field's name (the field's own spelling works too).
SHORT_FLAGS = {"calendar_features": "--calendar"}
# Boolean settings: `name=True` / `name=False` is this pair of flags on the command line.
_FLAGS = {
    f.name: (f"--{f.name.replace('_', '-')}", f"--no-{f.name.replace('_', '-')}")
    for f in config_fields()
    if f.type in ("bool", bool)
} | {"dayfirst": ("--dayfirst", "--monthfirst")}
# Not a name in quotes or after a dot: that is a key or a value ('time_col', history.time_col).
_SETTING = re.compile(
    r"(?<!['\".])\b(" + "|".join(sorted(_API_NAMES, key=len, reverse=True)) + r")"
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
