"""Training windows as index views over the series (the train/validation split is in `splits`).

Position convention (used by `WindowDataset` and `splits.train_val_ranges`): a window with
start ``s`` in a series has context positions ``[s - L, s)`` and target positions
``[s, s + H)``, where ``L = context_length`` and ``H = prediction_length``. With a range
``(lo, hi)`` for the series, the valid starts are ``max(lo, L) <= s <= hi - H``: targets lie in
``[lo, hi)`` and the context may reach back before ``lo`` (never before 0), which is what
validation windows need.
"""

from __future__ import annotations

import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from trellis_ts.errors import ConfigError, DataError, positive_int

__all__ = [
    "INPUT_FIELDS",
    "EpochSubsampler",
    "SeriesSet",
    "WindowDataset",
    "Windows",
    "final_windows",
    "select_windows",
    "model_inputs",
]


# The names of a batch's fields (GluonTS's): the model reads the inputs, the loss the target.
INPUT_FIELDS = (
    "past_target",
    "past_feat_dynamic_real",
    "feat_dynamic_real",
    "feat_static_real",
    "feat_static_cat",
)


def model_inputs(batch: dict) -> dict:
    """The fields of a batch that the model reads (`INPUT_FIELDS`)."""
    return {k: batch[k] for k in INPUT_FIELDS if k in batch}


@dataclass(frozen=True)
class SeriesSet:
    """Model-ready series (already scaled): what `WindowDataset` cuts windows from.

    The fields are named as GluonTS names a dataset entry's: ``target[i]`` float ``[T_i]``;
    time-varying covariates per group of series that share one time axis (``group[i]`` is
    series i's group; None means every series is its own): ``past_feat_dynamic_real[g]``
    ``[T_g, P]`` (known up to the forecast origin) and ``feat_dynamic_real[g]`` ``[T_g, F]``
    (known over the horizon too); ``feat_static_real`` ``[n, S]`` and ``feat_static_cat``
    int ``[n, K]`` (category codes, 0 = unknown) per series.
    """

    target: Sequence[np.ndarray]
    past_feat_dynamic_real: Sequence[np.ndarray] | None = None
    feat_dynamic_real: Sequence[np.ndarray] | None = None
    feat_static_real: np.ndarray | None = None
    feat_static_cat: np.ndarray | None = None
    group: np.ndarray | None = None


def _width(arrays: Sequence[np.ndarray] | None) -> int:
    return int(np.shape(arrays[0])[1]) if arrays is not None and len(arrays) else 0


def _float_buffer(parts: Sequence[np.ndarray], what: str) -> tuple[torch.Tensor, np.ndarray]:
    """Parts ``[T_i, ...]`` copied once into one float32 tensor ``[sum T_i, ...]``, with offsets."""
    lengths = np.array([len(p) for p in parts], dtype=np.int64)
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    shape = (int(offsets[-1]),) + (np.shape(parts[0])[1:] if len(parts) else ())
    # Fill one preallocated float32 buffer part by part: peak memory stays ~4 B/value.
    data = np.empty(shape, dtype=np.float32)
    for i, p in enumerate(parts):
        data[offsets[i] : offsets[i + 1]] = np.asarray(p)
    finite = np.isfinite(data).reshape(len(data), -1).all(axis=1)
    if not finite.all():
        bad = int(np.searchsorted(offsets, int(np.argmin(finite)), side="right")) - 1
        raise DataError(
            f"{what} {bad} contains NaN or infinite values; clean it first "
            "(e.g. to_panel(..., missing='interpolate'))."
        )
    return torch.from_numpy(data), offsets


class WindowDataset(Dataset):
    """Training/eval windows as index views over the series: nothing is materialised per window.

    All series are copied once into one float32 tensor ``data`` ``[sum T_i]`` with int64
    ``offsets`` ``[n_series + 1]`` (their time-varying covariates likewise into ``dynamic``
    ``[sum T_g, P + F]``, once per group); a window is located by binary search over cumulative
    window counts, so memory is ~4 bytes per value however many windows there are. ``stride``
    keeps every ``stride``-th start, anchored at the last valid start so the newest window is
    always included.

    ``series`` is a `SeriesSet`, or just the target arrays. An item is a dict of the fields in
    `INPUT_FIELDS` that the series have, plus ``future_target``: ``past_target [L]``,
    ``future_target [H]``, ``past_feat_dynamic_real [L, P]``, ``feat_dynamic_real [L + H, F]``
    (the known covariates over the context and the horizon), ``feat_static_real [S]``,
    ``feat_static_cat [K]``; `gather` gives a batch of them with a leading ``[B]``.
    """

    def __init__(
        self,
        series: Sequence[np.ndarray] | SeriesSet,
        context_length: int,
        prediction_length: int,
        *,
        ranges: Sequence[tuple[int, int]] | None = None,
        stride: int = 1,
    ) -> None:
        self.context_length = positive_int(context_length, "context_length")
        self.prediction_length = positive_int(prediction_length, "prediction_length")
        self.stride = positive_int(stride, "stride")
        if not isinstance(series, SeriesSet):
            series = SeriesSet(target=series)
        lengths = np.array(
            [np.shape(s)[0] if np.ndim(s) == 1 else -1 for s in series.target], np.int64
        )
        if (lengths < 0).any():
            bad = int(np.argmax(lengths < 0))
            raise DataError(f"series {bad} is not 1-D; pass one univariate array per series.")
        self.data, self.offsets = _float_buffer(series.target, "series")
        self.lengths = lengths
        self._dynamic(series)
        self.static_real = self._static(series.feat_static_real, torch.float32)
        self.static_cat = self._static(series.feat_static_cat, torch.int64)

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

    def _dynamic(self, series: SeriesSet) -> None:
        """One buffer of the past and the known covariates of every group, side by side."""
        self.n_past = _width(series.past_feat_dynamic_real)
        self.n_future = _width(series.feat_dynamic_real)
        self.group = (
            np.arange(len(self.lengths))
            if series.group is None
            else np.asarray(series.group, dtype=np.int64)
        )
        self.dynamic = None
        if not self.n_past + self.n_future:
            return
        fields = [
            f
            for f, n in (
                (series.past_feat_dynamic_real, self.n_past),
                (series.feat_dynamic_real, self.n_future),
            )
            if n
        ]
        parts = [np.concatenate([f[g] for f in fields], axis=1) for g in range(len(fields[0]))]
        if any(len(parts[g]) != n for g, n in zip(self.group, self.lengths, strict=True)):
            raise ValueError("every series must have as many covariate rows as target values")
        self.dynamic, self.dynamic_offsets = _float_buffer(parts, "the covariates of series")

    def _static(self, values: np.ndarray | None, dtype: torch.dtype) -> torch.Tensor | None:
        if values is None or np.shape(values)[-1] == 0:
            return None
        out = torch.as_tensor(np.asarray(values), dtype=dtype)
        if out.shape[0] != len(self.lengths):
            raise ValueError(
                f"got static covariates for {out.shape[0]} of {len(self.lengths)} series"
            )
        return out

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

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, start = self.locate(i)
        L, H = self.context_length, self.prediction_length
        at = int(self.offsets[s]) + start
        item = {"past_target": self.data[at - L : at], "future_target": self.data[at : at + H]}
        if self.dynamic is not None:
            d = int(self.dynamic_offsets[self.group[s]]) + start
            if self.n_past:
                item["past_feat_dynamic_real"] = self.dynamic[d - L : d, : self.n_past]
            if self.n_future:
                item["feat_dynamic_real"] = self.dynamic[d - L : d + H, self.n_past :]
        return item | self._static_of(s)

    def gather(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        """A batch in one indexing op per field (copies): the items of ``indices``, stacked."""
        s, start = self.locate_many(indices)
        L, H = self.context_length, self.prediction_length
        at = torch.from_numpy(self.offsets[s] + start)[:, None]
        ctx, tgt = torch.arange(-L, 0)[None, :], torch.arange(H)[None, :]
        batch = {"past_target": self.data[at + ctx], "future_target": self.data[at + tgt]}
        if self.dynamic is not None:
            d = torch.from_numpy(self.dynamic_offsets[self.group[s]] + start)[:, None]
            if self.n_past:
                batch["past_feat_dynamic_real"] = self.dynamic[d + ctx, : self.n_past]
            if self.n_future:
                both = torch.arange(-L, H)[None, :]
                batch["feat_dynamic_real"] = self.dynamic[d + both, self.n_past :]
        return batch | self._static_of(torch.from_numpy(s))

    def _static_of(self, s) -> dict[str, torch.Tensor]:
        out = {}
        if self.static_real is not None:
            out["feat_static_real"] = self.static_real[s]
        if self.static_cat is not None:
            out["feat_static_cat"] = self.static_cat[s]
        return out


def final_windows(
    series: SeriesSet, context_length: int, prediction_length: int
) -> dict[str, np.ndarray]:
    """The inputs of each series' forecast from its end, in `INPUT_FIELDS` (a leading ``[n]``).

    ``past_target`` ``[n, L]`` and ``past_feat_dynamic_real`` ``[n, L, P]`` are the last L
    steps; ``feat_dynamic_real`` (which must run H rows past the targets: the horizon) its last
    ``L + H`` rows, the context's and the horizon's known values.
    """
    L, H = context_length, prediction_length
    group = np.arange(len(series.target)) if series.group is None else np.asarray(series.group)
    out = {"past_target": np.stack([np.asarray(t[-L:]) for t in series.target])}
    if _width(series.past_feat_dynamic_real):
        out["past_feat_dynamic_real"] = np.stack(
            [series.past_feat_dynamic_real[g][-L:] for g in group]
        )
    if _width(series.feat_dynamic_real):
        known = series.feat_dynamic_real
        if any(len(known[g]) != len(t) + H for g, t in zip(group, series.target, strict=True)):
            raise ValueError(
                "the known covariates must run prediction_length steps past the targets"
            )
        out["feat_dynamic_real"] = np.stack([known[g][-(L + H) :] for g in group])
    for name in ("feat_static_real", "feat_static_cat"):
        values = getattr(series, name)
        if values is not None and np.shape(values)[-1]:
            out[name] = np.asarray(values)
    return out


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
        self.max_windows = None if max_windows is None else positive_int(max_windows, "max_windows")
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


@dataclass(frozen=True)
class Windows:
    """Chosen windows: their series and start positions, contexts `[n, L]` and targets `[n, H]`
    (in the units of the values they were cut from), and the model's inputs for them (the named
    fields of `trellis_ts.data.INPUT_FIELDS`, scaled, covariates included)."""

    series: np.ndarray  # int64 [n]
    start: np.ndarray  # int64 [n]
    contexts: np.ndarray  # float64 [n, L]
    targets: np.ndarray  # float64 [n, H]
    inputs: dict[str, np.ndarray]


def select_windows(
    series: SeriesSet | Sequence[np.ndarray],
    context_length: int,
    prediction_length: int,
    *,
    step: int = 1,
    n_windows: int | None = None,
    ranges: Sequence[tuple[int, int]] | None = None,
    values: Sequence[np.ndarray] | None = None,
) -> Windows:
    """Windows `step` apart ending at each series' end (or at the end of its range), the newest
    `n_windows` of each series when given. Targets lie inside `ranges` when given.

    `series` is what the model reads (scaled targets, with covariates in a `SeriesSet`);
    contexts and targets come from `values` (e.g. the same series in the data's units), or from
    the series' targets."""
    if not isinstance(series, SeriesSet):
        series = SeriesSet(target=list(series))
    values = series.target if values is None else values
    windows = WindowDataset(series, context_length, prediction_length, ranges=ranges, stride=step)
    idx = np.arange(len(windows))
    series_of, start_of = windows.locate_many(idx)
    if n_windows is not None:  # keep the newest n_windows of each series
        rank = np.zeros(len(idx), dtype=np.int64)
        for s in np.unique(series_of):
            members = np.flatnonzero(series_of == s)
            rank[members[np.argsort(-start_of[members])]] = np.arange(len(members))
        idx = idx[rank < n_windows]
        series_of, start_of = series_of[idx], start_of[idx]
    # Contexts and targets straight from the float64 values (the window buffer is float32).
    flat = np.concatenate([np.asarray(v, dtype=np.float64) for v in values])
    at = windows.offsets[series_of] + start_of
    x = flat[at[:, None] + np.arange(-context_length, 0)[None, :]]
    y = flat[at[:, None] + np.arange(prediction_length)[None, :]]
    inputs = {k: v.numpy() for k, v in model_inputs(windows.gather(idx)).items()}
    return Windows(series_of, start_of, x, y, inputs)
