"""Reading CSV files into data frames, detecting the separator when it is not given."""

from __future__ import annotations

import csv
import io
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
    if "\x00" in sample:  # a binary file: refused now, not after reading gigabytes of it
        raise DataError(
            f"{str(p)!r} is not a text file (it holds NUL bytes from offset "
            f"{sample.index(chr(0))}); pass a CSV file (or re-save it as UTF-8 CSV)."
        )
    if not sample.strip():
        raise DataError(f"CSV file {str(p)!r} is empty; write a header line and data rows.")
    if sep is None:
        sep = _sniff_sep(sample, decimal, truncated=len(sample) == 1 << 16)
    if sep == decimal:
        raise DataError(
            f"sep={sep!r} and decimal={decimal!r} are the same character; pass another sep, "
            "e.g. sep=';'."
        )
    _refuse_duplicate_names(sample, sep, p)
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


def _refuse_duplicate_names(sample: str, sep: str, path: Path) -> None:
    """pandas would rename a repeated header name `a` to `a.1`: refuse it, naming the names."""
    try:
        header = next(csv.reader(io.StringIO(sample), delimiter=sep))
    except (csv.Error, StopIteration):
        return  # pandas says what is wrong with the header
    names = [h.strip() for h in header]
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise DataError(
            f"CSV file {str(path)!r} names more than one column {', '.join(map(repr, repeated))}; "
            "give each column its own name in the header line."
        )


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
