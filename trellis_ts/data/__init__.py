"""Data layer: frames in and out, demo data, and training windows."""

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
from trellis_ts.data.windows import EpochSubsampler, WindowDataset, train_val_ranges

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
