"""Saving and loading a fitted forecaster's state: weights in safetensors, the rest in JSON.

What a fit learned is one record, `FittedState` (config, covariate inputs, column roles, input
scaling, the history tail, the training summary, the model); the estimator hands it over and
takes it back, and this module knows nothing else about the estimator.

No pickle anywhere: loading never executes code from the model directory. A directory holds
`model.json` (format version, library version, config, column roles, data layout, scaling,
history timestamps and static covariates, calibration) and `weights.safetensors` (the model's
tensors, the history tail's values, covariates included, and the conformal thresholds). It is
written to a temporary directory beside the target and swapped into place in one atomic step
where the system allows it (Linux's `renameat2(RENAME_EXCHANGE)`), else by two renames: a crash
never leaves a half-written model, and updating a model in place (a warm start) never leaves a
mix of old and new files. Directories of formats 1 and 2 (before covariates) still load.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from trellis_ts._version import __version__
from trellis_ts.data.features.covariates import Covariates
from trellis_ts.data.features.scaling import Scaler
from trellis_ts.data.io.frames import Panel
from trellis_ts.data.io.layout import FrameLayout
from trellis_ts.errors import ConfigError, ModelFileError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.conformal import Calibration
from trellis_ts.forecaster.inputs import InputScaling
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.forecaster.training import TrainingSummary
from trellis_ts.models.build import build_model
from trellis_ts.models.covariates import ModelInputs

# 2: sizes chosen from the data, target_transform, date-reading options, the fit's time span.
# 3: covariates (their roles, values and scaling), the layout as one record.
FORMAT_VERSION = 3
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


@dataclass(frozen=True)
class FittedState:
    """Everything a fit learned, as one record: what `save_state` writes and `load_state` reads."""

    config: TrellisConfig
    inputs: ModelInputs
    model: nn.Module
    columns: dict[str, Any]  # the fit's column arguments (time_col, id_col, target, covariates)
    scaling: InputScaling
    history: Panel  # the last context_length steps of every series, covariates included
    summary: TrainingSummary
    calibration: Calibration | None = None  # conformal thresholds (None: no validation part)
    fit_span: dict | None = None  # names, first and last fitted time of each series
    data_summary: str | None = None  # the fit's line about its data and sizes


def save_state(state: FittedState, path: str | os.PathLike) -> None:
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
    history = state.history
    cov = history.covariates
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.state_dict().items()
    }
    for i, values in enumerate(history.values):
        tensors[f"history.{i}"] = _tensor(values)
    for kind, parts in (("past", cov.past), ("future", cov.future)):
        for g, values in enumerate(parts):
            if values.shape[1]:
                tensors[f"history.{kind}.{g}"] = _tensor(values)
    if state.calibration is not None:
        tensors["conformal.thresholds"] = _tensor(state.calibration.thresholds)
    meta = {
        "format_version": FORMAT_VERSION,
        "library_version": __version__,
        "config": state.config.to_dict(),
        "inputs": state.inputs.to_dict(),
        "columns": state.columns,
        "scaling": state.scaling.to_dict(),
        "summary": state.summary.to_dict(),
        "conformal": None if state.calibration is None else state.calibration.to_meta(),
        "fit_span": state.fit_span,
        "data_summary": state.data_summary,
        "history": {
            "names": list(history.names),
            "freq": history.freq,
            "layout": history.layout.to_dict(),
            "ids": None if history.ids is None else list(history.ids),
            "index": [list(ix) for ix in history.index],
            "group": cov.group.tolist(),
            "n_groups": len(cov.past),
            "static": {str(c): cov.static[c].tolist() for c in cov.static.columns},
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


def _tensor(values: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.float64))


def load_state(path: str | os.PathLike) -> FittedState:
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
            f"this trellis-ts ({__version__}) reads format {FORMAT_VERSION} and older: upgrade trellis-ts"
        )
    try:
        # Saved before target_transform existed: forecasts were never clamped, i.e. "none" (the
        # default is now "auto").
        config = TrellisConfig.from_dict({"target_transform": "none", **meta["config"]})
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
    try:
        inputs = ModelInputs(**meta["inputs"]) if version >= 3 else ModelInputs()
    except (KeyError, TypeError) as exc:
        raise ModelFileError(f"{meta_file} is incomplete ({exc!r}); re-save the model") from None
    model = build_model(model_spec(config), inputs)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelFileError(
            f"{weights_file} does not match its configuration ({first}); re-save the model"
        ) from None
    try:
        read = _read_v3 if version >= 3 else _read_v1
        columns, scaling, history = read(meta, tensors)
        summary = TrainingSummary(**{k: meta["summary"][k] for k in TrainingSummary.__dataclass_fields__
                                     if k != "extra"})  # fmt: skip
        saved = meta.get("conformal")  # absent in models saved before intervals existed
        calibration = None if saved is None else Calibration.from_saved(
            {**saved, "first_target": {k: _unjson(v) for k, v in saved.get("first_target", {}).items()}},
            tensors["conformal.thresholds"].numpy(),
        )  # fmt: skip
        span = meta.get("fit_span")  # absent in format 1
        fit_span = None if span is None else {
            "names": span["names"], "first": [_unjson(t) for t in span["first"]],
            "last": [_unjson(t) for t in span["last"]]}  # fmt: skip
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(f"{meta_file} is incomplete ({exc!r}); re-save the model") from None
    return FittedState(config=config, inputs=inputs, model=model.eval(), columns=columns,
                       scaling=scaling, history=history, summary=summary,
                       calibration=calibration, fit_span=fit_span,
                       data_summary=meta.get("data_summary"))  # fmt: skip


def _history(h: dict, tensors: dict, layout: FrameLayout, covariates=None) -> Panel:
    """The saved history tail: target values from the weights file, the rest from JSON."""
    return Panel(
        values=tuple(tensors[f"history.{i}"].numpy() for i in range(len(h["names"]))),
        index=tuple(pd.Index([_unjson(t) for t in ix]) for ix in h["index"]),
        names=tuple(h["names"]),
        freq=h["freq"],
        layout=layout,
        ids=None if h["ids"] is None else tuple(_id(i) for i in h["ids"]),
        covariates=covariates,
    )


def _id(value: Any) -> Any:
    """A saved series id: the tuple of a series named by several id columns (a JSON list)."""
    return tuple(value) if isinstance(value, list) else value


def _read_v3(meta: dict, tensors: dict) -> tuple[dict, InputScaling, Panel]:
    h = meta["history"]
    layout = FrameLayout.from_dict(h["layout"])
    lengths = [len(ix) for ix in h["index"]]
    group = np.asarray(h["group"], dtype=np.int64)
    parts = {}
    for kind, width in (("past", len(layout.past_covariates)),
                        ("future", len(layout.future_covariates))):  # fmt: skip
        parts[kind] = tuple(
            tensors[f"history.{kind}.{g}"].numpy() if width
            else np.zeros((lengths[int(np.argmax(group == g))], 0)) for g in range(h["n_groups"])
        )  # fmt: skip
    covariates = Covariates(past=parts["past"], future=parts["future"],
                            static=pd.DataFrame(h["static"], index=range(len(h["names"]))),
                            group=group)  # fmt: skip
    history = _history(h, tensors, layout, covariates)
    return meta["columns"], InputScaling.from_dict(meta["scaling"]), history


def _read_v1(meta: dict, tensors: dict) -> tuple[dict, InputScaling, Panel]:
    """A model saved before covariates (formats 1 and 2): one scaler for the targets (of the
    values after `target_transform`), the layout's flat fields."""
    h = meta["history"]
    layout = FrameLayout(
        format=h["layout"], time_col=h["time_col"], id_col=h["id_col"],
        target_col=h["target_col"], index_name=h["index_name"],
        columns=None if h["columns"] is None else tuple(h["columns"]),
    )  # fmt: skip
    transform = meta["config"].get("target_transform", "none")
    scaling = InputScaling.targets_only(Scaler.from_dict(meta["scaler"]), transform)
    return dict(meta["columns"]), scaling, _history(h, tensors, layout)
