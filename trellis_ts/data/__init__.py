"""Data layer: frames in and out, covariates, scaling, demo data, and training windows.

Everything but the windows is torch-free, and names are imported on first use: the command line
reads and checks a CSV (and the config its calendar feature names) before it loads torch.
"""

from __future__ import annotations

import importlib

_HOMES = {
    "read_csv": "csv",
    "CALENDAR_FEATURES": "calendar",
    "calendar_features_for": "calendar",
    "calendar_values": "calendar",
    "ColumnRoles": "covariates",
    "Covariates": "covariates",
    "Panel": "frames",
    "panel_from_arrays": "frames",
    "to_panel": "frames",
    "FrameLayout": "layout",
    "future_index": "timegrid",
    "to_frame": "writing",
    "DATASETS": "registry",
    "DatasetSpec": "registry",
    "LoadedDataset": "registry",
    "dataset_spec": "registry",
    "file_sha256": "registry",
    "load_dataset": "registry",
    "Scaler": "scaling",
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


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'trellis_ts.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"trellis_ts.data.{_HOMES[name]}"), name)


def __dir__() -> list[str]:
    return sorted(__all__)
