"""From a `Panel` to the model's inputs: what `fit` learns about their scales, applied alike at
fit, predict and backtest.

`InputScaling` is one record (saved as JSON with the model): a `Scaler` for the targets (one
mean and scale per series of the values after `target_transform`, as before covariates), one for
the time-varying covariates (per column, pooled over the series, so a temperature means the same
in every store), one for the real static covariates, and the categories seen for each
categorical static covariate. Calendar features are computed from the timestamps and used as
they are (already in [-0.5, 0.5]).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trellis_ts.data.features import transforms
from trellis_ts.data.features.calendar import calendar_values
from trellis_ts.data.features.scaling import Scaler, location_scale
from trellis_ts.data.io.frames import Panel, to_float
from trellis_ts.data.io.timegrid import future_index
from trellis_ts.data.windows import SeriesSet
from trellis_ts.models.covariates import ModelInputs

__all__ = ["InputScaling"]


def _is_real(column: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(column.dtype) and not pd.api.types.is_bool_dtype(
        column.dtype
    )


@dataclass(frozen=True)
class InputScaling:
    """The scales and categories of a fit's inputs (module docstring), and the calendar features."""

    target: Scaler
    dynamic: Scaler
    static: Scaler
    categories: dict[str, tuple]
    calendar: tuple[str, ...] = ()
    transform: str = "none"  # the config's target_transform: what the model sees of the targets
    # target_transform="auto": the targets never negative in the fit data (wide: the series'
    # names; long: the target column's), whose forecasts are clamped at 0 (`clamped`).
    nonnegative: tuple[str, ...] = ()

    @classmethod
    def fit(
        cls, panel: Panel, calendar: Sequence[str] = (), transform: str = "none"
    ) -> InputScaling:
        cov, layout = panel.covariates, panel.layout
        dynamic = [
            np.concatenate([p[:, k] for p in cov.past]) for k in range(len(layout.past_covariates))
        ]
        dynamic += [
            np.concatenate([f[:, k] for f in cov.future])
            for k in range(len(layout.future_covariates))
        ]
        real = [c for c in layout.static_covariates if _is_real(cov.static[c])]
        categories = {
            str(c): tuple(pd.unique(cov.static[c]).tolist())
            for c in layout.static_covariates
            if c not in real
        }
        return cls(
            target=Scaler.fit(panel.names, cls._seen(transform, panel)),
            dynamic=Scaler.fit([*layout.past_covariates, *layout.future_covariates], dynamic),
            static=Scaler.fit(real, [cov.static[c].to_numpy(dtype=np.float64) for c in real]),
            categories=categories,
            calendar=tuple(calendar),
            transform=transform,
            nonnegative=cls._nonnegative(panel) if transform == "auto" else (),
        )

    @staticmethod
    def _nonnegative(panel: Panel) -> tuple[str, ...]:
        """The targets with no negative value: every series' (long: the one target column's)."""
        never = [str(n) for n, v in zip(panel.names, panel.values, strict=True) if v.min() >= 0]
        if panel.layout.format == "long":
            return (str(panel.layout.target_col),) if len(never) == panel.n_series else ()
        return tuple(never)

    def clamped(self, names: Sequence[str], layout) -> np.ndarray:
        """bool ``[n]``: whether forecasts of the series ``names`` (of a frame of ``layout``) are
        clamped at 0 because their target was never negative in the fit data."""
        if not self.nonnegative:
            return np.zeros(len(names), dtype=bool)
        if layout.format == "long":
            return np.full(len(names), str(layout.target_col) in self.nonnegative)
        return np.isin(np.asarray(names, dtype=object), list(self.nonnegative))

    @staticmethod
    def _seen(transform: str, panel: Panel) -> list[np.ndarray]:
        """The targets as the model sees them (after the target transform), in the data's units."""
        return [
            transforms.forward(transform, v, f"series {n!r}")
            for n, v in zip(panel.names, panel.values, strict=True)
        ]

    def inputs(self, layout) -> ModelInputs:
        """The covariate inputs of a model fitted with this scaling on frames of ``layout``."""
        return ModelInputs(
            past_feat_dynamic_real=len(layout.past_covariates),
            feat_dynamic_real=len(layout.future_covariates) + len(self.calendar),
            feat_static_real=len(self.static),
            feat_static_cat=tuple(len(v) for v in self.categories.values()),
        )

    def _target_stats(self, panel: Panel, seen: list[np.ndarray], window: int | None = None):
        """Per-series mean and scale ``[n]`` of the targets as the model sees them (``seen``):
        the fit's for known series, a new id's own: of its last ``window`` values when given
        (the context a forecast reads, so that it does not depend on how much older history
        came with it), else of all of them."""
        stats = [
            known or location_scale(v if window is None else v[-window:])
            for known, v in zip(self.target.lookup(panel.names), seen, strict=True)
        ]
        mean, scale = np.array(stats, dtype=np.float64).reshape(-1, 2).T
        return mean, scale

    def series_set(self, panel: Panel, future: Sequence[np.ndarray] | None = None) -> SeriesSet:
        """The panel scaled, as a `SeriesSet`. ``future[g]`` ``[H, F]`` holds the future
        covariates over the horizon of each group (at predict time): the known inputs then run
        H steps past the targets, calendar features included."""
        return self.series_set_with_stats(panel, future)[0]

    def series_set_with_stats(
        self,
        panel: Panel,
        future: Sequence[np.ndarray] | None = None,
        window: int | None = None,
    ) -> tuple[SeriesSet, np.ndarray, np.ndarray]:
        """`series_set`, and the per-series mean and scale ``[n]`` its targets were scaled with
        (what a forecast is scaled back with): the target transform runs once for both. A
        series unseen in fit is scaled by its last ``window`` values when given (a forecast
        passes its context length), else by all of them."""
        cov, layout = panel.covariates, panel.layout
        seen = self._seen(self.transform, panel)  # scaled after the target transform
        mean, scale = self._target_stats(panel, seen, window)
        target = [
            ((v - m) / s).astype(np.float32) for v, m, s in zip(seen, mean, scale, strict=True)
        ]
        n_past = len(layout.past_covariates)
        past = known = None
        if n_past:
            past = [self._dynamic(p, 0) for p in cov.past]
        if layout.future_covariates or self.calendar:
            known = []
            for g, first in enumerate(cov.first_members()):
                values, times = cov.future[g], panel.index[first]
                if future is not None:
                    values = np.concatenate([values, future[g]])
                    times = times.append(future_index(times[-1], panel.freq, len(future[g])))
                parts = [self._dynamic(values, n_past), calendar_values(times, self.calendar)]
                known.append(np.concatenate(parts, axis=1).astype(np.float32))
        static_real = static_cat = None
        if len(self.static):
            static_real = self.static.transform(self._static_reals(cov.static)).astype(np.float32)
        if self.categories:
            static_cat = np.stack(
                [
                    self._codes(cov.static[c], c)
                    for c in cov.static.columns
                    if str(c) in self.categories
                ],
                axis=1,
            )
        series = SeriesSet(
            target=target,
            past_feat_dynamic_real=past,
            feat_dynamic_real=known,
            feat_static_real=static_real,
            feat_static_cat=static_cat,
            group=cov.group,
        )
        return series, mean, scale

    def _dynamic(self, values: np.ndarray, first: int) -> np.ndarray:
        """Columns ``first..`` of the dynamic scaler applied to ``values`` ``[T, k]``."""
        k = values.shape[1]
        scaled = (values - self.dynamic.mean[first : first + k]) / self.dynamic.scale[
            first : first + k
        ]
        return scaled.astype(np.float32)

    def _static_reals(self, static: pd.DataFrame) -> np.ndarray:
        return np.stack(
            [
                to_float(
                    static[c],
                    f"static covariate {c!r}",
                    "this column held numbers when the model was fitted",
                )
                for c in static.columns
                if str(c) in self.static.names
            ],
            axis=1,
        )

    def _codes(self, column: pd.Series, name: Any) -> np.ndarray:
        """Category codes ``[n]``: 1 + the position among the fitted categories, 0 if unseen."""
        known = self.categories[str(name)]
        codes = pd.Index(known).get_indexer(column.to_numpy(dtype=object)) + 1
        if (codes == 0).any():
            new = column[codes == 0].iloc[0]
            warnings.warn(
                f"static covariate {name!r} has the value {new!r}, unseen in fit (known: "
                f"{list(known)[:10]}); it is treated as an unknown category.",
                UserWarning,
                stacklevel=4,
            )
        return codes.astype(np.int64)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.to_dict(),
            "dynamic": self.dynamic.to_dict(),
            "static": self.static.to_dict(),
            "categories": {k: list(v) for k, v in self.categories.items()},
            "calendar": list(self.calendar),
            "transform": self.transform,
            "nonnegative": list(self.nonnegative),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> InputScaling:
        return cls(
            target=Scaler.from_dict(values["target"]),
            dynamic=Scaler.from_dict(values["dynamic"]),
            static=Scaler.from_dict(values["static"]),
            categories={k: tuple(v) for k, v in values["categories"].items()},
            calendar=tuple(values["calendar"]),
            transform=values.get("transform", "none"),
            nonnegative=tuple(values.get("nonnegative", ())),
        )

    @classmethod
    def targets_only(cls, target: Scaler, transform: str = "none") -> InputScaling:
        """The scaling of a model without covariates (what models saved before them hold)."""
        empty = Scaler.fit([], [])
        return cls(target=target, dynamic=empty, static=empty, categories={}, transform=transform)
