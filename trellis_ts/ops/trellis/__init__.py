"""The Trellis op in three forms with one signature (math: README.md in this folder).

- `naive_trellis`: the equations as a loop over tokens, the reference.
- `chunk_trellis`: chunkwise-parallel, the training path.
- `recurrent_trellis` / `trellis_step`: token by token with a carried state, for streaming.

The choices (`PHIS`, `BETWEEN`) and defaults live in the torch-free `choices`; the forms are
imported on first use, so reading the choices never loads torch.
"""

from __future__ import annotations

import importlib

from .choices import BETWEEN, DEFAULT_BETWEEN, DEFAULT_CHUNK_SIZE, DEFAULT_PHI, PHIS

_HOMES = {
    "TrellisState": "common",
    "chunk_trellis": "chunk",
    "naive_trellis": "naive",
    "recurrent_trellis": "recurrent",
    "trellis_step": "recurrent",
}

__all__ = [
    "BETWEEN",
    "DEFAULT_BETWEEN",
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_PHI",
    "PHIS",
    "TrellisState",
    "chunk_trellis",
    "naive_trellis",
    "recurrent_trellis",
    "trellis_step",
]


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'trellis_ts.ops.trellis' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
