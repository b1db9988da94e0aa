"""Hyperparameter search with Optuna: the default search space (`space`) and the pruned,
resumable study that many workers share (`search`).

Names are imported on first use, so `import trellis_ts.tuning` does not load Optuna.
"""

from __future__ import annotations

import importlib

__all__ = ["load_space", "make_storage", "save_plots", "suggest_params", "summary_table", "tune"]


def __getattr__(name: str):
    # Every name of `search` (the flat `trellis_ts.tuning` module before 0.2.0) stays reachable.
    if name in ("load_space", "suggest_params", "space_from_mapping"):
        return getattr(importlib.import_module("trellis_ts.tuning.space"), name)
    search = importlib.import_module("trellis_ts.tuning.search")
    try:
        return getattr(search, name)
    except AttributeError:
        raise AttributeError(f"module 'trellis_ts.tuning' has no attribute {name!r}") from None
