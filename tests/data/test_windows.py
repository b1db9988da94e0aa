"""Training windows and the train/validation split (trellis_ts.data.windows)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from trellis_ts.data import EpochSubsampler, WindowDataset, train_val_ranges
from trellis_ts.errors import DataError


def count_by_hand(lengths, L, H, ranges=None, stride=1):
    """Enumerate every window start explicitly (the slow, obviously-right way)."""
    total = 0
    for i, T in enumerate(lengths):
        lo, hi = ranges[i] if ranges else (0, T)
        starts = [s for s in range(T + 1) if s - L >= 0 and s >= lo and s + H <= hi]
        total += len(starts[::-1][::stride])
    return total


def make_series(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(n) for n in lengths]


@pytest.mark.parametrize("stride", [1, 3])
def test_window_count_is_every_window(stride):
    lengths = [50, 7, 12, 30, 11]  # 7 < L + H: no window; 11 = L + H: exactly one
    ds = WindowDataset(make_series(lengths), 8, 3, stride=stride)
    assert len(ds) == count_by_hand(lengths, 8, 3, stride=stride)
    assert ds.windows_per_series[1] == 0 and ds.windows_per_series[4] == 1


def test_items_match_numpy_slices_and_stay_in_their_series():
    lengths = [40, 5, 25, 60]
    series = make_series(lengths)
    L, H = 6, 4
    ds = WindowDataset(series, L, H, stride=2)
    rng = np.random.default_rng(1)
    for i in [0, len(ds) - 1, *rng.integers(0, len(ds), 40)]:
        s, start = ds.locate(int(i))
        assert start - L >= 0 and start + H <= lengths[s]  # never crosses a series boundary
        item = ds[int(i)]
        x, y = item["past_target"], item["future_target"]
        assert set(item) == {"past_target", "future_target"}  # no covariates: no other fields
        assert x.shape == (L,) and y.shape == (H,) and x.dtype == torch.float32
        np.testing.assert_allclose(x.numpy(), series[s][start - L : start], rtol=1e-6)
        np.testing.assert_allclose(y.numpy(), series[s][start : start + H], rtol=1e-6)
    # stride is anchored at the end: the newest window of each series is always present
    last_start = {s: start for s, start in map(ds.locate, range(len(ds)))}
    assert last_start == {0: 36, 2: 21, 3: 56}
    with pytest.raises(IndexError):
        ds[len(ds)]


def test_gather_matches_getitem():
    ds = WindowDataset(make_series([30, 20]), 5, 2)
    idx = np.array([0, 7, len(ds) - 1])
    batch = ds.gather(idx)
    assert batch["past_target"].shape == (3, 5) and batch["future_target"].shape == (3, 2)
    for row, i in enumerate(idx):
        for name, value in ds[int(i)].items():
            torch.testing.assert_close(batch[name][row], value)


def test_ranges_restrict_targets_not_context():
    lengths = [30, 30]
    ranges = [(0, 20), (20, 30)]
    ds = WindowDataset(make_series(lengths), 8, 3, ranges=ranges)
    assert len(ds) == count_by_hand(lengths, 8, 3, ranges)
    for i in range(len(ds)):
        s, start = ds.locate(i)
        lo, hi = ranges[s]
        assert lo <= start and start + 3 <= hi and start - 8 >= 0


def test_train_val_ranges_split_at_the_end():
    lengths = [100, 60]
    train, val = train_val_ranges(lengths, 10, 5, val_fraction=0.2)
    assert val == [(80, 100), (48, 60)]  # n_val = max(H, round(0.2 T))
    for (t_lo, t_hi), (v_lo, v_hi), T in zip(train, val, lengths, strict=True):
        assert (
            t_lo == 0 and t_hi == v_lo and v_hi == T
        )  # training targets end where validation starts
    series = make_series(lengths)
    tr = WindowDataset(series, 10, 5, ranges=train)
    va = WindowDataset(series, 10, 5, ranges=val)
    for i in range(len(tr)):
        s, start = tr.locate(i)
        assert start + 5 <= val[s][0]  # no training target inside the validation part
    ends = {s: start + 5 for s, start in map(va.locate, range(len(va)))}
    assert ends == {0: 100, 1: 60}  # validation covers the very end


def test_train_val_ranges_fall_back_and_errors():
    train, val = train_val_ranges([100, 16], 10, 5)  # 16: no room for both parts
    assert val is None and train == [(0, 100), (0, 16)]
    assert train_val_ranges([100], 10, 5, val_fraction=0.0)[1] is None
    with pytest.raises(DataError, match="series 'b' has 12 time steps .* = 15 are needed"):
        train_val_ranges([100, 12], 10, 5, names=["a", "b"])


def test_non_finite_series_rejected():
    with pytest.raises(DataError, match="series 1 contains NaN"):
        WindowDataset([np.ones(20), np.array([1.0, np.nan] * 10)], 4, 2)


def test_ten_million_points_one_storage():
    big = np.zeros(10_000_000, dtype=np.float32)
    t0 = time.perf_counter()
    ds = WindowDataset([big, np.ones(1000, dtype=np.float32)], 336, 96)
    assert time.perf_counter() - t0 < 5.0
    assert len(ds) == (10_000_000 - 336 - 96 + 1) + (1000 - 336 - 96 + 1)
    assert ds.data.untyped_storage().nbytes() == 4 * 10_001_000  # one float32 buffer, ~40 MB
    item = ds[len(ds) - 1]
    for value in item.values():  # views
        assert value.untyped_storage().data_ptr() == ds.data.untyped_storage().data_ptr()


def test_epoch_subsampler():
    sampler = EpochSubsampler(1000, max_windows=50, seed=3)
    first, second = list(sampler), list(sampler)
    assert len(first) == len(sampler) == 50 and len(set(first)) == 50
    assert first != second and max(first) < 1000  # a new draw each epoch
    sampler.set_epoch(0)
    assert list(sampler) == first  # repeatable
    assert sorted(EpochSubsampler(20)) == list(range(20))
