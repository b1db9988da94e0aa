"""Saving and loading a fitted forecaster: weights in safetensors, everything else in JSON.

No pickle anywhere: loading never executes code from the model directory. A directory holds
`model.json` (format version, library version, config, data layout, scaler, history
timestamps) and `weights.safetensors` (the model's tensors and the history tail's values).
It is written to a temporary directory beside the target and renamed into place, so a crash
never leaves a half-written model.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import trellis_ts
from trellis_ts.baselines import build_model
from trellis_ts.config import TrellisConfig
from trellis_ts.data import Panel
from trellis_ts.errors import ConfigError, ModelFileError
from trellis_ts.training import TrainingSummary

if TYPE_CHECKING:
    from trellis_ts.estimator import TrellisForecaster

# 2: sizes chosen from the data, target_transform, date-reading options, the fit's time span.
FORMAT_VERSION = 2
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        return {"timestamp": value.isoformat()}
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"timestamp"}:
        return pd.Timestamp(value["timestamp"])
    return value


def save_forecaster(forecaster: TrellisForecaster, path: str | os.PathLike) -> None:
    # Through a symlink, the model goes where it points (the link itself stays).
    target = Path(os.path.realpath(path)) if Path(path).is_symlink() else Path(path)
    is_model = (target / CONFIG_FILE).is_file()
    if target.exists() and not is_model and (not target.is_dir() or any(target.iterdir())):
        raise ModelFileError(
            f"{target} exists and is not a trellis-ts model directory; choose a new path"
        )
    history: Panel = forecaster.history_
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous()
        for k, v in forecaster.model_.state_dict().items()
    }
    for i, values in enumerate(history.values):
        tensors[f"history.{i}"] = torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))
    meta = {
        "format_version": FORMAT_VERSION,
        "library_version": trellis_ts.__version__,
        "config": forecaster.config_.to_dict(),
        "columns": forecaster.columns_,
        "scaler": forecaster.scaler_,
        "summary": forecaster.summary_.to_dict(),
        "fit_span": getattr(forecaster, "fit_span_", None),
        "data_summary": getattr(forecaster, "data_summary_", None),
        "history": {
            "names": list(history.names),
            "layout": history.layout,
            "freq": history.freq,
            "time_col": history.time_col,
            "id_col": history.id_col,
            "target_col": history.target_col,
            "index_name": history.index_name,
            "ids": None if history.ids is None else [_jsonable(i) for i in history.ids],
            "columns": None if history.columns is None else [_jsonable(c) for c in history.columns],
            "index": [[_jsonable(t) for t in ix] for ix in history.index],
        },
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
        old = None
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            target.rename(old)
        staging.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def load_forecaster(cls: type[TrellisForecaster], path: str | os.PathLike) -> TrellisForecaster:
    source = Path(path)
    meta_file, weights_file = source / CONFIG_FILE, source / WEIGHTS_FILE
    if not source.is_dir() or not meta_file.is_file() or not weights_file.is_file():
        raise ModelFileError(
            f"{source} is not a trellis-ts model directory (it needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass a directory written by save() or `trellis-ts fit --model-dir`"
        )
    try:
        meta = json.loads(meta_file.read_text())
        version = int(meta["format_version"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ModelFileError(f"{meta_file} is corrupted ({exc}); re-save the model") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} was saved in model format {version} by trellis-ts {meta.get('library_version')}; "
            f"this trellis-ts ({trellis_ts.__version__}) reads format {FORMAT_VERSION} and older: upgrade trellis-ts"
        )
    try:
        config = TrellisConfig.from_dict(meta["config"])
    except (ConfigError, KeyError, TypeError) as exc:
        raise ModelFileError(
            f"{meta_file} holds an invalid configuration ({exc}); re-save the model"
        ) from None
    try:
        tensors = load_file(str(weights_file))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{weights_file} is truncated or corrupted ({exc}); re-save the model"
        ) from None
    model = build_model(config)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(
            f"{weights_file} does not match its configuration ({first}); re-save the model"
        ) from None
    try:
        h = meta["history"]
        n = len(h["names"])
        history = Panel(
            values=tuple(tensors[f"history.{i}"].numpy() for i in range(n)),
            index=tuple(pd.Index([_unjson(t) for t in ix]) for ix in h["index"]),
            names=tuple(h["names"]),
            layout=h["layout"],
            freq=h["freq"],
            time_col=h["time_col"],
            id_col=h["id_col"],
            target_col=h["target_col"],
            index_name=h["index_name"],
            ids=None if h["ids"] is None else tuple(h["ids"]),
            columns=None if h["columns"] is None else tuple(h["columns"]),
        )
        summary = TrainingSummary(**{k: meta["summary"][k] for k in TrainingSummary.__dataclass_fields__
                                     if k != "extra"})  # fmt: skip
        forecaster = cls(**config.params())
        forecaster.config_ = config
        forecaster.model_ = model.eval()
        forecaster.scaler_ = meta["scaler"]
        forecaster.columns_ = meta["columns"]
        forecaster.history_ = history
        forecaster.freq_ = history.freq
        forecaster.summary_ = summary
        forecaster.data_summary_ = meta.get("data_summary")
        span = meta.get("fit_span")  # absent in format 1
        forecaster.fit_span_ = None if span is None else {
            "names": span["names"], "first": [_unjson(t) for t in span["first"]],
            "last": [_unjson(t) for t in span["last"]]}  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{meta_file} is incomplete ({exc!r}); re-save the model") from None
    return forecaster
