"""The benchmark datasets: canonical files, their checksums and split rules, and loading them.

Every dataset of the long-term-forecasting literature is one wide CSV: a ``date`` column and
numeric channels, all forecast jointly. `load_dataset` reads one by registry name from a
folder (``datasets/`` by default) or any CSV by path, verifies the file's sha256 where the
registry knows it, and returns the values ``[T, C]`` with what the benchmark protocol needs
(split kind, frequency). Nothing is downloaded: datasets/README.md says where to get each file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from trellis_ts.data.io.csv import read_csv
from trellis_ts.errors import DataError

__all__ = [
    "DATASETS",
    "SPLIT_KINDS",
    "DatasetSpec",
    "LoadedDataset",
    "dataset_spec",
    "file_sha256",
    "load_dataset",
]

# How rows are split into train / validation / test (trellis_ts.benchmark.runner.split_borders):
# ETT files use fixed 12/4/4-month borders (hourly or 15-minute rows), the others 7:1:2.
SPLIT_KINDS = ("ett_hourly", "ett_minute", "ratio_7_1_2")


@dataclass(frozen=True)
class DatasetSpec:
    """One registry entry. ``rows``/``columns`` are the expected shape (columns include the date)
    of the common copy; ``sha256`` is None where no verified checksum is known."""

    name: str
    file_name: str
    split: str
    freq: str
    rows: int | None
    columns: int | None
    sha256: str | None
    source: str


_ETT = (
    "ETDataset repository (Zhou et al., Informer, AAAI 2021), folder ETT-small; "
    "CC BY-ND 4.0: redistribute unmodified, with attribution"
)
_LTSF = "the dataset collection shared by the Autoformer / Time-Series-Library authors"

DATASETS: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            "ETTh1",
            "ETTh1.csv",
            "ett_hourly",
            "h",
            17420,
            8,
            "f18de3ad269cef59bb07b5438d79bb3042d3be49bdeecf01c1cd6d29695ee066",
            _ETT,
        ),
        DatasetSpec("ETTh2", "ETTh2.csv", "ett_hourly", "h", 17420, 8, None, _ETT),
        DatasetSpec("ETTm1", "ETTm1.csv", "ett_minute", "15min", 69680, 8, None, _ETT),
        DatasetSpec("ETTm2", "ETTm2.csv", "ett_minute", "15min", 69680, 8, None, _ETT),
        DatasetSpec(
            "Weather",
            "weather.csv",
            "ratio_7_1_2",
            "10min",
            52696,
            22,
            "34ee981d07313e51da2a50bb600072c8ae4a69cb4b0651f4cb93a069d7a2ba63",
            f"{_LTSF} (weather station of the Max Planck Institute for Biogeochemistry)",
        ),
        DatasetSpec(
            "Electricity",
            "electricity.csv",
            "ratio_7_1_2",
            "h",
            26304,
            322,
            None,
            f"{_LTSF} (UCI ElectricityLoadDiagrams20112014, 321 clients, hourly)",
        ),
        DatasetSpec(
            "Traffic",
            "traffic.csv",
            "ratio_7_1_2",
            "h",
            17544,
            863,
            None,
            f"{_LTSF} (Caltrans PeMS road occupancy, 862 sensors, hourly)",
        ),
        DatasetSpec(
            "Exchange",
            "exchange_rate.csv",
            "ratio_7_1_2",
            "D",
            7588,
            9,
            None,
            f"{_LTSF} (daily exchange rates of 8 countries, from LSTNet)",
        ),
        DatasetSpec(
            "ILI",
            "national_illness.csv",
            "ratio_7_1_2",
            "W",
            966,
            8,
            None,
            f"{_LTSF} (US CDC weekly influenza-like-illness reports)",
        ),
    )
}

_ALIASES = {"ecl": "Electricity", "exchange_rate": "Exchange", "national_illness": "ILI"}


@dataclass(frozen=True)
class LoadedDataset:
    """A benchmark CSV in memory: ``values`` float64 ``[T, C]``, one column per channel."""

    name: str
    path: Path
    values: np.ndarray
    channels: tuple[str, ...]
    time: pd.DatetimeIndex | None
    freq: str | None
    split: str
    sha256: str
    spec: DatasetSpec | None  # None for a CSV given by path that is not a registry file

    @property
    def shape(self) -> tuple[int, int]:
        """Rows × columns as in the file (the date column counted when there is one)."""
        return self.values.shape[0], self.values.shape[1] + (self.time is not None)

    @property
    def expected_shape_ok(self) -> bool | None:
        """Whether the shape matches the common copy's (None when the registry knows none)."""
        if self.spec is None or self.spec.rows is None:
            return None
        return self.shape == (self.spec.rows, self.spec.columns)


def dataset_spec(name: str) -> DatasetSpec:
    """The registry entry of ``name`` (case-insensitive); DataError listing the known names."""
    key = str(name).lower()
    for spec in DATASETS.values():
        if spec.name.lower() == key:
            return spec
    if key in _ALIASES:
        return DATASETS[_ALIASES[key]]
    raise DataError(
        f"unknown dataset {name!r}; use one of {', '.join(DATASETS)} or the path of a CSV file"
    )


def file_sha256(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks (constant memory for any file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def load_dataset(dataset: str | Path, data_dir: str | Path | None = None) -> LoadedDataset:
    """Read a registry dataset from ``data_dir`` (default ``./datasets``), or a CSV by path.

    A path whose file name is a registry file (e.g. ``../shared/datasets/ETTh1.csv``) is that
    registry dataset, protocol and checksum included; any other CSV path gets the 7:1:2 split.
    Raises DataError for an unknown name, a missing file (naming the file to obtain and the
    folder to put it in), a checksum mismatch, or columns that are not numeric.
    """
    as_path = Path(dataset)
    by_file = {spec.file_name: spec for spec in DATASETS.values()}
    if as_path.suffix.lower() == ".csv" or len(as_path.parts) > 1:
        if not as_path.is_file() and data_dir is not None and len(as_path.parts) == 1:
            as_path = Path(data_dir) / as_path  # a bare file name: look in data_dir
        if not as_path.is_file():
            raise DataError(f"CSV file {str(as_path)!r} does not exist; check the path")
        spec = by_file.get(as_path.name)
        path = as_path
    else:
        spec = dataset_spec(str(dataset))
        folder = Path("datasets") if data_dir is None else Path(data_dir)
        path = folder / spec.file_name
        if not path.is_file():
            raise DataError(
                f"{spec.name} needs the file {str(path)!r}, which does not exist; obtain "
                f"{spec.file_name} ({spec.source}) and put it in {str(folder)!r}, or pass the "
                "folder that holds it as data_dir (--data-dir); see datasets/README.md"
            )
    sha = file_sha256(path)
    if spec is not None and spec.sha256 is not None and sha != spec.sha256:
        raise DataError(
            f"{str(path)!r} has sha256 {sha}, not {spec.sha256} as the unmodified {spec.name} "
            f"file has; the copy is corrupted or edited: obtain {spec.file_name} again "
            f"({spec.source}) and replace it"
        )
    frame = read_csv(path)
    time, channels = _split_columns(frame, path)
    values = frame[list(channels)].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        row, col = np.argwhere(~np.isfinite(values))[0]
        raise DataError(
            f"{str(path)!r} has a missing or infinite value in column {channels[col]!r} at data "
            f"row {row}; the benchmark needs complete data: fill or remove it"
        )
    if spec is not None:
        name, split, freq = spec.name, spec.split, spec.freq
    else:
        name, split, freq = path.stem, "ratio_7_1_2", _infer_freq(time)
    return LoadedDataset(
        name=name,
        path=path,
        values=values,
        channels=channels,
        time=time,
        freq=freq,
        split=split,
        sha256=sha,
        spec=spec,
    )


def _split_columns(frame: pd.DataFrame, path: Path) -> tuple[pd.DatetimeIndex | None, tuple]:
    """The time column (``date``, or a non-numeric first column) and the channel names."""
    columns = list(frame.columns)
    time_col = next((c for c in columns if str(c).strip().lower() == "date"), None)
    if time_col is None and not pd.api.types.is_numeric_dtype(frame[columns[0]]):
        time_col = columns[0]
    channels = tuple(c for c in columns if c != time_col)
    bad = [c for c in channels if not pd.api.types.is_numeric_dtype(frame[c])]
    if bad:
        raise DataError(
            f"{str(path)!r}: column(s) {bad} are not numeric; the benchmark forecasts every "
            "column except the date, so remove or convert them"
        )
    if not channels:
        raise DataError(f"{str(path)!r} has no data columns; the benchmark needs one at least")
    if time_col is None:
        return None, channels
    time = pd.to_datetime(frame[time_col], errors="coerce")
    return (None if time.isna().any() else pd.DatetimeIndex(time)), channels


def _infer_freq(time: pd.DatetimeIndex | None) -> str | None:
    if time is None or len(time) < 3:
        return None
    try:
        return pd.infer_freq(time[:1000])
    except (TypeError, ValueError):
        return None
