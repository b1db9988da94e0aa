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

* A replaced directory's permissions (of the folder and of each file) carry over to the new one;
  a new one gets the usual ones (0o777/0o666 less the umask), not mkdtemp's 0o700.
* Staging folders are named `.<name>.trellis-save-<pid>-<random>`; a save sweeps those of
  processes that no longer run (a kill during a save), and nothing else.
* `load_state` opens the directory once and reads both files through that handle, so it always
  sees one whole save even while another process replaces the directory; it checks every size
  of model.json against the weights file's header (which holds every tensor's shape) before
  building the network, so an edited number costs nothing but a one-line error.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import datetime
import errno
import json
import os
import re
import shutil
import stat
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save_file
from torch import nn

from trellis_ts._version import __version__
from trellis_ts.data.features.covariates import Covariates
from trellis_ts.data.features.scaling import Scaler
from trellis_ts.data.io.frames import Panel
from trellis_ts.data.io.layout import FrameLayout
from trellis_ts.errors import ModelFileError, OutputError, TrellisUserError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.conformal import Calibration
from trellis_ts.forecaster.inputs import InputScaling
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.forecaster.streaming.state import StreamState
from trellis_ts.forecaster.training import TrainingSummary
from trellis_ts.models.build import build_model
from trellis_ts.models.covariates import ModelInputs

# 2: sizes chosen from the data, target_transform, date-reading options, the fit's time span.
# 3: covariates (their roles, values and scaling), the layout as one record.
# 4: timestamps of a named time zone ({"timestamp": ..., "tz": "Europe/Paris"}); written only by
#    models whose times have one (others stay format 3, which older versions read).
# 5: a streaming model's per-series state (tensors `stream.*`, names in "stream"); written only
#    by streaming models.
FORMAT_VERSION = 5
CONFIG_FILE = "model.json"
WEIGHTS_FILE = "weights.safetensors"


def _zone(tz: Any) -> str | None:
    """The name of a named time zone (Europe/Paris); None for none, UTC or a fixed offset."""
    if tz is None or isinstance(tz, datetime.timezone):
        return None
    name = getattr(tz, "key", None) or getattr(tz, "zone", None)
    return None if name in (None, "UTC") else str(name)


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, pd.Timestamp):
        zone = _zone(value.tz)
        return {"timestamp": value.isoformat()} | ({"tz": zone} if zone else {})
    return value


def _unjson(value: Any) -> Any:
    if isinstance(value, dict) and set(value) in ({"timestamp"}, {"timestamp", "tz"}):
        stamp = pd.Timestamp(value["timestamp"])
        return stamp.tz_convert(value["tz"]) if "tz" in value else stamp
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
    stream: StreamState | None = None  # a streaming model's per-series state


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
    if state.stream is not None:
        tensors |= state.stream.to_tensors()
    zoned = any(_zone(getattr(ix, "tz", None)) for ix in history.index)
    meta = {
        "format_version": FORMAT_VERSION if state.stream is not None else 4 if zoned else 3,
        "library_version": __version__,
        "config": state.config.to_dict(),
        "inputs": state.inputs.to_dict(),
        "columns": state.columns,
        "scaling": state.scaling.to_dict(),
        "summary": state.summary.to_dict(),
        "conformal": None if state.calibration is None else state.calibration.to_meta(),
        "fit_span": state.fit_span,
        "data_summary": state.data_summary,
        "stream": None if state.stream is None else {"names": list(state.stream.names)},
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
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _sweep_stale(target)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.{_STAGING}-{os.getpid()}-", dir=target.parent)
        )
    except OSError as exc:
        raise OutputError(_cannot_save(target, exc)) from None
    try:
        save_file(tensors, str(staging / WEIGHTS_FILE))
        (staging / CONFIG_FILE).write_text(json.dumps(meta, indent=2, default=_jsonable))
        _set_permissions(staging, target)
        _move_into_place(staging, target)
    except (OSError, SafetensorError) as exc:
        raise OutputError(_cannot_save(target, exc)) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)  # after a swap it holds the old model


_STAGING = "trellis-save"  # .<name>.trellis-save-<pid>-<random>: a save in progress (or killed)
_STAGED = re.compile(r"^\.(?P<name>.+)\.trellis-(?:save|old)-(?P<pid>\d+)-[A-Za-z0-9_]+$")


def _cannot_save(target: Path, exc: Exception) -> str:
    why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    if "StorageFull" in why or "No space left" in why:
        why = os.strerror(errno.ENOSPC)
    return (
        f"cannot save the model to {target} ({why}); free some space or check the folder's "
        "permissions, then run again (any model already there is unchanged)"
    )


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: running
        return True
    return True


def _sweep_stale(target: Path) -> None:
    """Remove the staging folders of `target` left by saves whose process no longer runs."""
    with contextlib.suppress(OSError):
        for entry in os.scandir(target.parent):
            m = _STAGED.match(entry.name)
            if (
                m
                and m["name"] == target.name
                and entry.is_dir(follow_symlinks=False)
                and int(m["pid"]) != os.getpid()
                and not _running(int(m["pid"]))
            ):
                shutil.rmtree(entry.path, ignore_errors=True)


def _set_permissions(staging: Path, target: Path) -> None:
    """The permissions of the directory being replaced (folder and files), else the defaults."""
    mask = os.umask(0o022)
    os.umask(mask)
    old = target if target.is_dir() else None
    os.chmod(staging, stat.S_IMODE(old.stat().st_mode) if old else 0o777 & ~mask)
    for name in (CONFIG_FILE, WEIGHTS_FILE):
        before = None if old is None else old / name
        mode = stat.S_IMODE(before.stat().st_mode) if before and before.is_file() else None
        os.chmod(staging / name, 0o666 & ~mask if mode is None else mode)
        fd = os.open(staging / name, os.O_RDONLY)
        try:
            os.fsync(fd)  # whole on disk before it is renamed into place
        finally:
            os.close(fd)


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
        old = target.with_name(f".{target.name}.trellis-old-{os.getpid()}-{uuid.uuid4().hex[:12]}")
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


def _read_files(source: Path) -> tuple[bytes, bytes]:
    """The bytes of model.json and of the weights, from one and the same save.

    Both are read through one handle of the directory: a save never changes a directory, it
    swaps in a new one, so the two files always come from one save. When the directory is
    swapped out and removed between the two reads, the new one is read from the start.
    """
    missing = ModelFileError(
        f"{source} is not a trellis-ts model directory (it needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
        "pass a directory written by save() or `trellis-ts fit --model-dir`"
    )
    if os.open not in os.supports_dir_fd:  # no directory handles here: read by name
        try:
            return (source / CONFIG_FILE).read_bytes(), (source / WEIGHTS_FILE).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise missing from None
        except OSError as exc:
            raise ModelFileError(_unreadable(source, exc)) from None
    for attempt in range(50):
        try:
            folder = os.open(source, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except (FileNotFoundError, NotADirectoryError):
            if attempt < 5 and not source.is_symlink():  # between two renames of another save
                time.sleep(0.01)
                continue
            raise missing from None
        except OSError as exc:
            raise ModelFileError(_unreadable(source, exc)) from None
        try:
            return _read_at(folder, CONFIG_FILE), _read_at(folder, WEIGHTS_FILE)
        except (FileNotFoundError, IsADirectoryError):
            try:
                swapped = not os.path.samestat(os.fstat(folder), os.stat(source))
            except OSError:
                swapped = True
            if not swapped:
                raise missing from None
        except OSError as exc:
            raise ModelFileError(_unreadable(source, exc)) from None
        finally:
            os.close(folder)
    raise ModelFileError(
        f"{source} kept changing while it was read (another process is saving it); try again"
    )


def _unreadable(source: Path, exc: OSError) -> str:
    return f"cannot read the model in {source} ({exc.strerror or exc}); check its permissions"


def _read_at(folder: int, name: str) -> bytes:
    fd = os.open(name, os.O_RDONLY, dir_fd=folder)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise IsADirectoryError(name)
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read()
    finally:
        os.close(fd)


_MAX_HEADER = 100 << 20  # safetensors' own limit on the header


def _header(data: bytes, weights_file: Path) -> dict[str, tuple[int, ...]]:
    """Every tensor's shape, from the safetensors header (nothing allocated, nothing built)."""
    bad = ModelFileError(
        f"{weights_file} is truncated or corrupted (no valid header); re-save the model"
    )
    if len(data) < 8:
        raise bad
    size = int.from_bytes(data[:8], "little")
    if size > min(_MAX_HEADER, len(data) - 8):
        raise bad
    try:
        header = json.loads(data[8 : 8 + size])
        shapes = {
            k: tuple(int(n) for n in v["shape"]) for k, v in header.items() if k != "__metadata__"
        }
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        raise bad from None
    if any(n < 0 for shape in shapes.values() for n in shape):
        raise bad
    return shapes


def _check_sizes(
    config: TrellisConfig, inputs: ModelInputs, shapes: dict, weights_file: Path, meta_file: Path
) -> None:
    """ModelFileError unless the network model.json describes has exactly the tensors of the
    weights file. Sane bounds first (a layer or a category table is at least one tensor), then
    the network is built on the "meta" device, which allocates no memory, and compared."""
    model_shapes = {
        k.removeprefix("model."): v for k, v in shapes.items() if k.startswith("model.")
    }
    n_tensors = len(model_shapes)
    if config.model == "encoder" and config.n_layers > n_tensors:
        raise ModelFileError(
            f"{weights_file} does not match its configuration ({meta_file.name} asks for "
            f"{config.n_layers} layers, the weights hold {n_tensors} tensors in all); re-save the model"
        )
    if len(inputs.feat_static_cat) > n_tensors or any(c > 1 << 31 for c in inputs.feat_static_cat):
        raise ModelFileError(
            f"{meta_file} is corrupted (implausible static categories for the weights); re-save the model"
        )
    try:
        with torch.device("meta"):
            skeleton = build_model(model_spec(config), inputs)
    except (ValueError, TypeError, RuntimeError, OverflowError) as exc:
        raise ModelFileError(
            f"{meta_file} describes no buildable model ({str(exc).splitlines()[0]}); re-save the model"
        ) from None
    # The weights' shapes as tensors without memory, loaded the way the real ones will be (the
    # model's own hooks read the layouts of earlier versions).
    try:
        with torch.device("meta"):  # tensors the hooks make are meta too
            fake = {name: torch.empty(shape) for name, shape in model_shapes.items()}
            skeleton.load_state_dict(fake, strict=True)
    except RuntimeError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else "other tensors"
        sizes = _SIZE_MISMATCH.match(detail)
        if sizes:  # torch's wording, in the file's terms
            detail = (
                f"tensor {sizes['name']} is [{sizes['have']}] in the weights but "
                f"[{sizes['want']}] by {meta_file.name}"
            )
        raise ModelFileError(
            f"{weights_file} does not match its configuration ({detail}); re-save the model"
        ) from None


_SIZE_MISMATCH = re.compile(
    r"size mismatch for (?P<name>\S+): copying a param with shape torch\.Size\(\[(?P<have>[^\]]*)\]\)"
    r".*current model is torch\.Size\(\[(?P<want>[^\]]*)\]\)"
)


def load_state(path: str | os.PathLike) -> FittedState:
    source = Path(path)
    meta_file, weights_file = source / CONFIG_FILE, source / WEIGHTS_FILE
    meta_bytes, weights_bytes = _read_files(source)
    try:
        meta = json.loads(meta_bytes)
        version = int(meta["format_version"])
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        why = "nested too deeply" if isinstance(exc, RecursionError) else _why(exc)
        raise ModelFileError(f"{meta_file} is corrupted ({why}); re-save the model") from None
    if version > FORMAT_VERSION:
        raise ModelFileError(
            f"{source} was saved in model format {version} by trellis-ts {meta.get('library_version')}; "
            f"this trellis-ts ({__version__}) reads format {FORMAT_VERSION} and older: upgrade trellis-ts"
        )
    try:
        # Saved before target_transform existed: forecasts were never clamped, i.e. "none" (the
        # default is now "auto").
        config = TrellisConfig.from_dict({"target_transform": "none", **meta["config"]})
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:
        raise ModelFileError(
            f"{meta_file} holds an invalid configuration ({_why(exc)}); re-save the model"
        ) from None
    try:
        inputs = ModelInputs(**meta["inputs"]) if version >= 3 else ModelInputs()
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        raise ModelFileError(
            f"{meta_file} is incomplete ({_why(exc)}); re-save the model"
        ) from None
    shapes = _header(weights_bytes, weights_file)
    _check_sizes(config, inputs, shapes, weights_file, meta_file)
    try:
        tensors = load_tensors(weights_bytes)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(
            f"{weights_file} is truncated or corrupted ({exc}); re-save the model"
        ) from None
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
        summary = TrainingSummary(
            **{k: meta["summary"][k] for k in TrainingSummary.__dataclass_fields__ if k != "extra"}
        )
        if "updates" in meta["summary"]:  # how many times `update` ran (it keeps counting)
            summary.extra["updates"] = int(meta["summary"]["updates"])
        saved = meta.get("conformal")  # absent in models saved before intervals existed
        calibration = (
            None
            if saved is None
            else Calibration.from_saved(
                {
                    **saved,
                    "first_target": {
                        k: _unjson(v) for k, v in saved.get("first_target", {}).items()
                    },
                },
                tensors["conformal.thresholds"].numpy(),
            )
        )
        span = meta.get("fit_span")  # absent in format 1
        fit_span = (
            None
            if span is None
            else {
                "names": span["names"],
                "first": [_unjson(t) for t in span["first"]],
                "last": [_unjson(t) for t in span["last"]],
            }
        )
        saved_stream = meta.get("stream")  # format 5: a streaming model's state
        stream = (
            None
            if saved_stream is None
            else StreamState.from_tensors(
                saved_stream["names"], {k: v for k, v in tensors.items() if k.startswith("stream.")}
            )
        )
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ModelFileError(
            f"{meta_file} is incomplete ({_why(exc)}); re-save the model"
        ) from None
    return FittedState(
        config=config,
        inputs=inputs,
        model=model.eval(),
        columns=columns,
        scaling=scaling,
        history=history,
        summary=summary,
        calibration=calibration,
        fit_span=fit_span,
        data_summary=meta.get("data_summary"),
        stream=stream,
    )


def _why(exc: Exception) -> str:
    """What is wrong, in words: a missing entry by its name, else the error's first line."""
    if isinstance(exc, KeyError) and exc.args:
        return f"it lacks the entry {exc.args[0]!r}"
    if isinstance(exc, TrellisUserError):
        return str(exc)
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


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
    for kind, width in (
        ("past", len(layout.past_covariates)),
        ("future", len(layout.future_covariates)),
    ):
        parts[kind] = tuple(
            tensors[f"history.{kind}.{g}"].numpy()
            if width
            else np.zeros((lengths[int(np.argmax(group == g))], 0))
            for g in range(h["n_groups"])
        )
    covariates = Covariates(
        past=parts["past"],
        future=parts["future"],
        static=pd.DataFrame(h["static"], index=range(len(h["names"]))),
        group=group,
    )
    history = _history(h, tensors, layout, covariates)
    return meta["columns"], InputScaling.from_dict(meta["scaling"]), history


def _read_v1(meta: dict, tensors: dict) -> tuple[dict, InputScaling, Panel]:
    """A model saved before covariates (formats 1 and 2): one scaler for the targets (of the
    values after `target_transform`), the layout's flat fields."""
    h = meta["history"]
    layout = FrameLayout(
        format=h["layout"],
        time_col=h["time_col"],
        id_col=h["id_col"],
        target_col=h["target_col"],
        index_name=h["index_name"],
        columns=None if h["columns"] is None else tuple(h["columns"]),
    )
    transform = meta["config"].get("target_transform", "none")
    scaling = InputScaling.targets_only(Scaler.from_dict(meta["scaler"]), transform)
    return dict(meta["columns"]), scaling, _history(h, tensors, layout)
