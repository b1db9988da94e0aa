"""Reading CSV files into data frames, detecting the separator when it is not given."""

from __future__ import annotations

import csv
from pathlib import Path

import pandas as pd

from trellis_ts.errors import DataError

__all__ = ["read_csv"]


def read_csv(path: str | Path, *, sep: str | None = None, decimal: str = ".") -> pd.DataFrame:
    """Read a CSV file; ``sep=None`` detects ',', ';', tab or '|' from the first lines.

    ``decimal=","`` reads numbers written with a decimal comma (then ',' is never the separator).
    """
    p = Path(path)
    if not p.exists():
        raise DataError(f"CSV file {str(p)!r} does not exist; check the path.")
    if p.is_dir():
        raise DataError(f"{str(p)!r} is a directory, not a CSV file; pass the path of a file.")
    try:
        with p.open("r", encoding="utf-8-sig", newline="") as fh:
            sample = fh.read(1 << 16)
    except UnicodeDecodeError:
        raise DataError(
            f"CSV file {str(p)!r} is not UTF-8 text; re-save it as UTF-8 CSV."
        ) from None
    except OSError as exc:
        raise DataError(
            f"cannot read CSV file {str(p)!r} ({exc}); check its permissions."
        ) from None
    if not sample.strip():
        raise DataError(f"CSV file {str(p)!r} is empty; write a header line and data rows.")
    if sep is None:
        sep = _sniff_sep(sample, decimal, truncated=len(sample) == 1 << 16)
    if sep == decimal:
        raise DataError(
            f"sep={sep!r} and decimal={decimal!r} are the same character; pass another sep, "
            "e.g. sep=';'."
        )
    try:
        df = pd.read_csv(p, sep=sep, decimal=decimal, encoding="utf-8-sig")
    except pd.errors.EmptyDataError:
        raise DataError(f"CSV file {str(p)!r} has no columns; write a header line.") from None
    except (pd.errors.ParserError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not parse CSV file {str(p)!r} ({first}); check sep= and decimal=."
        ) from None
    if len(df) == 0:
        raise DataError(f"CSV file {str(p)!r} has a header but no data rows; add data rows.")
    return df


def _sniff_sep(sample: str, decimal: str, *, truncated: bool) -> str:
    candidates = "".join(c for c in ",;\t|" if c != decimal)
    lines = sample.splitlines()
    if truncated and len(lines) > 1:
        lines = lines[:-1]  # the last line may be cut mid-way
    try:
        return csv.Sniffer().sniff("\n".join(lines[:50]), delimiters=candidates).delimiter
    except csv.Error:
        # The sniffer gives up on one-line or ragged samples: the header is the best evidence left.
        counts = {c: lines[0].count(c) for c in candidates}
        best = max(counts, key=lambda c: counts[c])
        return best if counts[best] > 0 else candidates[0]
