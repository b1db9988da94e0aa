"""What a command reads: the data options as a `DataSource`, and `prepare`, which reads and
checks the data (options, file, columns, dates, sizes) before any model code loads, so a bad
input is answered in well under a second."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import TrellisConfig

# The --demo series: 7 hourly channels, 50 days. Long enough for the sizes hourly data gets
# (context 336, horizon 96) with a validation split that trains well (at 1,000 steps early
# stopping ended after one good epoch and the forecast was ragged); README gives its time.
DEMO_STEPS = 1200


def _comma_list(values: list[str] | str | None) -> list[str]:
    items = [values] if isinstance(values, str) else values or []
    return [t.strip() for item in items for t in item.split(",") if t.strip()]


@dataclasses.dataclass(frozen=True)
class DataSource:
    """The input options of a command: where the data is and how to read its columns."""

    csv: Path | None
    demo: bool
    time_col: str | None
    target: list[str] | None
    id_col: str | None
    sep: str | None
    decimal: str
    dayfirst: bool | None = None
    date_format: str | None = None
    past_covariates: str | None = None
    future_covariates: str | None = None
    static_covariates: str | None = None

    def read(self, *, required: bool = True):
        """The frame of the CSV file or the demo series (None when neither and not required)."""
        from trellis_ts.data import make_demo_frame, read_csv

        if self.demo and self.csv is not None:
            raise ConfigError(f"got both a CSV file ({self.csv}) and --demo; pass only one")
        if self.demo:
            return make_demo_frame(n_steps=DEMO_STEPS)
        if self.csv is None and not required:
            return None
        if self.csv is None:
            raise ConfigError("no data given; pass a CSV file, or --demo for the built-in series")
        return read_csv(self.csv, sep=self.sep, decimal=self.decimal)

    def read_future(self, path: Path | None, layout):
        """The --future CSV (None when not given), read like the data; a frame whose time was
        its index gets that index back from the first column."""
        from trellis_ts.data import read_csv

        if path is None:
            return None
        frame = read_csv(path, sep=self.sep, decimal=self.decimal)
        if layout.time_in_index:
            frame = frame.set_index(frame.columns[0])
        return frame

    @property
    def columns(self) -> dict:
        """The column options that were given (a saved model's own fill in the rest)."""
        ids = _comma_list(self.id_col)
        given = {
            "time_col": self.time_col,
            "id_col": (ids[0] if len(ids) == 1 else ids) or None,
            "target": _comma_list(self.target) or None,
            "dayfirst": self.dayfirst,
            "date_format": self.date_format,
        }
        for role in ("past_covariates", "future_covariates", "static_covariates"):
            given[role] = _comma_list(getattr(self, role)) or None
        return {k: v for k, v in given.items() if v is not None}

    @property
    def out_sep(self) -> str:
        """Outputs use the input's separator; ';' when numbers have a decimal comma."""
        return self.sep or (";" if self.decimal == "," else ",")


def prepare(data: DataSource, settings: dict, columns: dict | None = None):
    """The data as a checked `Panel`, before any model code loads: bad options, files, columns,
    dates and sizes fail here in well under a second. `columns`: the reading options (default
    the command line's)."""
    from trellis_ts.data import to_panel
    from trellis_ts.forecaster.sizing import resolve_sizes

    config = TrellisConfig(**settings)
    df = data.read()
    panel = to_panel(
        df,
        **(data.columns if columns is None else columns),
        freq=config.freq,
        missing=config.missing,
        fill_gaps=config.fill_gaps,
    )
    resolve_sizes(config, panel.freq, panel.lengths(), panel.names)
    if config.target_transform in ("log1p", "nonnegative"):  # negatives: said before torch loads
        from trellis_ts.data.features.transforms import forward

        for name, values in zip(panel.names, panel.values, strict=True):
            forward(config.target_transform, values, f"series {name!r}")
    return panel
