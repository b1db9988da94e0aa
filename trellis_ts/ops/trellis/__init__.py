"""The Trellis op in three forms with one signature (math: README.md in this folder).

- `naive_trellis`: the equations as a loop over tokens, the reference.
- `chunk_trellis`: chunkwise-parallel, the training path.
- `recurrent_trellis` / `trellis_step`: token by token with a carried state, for streaming.
"""

from .chunk import chunk_trellis
from .common import BETWEEN, PHIS, TrellisState
from .naive import naive_trellis
from .recurrent import recurrent_trellis, trellis_step

__all__ = [
    "BETWEEN",
    "PHIS",
    "TrellisState",
    "chunk_trellis",
    "naive_trellis",
    "recurrent_trellis",
    "trellis_step",
]
