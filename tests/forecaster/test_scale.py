"""Scaling contracts, kept fast: long contexts, bounded epochs, many series, no per-window copies.

The timings and memory at full size are benchmarks (benchmarks/scale.py), not tests.
"""

from __future__ import annotations

import lightning.pytorch as pl
import numpy as np
import pandas as pd

from tests.conftest import TINY
from trellis_ts import TrellisConfig, TrellisForecaster
from trellis_ts.data import WindowDataset, make_demo_frame, make_demo_series
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.forecaster.training import forecast_contexts
from trellis_ts.models import build_model


class CountBatches(pl.Callback):
    """Training batches and windows seen in each epoch."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.windows: list[int] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.batches.append(0)
        self.windows.append(0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.batches[-1] += 1
        self.windows[-1] += len(batch["past_target"])


def many_series_frame(n_series: int, n_steps: int) -> pd.DataFrame:
    """Long frame `[unique_id, ds, y]`, ids in a scrambled order; series `idJ` has mean 100 (J + 1)."""
    values = make_demo_series(n_steps, n_series, seed=1)  # [T, N]
    values = 5 * (values - values.mean(0)) / values.std(0) + 100.0 * np.arange(1, n_series + 1)
    order = np.random.default_rng(0).permutation(n_series)
    return pd.DataFrame(
        {
            "unique_id": np.repeat([f"id{i}" for i in order], n_steps),
            "ds": np.tile(pd.date_range("2024-01-01", periods=n_steps, freq="h"), n_series),
            "y": values[:, order].T.ravel(),
        }
    )


def test_long_context_trains_and_predicts_with_the_bounded_head():
    params = TINY | dict(
        context_length=2048,
        patch_len=16,
        patch_stride=8,
        head="pool",
        chunk_size=16,
        windows_per_epoch=32,
        batch_size=16,
        val_fraction=0.0,
    )
    frame = make_demo_frame(n_steps=2048 + 12 + 100, n_channels=2)
    counter = CountBatches()
    forecaster = TrellisForecaster(**params).fit(frame, callbacks=[counter])
    assert counter.batches == [2]  # 32 of the 202 windows
    forecast = forecaster.predict()
    assert len(forecast) == 12 and np.isfinite(forecast[["load_1", "load_2"]].to_numpy()).all()
    # The pool head reads a bounded summary: the parameter count does not grow with the context.
    sizes = {
        L: sum(
            p.numel()
            for p in build_model(
                model_spec(TrellisConfig(**(params | {"context_length": L})))
            ).parameters()
        )
        for L in (64, 2048, 8192)
    }
    assert len(set(sizes.values())) == 1 and forecaster.summary_.parameters == sizes[2048]


def test_windows_per_epoch_bounds_the_training_steps():
    frame = make_demo_frame(n_steps=1000, n_channels=3)  # ~2,200 training windows
    counter = CountBatches()
    params = TINY | dict(windows_per_epoch=100, batch_size=32, max_epochs=3)
    forecaster = TrellisForecaster(**params).fit(frame, callbacks=[counter])
    assert forecaster.summary_.train_windows > 2000
    assert counter.batches == [4, 4, 4]  # ceil(100 / 32) per epoch, never the full 2,000+
    assert counter.windows == [100, 100, 100]


def test_many_series_long_frame_fits_and_predicts_in_batches_with_their_ids():
    n_series, n_steps = 300, 300
    frame = many_series_frame(n_series, n_steps)
    counter = CountBatches()
    params = TINY | dict(windows_per_epoch=2000, batch_size=256)
    forecaster = TrellisForecaster(**params).fit(frame, callbacks=[counter])
    assert counter.batches == [8] and forecaster.summary_.train_windows > 50_000

    forecast = forecaster.predict()
    ids = list(pd.unique(frame["unique_id"]))
    assert list(forecast.columns) == ["unique_id", "ds", "y"] and len(forecast) == n_series * 12
    assert list(pd.unique(forecast["unique_id"])) == ids  # order of first appearance
    assert (forecast.groupby("unique_id", sort=False).size() == 12).all()
    last = pd.Timestamp(frame["ds"].iloc[-1])
    assert (forecast["ds"].iloc[:12] == pd.date_range(last, periods=13, freq="h")[1:]).all()
    # Each id's forecast sits at its own level, 100 apart: no rows were mixed up.
    level = forecast.groupby("unique_id", sort=False)["y"].mean()
    expected = 100.0 * (np.array([int(i[2:]) for i in level.index]) + 1)
    assert np.abs(level.to_numpy() - expected).max() < 30

    # Batched inference does not depend on the batch size (batches are independent).
    contexts = np.random.default_rng(0).standard_normal((n_series, 48)).astype(np.float32)
    whole = forecast_contexts(forecaster.model_, contexts, batch_size=1024)
    batched = forecast_contexts(forecaster.model_, contexts, batch_size=7)
    assert whole.shape == (n_series, 12)
    np.testing.assert_allclose(batched, whole, rtol=1e-5, atol=1e-5)


def test_windows_are_views_into_one_buffer_for_every_series():
    series = [np.arange(n, dtype=np.float32) + 1000 * i for i, n in enumerate((300, 80, 300))]
    data = WindowDataset(series, 48, 12)
    base = data.data.data_ptr()
    assert data.data.untyped_storage().nbytes() == 4 * 680  # 4 bytes a point, whatever the windows
    assert len(data) > 400
    for i in (0, len(data) // 2, len(data) - 1):  # first, a middle one, last (third series)
        item = data[i]
        x, y = item["past_target"], item["future_target"]
        s, start = data.locate(i)
        assert x.untyped_storage().data_ptr() == base and y.untyped_storage().data_ptr() == base
        at = int(data.offsets[s]) + start
        assert x.data_ptr() == base + 4 * (at - 48) and y.data_ptr() == base + 4 * at
        np.testing.assert_array_equal(x.numpy(), series[s][start - 48 : start])
