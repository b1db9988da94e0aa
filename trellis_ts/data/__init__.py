"""Data layer: frames in and out (`io`), what the model reads besides the target (`features`),
splits, demo data, and training windows.

Everything but the windows is torch-free, and names are imported on first use: the command line
reads and checks a CSV (and the config its calendar feature names) before it loads torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "read_csv": "io.csv",
    "CALENDAR_FEATURES": "features.calendar",
    "calendar_features_for": "features.calendar",
    "calendar_values": "features.calendar",
    "ColumnRoles": "features.covariates",
    "Covariates": "features.covariates",
    "Panel": "io.frames",
    "panel_from_arrays": "io.frames",
    "to_panel": "io.frames",
    "FrameLayout": "io.layout",
    "future_index": "io.timegrid",
    "to_frame": "io.writing",
    "Scaler": "features.scaling",
    "make_demo_frame": "synthetic",
    "make_demo_series": "synthetic",
    "make_promotion_frame": "synthetic",
    "INPUT_FIELDS": "windows",
    "EpochSubsampler": "windows",
    "SeriesSet": "windows",
    "WindowDataset": "windows",
    "model_inputs": "windows",
    "train_val_ranges": "splits",
    "validation_length": "splits",
}

__all__ = list(_HOMES)


# The benchmark datasets' registry moved to `trellis_ts.benchmark.registry` in 0.2.0.
_MOVED_TO_BENCHMARK = {
    "DATASETS",
    "DatasetSpec",
    "LoadedDataset",
    "dataset_spec",
    "file_sha256",
    "load_dataset",
}


def __getattr__(name: str):
    if name in _MOVED_TO_BENCHMARK:
        import warnings

        warnings.warn(
            f"trellis_ts.data.{name} moved to trellis_ts.benchmark.registry in 0.2.0; "
            "the old name goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module("trellis_ts.benchmark.registry"), name)
    if name not in _HOMES:
        raise AttributeError(f"module 'trellis_ts.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trellis_ts.data.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
