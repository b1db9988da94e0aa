"""Hyperparameter search with Optuna: pruned, resumable, and shared by many workers.

- `suggest_params(trial)`: the default search space, keys are `TrellisForecaster` parameters.
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
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import optuna
import pandas as pd
import sqlalchemy.exc
import yaml
from optuna.storages import RDBStorage
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from trellis_ts.config import config_fields
from trellis_ts.errors import ConfigError, TrellisUserError
from trellis_ts.estimator import TrellisForecaster

warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
warnings.filterwarnings("ignore", message=".*is experimental.*", module="optuna")

SpaceFn = Callable[[optuna.Trial], dict[str, Any]]
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED)


def suggest_params(trial: optuna.Trial) -> dict[str, Any]:
    """The default search space over the estimator's main parameters."""
    patch_len = trial.suggest_categorical("patch_len", [8, 16, 24])
    d_model = trial.suggest_categorical("d_model", [32, 64, 128])
    return {
        "context_length": trial.suggest_categorical("context_length", [96, 192, 336, 512]),
        "patch_len": patch_len,
        "patch_stride": patch_len // trial.suggest_categorical("patch_overlap", [1, 2]),
        "d_model": d_model,
        "n_layers": trial.suggest_int("n_layers", 1, 3),
        "n_heads": trial.suggest_categorical("n_heads", [2, 4]),
        "n_slots": trial.suggest_categorical("n_slots", [16, 32, 64]),
        "dropout": trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
    }


def space_from_mapping(space: Mapping[str, Any]) -> SpaceFn:
    """A search space from a mapping `parameter -> spec` (what a space file holds).

    A spec is a plain value (fixed), a list (categorical choices), or a mapping with `type`
    one of `int`, `float` (`low`, `high`, optional `log`, `step`) or `categorical` (`choices`).
    """
    known = {f.name for f in config_fields()}
    unknown = sorted(set(space) - known)
    if unknown:
        raise ConfigError(
            f"the search space names unknown parameter(s) {unknown}; valid: {sorted(known)}"
        )
    for name, spec in space.items():
        _check_spec(name, spec)

    def suggest(trial: optuna.Trial) -> dict[str, Any]:
        params = {}
        for name, spec in space.items():
            if isinstance(spec, list):
                params[name] = trial.suggest_categorical(name, spec)
            elif isinstance(spec, Mapping):
                kind = spec["type"]
                if kind == "categorical":
                    params[name] = trial.suggest_categorical(name, list(spec["choices"]))
                elif kind == "int":
                    params[name] = trial.suggest_int(name, int(spec["low"]), int(spec["high"]),
                                                     step=int(spec.get("step", 1)), log=bool(spec.get("log", False)))  # fmt: skip
                else:
                    params[name] = trial.suggest_float(name, float(spec["low"]), float(spec["high"]),
                                                       step=spec.get("step"), log=bool(spec.get("log", False)))  # fmt: skip
            else:
                params[name] = spec
        return params

    return suggest


def _check_spec(name: str, spec: Any) -> None:
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(
                f"search space entry {name!r} is an empty list; give at least one choice"
            )
        return
    if not isinstance(spec, Mapping):
        return  # a fixed value: TrellisConfig validates it in each trial's fit
    kind = spec.get("type")
    needed = {"int": ("low", "high"), "float": ("low", "high"), "categorical": ("choices",)}
    if kind not in needed:
        raise ConfigError(
            f"search space entry {name!r} has type {kind!r}; use int, float or categorical (or a list of choices)"
        )
    missing = [k for k in needed[kind] if k not in spec]
    if missing:
        raise ConfigError(f"search space entry {name!r} ({kind}) lacks {missing}")
    if kind != "categorical" and not float(spec["low"]) < float(spec["high"]):
        raise ConfigError(
            f"search space entry {name!r} needs low < high, got {spec['low']} and {spec['high']}"
        )


def load_space(path: str | Path) -> SpaceFn:
    """A search space from a YAML or JSON file (see `space_from_mapping`)."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"search space file {path} does not exist; pass an existing YAML or JSON file"
        )
    try:
        data = yaml.safe_load(path.read_text())  # YAML is a superset of JSON
    except yaml.YAMLError as exc:
        raise ConfigError(
            f"search space file {path} is not valid YAML/JSON ({str(exc).splitlines()[0]})"
        ) from None
    if not isinstance(data, Mapping) or not data:
        raise ConfigError(
            f"search space file {path} must hold a mapping of parameter names to specs"
        )
    return space_from_mapping(data)


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
        self.trial.report(float(score), step=trainer.current_epoch)
        if self.trial.should_prune():
            raise optuna.TrialPruned(
                f"pruned at epoch {trainer.current_epoch} ({self.monitor}={float(score):.4g})"
            )


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
    df: pd.DataFrame,
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
    calling it at once share the work. `base_params` are fixed estimator parameters under the
    searched ones. Returns the study and the best forecaster refit on all of `df` (saved to
    `model_dir` when given), or None if no trial completed or `refit=False`.
    """
    if not isinstance(n_trials, int) or n_trials < 1:
        raise ConfigError(f"n_trials={n_trials!r} must be a positive integer")
    if (
        isinstance(heartbeat_interval, bool)
        or not isinstance(heartbeat_interval, int)
        or heartbeat_interval < 1
    ):
        raise ConfigError(
            f"heartbeat_interval={heartbeat_interval!r} must be a positive number of seconds"
        )
    if pruner not in ("median", "hyperband", "none"):
        raise ConfigError(f"pruner={pruner!r} is not valid; choose median, hyperband or none")
    suggest = _as_space(space)
    base = {"verbose": False, **(base_params or {})}
    fit_kwargs = dict(fit_kwargs or {})
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
        params = {**base, **suggest(trial)}
        trial.set_user_attr("params", _jsonable(params))
        try:
            callbacks = [PruningCallback(trial), *fit_kwargs.get("callbacks", [])]
            forecaster = TrellisForecaster(**params).fit(
                df, **{**fit_kwargs, "callbacks": callbacks}
            )
        except TrellisUserError as exc:  # this corner of the space cannot fit this data
            trial.set_user_attr("error", str(exc))
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
        best = TrellisForecaster(**params).fit(df, **refit_kwargs)
        if model_dir is not None:
            best.save(model_dir)
    return study, best


def _as_space(space) -> SpaceFn:
    if space is None:
        return suggest_params
    if callable(space):
        return space
    if isinstance(space, Mapping):
        return space_from_mapping(space)
    return load_space(space)


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
        rows.append({"trial": t.number, "state": t.state.name, "val_loss": value,
                     "epochs": t.user_attrs.get("epochs"), **t.params})  # fmt: skip
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
    plots = [("optimization_history.png", ovm.plot_optimization_history)]
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
