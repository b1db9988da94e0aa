"""Plots of forecasts: history + forecast per series as small multiples.

matplotlib is imported inside the functions (the command line's `--help` should not pay for it)
and only through `Figure` + the Agg canvas, never pyplot: no global backend is switched, so the
figures also display in notebooks.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from trellis_ts.errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from trellis_ts.data import Panel

__all__ = ["check_plot_path", "forecast_figure", "plot_forecast", "save_figure"]

MAX_SERIES = 12  # more panels than this are unreadable on one figure


def check_plot_path(path: str | Path) -> str:
    """The image format for `path` from its suffix; ConfigError when matplotlib cannot write it."""
    from matplotlib.backend_bases import FigureCanvasBase

    fmt = Path(path).suffix.lower().removeprefix(".")
    supported = FigureCanvasBase.get_supported_filetypes()
    if fmt not in supported:
        raise ConfigError(
            f"cannot write a plot to {str(path)!r}: the file name needs an image suffix such as "
            f".png (supported: {', '.join(sorted(supported))})"
        )
    return fmt


def plot_forecast(
    forecaster, forecast: pd.DataFrame, history: pd.DataFrame | None = None, **kwargs
) -> Figure:
    """Plot `forecaster.predict(...)`'s frame after `history` (the frame it forecast from;
    default: the context stored at fit). Quantile columns in `forecast` are shown as a band.

    >>> fig = plot_forecast(f, f.predict(), df)    # in a notebook the figure displays itself
    """
    from trellis_ts.data import to_panel

    config = forecaster.config_
    panel = forecaster.history_
    if history is not None:
        panel = to_panel(history, **forecaster.columns_, freq=config.freq,
                         missing=config.missing, fill_gaps=config.fill_gaps)  # fmt: skip
    layout = panel.layout
    first = layout.target_col if layout.format == "long" else (layout.columns or panel.names)[0]
    levels = [q for q in config.quantiles if f"{first}_q{q:g}" in forecast.columns]
    return forecast_figure(panel, forecast, context_length=config.context_length,
                           quantiles=levels, **kwargs)  # fmt: skip


def forecast_figure(
    history: Panel,
    forecast: pd.DataFrame,
    *,
    context_length: int,
    quantiles: list[float] | None = None,
    max_series: int = MAX_SERIES,
) -> Figure:
    """A grid of panels, one per series (at most `max_series`), sharing the time axis.

    `history` is the data the forecast starts from (its last 3 context lengths are drawn);
    `forecast` is `TrellisForecaster.predict`'s frame in the same layout. When it holds quantile
    columns (`quantiles`, the levels it was asked for) the outermost ones are shaded as a band.
    """
    from matplotlib.figure import Figure

    n_total = history.n_series
    shown = min(n_total, max_series)
    ncols = 1 if shown == 1 else 2 if shown <= 4 else 3
    nrows = math.ceil(shown / ncols)
    fig = Figure(figsize=(4.6 * ncols, 2.5 * nrows + 0.6), layout="constrained")
    axes = fig.subplots(nrows, ncols, sharex=True, squeeze=False).ravel()
    levels = sorted(quantiles or [])
    tail = 3 * context_length
    for i, ax in enumerate(axes):
        if i >= shown:
            ax.set_visible(False)
            continue
        times, point, low, high = _series_forecast(history, forecast, i, levels)
        h_times, h_values = history.index[i][-tail:], history.values[i][-tail:]
        ax.plot(h_times, h_values, color="C0", lw=1.0, label="history")
        # Start the forecast line at the last observation so the two lines join.
        ax.plot(
            _join(h_times[-1:], times),
            np.concatenate([h_values[-1:], point]),
            color="C1",
            lw=1.3,
            label="forecast",
        )
        if low is not None:
            band = f"q{levels[0]:g}-q{levels[-1]:g}" if len(levels) > 1 else f"q{levels[0]:g}"
            ax.fill_between(times, low, high, color="C1", alpha=0.25, lw=0, label=band)
        ax.axvline(h_times[-1], color="0.6", lw=0.8, ls="--")
        ax.set_title(history.names[i], fontsize=9)
        if i + ncols >= shown:  # lowest panel of its column: show its time axis
            ax.xaxis.set_tick_params(labelbottom=True)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    horizon = len(times)
    title = f"Forecast of the next {horizon} steps"
    if shown < n_total:
        title += f" (first {shown} of {n_total} series shown)"
    fig.suptitle(title, fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=8)
    if isinstance(history.index[0], pd.DatetimeIndex):
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        for ax in axes[:shown]:
            locator = AutoDateLocator(minticks=3, maxticks=7)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    return fig


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None) -> None:
    """Write `fig` to `path` (format from `fmt` or the suffix)."""
    fig.savefig(path, format=fmt or check_plot_path(path), dpi=110)


def _join(first: pd.Index, rest: pd.Index) -> pd.Index:
    return pd.Index(first).append(pd.Index(rest))


def _series_forecast(history: Panel, forecast: pd.DataFrame, i: int, levels: list[float]):
    """Times, point forecast and band (low, high or None) of series `i` from the forecast frame."""
    layout = history.layout
    if layout.format == "wide":
        label = (layout.columns or history.names)[i]
        times = forecast.index if layout.time_col is None else forecast[layout.time_col]
        rows = forecast
    else:
        label = layout.target_col
        rows = forecast[forecast[layout.id_col] == history.ids[i]]
        times = rows[layout.time_col]
    point = rows[label].to_numpy(dtype=float)
    if not levels:
        return pd.Index(times), point, None, None
    low = rows[f"{label}_q{levels[0]:g}"].to_numpy(dtype=float) if levels[0] < 0.5 else point
    high = rows[f"{label}_q{levels[-1]:g}"].to_numpy(dtype=float) if levels[-1] > 0.5 else point
    return pd.Index(times), point, low, high
