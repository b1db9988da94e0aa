"""The closing summary of a command: short lines on stderr, or one JSON object on stdout."""

from __future__ import annotations

import json
import math
import time
from typing import Any

import typer

from trellis_ts.forecaster.config import SIZE_FIELDS

__all__ = ["print_metrics", "report", "window_count"]


def report(
    command: str,
    forecaster,
    outputs: dict,
    *,
    quiet: bool,
    as_json: bool,
    started: float | None = None,
    **extra,
) -> None:
    """The closing summary: one JSON object on stdout, or short lines on stderr.

    `forecast` and `fit` report their training (epochs, validation loss, seconds, the sizes);
    `predict` and `evaluate` report their own seconds (since `started`), and the training of
    the model they used under "fit"."""
    summary, config = forecaster.summary_, forecaster.config_
    trained = {
        "epochs": summary.epochs,
        "best_val_loss": summary.best_val_loss,
        "seconds": round(summary.seconds, 3),
    }
    loss = (
        "n/a (no validation split)"
        if summary.best_val_loss is None
        else (f"{summary.best_val_loss:.4g}")
    )
    chosen = summary.extra.get("auto", {}).get("chosen")
    if chosen:  # model="auto": what it chose and each candidate's validation score
        trained["auto"] = summary.extra["auto"]
    if command in ("forecast", "fit"):
        sizes = {k: getattr(config, k) for k in SIZE_FIELDS}
        record = {
            "command": command,
            **trained,
            "sizes": sizes,
            "data": getattr(forecaster, "data_summary_", None),
        }
        threads = summary.extra.get("threads")
        on = "" if threads is None else f" on {threads} thread{'s' if threads > 1 else ''}"
        line = (
            f"Trained {summary.epochs} epoch(s) in {summary.seconds:.1f} s{on}; best "
            f"validation loss {loss}."
        )
        if chosen:  # the fit printed the choice (its candidates and their scores) already
            line = f"Fitted the candidates in {summary.seconds:.1f} s; {chosen.split(' (')[0]}."
    else:
        seconds = time.perf_counter() - started
        record = {"command": command, "seconds": round(seconds, 3), "fit": trained}
        verb = {"predict": "Forecast", "future-frame": "Made the future frame"}.get(
            command, "Scored"
        )
        line = (
            f"{verb} in {seconds:.1f} s with a model trained for {summary.epochs} epoch(s) "
            f"(best validation loss {loss})."
        )
        if chosen:
            line = f"{verb} in {seconds:.1f} s with the model that {chosen}."
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


def print_metrics(table, scores: list[str], metrics: dict, max_rows: int = 20) -> None:
    """A table on stdout: mean metrics per series (at most `max_rows`) and over everything."""
    from rich.console import Console
    from rich.table import Table

    per_series = table.groupby("series", sort=False)[scores].mean()
    counts = table.groupby("series", sort=False).size()
    view = Table(title=f"Rolling-window metrics ({window_count(counts)})")
    for name in ["series", "windows", *scores]:
        header = "smape %" if name == "smape" else name  # percent, 0-200
        view.add_column(header, justify="left" if name == "series" else "right")
    for name, row in per_series.head(max_rows).iterrows():
        view.add_row(str(name), str(counts[name]), *(f"{row[c]:.4g}" for c in scores))
    if len(per_series) > max_rows:
        more = f"... {len(per_series) - max_rows} more (-o writes all)"
        view.add_row(more, *[""] * (len(scores) + 1))
    view.add_row(
        "all", str(metrics["n_windows"]), *(f"{metrics[c]:.4g}" for c in scores), style="bold"
    )
    Console(soft_wrap=True).print(view)


def window_count(counts) -> str:
    """The windows scored, per series: "3 windows x 3 series", "1 window", or "7 windows over
    3 series (2-3 each)" when the series have different numbers of them."""
    if not len(counts):
        return "no windows"
    total, n_series = int(counts.sum()), len(counts)
    low, high = int(counts.min()), int(counts.max())
    each = f"{high} window{'s' if high != 1 else ''}"
    if n_series == 1:
        return each
    if low == high:
        return f"{each} x {n_series} series"
    return f"{total} windows over {n_series} series ({low}-{high} each)"
