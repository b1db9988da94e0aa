"""Hyperparameter search with Optuna: pruned, resumable, and shared by many workers.

- `suggest_params(trial, sizes, fixed)` (`trellis_ts.tuning.space`): the default search space,
  sized to the data; keys are `TrellisForecaster` parameters, those the user fixed left out.
  A space file (YAML/JSON) or any function `trial -> dict` replaces it.
- Every trial fits on the data's training part and is scored by its validation loss (the end
  of each series held out, `val_fraction`); whoever calls `tune` keeps the test part away.
- `PruningCallback` reports the validation loss after every epoch, so Optuna's pruner stops
  bad trials early.
- The study lives in an Optuna storage (SQLite by default, any RDB URL): running `tune` again
  with the same storage and study name resumes it, several processes on one storage share
  the trials, and a trial whose process died is marked failed by the heartbeat and retried.
"""

from __future__ import annotations

import json
import logging
import math
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import pandas as pd
import sqlalchemy.exc
from optuna.storages import RDBStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from trellis_ts.data import Panel, to_panel
from trellis_ts.errors import ConfigError, TrellisUserError, positive_int
from trellis_ts.forecaster.estimator import TrellisForecaster
from trellis_ts.forecaster.sizing import resolve_sizes
from trellis_ts.tuning.space import (  # noqa: F401 (the space functions are part of this API)
    SpaceFn,
    as_space,
    load_space,
    longest_context,
    space_from_mapping,
    suggest_params,
)

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*is experimental.*", module="optuna")

COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)
# `fit` arguments that say how to read the frame (the covariate roles too: a wide frame's
# covariate columns would otherwise be read as targets).
READING_OPTIONS = (
    "time_col",
    "id_col",
    "target",
    "past_covariates",
    "future_covariates",
    "static_covariates",
    "dayfirst",
    "date_format",
)


class PruningCallback(pl.Callback):
    """Reports `val_loss` to the trial after each validation epoch; raises TrialPruned when told."""

    def __init__(self, trial: optuna.Trial, monitor: str = "val_loss") -> None:
        self.trial, self.monitor = trial, monitor

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        score = trainer.callback_metrics.get(self.monitor)
        if score is None:
            return
        epoch = trainer.current_epoch
        self.trial.report(float(score), step=epoch)
        if self.trial.should_prune():
            pruner = type(self.trial.study.pruner).__name__
            rule = (
                "worse than the median of earlier trials at that epoch"
                if pruner == "MedianPruner"
                else f"stopped by the {pruner}"
            )
            reason = f"{self.monitor} {float(score):.4g} after epoch {epoch + 1}: {rule}"
            self.trial.set_user_attr("pruned_because", reason)
            raise optuna.TrialPruned(reason)


MAX_RETRIES = 2


def retry_stale_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """A trial whose worker died (stale heartbeat) is queued again with the same parameters."""
    retries = int(trial.user_attrs.get("retries", 0))
    if retries < MAX_RETRIES:
        study.enqueue_trial(
            trial.params, user_attrs={"retries": retries + 1, "retry_of": trial.number}
        )


# Database drivers SQLAlchemy imports for a storage URL, and what installs each.
DRIVER_PACKAGES = {
    "psycopg": "psycopg (pip install -c constraints.txt 'trellis-ts[tune]')",
    "psycopg2": "psycopg2-binary (or use a postgresql+psycopg:// URL with 'trellis-ts[tune]')",
    "mysqldb": "mysqlclient (or use a mysql+pymysql:// URL with PyMySQL)",
    "pymysql": "PyMySQL",
}


def storage_url(storage: str) -> str:
    """The URL with PostgreSQL's driver made explicit: `postgresql://` and `postgres://` mean
    psycopg 3 (the `tune` extra), whatever SQLAlchemy's default driver is."""
    for prefix in ("postgresql://", "postgres://"):
        if storage.startswith(prefix):
            return "postgresql+psycopg://" + storage[len(prefix) :]
    return storage


def _driver(storage: str) -> str:
    try:
        return sqlalchemy.engine.make_url(storage).get_driver_name()
    except Exception:  # an unparseable URL fails later with its own message
        return "?"


def make_storage(
    storage: str, heartbeat_interval: int = 60, grace_period: int | None = None
) -> RDBStorage:
    """An Optuna RDB storage with heartbeats: trials of dead workers are failed and retried."""
    url = storage_url(storage)
    # SQLite allows one writer at a time: let a worker wait for the lock instead of failing.
    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(5):
        try:
            return RDBStorage(
                url,
                engine_kwargs=engine_kwargs,
                heartbeat_interval=heartbeat_interval,
                grace_period=grace_period,
                heartbeat_stale_trial_callback=retry_stale_trial,
            )
        except ImportError:
            driver = _driver(url)
            package = DRIVER_PACKAGES.get(
                driver, f"the package that provides the module {driver!r}"
            )
            raise ConfigError(
                f"cannot open the study storage {storage!r}: its database driver {driver!r} is not "
                f"installed; install {package}"
            ) from None
        except Exception as exc:  # SQLAlchemy raises many kinds for a bad URL or a dead server
            # Workers started together on a new database race to create its tables; the loser
            # sees "already exists" or a duplicate schema-version row, and simply opens what
            # the winner made.
            racing = isinstance(exc, sqlalchemy.exc.IntegrityError) or "already exists" in str(exc)
            if racing and attempt < 4:
                time.sleep(0.5 * (attempt + 1))
                continue
            raise ConfigError(
                f"cannot open the study storage {storage!r} ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0]}); pass a database URL such as sqlite:///tune.db or "
                "postgresql://user:password@host/db, and check that its server is running"
            ) from None
    raise AssertionError("unreachable")


def tune(
    df: pd.DataFrame | Panel,
    *,
    n_trials: int = 20,
    timeout: float | None = None,
    storage: str = "sqlite:///trellis-tune.db",
    study_name: str = "trellis-ts",
    space: SpaceFn | Mapping[str, Any] | str | Path | None = None,
    base_params: Mapping[str, Any] | None = None,
    fit_kwargs: Mapping[str, Any] | None = None,
    pruner: str = "median",
    n_jobs: int = 1,
    model_dir: str | Path | None = None,
    heartbeat_interval: int = 60,
    grace_period: int | None = None,
    refit: bool = True,
) -> tuple[optuna.Study, TrellisForecaster | None]:
    """Search hyperparameters on `df` (training data only) and refit the best.

    `n_trials` is the study's total of finished (complete or pruned) trials: calling `tune`
    again with the same storage and study name continues towards it, and several processes
    calling it at once share the work. `base_params` are fixed estimator parameters: the space
    never overrides them (the default space leaves them out; entries of a space file or mapping
    for them are dropped with a warning). The default space is sized to the data (contexts
    around the one `fit` would choose) and every trial keeps one horizon. Returns the study and the best forecaster refit on all of `df` (saved to
    `model_dir` when given), or None if no trial completed or `refit=False`.
    """
    positive_int(n_trials, "n_trials")
    # Seconds, checked as every positive-integer option is (numpy integers pass).
    heartbeat_interval = positive_int(heartbeat_interval, "heartbeat_interval", example=60)
    if grace_period is not None:
        grace_period = positive_int(grace_period, "grace_period", example=120)
    if pruner not in ("median", "hyperband", "none"):
        raise ConfigError(f"pruner={pruner!r} is not valid; choose median, hyperband or none")
    base = {"verbose": False, **(base_params or {})}
    fixed = set(base_params or {}) - {"verbose"}
    fit_kwargs = dict(fit_kwargs or {})
    reading = {k: v for k, v in fit_kwargs.items() if k in READING_OPTIONS}
    config = TrellisForecaster(**base).make_config()
    panel = (
        df
        if isinstance(df, Panel)
        else to_panel(
            df, **reading, freq=config.freq, missing=config.missing, fill_gaps=config.fill_gaps
        )
    )
    sizes = resolve_sizes(config, panel.freq, panel.lengths(), panel.names).config
    # Every trial forecasts the same horizon, so their validation losses compare.
    base.setdefault("prediction_length", sizes.prediction_length)
    suggest = as_space(space, sizes, fixed, longest_context(sizes, panel.lengths()))
    study = optuna.create_study(
        study_name=study_name,
        storage=make_storage(storage, heartbeat_interval, grace_period),
        direction="minimize",
        load_if_exists=True,
        pruner={
            "median": optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
            "hyperband": optuna.pruners.HyperbandPruner(),
            "none": optuna.pruners.NopPruner(),
        }[pruner],
    )

    def objective(trial: optuna.Trial) -> float:
        params = {**base, **suggest(trial), **{k: base[k] for k in fixed}}  # fixed ones win
        trial.set_user_attr("params", _jsonable(params))
        try:
            callbacks = [PruningCallback(trial), *fit_kwargs.get("callbacks", [])]
            forecaster = TrellisForecaster(**params).fit(
                panel, **{**fit_kwargs, "callbacks": callbacks}
            )
        except TrellisUserError as exc:  # this corner of the space cannot fit this data
            trial.set_user_attr("error", str(exc))
            trial.set_user_attr("pruned_because", f"cannot fit this data: {exc}")
            raise optuna.TrialPruned(str(exc)) from None
        score = forecaster.summary_.best_val_loss
        if score is None:
            raise ConfigError(
                "the data is too short to hold out a validation part for tuning; pass a longer "
                "history or lower context_length/prediction_length"
            )
        trial.set_user_attr("epochs", forecaster.summary_.epochs)
        return score

    done = _count(study)
    if done < n_trials:
        logging.getLogger("optuna").setLevel(logging.WARNING)
        study.optimize(
            objective,
            n_trials=n_trials - done,
            timeout=timeout,
            n_jobs=n_jobs,
            callbacks=[MaxTrialsCallback(n_trials, states=COUNTED)],
            catch=(),
        )
    best = None
    if refit and any(t.state == TrialState.COMPLETE for t in study.trials):
        params = dict(study.best_trial.user_attrs["params"])
        refit_kwargs = {k: v for k, v in fit_kwargs.items() if k != "callbacks"}
        best = TrellisForecaster(**params).fit(panel, **refit_kwargs)
        if model_dir is not None:
            best.save(model_dir)
    return study, best


def _count(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=COUNTED))


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return json.loads(
        json.dumps(params, default=lambda v: list(v) if isinstance(v, tuple) else str(v))
    )


def summary_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, value, epochs and the searched parameters."""
    rows = []
    for t in study.trials:
        value = t.value if t.value is not None and math.isfinite(t.value) else None
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name,
                "val_loss": value,
                "epochs": t.user_attrs.get("epochs"),
                **t.params,
                "note": t.user_attrs.get("pruned_because", ""),
            }
        )
    return pd.DataFrame(rows)


def save_plots(study: optuna.Study, directory: str | Path) -> list[Path]:
    """Optuna's optimisation history and parameter importances as PNG files (when computable)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    # No completed trial: no value to draw (matplotlib would only warn about an empty legend).
    plots = [("optimization_history.png", ovm.plot_optimization_history)] if complete else []
    if len(complete) >= 2 and len({tuple(sorted(t.params.items())) for t in complete}) >= 2:
        plots.append(("param_importances.png", ovm.plot_param_importances))
    for name, plot in plots:
        try:
            ax = plot(study)
        except (ValueError, RuntimeError):  # e.g. importances of a parameter-free space
            continue
        fig = ax.figure if hasattr(ax, "figure") else ax[0].figure
        fig.tight_layout()
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        written.append(directory / name)
    return written
