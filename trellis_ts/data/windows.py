"""Training windows as index views over the series, and the train/validation split.

Position convention (used by `WindowDataset` and `train_val_ranges`): a window with start ``s``
in a series has context positions ``[s - L, s)`` and target positions ``[s, s + H)``, where
``L = context_length`` and ``H = prediction_length``. With a range ``(lo, hi)`` for the series,
the valid starts are ``max(lo, L) <= s <= hi - H``: targets lie in ``[lo, hi)`` and the context
may reach back before ``lo`` (never before 0), which is what validation windows need.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from trellis_ts.errors import ConfigError, DataError

__all__ = ["EpochSubsampler", "WindowDataset", "train_val_ranges"]


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ConfigError(f"{name}={value!r} must be a positive integer.")
    return int(value)


class WindowDataset(Dataset):
    """Training/eval windows as index views over the series: nothing is materialised per window.

    All series are copied once into one float32 tensor ``data`` ``[sum T_i]`` with int64
    ``offsets`` ``[n_series + 1]``; a window is located by binary search over cumulative window
    counts, so memory is ~4 bytes per point however many windows there are. ``stride`` keeps every
    ``stride``-th start, anchored at the last valid start so the newest window is always included.
    Items are ``(x float32 [L, 1], y float32 [H, 1])``, views into ``data``.
    """

    def __init__(
        self,
        series: Sequence[np.ndarray],
        context_length: int,
        prediction_length: int,
        *,
        ranges: Sequence[tuple[int, int]] | None = None,
        stride: int = 1,
    ) -> None:
        self.context_length = _positive_int(context_length, "context_length")
        self.prediction_length = _positive_int(prediction_length, "prediction_length")
        self.stride = _positive_int(stride, "stride")
        lengths = np.array([np.shape(s)[0] if np.ndim(s) == 1 else -1 for s in series], np.int64)
        if (lengths < 0).any():
            bad = int(np.argmax(lengths < 0))
            raise DataError(f"series {bad} is not 1-D; pass one univariate array per series.")
        self.offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=self.offsets[1:])
        # Fill one preallocated float32 buffer series by series: peak memory stays ~4 B/point.
        data = np.empty(int(self.offsets[-1]), dtype=np.float32)
        for i, s in enumerate(series):
            data[self.offsets[i] : self.offsets[i + 1]] = np.asarray(s)
        finite = np.isfinite(data)
        if not finite.all():
            bad = int(np.searchsorted(self.offsets, int(np.argmin(finite)), side="right")) - 1
            raise DataError(
                f"series {bad} contains NaN or infinite values; clean it first "
                "(e.g. to_panel(..., missing='interpolate'))."
            )
        self.data = torch.from_numpy(data)
        self.lengths = lengths

        if ranges is None:
            lo, hi = np.zeros_like(lengths), lengths.copy()
        else:
            if len(ranges) != len(lengths):
                raise ValueError(f"got {len(ranges)} ranges for {len(lengths)} series.")
            lo, hi = (np.array(r, dtype=np.int64).reshape(-1) for r in zip(*ranges, strict=True))
            if ((lo < 0) | (lo > hi) | (hi > lengths)).any():
                i = int(np.argmax((lo < 0) | (lo > hi) | (hi > lengths)))
                raise ValueError(
                    f"range {ranges[i]} of series {i} (length {lengths[i]}) is invalid."
                )
        first = np.maximum(lo, self.context_length)
        last = hi - self.prediction_length
        counts = np.where(last >= first, (last - first) // self.stride + 1, 0)
        self.windows_per_series = counts.astype(np.int64)
        self._first_start = last - (counts - 1) * self.stride  # unused where counts == 0
        self._cum = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self._cum[1:])

    @property
    def n_series(self) -> int:
        return len(self.lengths)

    def __len__(self) -> int:
        return int(self._cum[-1])

    def locate(self, i: int) -> tuple[int, int]:
        """(series, start) of window ``i``: O(log n_series), no list of windows is kept."""
        i = operator.index(i)
        n = len(self)
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"window {i} out of range for {n} windows")
        # side="right" skips series with zero windows (their cumulative count repeats).
        s = int(np.searchsorted(self._cum, i, side="right")) - 1
        return s, int(self._first_start[s] + (i - self._cum[s]) * self.stride)

    def locate_many(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Vectorised `locate` for int ``[B]`` indices -> (series int64 [B], start int64 [B])."""
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"window indices must lie in [0, {len(self)})")
        s = np.searchsorted(self._cum, idx, side="right") - 1
        return s, self._first_start[s] + (idx - self._cum[s]) * self.stride

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        s, start = self.locate(i)
        at = int(self.offsets[s]) + start
        x = self.data[at - self.context_length : at].unsqueeze(-1)
        y = self.data[at : at + self.prediction_length].unsqueeze(-1)
        return x, y

    def gather(self, indices: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch in one indexing op: x float32 ``[B, L, 1]``, y float32 ``[B, H, 1]`` (copies)."""
        s, start = self.locate_many(indices)
        at = torch.from_numpy(self.offsets[s] + start)
        ctx = torch.arange(-self.context_length, 0)
        tgt = torch.arange(self.prediction_length)
        x = self.data[at[:, None] + ctx[None, :]].unsqueeze(-1)
        y = self.data[at[:, None] + tgt[None, :]].unsqueeze(-1)
        return x, y


def train_val_ranges(
    lengths: Sequence[int] | np.ndarray,
    context_length: int,
    prediction_length: int,
    val_fraction: float = 0.2,
    min_val_windows: int = 1,
    *,
    names: Sequence[str] | None = None,
) -> tuple[list[tuple[int, int]], list[tuple[int, int]] | None]:
    """Split each series in time: validation targets are its last ``n_val`` positions.

    ``n_val = max(prediction_length, round(val_fraction * T))``; with ``split = T - n_val`` the
    training range is ``(0, split)`` (all training targets before ``split``) and the validation
    range ``(split, T)`` (validation context may reach back into the training part).
    Rule: if ANY series would get fewer than 1 training window or fewer than ``min_val_windows``
    validation windows (or ``val_fraction == 0``), there is no validation: the result is
    ``([(0, T_i), ...], None)`` and the caller trains on everything.
    Raises DataError for a series shorter than ``context_length + prediction_length``.
    """
    L = _positive_int(context_length, "context_length")
    H = _positive_int(prediction_length, "prediction_length")
    min_val_windows = _positive_int(min_val_windows, "min_val_windows")
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction!r} must be in [0, 1), e.g. 0.2.")
    T = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if T.size == 0:
        raise DataError("there are no series to train on; pass at least one series.")
    short = np.flatnonzero(T < L + H)
    if short.size:
        i = int(short[0])
        name = names[i] if names is not None else f"#{i}"
        raise DataError(
            f"series {name!r} has {T[i]} time steps but context_length + prediction_length = "
            f"{L + H} are needed; shorten context_length or provide a longer history."
        )
    everything = [(0, int(t)) for t in T]
    if val_fraction == 0:
        return everything, None
    n_val = np.maximum(H, np.floor(val_fraction * T + 0.5).astype(np.int64))  # round half up
    split = T - n_val
    n_train = split - H - L + 1  # starts in [L, split - H]
    n_valid = T - H - np.maximum(split, L) + 1  # starts in [max(split, L), T - H]
    if (n_train < 1).any() or (n_valid < min_val_windows).any():
        return everything, None
    return [(0, int(s)) for s in split], [(int(s), int(t)) for s, t in zip(split, T, strict=True)]


class EpochSubsampler(Sampler[int]):
    """Draws at most ``max_windows`` distinct random window indices per epoch (all if None).

    Each pass uses a fresh seed derived from ``(seed, epoch)``; the epoch advances after every
    pass (or set it with `set_epoch`), so epochs see different windows but runs are repeatable.
    """

    def __init__(self, n_windows: int, max_windows: int | None = None, seed: int = 0) -> None:
        if isinstance(n_windows, bool) or not isinstance(n_windows, (int, np.integer)):
            raise ConfigError(f"n_windows={n_windows!r} must be a non-negative integer.")
        if n_windows < 0:
            raise ConfigError(f"n_windows={n_windows!r} must be a non-negative integer.")
        self.n_windows = int(n_windows)
        self.max_windows = (
            None if max_windows is None else _positive_int(max_windows, "max_windows")
        )
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        if self.max_windows is None:
            return self.n_windows
        return min(self.n_windows, self.max_windows)

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        self.epoch += 1
        k = len(self)
        if k == self.n_windows:
            picks = rng.permutation(self.n_windows)
        else:  # Generator.choice stays cheap when k << n (no full permutation of n)
            picks = rng.choice(self.n_windows, size=k, replace=False)
        return iter(picks.tolist())
