"""Sizes chosen from the data: horizon, context and patches where the user did not set them.

`TrellisConfig` leaves `prediction_length`, `context_length`, `patch_len` and `patch_stride` as
None by default; `resolve_sizes` fills them from the frequency and the shortest series:

* a frequency's usual horizon and context (`trellis_ts.data.frequency.SIZES_BY_UNIT`: hourly
  96 and 336, as in the long-term forecasting benchmarks; monthly 12 and 48; daily 14 and 56);
* shrunk for short data, so that the context, the horizon and the validation part
  (`val_fraction`) fit with about as many training windows as context steps;
* patches of the largest power of two up to 16 that gives at least 6 patches of context, half
  overlapping (PatchTST's 16/8 from a context of 96 on).

Torch-free: the command line checks the sizes before it loads the model code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trellis_ts.data.frequency import SIZES_BY_UNIT, frequency_unit
from trellis_ts.data.splits import validation_length
from trellis_ts.errors import DataError
from trellis_ts.forecaster.config import SIZE_FIELDS, TrellisConfig
from trellis_ts.models.spec import ModelSpec

__all__ = [
    "PATCHTST_PATCH",
    "SIZES_BY_UNIT",
    "Sizing",
    "default_sizes",
    "model_spec",
    "resolve_sizes",
    "with_patches",
]

PATCHTST_PATCH = (16, 8)  # the largest patches the rule picks; the benchmark runner's default
MIN_CONTEXT = 4
MIN_PATCHES = 6


@dataclass(frozen=True)
class Sizing:
    """The sizes of one fit and where they came from, for the summary line."""

    freq_name: str
    rows: int  # length of the shortest series
    n_series: int
    chosen: tuple[str, ...]  # the size fields chosen from the data (not set by the user)
    config: TrellisConfig

    def line(self) -> str:
        """'hourly, 17,420 rows: context 336, horizon 96, patches 16/8 (sized to the data)'."""
        c = self.config
        rows = (
            f"{self.rows:,} rows" if self.n_series == 1 else f"shortest series {self.rows:,} rows"
        )
        text = (
            f"{self.freq_name}, {rows}: context {c.context_length}, horizon "
            f"{c.prediction_length}, patches {c.patch_len}/{c.patch_stride}"
        )
        if len(self.chosen) == len(SIZE_FIELDS):
            return text + " (sized to the data)"
        if self.chosen:
            words = {
                "prediction_length": "horizon",
                "context_length": "context",
                "patch_len": "patch length",
                "patch_stride": "patch stride",
            }
            return text + f" ({', '.join(words[n] for n in self.chosen)} sized to the data)"
        return text


def patch_for_context(context_length: int) -> tuple[int, int]:
    """(patch_len, patch_stride): the largest power of two <= 16 giving >= 6 patches, half-overlapping."""
    patch = 1
    while patch * 2 <= min(PATCHTST_PATCH[0], context_length // MIN_PATCHES):
        patch *= 2
    return patch, max(1, patch // 2)


def _patches(config: TrellisConfig, context_length: int) -> tuple[int, int]:
    """The patch length and stride: the user's, else the rule's for this context (a patch length
    given alone gets half of it as stride; a stride given alone, patches at least that long)."""
    patch, stride = patch_for_context(context_length)
    if config.streaming:  # patches end to end, each the token that a forecast follows
        return (config.patch_len or patch,) * 2
    if config.patch_len is not None:
        return config.patch_len, config.patch_stride or max(1, config.patch_len // 2)
    if config.patch_stride is not None:
        return max(patch, config.patch_stride), config.patch_stride
    return patch, stride


def with_patches(config: TrellisConfig) -> TrellisConfig:
    """`config` with unset patches filled by the rule for its context: what building a model
    needs (`build_model`, `train_model`). The patches depend on the context only, so this gives
    what `resolve_sizes` would; an unset horizon or context is a ConfigError."""
    config.require_sized("prediction_length", "context_length")
    if config.patch_len is not None and config.patch_stride is not None:
        return config
    patch, stride = _patches(config, config.context_length)
    return config.replace(patch_len=patch, patch_stride=stride)


def model_spec(config: TrellisConfig) -> ModelSpec:
    """The architecture a network is built from (`trellis_ts.models.build_model`): the config's
    model fields, with unset patches filled by the rule for its context."""
    config = with_patches(config)
    fields = {
        name: getattr(config, name) for name in ModelSpec.field_names() if name != "n_outputs"
    }
    return ModelSpec(**fields, n_outputs=config.n_outputs)


def default_sizes(config: TrellisConfig, freq: str | int | None = None) -> TrellisConfig:
    """`config` with unset sizes filled from the frequency alone (no data length known: the
    GluonTS estimator's case). Hourly or unknown: 96, 336, 16/8."""
    _, (_, horizon, context) = frequency_unit(freq)
    H = config.prediction_length or horizon
    L = config.context_length or max(context, config.patch_len or 1)
    P, S = _patches(config, L)
    return config.replace(prediction_length=H, context_length=L, patch_len=P, patch_stride=S)


def resolve_sizes(
    config: TrellisConfig,
    freq: str | int | None,
    lengths: np.ndarray | list[int],
    names: tuple[str, ...] | list[str] | None = None,
) -> Sizing:
    """Fill the unset sizes of `config` from the data's `freq` and series `lengths`.

    Raises DataError when the data is too short for the sizes given (naming the series, its
    length and the setting to change) or for any model at all.
    """
    lengths = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if lengths.size == 0:
        raise DataError("there are no series to train on; pass at least one series.")
    i = int(np.argmin(lengths))
    n = int(lengths[i])
    name = f"series {names[i]!r}" if names is not None else f"series #{i}"
    freq_name, (_, horizon, context) = frequency_unit(freq)
    chosen = tuple(f for f in SIZE_FIELDS if getattr(config, f) is None)
    hor, ctx = config.prediction_length, config.context_length
    floor = max(MIN_CONTEXT, config.patch_len or 1, config.patch_stride or 1)
    if config.model == "seasonal_naive":
        from trellis_ts.data.frequency import seasonal_period

        floor = max(floor, config.season_length or seasonal_period(freq))
    if hor is None:
        hor = min(horizon, max(1, n // 6))
        if ctx is not None:
            hor = max(1, min(hor, n - ctx))
    elif hor >= n:
        raise DataError(
            f"{name} has {n} time steps, not more than prediction_length={hor}; lower "
            "prediction_length or pass a longer history"
        )
    if ctx is None:
        n_val = int(validation_length(n, hor, config.val_fraction))
        room = n - n_val - hor  # steps for the context and the training windows' starts
        ctx = min(max(context, floor), room // 2)
        if ctx < floor:  # too short to hold out a validation part too: train on all of it
            ctx = min(max(context, floor), (n - hor) // 2)
        if ctx < floor:
            raise DataError(
                f"{name} has {n} time steps, too few for a context of {floor} steps and a "
                f"horizon of {hor}; pass a longer history, or set prediction_length and "
                "context_length"
            )
    if n < ctx + hor:
        raise DataError(
            f"{name} has {n} time steps but context_length + prediction_length = {ctx + hor} are "
            "needed; shorten context_length or provide a longer history"
        )
    P, S = _patches(config, ctx)
    sized = config.replace(prediction_length=hor, context_length=ctx, patch_len=P, patch_stride=S)
    return Sizing(freq_name, n, int(lengths.size), chosen, sized)


DEFAULT_MAX_EPOCHS = 20  # max_epochs=None: at least this many epochs may run
MIN_STEPS_PER_EPOCH = 8  # small data: batches shrink (to MIN_BATCH) so an epoch has this many steps
MIN_BATCH = 16
MIN_PASSES = 5  # early stopping cannot end training before this many epochs


@dataclass(frozen=True)
class Budget:
    """How long a fit trains: its batch size, the epochs it must run (`min_epochs`: early
    stopping cannot end training before) and may run (`max_epochs`)."""

    batch_size: int
    min_epochs: int
    max_epochs: int


def training_budget(config: TrellisConfig, windows: int) -> Budget:
    """The budget of a fit on `windows` training windows (per epoch: at most
    `windows_per_epoch`): budgets in optimiser steps, not epochs, so that small data trains.

    On a 293-row monthly file 20 epochs were 40 steps and DLinear's MASE was 4.7 (0.53 after 200
    epochs). Here the batch shrinks, down to MIN_BATCH, until an epoch has MIN_STEPS_PER_EPOCH
    steps (unless `windows_per_epoch` sizes the epochs, or `min_steps` is 0); the epochs may
    grow until there are `min_steps` steps, and early stopping waits for a quarter of them, and
    at least MIN_PASSES epochs (the attention encoder had stopped after 4 epochs with
    patience 3).
    """
    per_epoch = max(1, min(windows, config.windows_per_epoch or windows))
    batch = config.batch_size  # as given when epochs are sized by hand or the budget is off
    if config.min_steps and config.windows_per_epoch is None:
        batch = min(batch, max(MIN_BATCH, -(-per_epoch // MIN_STEPS_PER_EPOCH)))
    steps = -(-per_epoch // batch)
    wanted = min(-(-config.min_steps // steps), 10_000)  # epochs for min_steps steps
    # Early stopping may end training after a quarter of them (at least MIN_PASSES epochs):
    # a network that overfits small data stops early, one still improving runs on.
    min_epochs = max(MIN_PASSES, -(-wanted // 4)) if config.min_steps else 1
    if config.max_epochs is not None:
        return Budget(batch, min(min_epochs, config.max_epochs), config.max_epochs)
    max_epochs = max(DEFAULT_MAX_EPOCHS, wanted)
    return Budget(batch, min(min_epochs, max_epochs), max_epochs)
