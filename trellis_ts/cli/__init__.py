"""The `trellis-ts` command line (Typer).

- `app`: the one Typer app, its shared options and `prepare` (data read and checked before the
  model code loads);
- `commands`: `forecast`, `fit`, `predict`, `update`, `evaluate`; `research`: `tune`, `benchmark`;
- `outputs`: output files written whole or not at all; `report`: the summary lines.

Each command module registers its commands on `app` when imported; `main` imports both.
"""

from __future__ import annotations

import sys

from trellis_ts.cli import commands, research  # noqa: F401 (each registers its commands on app)
from trellis_ts.cli.app import app

__all__ = ["app", "main"]


def main() -> None:
    """Entry point of the `trellis-ts` script, `python -m trellis_ts` and the root `cli.py`."""
    app(args=research.expand_multi_value(sys.argv[1:]), prog_name="trellis-ts")
