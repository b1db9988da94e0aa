"""How many threads torch uses inside one operation, chosen per fit and forecast.

torch's default (one per core) spin-waits for every core at every operation: on a machine whose
cores are busy with other work, a training step took 6-17x as long with two threads as with one
(`benchmarks/threads.py`, results in `benchmarks/results/threads.jsonl`). So unless the user
set it (`num_threads`, or `OMP_NUM_THREADS` in the environment), a fit and a forecast use only
the cores that are idle now (by the load average), and one thread for a small model, whose
operations are too small to share.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator

import torch

__all__ = ["SMALL_MODEL", "choose_threads", "torch_threads"]

SMALL_MODEL = 100_000  # parameters below which one thread is used


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def choose_threads(requested: int | None, parameters: int) -> int | None:
    """Threads for a model of `parameters`: `requested` if given; None (leave torch as it is)
    when `OMP_NUM_THREADS` is set; else the idle cores, one for a small model."""
    if requested is not None:
        return requested
    if os.environ.get("OMP_NUM_THREADS"):
        return None
    if parameters < SMALL_MODEL:
        return 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # no load average on this system
        return 1
    cores = available_cores()
    return max(1, min(cores, math.floor(cores - load + 0.5)))


@contextlib.contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Run the block with `threads` intra-op threads (None: as they are), restored after."""
    if threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
