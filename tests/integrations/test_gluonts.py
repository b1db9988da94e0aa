"""The GluonTS estimator: training, forecasts, serialisation, evaluation, data formats, and the
optional-dependency contract. Tiny models, one short epoch each."""

from __future__ import annotations

import importlib
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from trellis_ts.errors import ConfigError, DataError

HAVE_GLUONTS = importlib.util.find_spec("gluonts") is not None
if HAVE_GLUONTS:
    from gluonts.dataset.artificial import ComplexSeasonalTimeSeries
    from gluonts.dataset.common import ListDataset
    from gluonts.dataset.pandas import PandasDataset
    from gluonts.evaluation import Evaluator, make_evaluation_predictions
    from gluonts.model.forecast import QuantileForecast
    from gluonts.model.predictor import Predictor

    from trellis_ts.integrations.gluonts.estimator import (
        DEFAULT_QUANTILES,
        TrellisEstimator,
        TrellisGluonModule,
        fill_unobserved,
    )

needs_gluonts = pytest.mark.skipif(not HAVE_GLUONTS, reason='needs "trellis-ts[gluonts]"')

from tests.conftest import TINY as BASE_TINY  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
H = 6
TINY = {**BASE_TINY, "context_length": 24, "prediction_length": H, "batch_size": 32}


def tiny_estimator(**changes) -> TrellisEstimator:
    return TrellisEstimator(**{**TINY, "num_batches_per_epoch": 3, **changes})


def sine_frame(n: int = 120, n_series: int = 3) -> pd.DataFrame:
    t = np.arange(n)
    columns = {f"s{i}": 10 + (i + 1) * np.sin(2 * np.pi * t / 24 + i) for i in range(n_series)}
    return pd.DataFrame(columns, index=pd.date_range("2024-01-01", periods=n, freq="h"))


@pytest.fixture(scope="module")
def artificial():
    """Daily series of 17-57 steps (some shorter than the 24-step context) with ~5% NaNs."""
    data = ComplexSeasonalTimeSeries(
        num_series=8,
        prediction_length=H,
        freq_str="D",
        length_low=20,
        length_high=60,
        min_val=-100,
        max_val=100,
        proportion_missing_values=0.05,
    )
    freq = data.metadata.freq
    return ListDataset(data.train, freq=freq), ListDataset(data.test, freq=freq)


@pytest.fixture(scope="module")
def predictor(artificial):
    train, _ = artificial
    return tiny_estimator().train(train)


@needs_gluonts
def test_estimator_defaults_to_nine_quantiles_and_validates_on_construction():
    estimator = TrellisEstimator(prediction_length=12, trainer_kwargs={"max_epochs": 2})
    assert estimator.config.loss == "quantile" and estimator.config.quantiles == DEFAULT_QUANTILES
    assert estimator.forecast_keys == [f"0.{i}" for i in range(1, 10)]
    assert estimator.trainer_kwargs["max_epochs"] == 2  # the user's word beats the config's
    assert TrellisEstimator(prediction_length=12, loss="mse").forecast_keys == ["mean", "0.5"]
    with pytest.raises(ConfigError, match="d_modle"):
        TrellisEstimator(prediction_length=12, d_modle=8)
    with pytest.raises(ConfigError, match="n_heads"):
        TrellisEstimator(prediction_length=12, d_model=10, n_heads=4)
    with pytest.raises(ConfigError, match="encoder"):
        TrellisEstimator(prediction_length=12, model="dlinear")


@needs_gluonts
def test_forecasts_are_sorted_quantiles_after_each_series(artificial, predictor):
    train, _ = artificial
    forecasts = list(predictor.predict(train))
    assert len(forecasts) == len(train)
    for entry, forecast in zip(train, forecasts, strict=True):
        assert isinstance(forecast, QuantileForecast)
        assert forecast.forecast_keys == [f"0.{i}" for i in range(1, 10)]
        assert forecast.forecast_array.shape == (9, H)
        # Short series (padded) and series with NaNs still give finite, non-crossing forecasts.
        assert np.isfinite(forecast.forecast_array).all()
        assert (np.diff(forecast.forecast_array, axis=0) >= 0).all()
        assert forecast.start_date == entry["start"] + len(entry["target"])


@needs_gluonts
def test_serialize_deserialize_round_trip(artificial, predictor, tmp_path):
    train, _ = artificial
    predictor.serialize(tmp_path)
    loaded = Predictor.deserialize(tmp_path)
    assert isinstance(loaded.prediction_net, TrellisGluonModule)
    assert loaded.prediction_net.config == predictor.prediction_net.config
    for before, after in zip(predictor.predict(train), loaded.predict(train), strict=True):
        assert after.forecast_keys == before.forecast_keys
        np.testing.assert_array_equal(after.forecast_array, before.forecast_array)


@needs_gluonts
def test_evaluator_gives_finite_metrics(artificial, predictor):
    _, test = artificial
    forecast_it, ts_it = make_evaluation_predictions(test, predictor)
    metrics, per_series = Evaluator(num_workers=0)(ts_it, forecast_it)
    for name in ("mean_wQuantileLoss", "MASE", "MSE"):
        assert np.isfinite(metrics[name]), name
    assert len(per_series) == len(test)


@needs_gluonts
@pytest.mark.parametrize("layout", ["wide", "long"])
def test_pandas_datasets(layout):
    frame = sine_frame()
    if layout == "wide":
        dataset = PandasDataset({name: frame[name] for name in frame.columns})
    else:
        long = (
            frame.rename_axis("ds").reset_index().melt("ds", var_name="unique_id", value_name="y")
        )
        dataset = PandasDataset.from_long_dataframe(
            long, target="y", item_id="unique_id", timestamp="ds", freq="h"
        )
    # Validation data exercises the validation loop and early stopping.
    predictor = tiny_estimator().train(dataset, validation_data=dataset)
    forecasts = list(predictor.predict(dataset))
    assert [f.item_id for f in forecasts] == list(frame.columns)
    first_future = pd.Period(frame.index[-1], "h") + 1
    assert all(f.start_date == first_future for f in forecasts)
    assert all(np.isfinite(f.quantile(0.5)).all() for f in forecasts)


@needs_gluonts
def test_point_model_gives_a_degenerate_quantile_forecast(artificial):
    train, test = artificial
    predictor = tiny_estimator(loss="mse").train(train)
    forecast_it, ts_it = make_evaluation_predictions(test, predictor)
    forecasts, series = list(forecast_it), list(ts_it)
    assert forecasts[0].forecast_keys == ["mean", "0.5"]
    np.testing.assert_array_equal(forecasts[0].mean, forecasts[0].quantile(0.5))
    metrics, _ = Evaluator(quantiles=[0.5], num_workers=0)(series, forecasts)
    assert np.isfinite(metrics["MSE"]) and np.isfinite(metrics["mean_wQuantileLoss"])


@needs_gluonts
def test_multivariate_entries_are_independent_channels():
    values = sine_frame(n_series=2).to_numpy().T  # [C, T]
    dataset = ListDataset(
        [{"start": "2024-01-01", "target": values}], freq="h", one_dim_target=False
    )
    forecast = next(iter(tiny_estimator().train(dataset).predict(dataset)))
    assert forecast.forecast_array.shape == (9, H, 2)


@needs_gluonts
def test_too_short_training_series_raise_instead_of_waiting_forever():
    dataset = ListDataset([{"start": "2024-01-01", "target": np.ones(H + 3)}], freq="h")
    with pytest.raises(DataError, match="time steps"):
        tiny_estimator().train(dataset)


@needs_gluonts
def test_fill_unobserved_carries_the_last_observed_value():
    x = torch.tensor([0.0, 0.0, 3.0, 0.0, 5.0, 0.0]).view(1, 6, 1)
    observed = torch.tensor([0, 0, 1, 0, 1, 0]).view(1, 6, 1)
    assert fill_unobserved(x, observed).flatten().tolist() == [3, 3, 3, 3, 5, 5]
    assert fill_unobserved(x, torch.ones_like(observed)).equal(x)


@needs_gluonts
def test_loss_ignores_unobserved_future_values():
    module = TrellisGluonModule(config=tiny_estimator().config.to_dict()).eval()
    gen = torch.Generator().manual_seed(0)
    batch = {
        "past_target": 10 + torch.randn(4, 24, generator=gen),
        "past_observed_values": torch.ones(4, 24),
        "future_target": 10 + torch.randn(4, H, generator=gen),
        "future_observed_values": (torch.rand(4, H, generator=gen) > 0.3).float(),
    }
    garbage = dict(
        batch,
        future_target=torch.where(batch["future_observed_values"] > 0, batch["future_target"], 1e6),
    )
    with torch.no_grad():
        assert torch.isfinite(module.loss(batch))
        torch.testing.assert_close(module.loss(garbage), module.loss(batch))


def test_importing_without_gluonts_names_the_extra(monkeypatch):
    for name in [m for m in sys.modules if m == "gluonts" or m.startswith("gluonts.")]:
        monkeypatch.setitem(sys.modules, name, None)  # `import gluonts...` now raises
    monkeypatch.setitem(sys.modules, "gluonts", None)
    monkeypatch.delitem(sys.modules, "trellis_ts.integrations.gluonts.estimator", raising=False)
    with pytest.raises(ImportError, match=re.escape('pip install "trellis-ts[gluonts]"')):
        importlib.import_module("trellis_ts.integrations.gluonts.estimator")


def test_nothing_else_imports_gluonts():
    # Every module but the GluonTS bridge's, found by file (walking packages would import the
    # bridge's package to look inside it).
    code = (
        "import importlib, pathlib, sys\n"
        "root = pathlib.Path('trellis_ts')\n"
        "for f in sorted(root.rglob('*.py')):\n"
        "    name = '.'.join(f.with_suffix('').parts).removesuffix('.__init__')\n"
        "    if not name.startswith('trellis_ts.integrations.gluonts') and '__main__' not in name:\n"
        "        importlib.import_module(name)\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] == 'gluonts')\n"
        "assert not leaked, leaked[:3]\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO, timeout=120)


def covariate_dataset(n: int = 96, horizon: int = 0, n_series: int = 4):
    """Hourly series lifted by a known promotion, with a past-only load and static features;
    ``horizon`` more steps of the known covariate for prediction (GluonTS's convention)."""
    rng = np.random.default_rng(0)
    entries = []
    for i in range(n_series):
        promo = (rng.random(n + horizon) < 0.2).astype(np.float32)
        t = np.arange(n)
        target = 10 + np.sin(2 * np.pi * t / 24) + 3 * promo[:n] + 0.1 * rng.standard_normal(n)
        entries.append(
            {
                "start": pd.Period("2024-01-01", freq="h"),
                "target": target,
                "item_id": f"s{i}",
                "feat_dynamic_real": promo[None, :],
                "past_feat_dynamic_real": (5 + rng.standard_normal(n))[None, :],
                "feat_static_real": [float(i)],
                "feat_static_cat": [i % 2],
            }
        )
    return ListDataset(entries, freq="h")


@needs_gluonts
def test_dynamic_and_static_features_round_trip(tmp_path):
    train, test = covariate_dataset(), covariate_dataset(horizon=H)
    estimator = tiny_estimator(calendar_features="auto")
    predictor = estimator.train(train)
    assert estimator.inputs.past_feat_dynamic_real == 1 and estimator.inputs.feat_static_cat == (2,)
    assert estimator.inputs.feat_dynamic_real == 1 + 4  # the promotion and 4 calendar features
    forecasts = list(predictor.predict(test))
    assert len(forecasts) == 4 and all(np.isfinite(f.quantile(0.5)).all() for f in forecasts)
    predictor.serialize(tmp_path)
    again = Predictor.deserialize(tmp_path)
    for a, b in zip(forecasts, again.predict(test), strict=True):
        np.testing.assert_allclose(a.forecast_array, b.forecast_array, rtol=1e-5, atol=1e-5)
    # the forecast reads the known covariate over the horizon
    entries = list(test)
    flipped = ListDataset(
        [
            e | {"feat_dynamic_real": 1.0 - e["feat_dynamic_real"], "start": e["start"]}
            for e in entries
        ],
        freq="h",
    )
    other = list(predictor.predict(flipped))
    assert not np.allclose(other[0].quantile(0.5), forecasts[0].quantile(0.5))


@needs_gluonts
def test_declared_features_must_match_the_data():
    with pytest.raises(DataError, match="declares 2 feat_dynamic_real"):
        tiny_estimator(num_feat_dynamic_real=2).train(covariate_dataset())
