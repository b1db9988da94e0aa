"""Search spaces of the tuning: the default one sized to the data, and spaces from files.

Keys are `TrellisForecaster` parameters. Settings the user fixed (`fixed`) are never searched:
the default space leaves them out and a file's entries for them are dropped with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml

from trellis_ts.data.splits import validation_length
from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import TrellisConfig, config_fields

__all__ = [
    "SpaceFn",
    "as_space",
    "load_space",
    "longest_context",
    "space_from_mapping",
    "suggest_params",
]

SpaceFn = Callable[[optuna.Trial], dict[str, Any]]


def suggest_params(
    trial: optuna.Trial,
    sizes: TrellisConfig | None = None,
    fixed: Collection[str] = (),
    longest_context: int | None = None,
) -> dict[str, Any]:
    """The default search space over the estimator's main parameters.

    `sizes` is the config sized to the data (`tune` passes it): contexts from half to twice its
    context, up to `longest_context` (what the data allows), patches around its patch.
    Parameters in `fixed` (set by the user) are left out of the space.
    """
    L, P = (336, 16) if sizes is None else (sizes.context_length, sizes.patch_len)
    longest = longest_context or 2 * L
    contexts = sorted({c for c in (L // 2, L, 3 * L // 2, 2 * L) if 1 <= c <= longest} | {L})
    shortest = contexts[0] if "context_length" not in fixed else sizes.context_length
    patches = sorted({p for p in (P // 2, P, 3 * P // 2) if 1 <= p <= max(1, shortest // 2)} | {P})
    space: dict[str, Callable[[], Any]] = {
        "context_length": lambda: trial.suggest_categorical("context_length", contexts),
        "patch_len": lambda: trial.suggest_categorical("patch_len", patches),
        "d_model": lambda: trial.suggest_categorical("d_model", [32, 64, 128]),
        "n_layers": lambda: trial.suggest_int("n_layers", 1, 3),
        "n_heads": lambda: trial.suggest_categorical("n_heads", [2, 4]),
        "n_slots": lambda: trial.suggest_categorical("n_slots", [16, 32, 64]),
        "dropout": lambda: trial.suggest_float("dropout", 0.0, 0.3),
        "learning_rate": lambda: trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True),
        "batch_size": lambda: trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
    }
    params = {name: draw() for name, draw in space.items() if name not in fixed}
    if "patch_stride" not in fixed:
        patch = params.get("patch_len") or (sizes.patch_len if sizes is not None else P)
        params["patch_stride"] = max(1, patch // trial.suggest_categorical("patch_overlap", [1, 2]))
    return params


def space_from_mapping(space: Mapping[str, Any], fixed: Collection[str] = ()) -> SpaceFn:
    """A search space from a mapping `parameter -> spec` (what a space file holds).

    A spec is a plain value (fixed), a list (categorical choices), or a mapping with `type`
    one of `int`, `float` (`low`, `high`, optional `log`, `step`) or `categorical` (`choices`).
    Entries for parameters in `fixed` (set by the user) are left out, with a warning.
    """
    overlap = sorted(set(space) & set(fixed))
    if overlap:
        warnings.warn(
            f"the search space's entries for {', '.join(overlap)} are left out: those settings "
            "are fixed (given as options, or in base_params).",
            UserWarning,
            stacklevel=3,
        )
        space = {k: v for k, v in space.items() if k not in overlap}
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
                    params[name] = trial.suggest_int(
                        name,
                        int(spec["low"]),
                        int(spec["high"]),
                        step=int(spec.get("step", 1)),
                        log=bool(spec.get("log", False)),
                    )
                else:
                    params[name] = trial.suggest_float(
                        name,
                        float(spec["low"]),
                        float(spec["high"]),
                        step=spec.get("step"),
                        log=bool(spec.get("log", False)),
                    )
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


def load_space(path: str | Path, fixed: Collection[str] = ()) -> SpaceFn:
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
    return space_from_mapping(data, fixed)


def as_space(space, sizes: TrellisConfig, fixed: set[str], longest: int) -> SpaceFn:
    if space is None:
        return lambda trial: suggest_params(trial, sizes, fixed, longest)
    if callable(space):
        return space
    if isinstance(space, Mapping):
        return space_from_mapping(space, fixed)
    return load_space(space, fixed)


def longest_context(sizes: TrellisConfig, lengths) -> int:
    """The longest context that leaves the shortest series a validation part and a quarter of
    its training part as window starts (the default space's upper end)."""
    T, H = int(min(lengths)), sizes.prediction_length
    n_val = int(validation_length(T, H, sizes.val_fraction))
    return max(sizes.context_length, (T - n_val - H) * 3 // 4)
