"""`model="auto"`: fit the candidates, score them on the last validation windows, forecast with
their validation-weighted ensemble.

The candidates: the seasonal naive, statsforecast's AutoETS and AutoTheta
(`trellis_ts.forecaster.statistical`), DLinear, the Trellis encoder, and the attention encoder
when the shortest series has at least `ATTENTION_MIN_LENGTH` steps. `model="ets"` or `"theta"`
is the same machinery with one candidate.

Validation (rolling origin): the last `holdout` steps of every series (a fifth of the
shortest series, at least one horizon and at most `MAX_HORIZONS`). The candidates'
parameters never see them: the networks are fitted on the series without them (with their own
early stopping inside that part), the statistical models estimate on the same part. Windows
start every `step` steps inside the holdout (an eighth of the horizon), each forecast from the
history up to its start; a candidate's score is the MASE (scaled by the seasonal naive of the
history before the window, as `evaluate`) averaged over each series' windows, then over
series.

The forecast is Caruana's greedy ensemble selection (AutoGluon's): `ENSEMBLE_ROUNDS` times,
add (with replacement) the candidate that most lowers the validation MASE of the average so
far; the weights are how often each was picked. It is never worse than the best single
candidate on validation (the first pick is the best single one). The same windows calibrate
the conformal intervals of the ensemble's forecast. The networks forecast from the end of the
data with the weights that were scored (a refit would double the training time), so a saved
model holds their weights; the statistical models estimate again on all the history at
predict time (cheap: the saved history, the last `STATS_MAX_LENGTH` steps, gives the same
numbers after a load).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trellis_ts.data.frequency import seasonal_period
from trellis_ts.data.io.frames import Panel
from trellis_ts.data.windows import final_windows, select_windows
from trellis_ts.errors import ConfigError, DataError, ModelFileError, TrellisUserError, positive_int
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.conformal import Calibration
from trellis_ts.forecaster.statistical import (
    STATISTICAL,
    STATS_MAX_LENGTH,
    Skipped,
    statistical_forecasts,
)
from trellis_ts.metrics import naive_scale

__all__ = [
    "AUTO_FILE",
    "AutoChoice",
    "AutoModel",
    "auto_backtest",
    "auto_bounds",
    "fit_auto",
    "is_auto_dir",
    "placeholder_config",
    "plan",
]

NEURAL = {
    "dlinear": {"model": "dlinear"},
    "encoder": {"model": "encoder", "mixer": "trellis"},
    "attention": {"model": "encoder", "mixer": "attention"},
}
LABELS = STATISTICAL | {
    "dlinear": "DLinear",
    "encoder": "Trellis encoder",
    "attention": "attention encoder",
}
ORDER = ("seasonal_naive", "ets", "theta", "dlinear", "encoder", "attention")  # ties: the first
ATTENTION_MIN_LENGTH = 2000  # the attention encoder is a candidate on series at least this long
MAX_HORIZONS = 3  # the validation part spans at most this many horizons
VAL_SHARE = 0.2  # ... and about this share of the shortest series
ENSEMBLE_ROUNDS = 25
AUTO_FILE = "auto.json"  # beside model.json in a saved auto model


@dataclass
class AutoChoice:
    """What `auto` decided: the candidates' validation MASE, the ensemble's weights, notes."""

    scores: dict[str, float]  # candidate -> validation MASE (the candidates that were fitted)
    weights: dict[str, float]  # candidate -> weight in the forecast (sum 1)
    ensemble_score: float  # the weighted forecast's validation MASE
    holdout: int  # steps at the end of each series held out for validation
    step: int  # steps between validation windows
    season: int
    windows: int  # validation windows in all
    notes: list[str] = field(default_factory=list)  # candidates skipped, covariates ignored, ...

    @property
    def best(self) -> str:
        return min(self.scores, key=lambda n: (self.scores[n], ORDER.index(n)))

    def line(self) -> str:
        """'auto chose 0.6 AutoTheta + 0.4 DLinear (validation MASE 0.512; SeasonalNaive 0.71,
        ...)'."""
        parts = " + ".join(
            f"{w:.2g} {LABELS[n]}" for n, w in sorted(self.weights.items(), key=lambda kv: -kv[1])
        )
        scores = ", ".join(f"{LABELS[n]} {s:.3g}" for n, s in self.scores.items())
        text = (
            f"auto chose {parts} (validation MASE {self.ensemble_score:.3g} on {self.windows} "
            f"windows; candidates: {scores})"
        )
        return text + "".join(f"; {note}" for note in self.notes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self) | {"chosen": self.line()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> AutoChoice:
        fields = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in fields})


def plan(config: TrellisConfig, panel: Panel) -> tuple[list[str], int, int, list[str]]:
    """The candidates, the holdout, the step between validation windows, and notes."""
    H, L = config.prediction_length, config.context_length
    shortest = int(panel.lengths().min())
    holdout = min(MAX_HORIZONS * H, max(H, round(VAL_SHARE * shortest)))
    step = max(1, H // 8)
    if shortest - holdout < L + H:  # too short to hold out: validate on one horizon
        holdout = H
    notes = []
    if config.model != "auto":
        return [config.model], holdout, step, notes
    names = ["seasonal_naive", "ets", "theta", "dlinear", "encoder"]
    if shortest >= ATTENTION_MIN_LENGTH:
        names.append("attention")
    if shortest - holdout < L + H:
        names = [n for n in names if n not in NEURAL]
        notes.append(
            f"networks skipped: series too short ({shortest} steps) to hold out "
            f"{holdout} for validation"
        )
    if shortest > STATS_MAX_LENGTH:
        notes.append(f"AutoETS/AutoTheta estimated on the last {STATS_MAX_LENGTH:,} steps")
    layout = panel.layout
    if (
        layout.past_covariates
        or layout.future_covariates
        or layout.static_covariates
        or (config.calendar_features)
    ):
        notes.append("the statistical candidates ignore the covariates")
    return names, holdout, step, notes


def _head(panel: Panel, drop: int) -> Panel:
    """Every series (and its covariates) without its last `drop` steps."""
    cov = panel.covariates
    covariates = dataclasses.replace(
        cov, past=tuple(p[:-drop] for p in cov.past), future=tuple(f[:-drop] for f in cov.future)
    )
    return dataclasses.replace(
        panel,
        values=tuple(v[:-drop] for v in panel.values),
        index=tuple(ix[:-drop] for ix in panel.index),
        covariates=covariates,
    )


def _spread(contexts: np.ndarray) -> np.ndarray:
    """The level a context's flatness is floored at (see `Calibration.intervals`' `scale`)."""
    return np.abs(contexts).mean(axis=1) + 1e-12


class AutoModel:
    """The fitted candidates and the choice; forecasts windows or the steps after the data."""

    def __init__(self, config: TrellisConfig, choice: AutoChoice, networks: dict[str, Any]):
        self.config, self.choice, self.networks = config, choice, networks

    # ------------------------------------------------------------------ forecasting
    def window_forecasts(
        self, panel: Panel, names, *, ranges=None, step=1, n_windows=None, fit_end=None
    ):
        """Windows of `panel` (as `select_windows`) and each candidate's point forecasts
        `{name: [n, H]}` in the data's units. The statistical candidates estimate on each
        series up to `fit_end` (default: the start of its first window)."""
        L, H = self.config.context_length, self.config.prediction_length
        windows = select_windows(panel.values, L, H, step=step, n_windows=n_windows, ranges=ranges)
        if fit_end is None:
            fit_end = [
                int(windows.start[windows.series == s].min(initial=len(v)))
                for s, v in enumerate(panel.values)
            ]
        out = {}
        for name in names:
            if name in self.networks:
                sub = self.networks[name]
                series, mean, scale = sub.scaling_.series_set_with_stats(panel)
                mine = select_windows(
                    series, L, H, step=step, n_windows=n_windows, ranges=ranges, values=panel.values
                )
                assert np.array_equal(mine.start, windows.start)
                _, out[name], _ = sub._forecast(
                    mine.inputs, mine.contexts, mean[mine.series], scale[mine.series]
                )
            else:
                out[name], _ = statistical_forecasts(
                    name,
                    panel.values,
                    windows.series,
                    windows.start,
                    fit_end,
                    H,
                    self.choice.season,
                )
        return windows, out

    def forecast(self, panel: Panel, ahead=None) -> np.ndarray:
        """The weighted forecast `[n_series, H]` of the steps after each series' end."""
        L, H = self.config.context_length, self.config.prediction_length
        lengths = panel.lengths()
        total = np.zeros((panel.n_series, H))
        for name, weight in self.choice.weights.items():
            if name in self.networks:
                sub = self.networks[name]
                series, mean, scale = sub.scaling_.series_set_with_stats(
                    panel, future=ahead, window=L
                )
                contexts = np.stack([v[-L:] for v in panel.values])
                _, point, _ = sub._forecast(final_windows(series, L, H), contexts, mean, scale)
            else:  # estimated again on all the history: cheap, and never skipped here
                point, _ = statistical_forecasts(
                    name,
                    panel.values,
                    np.arange(panel.n_series),
                    lengths,
                    lengths,
                    H,
                    self.choice.season,
                    budget_seconds=math.inf,
                )
            total += weight * point
        return total

    def combine(self, forecasts: dict[str, np.ndarray]) -> np.ndarray:
        return sum(w * forecasts[n] for n, w in self.choice.weights.items())

    # ------------------------------------------------------------------ persistence
    def save(self, target: Path, base_state, save_state, move_into_place) -> None:
        """`target` as one directory, moved into place whole: the base state (history,
        scaling, calibration, a parameter-free placeholder network) by `save_state`, each
        network under `candidates/<name>`, and `auto.json` (the config and the choice)."""
        target = Path(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            whole = staging / "model"
            save_state(base_state, whole)
            for name, sub in self.networks.items():
                save_state(sub._fitted_state(), whole / "candidates" / name)
            meta = {
                "config": self.config.to_dict(),
                "choice": self.choice.to_dict(),
                "networks": sorted(self.networks),
            }
            (whole / AUTO_FILE).write_text(json.dumps(meta, indent=2))
            move_into_place(whole, target)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @classmethod
    def load(cls, path: Path, load_network: Callable[[Path], Any]) -> AutoModel:
        try:
            meta = json.loads((Path(path) / AUTO_FILE).read_text())
            config = TrellisConfig.from_dict(meta["config"])
            choice = AutoChoice.from_dict(meta["choice"])
            names = list(meta["networks"])
        except (ValueError, KeyError, TypeError, TrellisUserError) as exc:
            raise ModelFileError(
                f"{path / AUTO_FILE} is corrupted ({exc}); re-save the model"
            ) from None
        networks = {n: load_network(Path(path) / "candidates" / n) for n in names}
        return cls(config, choice, networks)


def placeholder_config(config: TrellisConfig) -> TrellisConfig:
    """The config of the parameter-free network a saved auto model's base directory holds."""
    return config.replace(model="seasonal_naive", season_length=1, loss="mse")


def _scores(
    forecasts: np.ndarray, targets: np.ndarray, weights: np.ndarray, scales: np.ndarray
) -> float:
    return float(np.sum(weights * np.abs(forecasts - targets).mean(axis=1) / scales))


def greedy_ensemble(
    forecasts: dict[str, np.ndarray],
    targets: np.ndarray,
    weights: np.ndarray,
    scales: np.ndarray,
    rounds: int = ENSEMBLE_ROUNDS,
) -> dict[str, float]:
    """Caruana's ensemble selection with replacement: weights (sum 1) over `forecasts`."""
    names = list(forecasts)
    picked: list[str] = []
    total = np.zeros_like(targets)
    for _ in range(rounds):
        trial = {
            n: _scores((total + forecasts[n]) / (len(picked) + 1), targets, weights, scales)
            for n in names
        }
        best = min(names, key=lambda n: (trial[n], ORDER.index(n)))
        picked.append(best)
        total = total + forecasts[best]
    return {n: picked.count(n) / len(picked) for n in names if n in picked}


def nested_check(forecasts, targets, weights, scales, windows, lengths, holdout) -> dict:
    """Validation only: choose on the earlier half of the validation windows, score on the
    later half, the greedy ensemble and the best single candidate (what decides between them,
    measured over many files by benchmarks/real_data.py)."""
    H = targets.shape[1]
    later = windows.start > lengths[windows.series] - holdout + (holdout - H) / 2
    if later.all() or not later.any():
        return {}
    early_w, late_w = np.where(later, 0.0, weights), np.where(later, weights, 0.0)
    early_w, late_w = early_w / early_w.sum(), late_w / late_w.sum()
    early = {n: _scores(f, targets, early_w, scales) for n, f in forecasts.items()}
    best = min(early, key=lambda n: (early[n], ORDER.index(n)))
    chosen = greedy_ensemble(forecasts, targets, early_w, scales)
    combined = sum(w * forecasts[n] for n, w in chosen.items())
    return {
        "best": best,
        "best_later": _scores(forecasts[best], targets, late_w, scales),
        "ensemble_later": _scores(combined, targets, late_w, scales),
    }


def fit_auto(
    config: TrellisConfig,
    panel: Panel,
    make_forecaster: Callable[[TrellisConfig], Any],
) -> tuple[AutoModel, Calibration | None, dict[str, Any]]:
    """Fit the candidates on `panel` (sized `config`), choose, calibrate: the model, its
    conformal calibration (None without enough windows) and facts for the training summary."""
    names, holdout, step, notes = plan(config, panel)
    season = seasonal_period(panel.freq) if config.season_length is None else config.season_length
    lengths = panel.lengths()
    ranges = [(int(t) - holdout, int(t)) for t in lengths]
    networks, seconds, facts = {}, {}, {"epochs": 0, "parameters": 0, "train_windows": 0}
    head = _head(panel, holdout) if any(n in NEURAL for n in names) else None
    for name in [n for n in names if n in NEURAL]:
        started = time.perf_counter()
        try:
            sub = make_forecaster(config.replace(**NEURAL[name], verbose=False))
            sub.fit(head)
        except TrellisUserError as exc:
            notes.append(f"{LABELS[name]} skipped: {exc}")
            continue
        networks[name] = sub
        seconds[name] = time.perf_counter() - started
        summary = sub.summary_
        facts["epochs"] += summary.epochs
        facts["parameters"] += summary.parameters
        facts["train_windows"] += summary.train_windows
    model = AutoModel(
        config, AutoChoice({}, {}, math.nan, holdout, step, season, 0, notes), networks
    )
    fit_end = [int(t) - holdout for t in lengths]
    usable = [n for n in names if n in networks or n not in NEURAL]
    forecasts: dict[str, np.ndarray] = {}
    windows = None
    for name in usable:
        started = time.perf_counter()
        try:
            windows, out = model.window_forecasts(
                panel, [name], ranges=ranges, step=step, fit_end=fit_end
            )
        except Skipped as exc:
            notes.append(str(exc))
            continue
        forecasts[name] = out[name]
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - started
    if not forecasts:
        raise ConfigError("no candidate of model='auto' could be fitted: " + "; ".join(notes))
    targets = windows.targets
    scales = np.array(
        [
            naive_scale(panel.values[s][:t], season)
            for s, t in zip(windows.series, windows.start, strict=True)
        ]
    )
    ok = np.isfinite(scales) & (scales > 0)
    per_series = np.bincount(windows.series[ok], minlength=panel.n_series)
    n_scored = max(1, int((per_series > 0).sum()))
    weights = np.where(ok, 1.0 / np.maximum(per_series[windows.series], 1) / n_scored, 0.0)
    scales = np.where(ok, scales, 1.0)
    scores = {n: _scores(f, targets, weights, scales) for n, f in forecasts.items()}
    chosen = greedy_ensemble(forecasts, targets, weights, scales)
    model.choice = AutoChoice(scores, chosen, 0.0, holdout, step, season, len(targets), notes)
    combined = model.combine(forecasts)
    model.choice.ensemble_score = _scores(combined, targets, weights, scales)
    model.networks = {n: sub for n, sub in networks.items() if n in chosen}
    if config.verbose:
        print(model.choice.line(), file=sys.stderr, flush=True)
    below = np.maximum(np.std(windows.contexts, axis=1), 0.05 * _spread(windows.contexts))
    residual = np.abs(targets - combined) / below[:, None]
    calibration = Calibration.from_scores(
        "residual", residual, windows.series, list(panel.names), {}
    )
    facts |= {
        "seconds_by_candidate": {n: round(s, 3) for n, s in seconds.items()},
        "val_windows": len(targets),
        "nested": nested_check(forecasts, targets, weights, scales, windows, lengths, holdout),
    }
    return model, calibration, facts


def is_auto_dir(path) -> bool:
    """Whether a model directory holds an auto model."""
    return (Path(path) / AUTO_FILE).is_file()


def auto_bounds(
    point: np.ndarray,
    contexts: np.ndarray,
    names,
    levels,
    calibration: Calibration | None,
    clamped: np.ndarray | None = None,
) -> tuple[np.ndarray, dict]:
    """The auto forecasts `point [n, H]` and their conformal intervals `{level: (low, high)}`,
    floored at 0 in the rows `clamped` (series never negative in the fit data)."""
    bounds = {}
    if levels:
        bounds = calibration.intervals(point, point, contexts, _spread(contexts), names, levels)
    if clamped is None or not clamped.any():
        return point, bounds
    rows = clamped[:, None]

    def floor(values: np.ndarray) -> np.ndarray:
        return np.where(rows, np.maximum(values, 0.0), values)

    return floor(point), {lvl: (floor(lo), floor(hi)) for lvl, (lo, hi) in bounds.items()}


def auto_backtest(
    model: AutoModel,
    panel: Panel,
    calibration,
    levels,
    fit_span,
    n_windows,
    step,
    clamped: np.ndarray,
):
    """`TrellisForecaster.rolling_forecasts` of an auto model: the same windows as
    `run_backtest`, the networks forecasting each from its context, the statistical candidates
    estimating once before each series' first window and running on from there."""
    from trellis_ts.forecaster.backtest import Backtest, warn_in_sample

    H, L = model.config.prediction_length, model.config.context_length
    step = positive_int(H if step is None else step, "step")
    n_windows = None if n_windows is None else positive_int(n_windows, "n_windows")
    short = [n for n, v in zip(panel.names, panel.values, strict=True) if len(v) < L + H]
    if short:
        raise DataError(
            f"series {short[0]!r} is shorter than context_length + prediction_length "
            f"= {L + H}; pass a longer history to evaluate"
        )
    windows, forecasts = model.window_forecasts(
        panel, list(model.choice.weights), step=step, n_windows=n_windows
    )
    warn_in_sample(fit_span, panel, windows.series, windows.start, H)
    names = [panel.names[s] for s in windows.series]
    point, bounds = auto_bounds(
        model.combine(forecasts),
        windows.contexts,
        names,
        levels,
        calibration,
        clamped[windows.series],
    )
    return Backtest(panel, windows, point, point, None, bounds)
