"""Demo data (trellis_ts.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from trellis_ts.data import make_demo_frame, make_demo_series, to_panel
from trellis_ts.errors import ConfigError


def test_shape_columns_and_time():
    df = make_demo_frame(300, 4, freq="15min", start="2022-05-01")
    assert df.shape == (300, 5)
    assert list(df.columns) == ["date", "load_1", "load_2", "load_3", "load_4"]
    assert df["date"].iloc[1] - df["date"].iloc[0] == pd.Timedelta(minutes=15)
    panel = to_panel(df)  # the demo frame is valid input for the data layer
    assert panel.freq == "15min" and panel.n_series == 4


def test_deterministic_by_seed_and_seeds_differ():
    a = make_demo_frame(200, 3, seed=7)
    pd.testing.assert_frame_equal(a, make_demo_frame(200, 3, seed=7))
    assert not np.allclose(a.iloc[:, 1:].to_numpy(), make_demo_frame(200, 3, seed=8).iloc[:, 1:])


def test_values_finite_and_realistic():
    values = make_demo_series(2000, 7)
    assert values.shape == (2000, 7) and np.isfinite(values).all()
    assert values.min() > 1.0 and values.max() < 1000.0
    assert len(np.unique(values.mean(axis=0).round())) == 7  # channels have their own level


def test_channels_are_correlated_and_seasonal():
    values = make_demo_series(24 * 7 * 6, 5, noise=0.0)
    corr = np.corrcoef(values.T)[np.triu_indices(5, 1)]
    assert np.abs(corr).mean() > 0.2  # shared latent factors
    x = values[:, 0] - values[:, 0].mean()
    daily = np.corrcoef(x[24:], x[:-24])[0, 1]
    assert daily > np.corrcoef(x[12:], x[:-12])[0, 1]  # a daily cycle: lag 24 beats lag 12


def test_noise_zero_is_noiseless():
    clean = make_demo_series(500, 3, noise=0.0)
    d1 = make_demo_series(500, 3, noise=0.1) - clean
    d2 = make_demo_series(500, 3, noise=0.2) - clean
    assert d1.std() > 0
    np.testing.assert_allclose(d2, 2 * d1, rtol=1e-9, atol=1e-9)  # only the noise term scales


@pytest.mark.parametrize(
    "kwargs", [{"n_steps": 0}, {"n_channels": -1}, {"noise": -0.1}, {"freq": "fortnight"}]
)
def test_bad_arguments(kwargs):
    with pytest.raises(ConfigError):
        make_demo_frame(**{"n_steps": 10, **kwargs})
