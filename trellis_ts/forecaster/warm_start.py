"""Checks of a warm start: `fit(df, warm_start=True)` continues a fitted model on new data.

The model must stay the same (only the training fields of `config.WARM_START_FIELDS` may
change) and so must the series: the same columns of a wide frame, the same ids of a long one,
at the fitted frequency. Each mismatch is a one-line error naming it and the way out.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from trellis_ts.data.io.frames import Panel
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.config import SIZE_FIELDS, TrellisConfig, model_changes

__all__ = ["check_model", "check_overlap", "match_series"]


def check_model(fitted: TrellisConfig, config: TrellisConfig) -> TrellisConfig:
    """The config to continue training with (ConfigError if it changes the model)."""
    if config.season_length is None:  # fit derived it from the data's frequency
        config = config.replace(season_length=fitted.season_length)
    if config.calendar_features == "auto":  # so did the calendar features
        config = config.replace(calendar_features=fitted.calendar_features)
    # Sizes left unset (sized to the data at fit) keep the fitted ones.
    config = config.replace(
        **{n: getattr(fitted, n) for n in SIZE_FIELDS if getattr(config, n) is None}
    )
    changed = model_changes(fitted, config)
    if changed:
        raise ConfigError(
            f"warm_start=True continues the fitted model, but {', '.join(changed)} would change "
            "it; keep the fitted value(s) (only training settings such as max_epochs or "
            "learning_rate may change) or fit from scratch"
        )
    return config


def match_series(panel: Panel, fitted: Panel) -> Panel:
    """`panel` with its series in the fitted order; DataError unless it holds exactly them
    (and the same covariate columns in the same roles)."""
    if panel.layout.format != fitted.layout.format:
        raise DataError(
            f"the model was fitted on a {fitted.layout.format} frame but got a "
            f"{panel.layout.format} one; pass data in the same layout"
        )
    roles = [
        (lay.past_covariates, lay.future_covariates, lay.static_covariates)
        for lay in (panel.layout, fitted.layout)
    ]
    if roles[0] != roles[1]:
        raise DataError(
            f"a warm start needs the fitted covariates (past {list(fitted.layout.past_covariates)}, "
            f"future {list(fitted.layout.future_covariates)}, static "
            f"{list(fitted.layout.static_covariates)}) in the same roles; pass them so, or fit "
            "from scratch"
        )
    if panel.freq != fitted.freq:
        raise DataError(
            f"the data's frequency is {panel.freq!r} but the model was fitted on {fitted.freq!r}; "
            "pass data at the fitted frequency"
        )
    names, known = list(panel.names), list(fitted.names)
    kind = "column" if panel.layout.format == "wide" else "id"
    missing = [n for n in known if n not in names]
    new = [n for n in names if n not in known]
    if missing or new:
        parts = ([f"lacks the fitted {kind}(s) {_some(missing)}"] if missing else []) + (
            [f"has {kind}(s) {_some(new)} the model was not fitted on"] if new else []
        )
        raise DataError(
            f"a warm start needs the same {kind}s as the fit, but the data {' and '.join(parts)}; "
            f"pass exactly the fitted {kind}s (target= selects columns) or fit from scratch"
        )
    return panel.take([names.index(n) for n in known])


def check_overlap(previous: dict, current: dict) -> None:
    """Warn when the new validation part starts before the previous one, i.e. in data the
    model was trained on: its early stopping and intervals would then be too optimistic.

    Both map series names to the timestamp of their first validation target.
    """
    early = [
        (n, t, previous[n]) for n, t in current.items() if n in previous and _before(t, previous[n])
    ]
    if early:
        name, start, before = early[0]
        warnings.warn(
            f"the validation part of series {name!r} now starts at {start}, inside the data the "
            f"model was trained on (which ended before {before}): early stopping and intervals "
            "would be optimistic; warm-start on data that extends past the previous fit",
            stacklevel=3,
        )


def _before(a, b) -> bool:
    if isinstance(a, int | np.integer) and isinstance(b, int | np.integer):
        return a < b
    try:
        return pd.Timestamp(a) < pd.Timestamp(b)
    except (TypeError, ValueError):
        return False


def _some(items: list, limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in items[:limit])
    return f"[{shown}{', ...' if len(items) > limit else ''}]"
