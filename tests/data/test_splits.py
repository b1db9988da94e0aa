"""The validation length: one rule for training, the sizing and the tuning space."""

from __future__ import annotations

import numpy as np

from trellis_ts.data import train_val_ranges, validation_length
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.tuning.space import longest_context


def test_validation_length_rounds_half_up_and_is_what_training_holds_out():
    lengths = [10, 18, 40, 100]  # 0.25 T = 2.5, 4.5, 10, 25: halves go up (round would give 2, 4)
    n_val = validation_length(lengths, 2, 0.25)
    assert n_val.tolist() == [3, 5, 10, 25]
    assert validation_length(6, 2, 0.25) == 2  # never less than the horizon
    assert validation_length(lengths, 2, 0.0).tolist() == [0, 0, 0, 0]
    _, val = train_val_ranges(lengths, 2, 2, val_fraction=0.25)
    assert [hi - lo for lo, hi in val] == n_val.tolist()


def test_tuning_space_upper_context_uses_the_training_validation_length():
    sizes = TrellisConfig(prediction_length=1, context_length=2, val_fraction=0.25)
    (train,), _ = train_val_ranges([10], 2, 1, val_fraction=0.25)  # holds out 3 (2.5 up)
    assert longest_context(sizes, [10]) == (train[1] - 1) * 3 // 4 == 4
    assert np.array_equal(validation_length(np.array([10]), 1, 0.25), [3])
