"""`TrellisForecaster`: fit on a DataFrame, forecast the next steps with real timestamps.

scikit-learn rules: `__init__` only stores its arguments (exactly `TrellisConfig`'s fields),
validation happens in `fit`, learned state ends in `_`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
import warnings
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

from trellis_ts.data.features import transforms
from trellis_ts.data.features.calendar import calendar_features_for, check_calendar_names
from trellis_ts.data.features.covariates import ColumnRoles
from trellis_ts.data.features.future import future_frame, read_future
from trellis_ts.data.io.extend import extend_panel, read_rows
from trellis_ts.data.io.frames import Panel, to_panel
from trellis_ts.data.io.writing import to_frame
from trellis_ts.data.splits import train_val_ranges
from trellis_ts.data.windows import final_windows
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster import warm_start as warm
from trellis_ts.forecaster.auto import (
    AutoModel,
    auto_backtest,
    auto_bounds,
    fit_auto,
    is_auto_dir,
    placeholder_config,
)
from trellis_ts.forecaster.backtest import (
    Backtest,
    aggregate_metrics,
    check_levels,
    quantile_columns,
    run_backtest,
)
from trellis_ts.forecaster.config import AUTO_MODELS, TrellisConfig, with_season_length
from trellis_ts.forecaster.conformal import Calibration, calibrate, require_calibration
from trellis_ts.forecaster.inputs import InputScaling
from trellis_ts.forecaster.persistence import FittedState, load_state, save_state
from trellis_ts.forecaster.persistence import _move_into_place as move_into_place
from trellis_ts.forecaster.sizing import model_spec, resolve_sizes
from trellis_ts.forecaster.statistical import STATS_MAX_LENGTH
from trellis_ts.forecaster.streaming.forecasting import (
    advanced_state,
    fit_streaming,
    stream_backtest,
    stream_forecast,
)
from trellis_ts.forecaster.training import TrainingSummary, forecast_contexts, train_model
from trellis_ts.models.build import build_model
from trellis_ts.models.covariates import ModelInputs

__all__ = ["TrellisForecaster", "aggregate_metrics"]


class TrellisForecaster(BaseEstimator):
    """Channel-independent Trellis forecaster for wide or long DataFrames.

    Every argument has a default; see `TrellisConfig` for their meaning. The sizes left as None
    (horizon, context, patches) are chosen from the data at `fit` and kept in `config_`.

    >>> f = TrellisForecaster(prediction_length=24, context_length=96).fit(df)
    >>> f.predict()          # the next 24 steps after df, in df's format
    """

    def __init__(
        self,
        prediction_length: int | None = None,
        context_length: int | None = None,
        freq: str | None = None,
        model: str = "encoder",
        season_length: int | None = None,
        calendar_features: tuple[str, ...] | str = (),
        patch_len: int | None = None,
        patch_stride: int | None = None,
        d_model: int = 64,
        n_heads: int = 2,
        n_layers: int = 2,
        ffn_mult: float = 2.0,
        dropout: float = 0.1,
        mixer: str = "trellis",
        head: str = "flatten",
        pool_queries: int = 8,
        revin: bool = True,
        linear_path: bool = False,
        streaming: bool = False,
        norm_window: int | None = None,
        crop_tokens: int = 64,
        burn_in_tokens: int = 32,
        attention_window: int = 64,
        n_slots: int = 32,
        chunk_size: int = 64,
        phi: str = "identity",
        between: str = "ln_silu",
        conv_size: int = 4,
        forget_gate: bool = True,
        beta_init: float = 0.97,
        loss: str = "mse",
        quantiles: tuple[float, ...] = (0.1, 0.5, 0.9),
        learning_rate: float = 1e-3,
        weight_decay: float = 1e-4,
        lr_schedule: str = "cosine",
        lr_decay: float = 0.5,
        batch_size: int = 128,
        max_epochs: int | None = None,
        min_steps: int = 500,
        early_stopping_patience: int = 3,
        val_fraction: float = 0.2,
        windows_per_epoch: int | None = None,
        gradient_clip: float = 1.0,
        ema_decay: float | None = None,
        random_state: int | None = 0,
        missing: str = "error",
        target_transform: str = "auto",
        fill_gaps: bool = False,
        accelerator: str = "auto",
        devices: Any = "auto",
        strategy: str = "auto",
        num_nodes: int = 1,
        num_workers: int = 0,
        num_threads: int | None = None,
        verbose: bool = True,
    ) -> None:
        self.prediction_length = prediction_length
        self.context_length = context_length
        self.freq = freq
        self.model = model
        self.season_length = season_length
        self.calendar_features = calendar_features
        self.patch_len = patch_len
        self.patch_stride = patch_stride
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.ffn_mult = ffn_mult
        self.dropout = dropout
        self.mixer = mixer
        self.head = head
        self.pool_queries = pool_queries
        self.revin = revin
        self.linear_path = linear_path
        self.streaming = streaming
        self.norm_window = norm_window
        self.crop_tokens = crop_tokens
        self.burn_in_tokens = burn_in_tokens
        self.attention_window = attention_window
        self.n_slots = n_slots
        self.chunk_size = chunk_size
        self.phi = phi
        self.between = between
        self.conv_size = conv_size
        self.forget_gate = forget_gate
        self.beta_init = beta_init
        self.loss = loss
        self.quantiles = quantiles
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.lr_schedule = lr_schedule
        self.lr_decay = lr_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.min_steps = min_steps
        self.early_stopping_patience = early_stopping_patience
        self.val_fraction = val_fraction
        self.windows_per_epoch = windows_per_epoch
        self.gradient_clip = gradient_clip
        self.ema_decay = ema_decay
        self.random_state = random_state
        self.missing = missing
        self.target_transform = target_transform
        self.fill_gaps = fill_gaps
        self.accelerator = accelerator
        self.devices = devices
        self.strategy = strategy
        self.num_nodes = num_nodes
        self.num_workers = num_workers
        self.num_threads = num_threads
        self.verbose = verbose

    # ------------------------------------------------------------------ fitting
    def make_config(self) -> TrellisConfig:
        """The validated config of the current parameters (raises ConfigError)."""
        params = self.get_params()
        if isinstance(params["quantiles"], list | np.ndarray):
            params["quantiles"] = tuple(params["quantiles"])
        return TrellisConfig(**params)

    def fit(
        self,
        df: pd.DataFrame | Panel,
        *,
        time_col=None,
        id_col=None,
        target=None,
        past_covariates=None,
        future_covariates=None,
        static_covariates=None,
        dayfirst: bool | None = None,
        date_format: str | None = None,
        callbacks=None,
        checkpoint_dir=None,
        resume: bool = False,
        warm_start: bool = False,
        rescale: bool = False,
    ) -> TrellisForecaster:
        """Train on `df`: wide (a time column or DatetimeIndex + numeric columns) or long
        (`unique_id`, `ds`, `y`; other names are found, or name them with `id_col`, ...).

        `target` limits a wide frame to some columns. Covariates are inputs, never forecast:
        `past_covariates` are known up to the forecast origin, `future_covariates` over the
        horizon too (`predict` then needs `future=`), `static_covariates` are one value per
        series (text values are categories); `calendar_features` adds inputs computed from the
        timestamps. `dayfirst` and `date_format` say how to read dates such as 01/02/2020 (see
        `trellis_ts.data.to_panel`; they are kept for `predict(df)`). `df` may also be a `Panel`
        read with the same column options. The sizes left unset are chosen from the data and
        said in one line (`data_summary_`). `callbacks` are extra Lightning callbacks (they see
        `val_loss` at the end of each validation epoch). With `checkpoint_dir` the training state
        is saved after every epoch, and `resume=True` continues an interrupted fit from there
        (pass the same data).

        `warm_start=True` continues from the fitted weights for `max_epochs` more on `df` (new
        or extended data of the same columns/ids and covariates; only training settings may
        have changed), keeping the fitted scaling unless `rescale=True`. After training, the
        validation windows calibrate the intervals of `predict(level=...)`. Returns self.
        """
        config = self.make_config()
        columns = {
            "time_col": time_col,
            "id_col": id_col,
            "target": target,
            "dayfirst": dayfirst,
            "date_format": date_format,
        } | {
            k: [v] if isinstance(v, str) else None if v is None else list(v)
            for k, v in (
                ("past_covariates", past_covariates),
                ("future_covariates", future_covariates),
                ("static_covariates", static_covariates),
            )
        }
        if warm_start and config.model in AUTO_MODELS:
            raise ConfigError(
                f"warm_start=True continues one network, and model={config.model!r} is not one; "
                "refit it, or warm-start a model fitted with model='encoder' or 'dlinear'"
            )
        if warm_start:
            if not hasattr(self, "model_"):
                raise ConfigError(
                    "warm_start=True continues a fitted model, but this one is not fitted; "
                    "call fit(df) first or load a saved model"
                )
            config = warm.check_model(self.config_, config)
            columns = {k: self.columns_.get(k) if v is None else v for k, v in columns.items()}
        panel = df if isinstance(df, Panel) else self._panel(df, config, columns)
        sizing = resolve_sizes(config, panel.freq, panel.lengths(), panel.names)
        config = sizing.config
        if warm_start:
            panel = warm.match_series(panel, self.history_)
        config = with_season_length(config, panel.freq)
        calendar = calendar_features_for(config.calendar_features, panel.freq)
        config = config.replace(calendar_features=calendar)
        check_calendar_names(panel.layout, calendar)
        if warm_start and not rescale:  # the fitted scales and categories: nothing to fit
            scaling = self.scaling_
        else:
            scaling = InputScaling.fit(panel, calendar, config.target_transform)
            if warm_start:  # new scales, but the fitted categories (the model's embeddings)
                scaling = dataclasses.replace(scaling, categories=self.scaling_.categories)
        inputs = scaling.inputs(panel.layout)
        if config.model in AUTO_MODELS:
            return self._fit_auto(config, panel, sizing, scaling, columns)
        if config.streaming:
            if warm_start:
                raise ConfigError(
                    "warm_start=True is not available for streaming=True yet; refit, or keep the "
                    "model current with update(new_rows)"
                )
            line = f"{panel.describe()}; {sizing.line()}; streaming{_clamp_words(scaling, panel)}"
            fit_args = {"callbacks": callbacks, "checkpoint_dir": checkpoint_dir, "resume": resume}
            return fit_streaming(self, config, panel, line, scaling, inputs, columns, **fit_args)
        if inputs.any and config.model == "seasonal_naive":
            raise ConfigError(
                "model='seasonal_naive' reads no covariates or calendar features; drop them, or "
                "use model='encoder' or 'dlinear'"
            )
        series = scaling.series_set(panel)
        names = list(panel.names)
        self.data_summary_ = f"{panel.describe()}; {sizing.line()}{_clamp_words(scaling, panel)}"
        if config.verbose:
            print(self.data_summary_, file=sys.stderr, flush=True)
        _, val_ranges = train_val_ranges(
            panel.lengths(),
            config.context_length,
            config.prediction_length,
            config.val_fraction,
            names=names,
        )
        first_target = (
            {}
            if val_ranges is None
            else {n: ix[lo] for n, ix, (lo, _) in zip(names, panel.index, val_ranges, strict=True)}
        )
        if warm_start and self.calibration_ is not None:
            warm.check_overlap(self.calibration_.first_target, first_target)
        model, summary = train_model(
            config,
            series,
            inputs=inputs,
            names=names,
            callbacks=callbacks,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            init_state=self.model_.state_dict() if warm_start else None,
        )
        if warm_start:
            summary.extra["warm_start"] = True
        if config.target_transform == "auto":  # which forecasts are clamped at 0, by series
            clamped = scaling.clamped(names, panel.layout)
            summary.extra["clamped_at_zero"] = [n for n, c in zip(names, clamped, strict=True) if c]
        self.calibration_: Calibration | None = calibrate(
            model, config, series, names, val_ranges, first_target
        )
        self.config_ = config
        self.columns_ = columns
        self.inputs_ = inputs
        self.model_ = model
        self.scaling_ = scaling
        self.history_ = panel.tail(self._tail_length())
        self.freq_ = panel.freq
        # The time span each series was fitted on: evaluate() warns when it scores inside it.
        self.fit_span_ = {
            "names": names,
            "first": [ix[0] for ix in panel.index],
            "last": [ix[-1] for ix in panel.index],
        }
        self.summary_: TrainingSummary = summary
        return self

    def _fit_auto(self, config, panel, sizing, scaling, columns) -> TrellisForecaster:
        """`fit` for model="auto" (and "ets", "theta"): `trellis_ts.forecaster.auto`."""
        self.data_summary_ = f"{panel.describe()}; {sizing.line()}"
        if config.verbose:
            print(self.data_summary_, file=sys.stderr, flush=True)
        started = time.perf_counter()
        self.auto_, self.calibration_, facts = fit_auto(
            config, panel, lambda c: type(self)(**c.params())
        )
        self.config_, self.columns_, self.scaling_ = config, columns, scaling
        self.inputs_ = ModelInputs()
        self.model_ = build_model(model_spec(placeholder_config(config)))
        self.history_ = panel.tail(self._tail_length())
        self.freq_ = panel.freq
        self.fit_span_ = {
            "names": list(panel.names),
            "first": [ix[0] for ix in panel.index],
            "last": [ix[-1] for ix in panel.index],
        }
        self.summary_ = TrainingSummary(
            epochs=facts.pop("epochs"),
            best_epoch=None,
            best_val_loss=None,
            last_train_loss=None,
            seconds=time.perf_counter() - started,
            train_windows=facts.pop("train_windows"),
            val_windows=facts.pop("val_windows"),
            parameters=facts.pop("parameters"),
            extra={"auto": self.auto_.choice.to_dict()} | facts,
        )
        return self

    def _clamped_rows(self, panel: Panel) -> np.ndarray:
        """bool `[n_series]`: the auto model's forecasts floored at 0 (target_transform "auto"
        for series never negative in the fit data; log1p and nonnegative for all)."""
        if self.config_.target_transform in ("log1p", "nonnegative"):
            return np.ones(panel.n_series, dtype=bool)
        return self.scaling_.clamped(list(panel.names), self.history_.layout)

    def _panel(self, df: pd.DataFrame, config: TrellisConfig, columns: dict | None = None) -> Panel:
        if not isinstance(df, pd.DataFrame):
            raise DataError(
                f"expected a pandas DataFrame, got {type(df).__name__}; load your data with pandas"
            )
        columns = self.columns_ if columns is None else columns
        return to_panel(
            df, **columns, freq=config.freq, missing=config.missing, fill_gaps=config.fill_gaps
        )

    # ------------------------------------------------------------------ forecasting
    def _check_fitted(self) -> None:
        if not hasattr(self, "model_"):
            raise NotFittedError(
                "this TrellisForecaster is not fitted yet; call fit(df) or TrellisForecaster.load(path)"
            )

    def _history(self, df: pd.DataFrame | None) -> Panel:
        """The panel to forecast from: the stored tail (of the fit data and the rows given to
        `update`), or `df` matched to the fit's series."""
        if df is None:  # a streaming model forecasts from its state, after a first patch
            return self.history_ if self.config_.streaming else self._long_enough(self.history_)
        fitted = self.history_.layout
        if isinstance(df, pd.DataFrame):
            lacking = [c for c in fitted.covariates if c not in df.columns]
            if lacking:
                role = ColumnRoles(
                    fitted.past_covariates, fitted.future_covariates, fitted.static_covariates
                ).role_of(lacking[0])
                raise DataError(
                    f"the model was fitted with {role} covariate {lacking[0]!r}, which the data "
                    f"lacks; pass a frame with the covariate columns {list(fitted.covariates)}"
                )
        panel = self._panel(df, self.config_)
        if panel.freq != self.freq_:
            raise DataError(
                f"the data's frequency is {panel.freq!r} but the model was fitted on {self.freq_!r}; "
                "pass data at the fitted frequency"
            )
        if panel.layout.format != fitted.format:
            raise DataError(
                f"the model was fitted on a {fitted.format} frame but got a {panel.layout.format} "
                "one; pass data in the same layout"
            )
        if fitted.format == "wide":  # match channels by name, in the fitted order
            names = list(self.history_.names)
            missing = [n for n in names if n not in panel.names]
            if missing:
                raise DataError(
                    f"column(s) {missing} seen in fit are missing; pass a frame with columns {names}"
                )
            panel = panel.take([panel.names.index(n) for n in names])
        return self._long_enough(panel)

    def _long_enough(self, panel: Panel) -> Panel:
        """`panel`, if every series holds the `context_length` steps a forecast reads (a
        streaming model: a first full patch)."""
        config = self.config_
        need = config.patch_len if config.streaming else config.context_length
        short = [
            (n, len(v)) for n, v in zip(panel.names, panel.values, strict=True) if len(v) < need
        ]
        if short:
            name, length = short[0]
            if config.streaming:
                raise DataError(
                    f"series {name!r} has {length} time steps; a streaming model forecasts after "
                    f"its first full patch of patch_len={need} steps: pass a longer history"
                )
            raise DataError(
                f"series {name!r} has {length} time steps but the model needs the last "
                f"context_length={need}; pass a longer history"
            )
        return panel

    def _forecast(
        self,
        inputs: dict[str, np.ndarray],
        contexts: np.ndarray,
        mean: np.ndarray,
        scale: np.ndarray,
        names=None,
        levels=(),
        calibration: Calibration | None = None,
    ):
        """Forecasts in the data's units from the model's (scaled) `inputs` for windows with
        `contexts [n, L]` (data units) of series with `mean`, `scale` (of the transformed
        values): `(output, point, bounds)`, the output `[n, H]` or `[n, H, Q]`, the point
        forecast `[n, H]` and `{level: (low, high)}` for the interval `levels` of series
        `names`. Intervals are drawn where the model works (after `target_transform`) and
        mapped back with the forecasts; all three are clamped at 0 for the series whose target
        `target_transform="auto"` found never negative."""
        out = forecast_contexts(self.model_, inputs, num_threads=self.config_.num_threads)
        return self._in_data_units(out, contexts, mean, scale, names, levels, calibration)

    def _in_data_units(self, out, contexts, mean, scale, names=None, levels=(), calibration=None):
        """`_forecast`'s result from the model's forecasts `out` (its units)."""
        name = self.config_.target_transform
        shape = (-1,) + (1,) * (out.ndim - 1)
        out = out * scale.reshape(shape) + mean.reshape(shape)
        point = out if out.ndim == 2 else out[..., self.config_.point_index]
        bounds = {}
        if levels:
            seen = transforms.forward(name, contexts, "the history")
            bounds = calibration.intervals(out, point, seen, scale, names, levels)
        # target_transform="auto": the rows of targets never negative in the fit data
        rows = (
            np.zeros(len(out), dtype=bool)
            if names is None
            else self.scaling_.clamped(names, self.history_.layout)
        )

        def back(values: np.ndarray) -> np.ndarray:
            return transforms.clamp(transforms.inverse(name, values), rows)

        bounds = {lvl: (back(lo), back(hi)) for lvl, (lo, hi) in bounds.items()}
        return back(out), back(point), bounds

    def predict(
        self,
        df: pd.DataFrame | None = None,
        *,
        future: pd.DataFrame | None = None,
        quantiles=None,
        level=None,
    ) -> pd.DataFrame:
        """The next `prediction_length` steps after the history (the fit data, or `df`).

        Returns a frame in the input's layout with future timestamps. A model fitted with future
        covariates needs `future`: their values for the `prediction_length` steps after each
        series' end (`make_future_frame` builds the frame to fill). For a model trained with
        `loss="quantile"`, the point forecast is the median and `quantiles` (a subset of the
        trained ones) adds columns `<name>_q<level>`. `level` (integer percentages, e.g.
        `[80, 95]`) adds split-conformal intervals `<name>_lo80`, `<name>_hi80`, ... for any
        model, calibrated at fit on its validation windows (`trellis_ts.forecaster.conformal`).
        """
        self._check_fitted()
        wanted = quantile_columns(self.config_, quantiles)
        levels = check_levels(level)
        calibration = self.calibration_for(levels)
        panel = self._history(df)
        config = self.config_
        H = config.prediction_length
        ahead = None
        if panel.layout.future_covariates:
            ahead = read_future(
                future,
                panel,
                H,
                dayfirst=self.columns_.get("dayfirst"),
                date_format=self.columns_.get("date_format"),
            )
        elif future is not None:
            warnings.warn(
                "this model has no future covariates, so future= is not used; fit with "
                "future_covariates= to use them",
                UserWarning,
                stacklevel=2,
            )
        if self.scaling_.calendar and ahead is None:
            ahead = [np.zeros((H, 0))] * len(panel.covariates.future)
        contexts = np.stack([v[-config.context_length :] for v in panel.values])
        if getattr(self, "auto_", None) is not None:
            clamped = self._clamped_rows(panel)
            point, bounds = auto_bounds(
                self.auto_.forecast(panel, ahead),
                contexts,
                list(panel.names),
                levels,
                calibration,
                clamped,
            )
            out = point
        elif config.streaming:
            out, point, bounds = stream_forecast(
                self, panel, df is not None, ahead, levels, calibration
            )
        else:
            series, mean, scale = self.scaling_.series_set_with_stats(
                panel, future=ahead, window=config.context_length
            )
            out, point, bounds = self._forecast(
                final_windows(series, config.context_length, H),
                contexts,
                mean,
                scale,
                list(panel.names),
                levels,
                calibration,
            )
        if not np.isfinite(out).all():
            raise DataError("the forecast is not finite; check the history for extreme values")
        extra = {f"q{q:g}": out[..., i] for q, i in wanted}
        for lvl, (low, high) in bounds.items():
            extra |= {f"lo{lvl}": low, f"hi{lvl}": high}
        return to_frame(panel, point, columns_suffix=extra or None)

    def calibration_for(self, levels) -> Calibration | None:
        """The fitted calibration if it can give intervals at `levels` (ConfigError if not)."""
        self._check_fitted()
        return require_calibration(getattr(self, "calibration_", None), levels)

    def make_future_frame(self, df: pd.DataFrame | None = None) -> pd.DataFrame:
        """The frame `predict(df, future=...)` needs: the `prediction_length` timestamps after
        each series' end (with the id column of a long frame), the calendar feature columns
        filled, and one empty (NaN) column per future covariate for you to fill."""
        self._check_fitted()
        panel = self._history(df)
        return future_frame(panel, self.config_.prediction_length, self.scaling_.calendar)

    # ------------------------------------------------------------------ updating
    def update(self, df: pd.DataFrame) -> TrellisForecaster:
        """Append new rows to the stored history, without refitting; `predict()` then
        forecasts from the new end.

        `df` has the fit's columns (wide: the time, every fitted column and the covariates;
        long: id, time, target and covariates) and continues each series after its last
        timestamp; a long frame may start new series (they need `context_length` steps before
        `predict` forecasts them, and are scaled by their last `context_length` values). A
        window model keeps each series' last `context_length` steps, an auto model the longer
        tail its statistical candidates estimate on, so that `update(a); update(b)`,
        `update(pd.concat([a, b]))` and `predict` of the whole history agree. A gap at the join
        and missing values are filled as a fresh read of the whole history would (the fit's
        `fill_gaps` and `missing`). Rows at or before a series' end, a gap or missing value the
        fit's policies do not fill, a missing or extra column, another frequency: `DataError`,
        and the model is left as it was. Returns self.
        """
        self._check_fitted()
        history = self.history_
        rows = read_rows(
            df,
            history.layout,
            freq=self.freq_,
            fill_gaps=self.config_.fill_gaps,
            dayfirst=self.columns_.get("dayfirst"),
            date_format=self.columns_.get("date_format"),
            names=history.names,
        )
        extended, added = extend_panel(
            history, rows, missing=self.config_.missing, fill_gaps=self.config_.fill_gaps
        )
        for name, values in zip(added.names, added.values, strict=True):  # log1p's negatives
            transforms.forward(self.config_.target_transform, values, f"series {name!r}")
        self._advance(added, extended)
        self.summary_.extra["updates"] = self.summary_.extra.get("updates", 0) + 1
        return self

    def _advance(self, added: Panel, extended: Panel) -> None:
        """Take in the validated new rows: `added` holds the steps just added to each series
        that got rows (in `extended`'s order; the series of `extended` without new rows are
        not in it), `extended` every series' stored tail with them joined on. The only place
        `update` changes the model: nothing is assigned before every check has passed. A
        streaming model reads the new rows into a copy of its state (`advanced_state`)."""
        stream = advanced_state(self, added) if self.config_.streaming else None
        self.history_ = extended.tail(self._tail_length())
        if stream is not None:
            self.stream_ = stream

    def _tail_length(self) -> int:
        """How many of each series' last steps `history_` keeps: the context a forecast reads,
        or for an auto model what its statistical candidates estimate on, plus its holdout."""
        if getattr(self, "auto_", None) is not None:
            return STATS_MAX_LENGTH + self.auto_.choice.holdout
        return self.config_.context_length

    # ------------------------------------------------------------------ evaluation
    def backtest(
        self,
        df: pd.DataFrame,
        *,
        n_windows: int | None = None,
        step: int | None = None,
        level=None,
        return_forecasts: bool = False,
    ) -> pd.DataFrame:
        """Rolling-origin evaluation on `df` without refitting.

        Windows end at the last time step and go back by `step` (default `prediction_length`);
        `n_windows` limits them per series (default: all that fit). Covariates take their
        recorded values inside each window (the future covariates' too). One row per series and
        window: its cutoff (last context timestamp) and MSE, MAE, MASE, sMAPE (percent, 0-200) in the data's units
        (+ wQL and coverage of the outermost quantile band for a quantile model; + `coverage80`
        and `width80` per interval level with `level=[80, ...]`).

        `return_forecasts=True` returns the forecasts instead: one row per series, cutoff and
        horizon step with `series`, `cutoff`, `timestamp`, `horizon` (1..H), `actual`,
        `forecast`, `forecast_q<q>` (quantile models) and `forecast_lo<l>`/`forecast_hi<l>`.
        """
        result = self.rolling_forecasts(df, n_windows=n_windows, step=step, level=level)
        return result.forecasts() if return_forecasts else result.metrics()

    def rolling_forecasts(
        self, df: pd.DataFrame, *, n_windows: int | None = None, step: int | None = None, level=None
    ) -> Backtest:
        """The rolling-origin forecasts behind `backtest`, as one `Backtest`: its `metrics()` (a
        row per series and window) and `forecasts()` (a row per series, cutoff and step)."""
        self._check_fitted()
        levels = check_levels(level)
        calibration = self.calibration_for(levels)
        if getattr(self, "auto_", None) is not None:
            panel = self._history(df)
            return auto_backtest(
                self.auto_,
                panel,
                calibration,
                levels,
                getattr(self, "fit_span_", None),
                n_windows,
                step,
                self._clamped_rows(panel),
            )
        if self.config_.streaming:
            return stream_backtest(self, self._history(df), calibration, levels, n_windows, step)
        return run_backtest(
            self._history(df),
            config=self.config_,
            scaling=self.scaling_,
            forecast=self._forecast,
            calibration=calibration,
            levels=levels,
            fit_span=getattr(self, "fit_span_", None),
            n_windows=n_windows,
            step=step,
        )

    def evaluate(
        self, df: pd.DataFrame, *, n_windows: int | None = None, step: int | None = None, level=None
    ) -> dict[str, float]:
        """Metrics of `backtest` averaged over series and windows, plus the number of windows."""
        return aggregate_metrics(self.backtest(df, n_windows=n_windows, step=step, level=level))

    # ------------------------------------------------------------------ persistence
    def save(self, path) -> None:
        """Write the fitted model to a directory: weights (safetensors) + JSON, no pickle."""
        self._check_fitted()
        if getattr(self, "auto_", None) is not None:
            state = dataclasses.replace(
                self._fitted_state(), config=placeholder_config(self.config_)
            )
            self.auto_.save(path, state, save_state, move_into_place)
            return
        save_state(self._fitted_state(), path)

    @classmethod
    def load(cls, path) -> TrellisForecaster:
        """Load a directory written by `save` (raises ModelFileError if it is not a usable model)."""
        state = load_state(path)
        auto = AutoModel.load(path, cls.load) if is_auto_dir(path) else None
        forecaster = cls(**(state.config if auto is None else auto.config).params())
        forecaster._restore(state)
        if auto is not None:
            forecaster.config_, forecaster.auto_ = auto.config, auto
            forecaster.summary_.extra["auto"] = auto.choice.to_dict()
        return forecaster

    def _fitted_state(self) -> FittedState:
        return FittedState(
            config=self.config_,
            inputs=self.inputs_,
            model=self.model_,
            columns=self.columns_,
            scaling=self.scaling_,
            history=self.history_,
            summary=self.summary_,
            calibration=getattr(self, "calibration_", None),
            fit_span=getattr(self, "fit_span_", None),
            data_summary=getattr(self, "data_summary_", None),
            stream=getattr(self, "stream_", None),
        )

    def _restore(self, state: FittedState) -> None:
        self.config_ = state.config
        self.inputs_ = state.inputs
        self.model_ = state.model.eval()
        self.scaling_ = state.scaling
        self.columns_ = state.columns
        self.history_ = state.history
        self.freq_ = state.history.freq
        self.summary_ = state.summary
        self.calibration_ = state.calibration
        self.data_summary_ = state.data_summary
        self.fit_span_ = state.fit_span
        if state.stream is not None:
            self.stream_ = state.stream


def _clamp_words(scaling: InputScaling, panel: Panel) -> str:
    """The summary line's clause on forecasts clamped at 0 by target_transform="auto"."""
    if not scaling.nonnegative:
        return ""
    clamped = scaling.clamped(list(panel.names), panel.layout)
    if clamped.all():
        which = "forecasts"
    else:
        shown = [n for n, c in zip(panel.names, clamped, strict=True) if c]
        which = (
            "forecasts of "
            + ", ".join(repr(n) for n in shown[:4])
            + (", ..." if len(shown) > 4 else "")
        )
    return (
        f"; {which} clamped at 0 (never negative in the data; target_transform='none' keeps "
        "them as they are)"
    )
