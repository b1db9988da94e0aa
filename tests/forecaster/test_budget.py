"""Training budgets sized in optimiser steps: small data trains long enough."""

from __future__ import annotations

import numpy as np
import pandas as pd

from trellis_ts import TrellisForecaster
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.sizing import training_budget


def test_small_data_gets_smaller_batches_and_more_epochs():
    config = TrellisConfig()  # min_steps 500, max_epochs sized to the data
    budget = training_budget(config, 97)  # a 218-row quarterly file's training windows
    assert budget.batch_size == 16  # 7 steps an epoch instead of 1
    assert budget.max_epochs == 72 and budget.max_epochs * 7 >= 500
    assert budget.min_epochs == 18  # early stopping waits a quarter of the steps
    large = training_budget(config, 12_000)
    assert (large.batch_size, large.max_epochs, large.min_epochs) == (128, 20, 5)


def test_a_max_epochs_that_is_set_is_the_limit():
    budget = training_budget(TrellisConfig(max_epochs=3), 97)
    assert budget.max_epochs == 3 and budget.min_epochs == 3


def test_a_short_file_trains_for_the_minimum_number_of_steps():
    y = 10 + np.sin(np.arange(150) * 2 * np.pi / 12)
    df = pd.DataFrame({"t": pd.date_range("2000-01-01", periods=150, freq="MS"), "y": y})
    f = TrellisForecaster(
        model="dlinear", min_steps=120, early_stopping_patience=0, verbose=False
    ).fit(df)
    summary = f.summary_.to_dict()
    steps_per_epoch = -(-summary["train_windows"] // summary["batch_size"])
    # Patience 0 would stop at the first epoch without progress; the minimum comes first.
    assert summary["min_epochs"] >= 5 and summary["epochs"] >= summary["min_epochs"]
    assert summary["epochs"] * steps_per_epoch >= 120 // 4
