"""The scripts in benchmarks/ import their shared helpers as `from common import ...`: run as
`python benchmarks/<name>.py`, Python puts benchmarks/ first on `sys.path`. Tests that load a
script put it there the same way, for the test's duration."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture
def load_script(monkeypatch):
    """`load_script("study")`: benchmarks/study.py as a fresh module, with benchmarks/ on
    `sys.path` and a fresh `common` (both restored after the test)."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.delitem(sys.modules, "common", raising=False)

    def load(name: str):
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    return load
