"""0.1.0's module paths keep working until 0.3.0, with a DeprecationWarning that names the new
home, and give the one live module (not a copy)."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

from trellis_ts._moved import MOVED


@pytest.mark.parametrize("old", sorted(MOVED))
def test_every_old_path_names_an_existing_new_home(old):
    new = MOVED[old]
    assert importlib.util.find_spec(new) is not None, new


def test_an_old_import_warns_and_gives_the_new_module():
    # A fresh interpreter, so the old names are not cached from another test.
    code = """
import warnings
warnings.simplefilter("error", DeprecationWarning)
try:
    from trellis_ts.estimator import TrellisForecaster
except DeprecationWarning as w:
    assert "trellis_ts.forecaster.estimator" in str(w) and "0.3.0" in str(w), w
else:
    raise SystemExit("no warning")
warnings.simplefilter("ignore", DeprecationWarning)
from trellis_ts.estimator import TrellisForecaster
import trellis_ts.forecaster.estimator as new
assert TrellisForecaster is new.TrellisForecaster
import trellis_ts.nn.fused, trellis_ts.modules.fused
assert trellis_ts.nn.fused is trellis_ts.modules.fused
from trellis_ts.data import load_dataset
from trellis_ts.benchmark.registry import load_dataset as moved
assert load_dataset is moved
import pickle, trellis_ts.config
cfg = trellis_ts.config.TrellisConfig(d_model=8)
assert pickle.loads(pickle.dumps(cfg)) == cfg
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
