"""Data layer: frames in and out, demo data, and training windows.

Everything but the windows is torch-free, and the windows (`WindowDataset`, ...) are imported
on first use: the command line reads and checks a CSV before it loads torch.
"""

from __future__ import annotations

from trellis_ts.data.csv import read_csv
from trellis_ts.data.frames import (
    Panel,
    future_index,
    panel_from_arrays,
    to_frame,
    to_panel,
)
from trellis_ts.data.registry import (
    DATASETS,
    DatasetSpec,
    LoadedDataset,
    dataset_spec,
    file_sha256,
    load_dataset,
)
from trellis_ts.data.synthetic import make_demo_frame, make_demo_series

_WINDOWS = ("EpochSubsampler", "WindowDataset", "train_val_ranges")

__all__ = [
    "EpochSubsampler",
    "Panel",
    "WindowDataset",
    "future_index",
    "make_demo_frame",
    "make_demo_series",
    "panel_from_arrays",
    "read_csv",
    "to_frame",
    "to_panel",
    "train_val_ranges",
    "DATASETS",
    "DatasetSpec",
    "LoadedDataset",
    "dataset_spec",
    "file_sha256",
    "load_dataset",
]


def __getattr__(name: str):
    if name in _WINDOWS:
        from trellis_ts.data import windows

        return getattr(windows, name)
    raise AttributeError(f"module 'trellis_ts.data' has no attribute {name!r}")
