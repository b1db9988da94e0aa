"""Saving and loading a fitted forecaster: weights in safetensors, everything else in JSON.

No pickle anywhere: loading never executes code from the model directory. A directory holds
`model.json` (format version, library version, config, data layout, scaler, history
timestamps, calibration) and `weights.safetensors` (the model's tensors, the history tail's
values and the conformal thresholds). It is written to a temporary directory beside the target
and swapped into place in one atomic step where the system allows it (Linux's
`renameat2(RENAME_EXCHANGE)`), else by two renames: a crash never leaves a half-written model, and
updating a model in place (a warm start) never leaves a mix of old and new files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import json
import os
import shutil
import tempfile
import uuid
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
from trellis_ts.conformal import Calibration
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
    # Look at `target` before its contents: another process may be moving a model into place
    # (a path that exists holds a whole model from then on).
    if (
        target.exists()
        and not (target / CONFIG_FILE).is_file()
        and (not target.is_dir() or any(target.iterdir()))
    ):
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
    calibration: Calibration | None = getattr(forecaster, "calibration_", None)
    if calibration is not None:
        tensors["conformal.thresholds"] = torch.from_numpy(
            np.ascontiguousarray(calibration.thresholds, dtype=np.float64)
        )
    meta = {
        "format_version": FORMAT_VERSION,
        "library_version": trellis_ts.__version__,
        "config": forecaster.config_.to_dict(),
        "columns": forecaster.columns_,
        "scaler": forecaster.scaler_,
        "summary": forecaster.summary_.to_dict(),
        "conformal": None if calibration is None else calibration.to_meta(),
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
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap it holds the old model


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths atomically (Linux renameat2); False where that is unsupported."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    done = renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE)
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
        return False
    raise OSError(code, os.strerror(code), str(b))


def _move_into_place(staging: Path, target: Path) -> None:
    """Make the complete directory `staging` the directory `target`.

    A new target is one rename. An existing one is swapped with `staging` in one atomic step
    (readers see the old model or the new one, never neither), or, where the system cannot
    swap, renamed aside first and removed after. Two processes saving the same path at once
    both succeed (the last one wins).
    """
    for _ in range(3):
        if not target.exists():
            try:
                staging.rename(target)
                return
            except OSError as exc:  # another process created it meanwhile: swap with it
                if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                    raise
        if _exchange(staging, target):
            return
        old = target.with_name(f".{target.name}.old-{uuid.uuid4().hex[:12]}")
        try:
            target.rename(old)
        except FileNotFoundError:
            continue
        try:
            staging.rename(target)
        except OSError:
            old.rename(target)  # put the old model back
            raise
        shutil.rmtree(old, ignore_errors=True)
        return
    raise OSError(errno.EBUSY, "could not move the model into place", str(target))


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
        saved = meta.get("conformal")  # absent in models saved before intervals existed
        forecaster.calibration_ = None if saved is None else Calibration.from_saved(
            {**saved, "first_target": {k: _unjson(v) for k, v in saved.get("first_target", {}).items()}},
            tensors["conformal.thresholds"].numpy(),
        )  # fmt: skip
        forecaster.data_summary_ = meta.get("data_summary")
        span = meta.get("fit_span")  # absent in format 1
        forecaster.fit_span_ = None if span is None else {
            "names": span["names"], "first": [_unjson(t) for t in span["first"]],
            "last": [_unjson(t) for t in span["last"]]}  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{meta_file} is incomplete ({exc!r}); re-save the model") from None
    return forecaster
