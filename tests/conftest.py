"""Shared fixtures: tiny settings so every test fits in seconds on 2 CPU cores."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# One thread per process: several tests start worker processes, and torch's spinning threads
# slow down by orders of magnitude when they outnumber the cores (seen on 2-core machines).
os.environ.setdefault("OMP_NUM_THREADS", "1")

REPO = Path(__file__).resolve().parents[1]
ETTH1 = REPO.parent / "shared" / "datasets" / "ETTh1.csv"

TINY = dict(
    context_length=48,
    prediction_length=12,
    patch_len=8,
    patch_stride=4,
    d_model=16,
    n_heads=2,
    n_layers=1,
    n_slots=8,
    chunk_size=4,
    max_epochs=1,
    batch_size=64,
    verbose=False,
)


@pytest.fixture
def tiny() -> dict:
    """Estimator parameters for a model that trains in about a second."""
    return dict(TINY)


@pytest.fixture
def etth1_path() -> Path:
    if not ETTH1.is_file():
        pytest.skip(f"{ETTH1} not present")
    return ETTH1
