"""The long-term-forecasting benchmark: the published protocol, run and recorded.

Protocol (the one published LTSF numbers use; datasets/README.md has the datasets):

* splits by row, each later split starting ``L`` (context_length) rows early so its first
  window has a full context: ETT hourly train ``[0, 8640)``, validation ``[8640 - L, 11520)``,
  test ``[11520 - L, 14400)`` (ETT 15-minute: the same ×4); other files 7:1:2 with
  ``n_train = int(T * 0.7)``, ``n_test = int(T * 0.2)``, ``n_val = T - n_train - n_test``;
* every column except the date forecast jointly ("M"), each channel by the same weights; or
  the target column alone ("S"), or the target from its history and the other columns' as
  past covariates ("MS"), as the Time-Series-Library names these settings;
* a standard scaler (per channel mean, population std: `trellis_ts.data.Scaler`) fitted on the
  train rows only, for every column;
* train on the train rows' windows, early-stop on the validation rows' windows, and score
  every test window (stride 1, none dropped: ``len(test) - L - H + 1`` per channel) by MSE and
  MAE on the scaled values, averaged over windows, horizon steps and channels.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from torch import nn

from trellis_ts.benchmark.registry import LoadedDataset, load_dataset
from trellis_ts.data.features.scaling import Scaler
from trellis_ts.data.windows import SeriesSet, WindowDataset, model_inputs
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.config import TrellisConfig, with_season_length
from trellis_ts.forecaster.sizing import PATCHTST_PATCH
from trellis_ts.forecaster.training import forecast_contexts, train_model
from trellis_ts.models.covariates import ModelInputs

__all__ = [
    "FEATURES",
    "MODEL_CHOICES",
    "evaluate_windows",
    "load_config",
    "prepare_splits",
    "render_table",
    "resolve_config",
    "row_key",
    "run_benchmark",
    "read_results",
    "split_borders",
    "split_windows",
]

MODEL_CHOICES: dict[str, dict[str, str]] = {
    "trellis": {"model": "encoder", "mixer": "trellis"},
    "attention": {"model": "encoder", "mixer": "attention"},
    "dlinear": {"model": "dlinear"},
    "seasonal_naive": {"model": "seasonal_naive"},
}
# What is forecast from what: every channel ("M"), the target alone ("S"), or the target with
# every other channel as a past covariate ("MS").
FEATURES = ("M", "S", "MS")
DEFAULT_RESULTS = Path("benchmarks") / "results.jsonl"
ETT_MONTH = 30 * 24  # hours in the protocol's 30-day month
_NOT_IN_CONFIG_ID = ("context_length", "prediction_length", "random_state", "verbose")
# Fields added after results were recorded: at these values they leave a run's config id as it was.
_ID_NEUTRAL = {"target_transform": "none", "calendar_features": []}


# ------------------------------------------------------------------------------ splits
def split_borders(kind: str, n_rows: int, context_length: int) -> dict[str, tuple[int, int]]:
    """Row ranges ``[start, stop)`` of "train", "val" and "test" (val/test start L rows early)."""
    L = context_length
    if kind in ("ett_hourly", "ett_minute"):
        month = ETT_MONTH * (1 if kind == "ett_hourly" else 4)
        train_end, val_end, test_end = 12 * month, 16 * month, 20 * month
        if n_rows < test_end:
            raise DataError(
                f"an ETT file needs {test_end} rows for its standard split but has {n_rows}; "
                "use the unmodified file"
            )
        borders = {"train": (0, train_end), "val": (train_end - L, val_end),
                   "test": (val_end - L, test_end)}  # fmt: skip
    elif kind == "ratio_7_1_2":
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        n_val = n_rows - n_train - n_test
        borders = {"train": (0, n_train), "val": (n_train - L, n_train + n_val),
                   "test": (n_rows - n_test - L, n_rows)}  # fmt: skip
    else:
        raise ValueError(f"unknown split kind {kind!r}")
    if borders["val"][0] < 0:
        raise DataError(
            f"context_length={L} is longer than the {borders['train'][1]} training rows; "
            "use a shorter context_length"
        )
    return borders


def _check_windows(borders: dict[str, tuple[int, int]], L: int, H: int) -> None:
    for name, (start, stop) in borders.items():
        if stop - start - L - H + 1 < 1:
            raise DataError(
                f"the {name} split has {stop - start} rows, fewer than context_length + horizon "
                f"= {L + H}; use a shorter context_length or horizon"
            )


def prepare_splits(
    values: np.ndarray, borders: dict[str, tuple[int, int]], names: Sequence[str] | None = None
) -> tuple[Scaler, dict[str, np.ndarray]]:
    """Fit the scaler on the train rows only; return it and each split's scaled rows ``[T_s, C]``."""
    start, stop = borders["train"]
    names = [str(c) for c in range(values.shape[1])] if names is None else names
    scaler = Scaler.fit_rows(names, values[start:stop])
    return scaler, {name: scaler.transform(values[a:b]) for name, (a, b) in borders.items()}


def split_series(rows: np.ndarray, features: str = "M", target: int = -1) -> SeriesSet:
    """A split's scaled rows ``[T, C]`` as the model's series: every channel (``"M"``), the
    ``target`` column alone (``"S"``), or the target with the other columns as past covariates
    (``"MS"``). The models are channel-independent, so "M" is C univariate series."""
    rows = np.asarray(rows, dtype=np.float32)
    if features == "M":
        return SeriesSet(target=[np.ascontiguousarray(rows[:, c]) for c in range(rows.shape[1])])
    target = target % rows.shape[1]
    series = SeriesSet(target=[np.ascontiguousarray(rows[:, target])])
    if features == "S":
        return series
    others = np.delete(rows, target, axis=1)
    return SeriesSet(target=series.target, past_feat_dynamic_real=[others])


def split_windows(
    rows: np.ndarray, context_length: int, horizon: int, features: str = "M", target: int = -1
) -> WindowDataset:
    """Every window (stride 1) of every forecast channel of ``rows`` ``[T, C]``:
    ``T - L - H + 1`` each."""
    return WindowDataset(split_series(rows, features, target), context_length, horizon)


def evaluate_windows(
    model: nn.Module, windows: WindowDataset, batch_size: int = 1024, point_index: int = 0
) -> dict[str, float]:
    """MSE and MAE over all windows, steps and channels (float64 sums, no window dropped).

    ``point_index`` picks the point forecast of a quantile model (its outputs ``[n, H, Q]``).
    """
    n, H = len(windows), windows.prediction_length
    squared = absolute = 0.0
    for start in range(0, n, batch_size):
        batch = windows.gather(np.arange(start, min(start + batch_size, n)))
        inputs = {k: v.numpy() for k, v in model_inputs(batch).items()}
        pred = forecast_contexts(model, inputs, batch_size=batch_size)
        if pred.ndim == 3:
            pred = pred[..., point_index]
        err = pred - batch["future_target"].numpy().astype(np.float64)
        squared += float(np.sum(err * err))
        absolute += float(np.sum(np.abs(err)))
    count = max(n * H, 1)
    return {"mse": squared / count, "mae": absolute / count, "windows": n}


# ------------------------------------------------------------------------------ configs
def load_config(source: str | Path | dict | None) -> dict[str, Any]:
    """TrellisConfig fields from a dict, or a JSON or YAML file holding one mapping."""
    if source is None:
        return {}
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r} does not exist; check the path")
    text = path.read_text(encoding="utf-8")
    try:
        values = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigError(
            f"cannot parse config file {str(path)!r} ({first}); fix its syntax"
        ) from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ConfigError(
            f"config file {str(path)!r} must hold a mapping of settings, got {type(values).__name__}"
        )
    return values


def resolve_config(
    model: str, config: str | Path | dict | None = None, **overrides: Any
) -> TrellisConfig:
    """The base config of a run: file/dict settings, then the --model choice, then overrides.

    ``context_length``, ``prediction_length`` and ``random_state`` are the runner's (set per run).
    """
    if model not in MODEL_CHOICES:
        raise ConfigError(
            f"model={model!r} is not valid; choose one of: {', '.join(MODEL_CHOICES)}"
        )
    values = load_config(config) | overrides
    for key, wanted in MODEL_CHOICES[model].items():
        if key in values and values[key] != wanted:
            raise ConfigError(
                f"the settings give {key}={values[key]!r} but model {model!r} means {key}="
                f"{wanted!r}; choose the model with --model, not in the config"
            )
    values |= MODEL_CHOICES[model]
    if values.get("target_transform", "none") != "none":
        raise ConfigError(
            f"target_transform={values['target_transform']!r}: the benchmark protocol scores the "
            "standardised series as they are; leave target_transform at 'none'"
        )
    # The protocol's patches unless the settings give them (PatchTST's; the ETTh1 study's runs).
    values = {"patch_len": PATCHTST_PATCH[0], "patch_stride": PATCHTST_PATCH[1], **values}
    return TrellisConfig.from_dict(values)


def _run_configs(base: TrellisConfig, L: int, horizons: Sequence[int], freq: str | None):
    """Validated configs per horizon (all checked before the first run starts)."""
    base = with_season_length(base.replace(context_length=L), freq)
    return {h: base.replace(prediction_length=h) for h in horizons}


def _target_column(data: LoadedDataset, features: str, target: str | None) -> int:
    """The position of the forecast column of an "S" or "MS" run (default: ``OT``, else the last)."""
    if features not in FEATURES:
        raise ConfigError(
            f"features={features!r} is not valid; choose one of: {', '.join(FEATURES)} (every "
            "channel; the target alone; the target with the other channels as past covariates)"
        )
    names = [str(c) for c in data.channels]
    if target is None:
        return names.index("OT") if "OT" in names else len(names) - 1
    if features == "M":
        raise ConfigError(
            f"target={target!r} needs features 'S' or 'MS' ('M' forecasts every channel)"
        )
    if str(target) not in names:
        raise DataError(f"target={target!r} is not a column of {data.name}; its columns: {names}")
    return names.index(str(target))


def _int_list(values: Any, name: str, minimum: int) -> list[int]:
    """Distinct integers >= minimum, in the given order (one value is a list of one)."""
    values = (
        list(values) if isinstance(values, Iterable) and not isinstance(values, str) else [values]
    )
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int | np.integer) or v < minimum:
            raise ConfigError(f"{name} must be integers >= {minimum}, got {v!r}")
    if not values:
        raise ConfigError(f"{name} is empty; give at least one value")
    return list(dict.fromkeys(int(v) for v in values))


# ------------------------------------------------------------------------------ the runner
def run_benchmark(
    dataset: str | Path,
    data_dir: str | Path | None = None,
    context_length: int = 336,
    horizons: Sequence[int] = (96, 192, 336, 720),
    model: str = "trellis",
    config: str | Path | dict | None = None,
    seeds: Sequence[int] = (0,),
    results_path: str | Path | None = DEFAULT_RESULTS,
    table_path: str | Path | None = None,
    score_test: bool = True,
    features: str = "M",
    target: str | None = None,
    val_stride: int = 1,
    **overrides: Any,
) -> list[dict[str, Any]]:
    """Train and score ``model`` on ``dataset`` for every horizon and seed; return the records.

    ``dataset`` is a registry name read from ``data_dir`` or a CSV path; ``config`` a dict or
    JSON/YAML file of TrellisConfig fields, ``overrides`` more fields (e.g. ``max_epochs=1``).
    Each record is appended to ``results_path`` (JSON lines) as soon as its run ends; with
    ``table_path`` the markdown table of all of ``results_path`` (or of these records) is written.
    Data and settings are all checked first: a user error raises before anything is written.

    ``score_test=False`` is the mode for choosing settings: the test rows are never scaled,
    windowed or scored, and the records carry ``mse``/``mae`` of None beside the validation
    loss (``best_val_loss``) that a search compares; the table leaves such records out.

    ``features`` is "M" (every channel forecast), "S" (the ``target`` column alone; default
    ``OT``, else the last column) or "MS" (the target, with every other channel as a past
    covariate); MSE and MAE are then the target's alone.

    ``val_stride`` keeps every n-th validation window for early stopping (a large validation
    split's pass then costs 1/n); the test windows are always all scored.
    """
    L = _int_list(context_length, "context_length", 1)[0]
    horizons = _int_list(horizons, "horizons", 1)
    seeds = _int_list(seeds, "seeds", 0)
    val_stride = _int_list(val_stride, "val_stride", 1)[0]
    base = resolve_config(model, config, **overrides)
    data = load_dataset(dataset, data_dir)
    borders = split_borders(data.split, len(data.values), L)
    for h in horizons:
        _check_windows(borders, L, h)
    configs = _run_configs(base, L, horizons, data.freq)
    column = _target_column(data, features, target)
    if not score_test:  # choosing settings: the test rows stay out of the process entirely
        borders = {k: v for k, v in borders.items() if k != "test"}
    _, rows = prepare_splits(data.values, borders, data.channels)  # the scaler: train rows only
    train, val = (split_series(rows[k], features, column) for k in ("train", "val"))
    inputs = ModelInputs(past_feat_dynamic_real=len(data.channels) - 1 if features == "MS" else 0)

    records = []
    for h in horizons:
        for seed in seeds:
            run_config = configs[h].replace(random_state=seed)
            started = time.perf_counter()
            fitted, summary = train_model(run_config, train, inputs=inputs, val_series=val,
                                          val_stride=val_stride)  # fmt: skip
            train_seconds = time.perf_counter() - started
            started = time.perf_counter()
            scores = {"mse": None, "mae": None, "windows": None}
            if score_test:
                windows = split_windows(rows["test"], L, h, features, column)
                scores = evaluate_windows(fitted, windows, point_index=run_config.point_index)
            eval_seconds = time.perf_counter() - started
            record = _record(data, model, run_config, seed, scores, summary, borders,
                             train_seconds, eval_seconds) | {"val_stride": val_stride}  # fmt: skip
            record |= {"features": features,
                       "target": None if features == "M" else data.channels[column]}  # fmt: skip
            records.append(record)
            if results_path is not None:
                _append_jsonl(results_path, record)
    if table_path is not None:
        table = render_table(results_path if results_path is not None else records)
        Path(table_path).parent.mkdir(parents=True, exist_ok=True)
        Path(table_path).write_text(table, encoding="utf-8")
    return records


def _record(data: LoadedDataset, model, config, seed, scores, summary, borders,
            train_seconds, eval_seconds) -> dict[str, Any]:  # fmt: skip
    import lightning
    import torch

    import trellis_ts

    usage = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    peak_mb = usage / (1024 * 1024) if sys.platform == "darwin" else usage / 1024
    return {
        "dataset": data.name,
        "model": model,
        "config": config.to_dict(),
        "config_id": _config_id(config.to_dict()),
        "seed": seed,
        "context_length": config.context_length,
        "horizon": config.prediction_length,
        "mse": scores["mse"],
        "mae": scores["mae"],
        "scored_on": "test" if scores["mse"] is not None else "validation only",
        "test_windows": scores["windows"],
        "train_windows": summary.train_windows,
        "val_windows": summary.val_windows,
        "train_seconds": round(train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "peak_rss_mb": round(peak_mb, 1),
        "parameters": summary.parameters,
        "epochs": summary.epochs,
        "best_epoch": summary.best_epoch,
        "best_val_loss": summary.best_val_loss,
        "file": data.path.name,
        "sha256": data.sha256,
        "expected_shape_ok": data.expected_shape_ok,
        "split": data.split,
        "borders": {name: list(b) for name, b in borders.items()},
        "freq": data.freq,
        "channels": len(data.channels),
        "versions": {
            "trellis_ts": trellis_ts.__version__,
            "torch": torch.__version__,
            "lightning": lightning.__version__,
            "numpy": np.__version__,
            "python": platform.python_version(),
        },  # fmt: skip
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }


def _config_id(config: dict[str, Any]) -> str:
    """Short hash of the settings that define a model (not L, H, the seed or verbosity)."""
    kept = {k: v for k, v in config.items()
            if k not in _NOT_IN_CONFIG_ID and _ID_NEUTRAL.get(k, object()) != v}  # fmt: skip
    return hashlib.sha256(json.dumps(kept, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def read_results(path: str | Path) -> list[dict[str, Any]]:
    """The records of a JSON-lines results file (blank lines skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"results file {str(path)!r} does not exist; run the benchmark first")
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                raise DataError(
                    f"line {number} of {str(path)!r} is not JSON; remove or repair it"
                ) from None
    return records


# ------------------------------------------------------------------------------ the table
def row_key(record: dict[str, Any]) -> tuple[str, str, str, int]:
    """(dataset and features, model, config id, L): the runs that one table row gathers, so that
    runs with other inputs or settings never share a row."""
    features = record.get("features", "M")
    name = record["dataset"] if features == "M" else f"{record['dataset']} {features}"
    return (name, record["model"], record.get("config_id", ""), record["context_length"])


def render_table(source: str | Path | Iterable[dict[str, Any]]) -> str:
    """Markdown table: one row per dataset/model/config/L/H (mean ± sample std over seeds when
    several; a seed run twice counts once, the later run) and an "avg" row over the horizons.
    Validation-only records (a settings search, ``mse`` None) are left out."""
    records = read_results(source) if isinstance(source, str | Path) else list(source)
    records = [r for r in records if r.get("mse") is not None]
    groups: dict[tuple, dict[int, dict[int, dict]]] = {}
    for r in records:
        groups.setdefault(row_key(r), {}).setdefault(r["horizon"], {})[r["seed"]] = r
    lines = [
        "| Dataset | Model | Config | L | H | MSE | MAE | Seeds | Train s | Peak RSS MB | Params |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for (name, model, config_id, L), by_h in sorted(groups.items(), key=lambda kv: str(kv[0])):
        lead = f"| {name} | {model} | {config_id} | {L} |"
        for h in sorted(by_h):
            runs = list(by_h[h].values())
            lines.append(
                f"{lead} {h} | {mean_std([r['mse'] for r in runs])} | "
                f"{mean_std([r['mae'] for r in runs])} | {len(runs)} | "
                f"{np.mean([r['train_seconds'] for r in runs]):.1f} | "
                f"{max(r['peak_rss_mb'] for r in runs):.0f} | {runs[-1]['parameters']} |"
            )
        if len(by_h) > 1:
            lines.append(f"{lead} avg | {_horizon_average(by_h)} | | | |")
    return "\n".join(lines) + "\n"


def _horizon_average(by_h: dict[int, dict[int, dict]]) -> str:
    """MSE | MAE | Seeds cells of the "avg" row: with the same seeds at every horizon, the mean ±
    std over seeds of each seed's horizon average; otherwise the mean of the horizons' means."""
    seed_sets = [tuple(sorted(runs)) for runs in by_h.values()]
    if len(set(seed_sets)) == 1:
        seeds = seed_sets[0]
        cells = [mean_std([np.mean([by_h[h][s][m] for h in by_h]) for s in seeds])
                 for m in ("mse", "mae")]  # fmt: skip
        return f"{cells[0]} | {cells[1]} | {len(seeds)}"
    cells = [np.mean([np.mean([r[m] for r in runs.values()]) for runs in by_h.values()])
             for m in ("mse", "mae")]  # fmt: skip
    return f"{cells[0]:.4f} | {cells[1]:.4f} | mixed"


def mean_std(values: Sequence[float], digits: int = 4) -> str:
    """`mean ± sample std` of a table cell (the value alone for one run, empty for none)."""
    if len(values) < 2:
        return f"{values[0]:.{digits}f}" if len(values) else ""
    return f"{np.mean(values):.{digits}f} ± {np.std(values, ddof=1):.{digits}f}"
