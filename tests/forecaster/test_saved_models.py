"""Models saved by earlier versions load and forecast as they did when saved.

`tests/fixtures/saved_models/<version>/` holds a tiny model written by that version's
`TrellisForecaster.save` (`model/`), the data it was fitted on (`data.csv`) and the forecast that
version made (`expected.csv`): v0.1.0 (format 1, separate projections) and the last format-3
model before the package's layout moved to sub-packages (0.2.0).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from trellis_ts import TrellisForecaster

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "saved_models"


# The layer's forward pass was fused since 0.1.0 (one projection instead of five): the same weights
# give the same forecast up to float32 rounding.
TOLERANCE = {"v0.1.0": 1e-3, "format3": 1e-5}


@pytest.mark.parametrize("version", ["v0.1.0", "format3"])
def test_an_earlier_saved_model_loads_and_forecasts_as_it_did(version):
    tol = TOLERANCE[version]
    folder = FIXTURES / version
    model = TrellisForecaster.load(folder / "model")
    then = pd.read_csv(folder / "expected.csv")
    now = model.predict()
    assert list(now.columns) == list(then.columns)
    assert (now["date"].astype(str).str[:19] == then["date"].astype(str).str[:19]).all()
    np.testing.assert_allclose(
        now[["a", "b"]].to_numpy(), then[["a", "b"]].to_numpy(), rtol=tol, atol=tol
    )
    again = model.predict(pd.read_csv(folder / "data.csv", parse_dates=["date"]))
    np.testing.assert_allclose(
        again[["a", "b"]].to_numpy(), then[["a", "b"]].to_numpy(), rtol=tol, atol=tol
    )
