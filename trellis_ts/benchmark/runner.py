"""The long-term-forecasting benchmark: the published protocol (`protocol`), run and recorded
(`results`).

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

from trellis_ts.benchmark.protocol import (
    FEATURES,
    _check_windows,
    evaluate_windows,
    prepare_splits,
    split_borders,
    split_series,
    split_windows,
)
from trellis_ts.benchmark.registry import LoadedDataset, load_dataset
from trellis_ts.benchmark.results import (
    _append_jsonl,
    _config_id,
    render_table,
)
from trellis_ts.benchmark.streaming import LOOKBACK, run_streaming
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.config import TrellisConfig, with_season_length
from trellis_ts.forecaster.sizing import PATCHTST_PATCH
from trellis_ts.forecaster.training import train_model
from trellis_ts.models.covariates import ModelInputs

__all__ = ["MODEL_CHOICES", "load_config", "resolve_config", "run_benchmark"]

MODEL_CHOICES: dict[str, dict[str, str]] = {
    "trellis": {"model": "encoder", "mixer": "trellis"},
    "attention": {"model": "encoder", "mixer": "attention"},
    "streaming": {"model": "encoder", "mixer": "trellis", "streaming": True},
    "streaming_attention": {"model": "encoder", "mixer": "attention", "streaming": True},
    "dlinear": {"model": "dlinear"},
    "seasonal_naive": {"model": "seasonal_naive"},
}
DEFAULT_RESULTS = Path("benchmarks") / "results.jsonl"


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
    values.setdefault("target_transform", "none")  # the protocol's; keeps the config ids
    if values["target_transform"] != "none":
        raise ConfigError(
            f"target_transform={values['target_transform']!r}: the benchmark protocol scores the "
            "standardised series as they are; leave target_transform at 'none'"
        )
    # The protocol's patches unless the settings give them (PatchTST's; the ETTh1 study's runs).
    values = {"patch_len": PATCHTST_PATCH[0], "patch_stride": PATCHTST_PATCH[1], **values}
    if values.get("streaming"):  # patches end to end
        values["patch_stride"] = values["patch_len"]
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
    scaler, rows = prepare_splits(data.values, borders, data.channels)  # scaler: train rows only
    train, val = (split_series(rows[k], features, column) for k in ("train", "val"))
    inputs = ModelInputs(past_feat_dynamic_real=len(data.channels) - 1 if features == "MS" else 0)

    records = []
    for h in horizons:
        for seed in seeds:
            run_config = configs[h].replace(random_state=seed)
            started = time.perf_counter()
            if run_config.streaming:  # fit and score in one (benchmark/streaming.py)
                if features == "MS":
                    raise ConfigError("a streaming run takes features 'M' or 'S'")
                end = max(b for _, b in borders.values())
                scaled = scaler.transform(data.values[:end])
                picked = list(range(len(data.channels))) if features == "M" else [column]
                fitted, summary, scores = run_streaming(
                    run_config,
                    scaled,
                    borders,
                    picked,
                    [str(data.channels[c]) for c in picked],
                    score_test,
                )
            else:
                fitted, summary = train_model(
                    run_config, train, inputs=inputs, val_series=val, val_stride=val_stride
                )
            train_seconds = time.perf_counter() - started
            if run_config.streaming:  # its scoring ran inside: count it as evaluation
                train_seconds -= scores["seconds"]
            started = time.perf_counter()
            if not run_config.streaming:
                scores = {"mse": None, "mae": None, "windows": None}
            if score_test and not run_config.streaming:
                windows = split_windows(rows["test"], L, h, features, column)
                scores = evaluate_windows(fitted, windows, point_index=run_config.point_index)
            eval_seconds = time.perf_counter() - started
            if run_config.streaming:
                eval_seconds = scores["seconds"]
            record = _record(
                data, model, run_config, seed, scores, summary, borders, train_seconds, eval_seconds
            ) | {"val_stride": val_stride}
            record |= {
                "lookback": LOOKBACK if run_config.streaming else run_config.context_length,
                "features": features,
                "target": None if features == "M" else data.channels[column],
            }
            records.append(record)
            if results_path is not None:
                _append_jsonl(results_path, record)
    if table_path is not None:
        table = render_table(results_path if results_path is not None else records)
        Path(table_path).parent.mkdir(parents=True, exist_ok=True)
        Path(table_path).write_text(table, encoding="utf-8")
    return records


def _record(
    data: LoadedDataset, model, config, seed, scores, summary, borders, train_seconds, eval_seconds
) -> dict[str, Any]:
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
        },
        "timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
