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

__all__ = ["backtest_figure", "check_plot_path", "forecast_figure", "plot_forecast", "save_figure"]

MAX_SERIES = 12  # more panels than this are unreadable on one figure
MAX_WINDOWS = 6  # backtest windows drawn per series (the newest ones that do not overlap)


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
    forecaster, forecast: pd.DataFrame, history: pd.DataFrame | Panel | None = None, **kwargs
) -> Figure:
    """Plot `forecaster.predict(...)`'s frame after `history` (the frame or `Panel` it forecast
    from; default: the context stored at fit). Interval columns (`<name>_lo80`, ...) in `forecast`
    are shaded, one band per level; otherwise quantile columns are shown as a band.

    >>> fig = plot_forecast(f, f.predict(), df)    # in a notebook the figure displays itself
    """
    from trellis_ts.data import Panel, to_panel

    config = forecaster.config_
    panel = history if isinstance(history, Panel) else forecaster.history_
    if history is not None and not isinstance(history, Panel):
        panel = to_panel(
            history,
            **forecaster.columns_,
            freq=config.freq,
            missing=config.missing,
            fill_gaps=config.fill_gaps,
        )
    layout = panel.layout
    first = layout.target_col if layout.format == "long" else (layout.columns or panel.names)[0]
    levels = [q for q in config.quantiles if f"{first}_q{q:g}" in forecast.columns]
    intervals = [lvl for lvl in range(1, 100) if f"{first}_lo{lvl}" in forecast.columns]
    return forecast_figure(
        panel,
        forecast,
        context_length=config.context_length,
        quantiles=levels,
        intervals=intervals,
        **kwargs,
    )


def forecast_figure(
    history: Panel,
    forecast: pd.DataFrame,
    *,
    context_length: int,
    quantiles: list[float] | None = None,
    intervals: list[int] | None = None,
    max_series: int = MAX_SERIES,
) -> Figure:
    """A grid of panels, one per series (at most `max_series`); they share the time axis only
    when every series covers the same dates (else each panel gets its own range).

    `history` is the data the forecast starts from (its last 3 context lengths are drawn);
    `forecast` is `TrellisForecaster.predict`'s frame in the same layout. Interval columns of
    the levels `intervals` are shaded (the wider, the lighter); without them, quantile columns
    (`quantiles`, the levels it was asked for) are shaded as one band between the outermost.
    """
    n_total = history.n_series
    shown = min(n_total, max_series)
    tail = 3 * context_length
    shared = _same_dates(history, shown, tail)
    fig, axes, ncols = _grid(shown, shared)
    levels = sorted(quantiles or [])
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
        if intervals:
            rows = _series_rows(history, forecast, i)
            _shade_intervals(ax, times, rows, _label(history, i), intervals)
        elif low is not None:
            band = f"q{levels[0]:g}-q{levels[-1]:g}" if len(levels) > 1 else f"q{levels[0]:g}"
            ax.fill_between(times, low, high, color="C1", alpha=0.25, lw=0, label=band)
        ax.axvline(h_times[-1], color="0.6", lw=0.8, ls="--")
        _style_panel(ax, history.names[i], bottom=i + ncols >= shown or not shared)
    title = f"Forecast of the next {len(times)} steps"
    if shown < n_total:
        title += f" (first {shown} of {n_total} series shown)"
    return _finish(fig, axes, shown, history, title)


def backtest_figure(
    history: Panel,
    forecasts: pd.DataFrame,
    *,
    max_series: int = MAX_SERIES,
    max_windows: int = MAX_WINDOWS,
) -> Figure:
    """Backtest windows over the history, one panel per series (at most `max_series`).

    `forecasts` is `TrellisForecaster.backtest(..., return_forecasts=True)`'s frame on the data
    of `history`. Per series the newest windows that do not overlap (at most `max_windows`)
    are drawn, each from its cutoff (a dotted line), with its interval levels shaded.
    """
    n_total = history.n_series
    shown = min(n_total, max_series)
    shared = _same_dates(history, shown)
    fig, axes, ncols = _grid(shown, shared)
    levels = sorted(
        int(c.removeprefix("forecast_lo")) for c in forecasts.columns if c.startswith("forecast_lo")
    )
    drawn, total = 0, 0
    for i, ax in enumerate(axes):
        if i >= shown:
            ax.set_visible(False)
            continue
        rows = forecasts[forecasts["series"] == history.names[i]]
        cutoffs = pd.Index(rows["cutoff"].unique()).sort_values()
        total = max(total, len(cutoffs))
        chosen: list = []
        for cutoff in cutoffs[::-1]:  # newest first; skip windows overlapping a chosen one
            if len(chosen) == max_windows:
                break
            end = rows.loc[rows["cutoff"] == cutoff, "timestamp"].max()
            if not chosen or end <= chosen[-1]:
                chosen.append(cutoff)
        drawn = max(drawn, len(chosen))
        window_rows = rows[rows["cutoff"].isin(chosen)]
        start = history.index[i].get_loc(min(chosen)) if chosen else 0
        span = max(len(history.index[i]) - start, 1)
        first = max(0, start - span // 3)
        ax.plot(
            history.index[i][first:], history.values[i][first:], color="C0", lw=1.0, label="actual"
        )
        for k, (cutoff, w) in enumerate(window_rows.groupby("cutoff", sort=True)):
            times = pd.Index(w["timestamp"])
            _shade_intervals(ax, times, w, "forecast", levels, legend=k == 0)
            ax.plot(
                times,
                w["forecast"].to_numpy(dtype=float),
                color="C1",
                lw=1.3,
                label="forecast" if k == 0 else None,
            )
            ax.axvline(cutoff, color="0.6", lw=0.8, ls=":")
        _style_panel(ax, history.names[i], bottom=i + ncols >= shown or not shared)
    title = f"Backtest: {drawn} of {total} windows per series shown"
    if shown < n_total:
        title += f" (first {shown} of {n_total} series)"
    return _finish(fig, axes, shown, history, title)


def _grid(shown: int, shared: bool = True):
    """A figure with a grid of `shown` panels, sharing the time axis when `shared`:
    (fig, axes, ncols)."""
    from matplotlib.figure import Figure

    ncols = 1 if shown == 1 else 2 if shown <= 4 else 3
    nrows = math.ceil(shown / ncols)
    fig = Figure(figsize=(4.6 * ncols, 2.5 * nrows + 0.6), layout="constrained")
    return fig, fig.subplots(nrows, ncols, sharex=shared, squeeze=False).ravel(), ncols


def _same_dates(history: Panel, shown: int, tail: int | None = None) -> bool:
    """True when the first `shown` series cover the same time steps (their last `tail`)."""
    cut = slice(-tail, None) if tail else slice(None)
    first = history.index[0][cut]
    return all(ix[cut].equals(first) for ix in history.index[1:shown])


def _style_panel(ax, name: str, *, bottom: bool) -> None:
    """A panel's title, grid and small ticks; date labels where `bottom` (the lowest panel of
    its column, or a panel with its own time range)."""
    ax.set_title(name, fontsize=9)
    if bottom:
        ax.xaxis.set_tick_params(labelbottom=True)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)


def _finish(fig, axes, shown: int, history: Panel, title: str):
    """The title, the shared legend under the panels and date ticks for datetime series; returns
    the figure."""
    fig.suptitle(title, fontsize=11)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=max(len(labels), 1), fontsize=8)
    if isinstance(history.index[0], pd.DatetimeIndex):
        from matplotlib.dates import AutoDateLocator

        for ax in axes[:shown]:
            locator = AutoDateLocator(minticks=3, maxticks=7)
            ax.xaxis.set_major_locator(locator)
            ax.xaxis.set_major_formatter(_date_formatter(locator))
    return fig


def _date_formatter(locator):
    """matplotlib's concise date labels, with the offset (the year and month beside the axis)
    taken from the first tick shown rather than the last: days 26-30 April followed by a
    "May" tick read "2023-Apr", where matplotlib wrote "2023-May"."""
    from matplotlib.dates import ConciseDateFormatter, num2date

    class FirstTickOffset(ConciseDateFormatter):
        offset = ""

        def format_ticks(self, values):
            labels = super().format_ticks(values)
            self.offset = super().get_offset()
            if self.offset and len(values):
                low, high = (
                    sorted(self.axis.get_view_interval()) if self.axis else (-np.inf, np.inf)
                )
                shown = [v for v in values if low <= v <= high] or list(values)
                last, first = num2date(values[-1]), num2date(shown[0])
                fmt = next(
                    (f for f in self.offset_formats if f and last.strftime(f) == self.offset), None
                )
                self.offset = first.strftime(fmt) if fmt else self.offset
            return labels

        def get_offset(self):
            return self.offset

    return FirstTickOffset(locator)


def _shade_intervals(ax, times, rows: pd.DataFrame, label, levels, *, legend: bool = True) -> None:
    """Shade `<label>_lo<l>`..`<label>_hi<l>` of each level, the widest lightest."""
    for k, lvl in enumerate(sorted(levels, reverse=True)):
        low = rows[f"{label}_lo{lvl}"].to_numpy(dtype=float)
        high = rows[f"{label}_hi{lvl}"].to_numpy(dtype=float)
        alpha = 0.15 + 0.2 * k / max(len(levels) - 1, 1)
        ax.fill_between(
            times,
            low,
            high,
            color="C1",
            alpha=alpha,
            lw=0,
            label=f"{lvl}% interval" if legend else None,
        )


def save_figure(fig: Figure, path: str | Path, fmt: str | None = None) -> None:
    """Write `fig` to `path` (format from `fmt` or the suffix)."""
    fig.savefig(path, format=fmt or check_plot_path(path), dpi=110)


def _join(first: pd.Index, rest: pd.Index) -> pd.Index:
    return pd.Index(first).append(pd.Index(rest))


def _label(history: Panel, i: int):
    """The forecast frame's column of series `i`: its own (wide) or the value column (long)."""
    layout = history.layout
    if layout.format == "wide":
        return (layout.columns or history.names)[i]
    return layout.target_col


def _series_rows(history: Panel, forecast: pd.DataFrame, i: int) -> pd.DataFrame:
    """The rows of series `i` in a forecast frame (all rows of a wide one)."""
    if history.layout.format == "wide":
        return forecast
    from trellis_ts.data.io.frames import series_keys

    keys = series_keys(forecast, history.layout.id_col)
    return forecast[
        np.asarray(keys == history.ids[i])
        if not isinstance(keys, pd.MultiIndex)
        else np.asarray(keys.isin([history.ids[i]]))
    ]


def _series_forecast(history: Panel, forecast: pd.DataFrame, i: int, levels: list[float]):
    """Times, point forecast and band (low, high or None) of series `i` from the forecast frame."""
    rows = _series_rows(history, forecast, i)
    layout, label = history.layout, _label(history, i)
    if layout.format == "wide":
        times = forecast.index if layout.time_in_index else forecast[layout.time_col]
    else:
        times = rows[layout.time_col]
    point = rows[label].to_numpy(dtype=float)
    if not levels:
        return pd.Index(times), point, None, None
    low = rows[f"{label}_q{levels[0]:g}"].to_numpy(dtype=float) if levels[0] < 0.5 else point
    high = rows[f"{label}_q{levels[-1]:g}"].to_numpy(dtype=float) if levels[-1] > 0.5 else point
    return pd.Index(times), point, low, high
