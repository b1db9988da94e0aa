"""`TrellisConfig`: the one place where the forecaster's settings and their defaults live.

`TrellisForecaster`'s constructor takes exactly these fields (a test checks names and defaults),
the model and the training system read them from here, and a saved model stores them as JSON.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from trellis_ts.data.features.names import CALENDAR_FEATURES, TARGET_TRANSFORMS
from trellis_ts.errors import ConfigError, positive_int
from trellis_ts.ops.trellis.choices import (
    BETWEEN,
    DEFAULT_BETWEEN,
    DEFAULT_CHUNK_SIZE,
    DEFAULT_PHI,
    PHIS,
)

# "auto" chooses among candidates on validation windows (trellis_ts.forecaster.auto); "ets" and
# "theta" are statsforecast's AutoETS and AutoTheta, run through the same machinery.
MODELS = ("encoder", "dlinear", "seasonal_naive", "auto", "ets", "theta")
AUTO_MODELS = ("auto", "ets", "theta")
MIXERS = ("trellis", "attention")
HEADS = ("flatten", "pool")
LOSSES = ("mse", "mae", "huber", "quantile")
SCHEDULES = ("cosine", "exponential", "constant")
MISSING = ("error", "interpolate", "ffill")
# Sizes left as None are chosen from the data at fit (`trellis_ts.forecaster.sizing.resolve_sizes`).
SIZE_FIELDS = ("prediction_length", "context_length", "patch_len", "patch_stride")


@dataclass(frozen=True)
class TrellisConfig:
    """Hyperparameters of the model, its training, and the data policy. All have defaults.

    The sizes (`prediction_length`, `context_length`, `patch_len`, `patch_stride`) default to
    None: `fit` chooses them from the data's frequency and its shortest series (hourly data of
    any useful length gets 96, 336, 16 and 8) and keeps the chosen values in `config_`.
    """

    # The task (None: sized to the data at fit).
    prediction_length: int | None = None
    context_length: int | None = None
    freq: str | None = None  # pandas alias such as "h"; None infers it from the data

    # Which forecaster: "encoder" (the patch encoder below, its mixer set by `mixer`), a
    # baseline: "dlinear" (trend/seasonal linear), "seasonal_naive" (repeat the last season),
    # statsforecast's "ets" or "theta", or "auto" (the best on validation windows, or a weighted
    # ensemble of them; the command line's default, docs/guide/auto.md).
    model: str = "encoder"
    season_length: int | None = None  # seasonal_naive's period; None derives it from the frequency
    # Future-known inputs computed from the timestamps: names from CALENDAR_FEATURES, "auto"
    # (chosen by the data's frequency), or none.
    calendar_features: tuple[str, ...] | str = ()

    # The encoder: patches of one channel are the tokens.
    patch_len: int | None = None
    patch_stride: int | None = None
    d_model: int = 64
    n_heads: int = 2
    n_layers: int = 2
    ffn_mult: float = 2.0
    dropout: float = 0.1
    mixer: str = (
        "trellis"  # "trellis", or "attention" (causal softmax: the PatchTST-style baseline)
    )
    head: str = (
        "flatten"  # "flatten" (all patches -> Linear), or "pool" (size independent of context)
    )
    pool_queries: int = 8  # learned queries of the "pool" head
    revin: bool = True  # normalise each window and channel, de-normalise the forecast
    linear_path: bool = False  # add a Linear(context -> horizon) forecast beside the encoder's

    # Streaming (docs/guide/streaming.md): the encoder reads each series whole from its first
    # step, carrying its state, and forecasts after every step; `update` advances the state.
    streaming: bool = False
    # Its causal normalisation: a trailing (exponentially weighted) window of about N steps;
    # None: context_length steps; 0: running statistics since the first step.
    norm_window: int | None = None
    crop_tokens: int = 64  # training: patch tokens per crop, with a loss at every one
    burn_in_tokens: int = 32  # training: tokens read (no loss, no gradient) to warm the state
    attention_window: int = 64  # mixer="attention", streaming: tokens each token sees

    # The Trellis layer (ops/trellis/README.md; every open choice of the paper is a field).
    n_slots: int = 32  # memory slots per head (m)
    chunk_size: int = (
        DEFAULT_CHUNK_SIZE  # tokens per chunk: a speed knob for phi=identity (exact for any size);
    )
    # for silu/tanh the chunk of the stale-gradient update (1 = exact nonlinear recurrence)
    phi: str = DEFAULT_PHI  # compression nonlinearity: identity (exact chunks), silu, tanh
    between: str = DEFAULT_BETWEEN  # map between the two passes: ln_silu, l2_silu, softmax
    conv_size: int = 4  # short causal depthwise conv on q and k; 0 turns it off
    forget_gate: bool = True  # False fixes beta = 1 (the paper's "no forget gate" ablation)
    beta_init: float = 0.97  # forget gate value at initialisation

    # Training.
    loss: str = "mse"  # mse, mae, huber, quantile
    quantiles: tuple[float, ...] = (0.1, 0.5, 0.9)  # used when loss == "quantile"
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    lr_schedule: str = "cosine"  # cosine (with warm-up), exponential or constant
    lr_decay: float = 0.5  # the exponential schedule's factor per epoch
    batch_size: int = 128
    # None: sized to the data (at least DEFAULT_MAX_EPOCHS, more on small data to reach
    # `min_steps`); a number is the limit (`forecaster.sizing.training_budget`).
    max_epochs: int | None = None
    # Room for at least this many optimiser steps (max_epochs=None grows to allow them); early
    # stopping waits for a quarter of them and at least 5 epochs.
    min_steps: int = 500
    early_stopping_patience: int = 3
    val_fraction: float = 0.2  # the end of each series held out for early stopping
    windows_per_epoch: int | None = None  # draw at most this many training windows per epoch
    gradient_clip: float = 1.0
    ema_decay: float | None = None  # validate and forecast with a moving average of the weights
    random_state: int | None = 0

    # Data policy.
    missing: str = "error"  # NaN/inf in targets: error, interpolate, ffill
    # "auto" (forecasts of a target never negative in the fit data clamped at 0, the others as
    # they are); "none" (as they are); "log1p" (train on log(1 + y), forecasts never below 0);
    # "nonnegative" (forecasts clamped at 0). The last two need targets >= 0: counts, sizes.
    target_transform: str = "auto"
    fill_gaps: bool = (
        False  # reindex irregular time steps to the frequency (then `missing` applies)
    )

    # Where and how training runs (passed through to Lightning).
    accelerator: str = "auto"
    devices: Any = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    num_workers: int = 0
    # Torch threads per operation; None: the idle cores, one for a small model (forecaster.threads).
    num_threads: int | None = None
    verbose: bool = True  # progress bar and summaries

    def __post_init__(self) -> None:
        try:  # text such as "0.5" would be read character by character
            if isinstance(self.quantiles, str | bytes):
                raise TypeError
            qs = tuple(float(q) for q in self.quantiles)
        except (TypeError, ValueError):
            raise ConfigError(
                f"quantiles={self.quantiles!r} is not a list of numbers; pass e.g. (0.1, 0.5, 0.9)"
            ) from None
        object.__setattr__(self, "quantiles", qs)
        features = self.calendar_features
        if features is None:
            features = ()
        elif isinstance(features, str) and features != "auto":
            features = tuple(f.strip() for f in features.split(",") if f.strip())
        elif not isinstance(features, str):
            features = tuple(features)
        object.__setattr__(self, "calendar_features", features)
        self.validate()

    # ------------------------------------------------------------------ checks
    def validate(self) -> None:
        _positive_int(self, *(n for n in SIZE_FIELDS if getattr(self, n) is not None))
        _positive_int(self, "d_model", "n_heads", "n_layers", "n_slots", "chunk_size")
        _positive_int(self, "batch_size", "num_nodes", "pool_queries")
        if self.max_epochs is not None:
            _positive_int(self, "max_epochs")
        if self.num_threads is not None:
            _positive_int(self, "num_threads")
        _non_negative_int(self, "conv_size", "early_stopping_patience", "num_workers", "min_steps")
        _choice(self, "model", MODELS)
        _choice(self, "mixer", MIXERS)
        _choice(self, "head", HEADS)
        _choice(self, "phi", PHIS)
        _choice(self, "between", BETWEEN)
        _choice(self, "loss", LOSSES)
        _choice(self, "lr_schedule", SCHEDULES)
        _choice(self, "missing", MISSING)
        _choice(self, "target_transform", TARGET_TRANSFORMS)
        if (
            None not in (self.patch_len, self.context_length)
            and self.patch_len > self.context_length
        ):
            raise ConfigError(
                f"patch_len={self.patch_len} is longer than context_length={self.context_length}; "
                "use a shorter patch or a longer context"
            )
        if None not in (self.patch_stride, self.patch_len) and self.patch_stride > self.patch_len:
            raise ConfigError(
                f"patch_stride={self.patch_stride} > patch_len={self.patch_len} would skip time steps; "
                "use a stride at most the patch length"
            )
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"d_model={self.d_model} is not divisible by n_heads={self.n_heads}; "
                "choose d_model as a multiple of n_heads"
            )
        _in_range(self, "dropout", 0.0, 1.0, right_open=True)
        _in_range(self, "val_fraction", 0.0, 1.0, right_open=True)
        _in_range(self, "beta_init", 0.0, 1.0, left_open=True, right_open=True)
        _in_range(self, "lr_decay", 0.0, 1.0, left_open=True)
        for name in ("learning_rate", "ffn_mult"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name}={value!r} must be a positive number")
        for name in ("weight_decay", "gradient_clip"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name}={value!r} must be a non-negative number")
        if self.season_length is not None:
            _positive_int(self, "season_length")
            if self.context_length is not None and self.season_length > self.context_length:
                raise ConfigError(
                    f"season_length={self.season_length} is longer than context_length="
                    f"{self.context_length}; the context must hold at least one season"
                )
        if self.ema_decay is not None:
            _in_range(self, "ema_decay", 0.0, 1.0, left_open=True, right_open=True)
        if self.windows_per_epoch is not None:
            _positive_int(self, "windows_per_epoch")
        if self.random_state is not None and not isinstance(self.random_state, int):
            raise ConfigError(f"random_state={self.random_state!r} must be an integer or None")
        if self.calendar_features and self.calendar_features != "auto":
            unknown = [f for f in self.calendar_features if f not in CALENDAR_FEATURES]
            if unknown or len(set(self.calendar_features)) < len(self.calendar_features):
                raise ConfigError(
                    f"calendar_features={list(self.calendar_features)} must be distinct names from "
                    f"{', '.join(CALENDAR_FEATURES)}, or 'auto' (chosen by the frequency)"
                )
        _positive_int(self, "crop_tokens", "attention_window")
        _non_negative_int(self, "burn_in_tokens")
        if self.norm_window is not None:
            _non_negative_int(self, "norm_window")
        if self.streaming:
            self._check_streaming()
        if self.loss == "quantile" and self.model != "encoder":  # auto included: a point forecast
            raise ConfigError(
                f"loss='quantile' needs model='encoder' (the {self.model} baseline gives point "
                "forecasts only); use model='encoder' or a point loss such as mse"
            )
        qs = self.quantiles
        if not qs or any(not 0 < q < 1 for q in qs) or list(qs) != sorted(set(qs)):
            raise ConfigError(
                f"quantiles={list(qs)} must be distinct, increasing, and strictly between 0 and 1"
            )

    def _check_streaming(self) -> None:
        if self.model != "encoder":
            raise ConfigError(
                f"streaming=True is a way to run the encoder, and model={self.model!r} is not it; "
                "use model='encoder' (mixer 'trellis' or 'attention')"
            )
        if self.phi != "identity":
            raise ConfigError(
                f"streaming=True needs phi='identity' (exact at any split of a series), not "
                f"phi={self.phi!r}"
            )
        if None not in (self.patch_stride, self.patch_len) and self.patch_stride != self.patch_len:
            raise ConfigError(
                f"streaming=True reads patches end to end: patch_stride={self.patch_stride} must "
                f"equal patch_len={self.patch_len}; leave patch_stride unset"
            )
        if self.head != "flatten" or self.linear_path or not self.revin:
            raise ConfigError(
                "streaming=True has its own head and causal normalisation; leave head, "
                "linear_path and revin at their defaults"
            )

    # ------------------------------------------------------------------ derived
    def require_sized(self, *names: str) -> TrellisConfig:
        """This config, or ConfigError naming the sizes (of `names`, or all) still left to the
        data."""
        unset = [n for n in names or SIZE_FIELDS if getattr(self, n) is None]
        if unset:
            raise ConfigError(
                f"{', '.join(unset)} not set; give them, or let TrellisForecaster.fit choose them "
                "from the data (trellis_ts.forecaster.sizing.resolve_sizes)"
            )
        return self

    @property
    def n_patches(self) -> int:
        """Tokens per window: patches after padding the end by one stride (as PatchTST does)."""
        self.require_sized()
        return (self.context_length - self.patch_len) // self.patch_stride + 2

    @property
    def n_outputs(self) -> int:
        """Values per forecast step and channel: 1, or one per quantile."""
        return len(self.quantiles) if self.loss == "quantile" else 1

    @property
    def point_index(self) -> int:
        """Which quantile output is a quantile model's point forecast: 0.5, else the middle one."""
        qs = list(self.quantiles)
        return qs.index(0.5) if 0.5 in qs else len(qs) // 2

    # ------------------------------------------------------------------ (de)serialisation
    def params(self) -> dict[str, Any]:
        """The fields as keyword arguments (for `TrellisForecaster(**config.params())`)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """The fields as JSON-ready values."""
        features = self.calendar_features
        return self.params() | {
            "quantiles": list(self.quantiles),
            "calendar_features": features if features == "auto" else list(features),
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrellisConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown setting(s) {unknown}; valid settings are: {', '.join(sorted(known))}"
            )
        return cls(**values)

    def replace(self, **changes: Any) -> TrellisConfig:
        return dataclasses.replace(self, **changes)


def with_season_length(config: TrellisConfig, freq: str | int | None) -> TrellisConfig:
    """A seasonal naive config with its season set from the data's frequency when it has none
    (24 for hourly data); other configs as they are."""
    if config.model != "seasonal_naive" or config.season_length is not None:
        return config
    from trellis_ts.data.frequency import (
        seasonal_period,  # loads pandas: only for a fit, not at import
    )

    season = seasonal_period(freq)
    if season > config.context_length:
        raise ConfigError(
            f"the data's natural season ({season} steps at freq {freq!r}) is longer than "
            f"context_length={config.context_length}; set season_length or a longer context"
        )
    return config.replace(season_length=season)


# What a warm start may change: how training runs, not what the model is. Every other field
# (shapes, mixer, loss, quantiles, data policy of the model, ...) must match the fitted model.
WARM_START_FIELDS = frozenset(
    {
        "dropout",
        "learning_rate",
        "weight_decay",
        "lr_schedule",
        "lr_decay",
        "batch_size",
        "max_epochs",
        "min_steps",
        "early_stopping_patience",
        "val_fraction",
        "windows_per_epoch",
        "gradient_clip",
        "ema_decay",
        "random_state",
        "missing",
        "fill_gaps",
        "accelerator",
        "devices",
        "strategy",
        "num_nodes",
        "num_workers",
        "num_threads",
        "verbose",
        "beta_init",
    }
)


def model_changes(fitted: TrellisConfig, new: TrellisConfig) -> list[str]:
    """`field: old -> new` for each field outside WARM_START_FIELDS that differs."""
    return [
        f"{f.name}={getattr(fitted, f.name)!r} -> {getattr(new, f.name)!r}"
        for f in dataclasses.fields(TrellisConfig)
        if f.name not in WARM_START_FIELDS and getattr(fitted, f.name) != getattr(new, f.name)
    ]


def config_fields() -> list[dataclasses.Field]:
    """The public fields, in order (what the estimator's constructor mirrors)."""
    return list(dataclasses.fields(TrellisConfig))


def _positive_int(config: TrellisConfig, *names: str) -> None:
    for name in names:
        positive_int(getattr(config, name), name)


def _non_negative_int(config: TrellisConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ConfigError(f"{name}={value!r} must be a non-negative integer")


def _choice(config: TrellisConfig, name: str, options: tuple[str, ...]) -> None:
    value = getattr(config, name)
    if value not in options:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: {', '.join(options)}")


def _in_range(config, name, low, high, *, left_open=False, right_open=False) -> None:
    value = getattr(config, name)
    ok = isinstance(value, int | float) and not isinstance(value, bool)
    ok = ok and (value > low if left_open else value >= low)
    ok = ok and (value < high if right_open else value <= high)
    if not ok:
        left, right = "(" if left_open else "[", ")" if right_open else "]"
        raise ConfigError(f"{name}={value!r} must lie in {left}{low}, {high}{right}")


# One help sentence per field: the command line's option help (the defaults come from the class).
FIELD_HELP: dict[str, str] = {
    "prediction_length": "Steps to forecast (the horizon); none = sized to the data's frequency and length.",
    "context_length": "Past steps the model sees to make one forecast; none = sized to the data.",
    "freq": "Pandas frequency alias such as h or D, or an integer step; inferred from the data when unset.",
    "model": "Forecaster: auto (chosen on validation windows among the baselines, statsforecast's "
    "AutoETS/AutoTheta and the encoders, or their weighted ensemble), encoder (the patch encoder; "
    "see --mixer), dlinear or seasonal_naive (baselines), ets or theta (statsforecast).",
    "season_length": "Period repeated by seasonal_naive; derived from the frequency when unset.",
    "calendar_features": "Calendar inputs computed from the timestamps, known over the horizon: auto "
    f"(chosen by the frequency), none, or a comma list of {', '.join(CALENDAR_FEATURES)}.",
    "patch_len": "Time steps per patch (one patch of one channel is one token); none = from the context.",
    "patch_stride": "Steps between the starts of consecutive patches; none = half the patch.",
    "d_model": "Width of the token embeddings.",
    "n_heads": "Heads per mixer layer (d_model must be a multiple of it).",
    "n_layers": "Number of encoder blocks.",
    "ffn_mult": "Width of the feed-forward layers as a multiple of d_model.",
    "dropout": "Dropout rate during training.",
    "mixer": "Token mixer: trellis, or attention (causal softmax, the PatchTST-style baseline).",
    "head": "Forecast head: flatten (all patches -> linear) or pool (size independent of the context).",
    "pool_queries": "Learned queries of the pool head.",
    "revin": "Normalise each window and channel, then de-normalise the forecast (RevIN).",
    "linear_path": "Add a linear forecast of the (normalised) context beside the encoder's; the encoder then models what it misses.",
    "streaming": "Read each series whole, carrying the model's state, and forecast after any step; "
    "`update` then adds new rows in constant time per row (an encoder; docs: streaming).",
    "norm_window": "Streaming: steps of the trailing window of the causal normalisation (none = "
    "the context length; 0 = running statistics since the first step).",
    "crop_tokens": "Streaming training: patch tokens per crop, each with a loss.",
    "burn_in_tokens": "Streaming training: tokens read before each crop, without a loss, to warm "
    "the state.",
    "attention_window": "Streaming with mixer attention: tokens each token sees (the bounded "
    "key-value cache).",
    "n_slots": "Memory slots per head of the Trellis layer.",
    "chunk_size": "Tokens per chunk of the Trellis update: only speed for phi identity (exact for any size); for silu/tanh the stale-gradient chunk (1 = exact recurrence).",
    "phi": "Compression nonlinearity of the Trellis layer: identity (a gated delta rule, chunked exactly), silu or tanh (the paper's stale-gradient chunks).",
    "between": "Map between the Trellis layer's two passes: ln_silu, l2_silu or softmax.",
    "conv_size": "Width of the short causal convolution on queries and keys (0 turns it off).",
    "forget_gate": "Learn a forget gate (off fixes beta = 1, the no-forget-gate ablation).",
    "beta_init": "Forget gate value at initialisation, in (0, 1).",
    "loss": "Training loss: mse, mae, huber or quantile.",
    "quantiles": "Comma list of quantile levels learned when loss is quantile.",
    "learning_rate": "Peak learning rate of the optimiser.",
    "weight_decay": "Weight decay of the optimiser.",
    "lr_schedule": "Learning-rate schedule: cosine (with warm-up), exponential (times lr_decay every epoch, after warm-up) or constant.",
    "lr_decay": "Factor the exponential schedule multiplies the learning rate by every epoch, in (0, 1].",
    "batch_size": "Training windows per batch.",
    "max_epochs": "Upper limit on training epochs (early stopping may end sooner); none = at least 20, more on small data to reach --min-steps.",
    "min_steps": "Optimiser steps small data may train for (with --max-epochs none, epochs grow to allow them); early stopping waits for a quarter of them and at least 5 epochs.",
    "early_stopping_patience": "Epochs without validation improvement before training stops.",
    "val_fraction": "Fraction at the end of each series held out for early stopping.",
    "windows_per_epoch": "Draw at most this many training windows per epoch (none = all).",
    "gradient_clip": "Clip gradients to this norm (0 turns clipping off).",
    "ema_decay": "Keep an exponential moving average of the weights (this decay per step, e.g. 0.99) and validate, early-stop and forecast with it; none turns it off.",
    "random_state": "Seed that makes training repeatable (none = not seeded).",
    "missing": "What to do with NaN/inf targets: error, interpolate or ffill.",
    "target_transform": "auto (forecasts of targets never negative in the fit data are clamped at "
    "0), none (never clamped), log1p (train on log(1+y)) or nonnegative (clamp at 0; both refuse "
    "negative data).",
    "fill_gaps": "Reindex irregular time steps to the frequency (the missing policy fills them).",
    "accelerator": "Lightning accelerator: auto, cpu, gpu, mps, ...",
    "devices": "Lightning devices: auto, a count such as 2, or a list such as 0,1.",
    "strategy": "Lightning strategy: auto, ddp, ...",
    "num_nodes": "Machines to train on (Lightning num_nodes).",
    "num_workers": "Data-loader worker processes.",
    "num_threads": "Torch threads per operation; none = the idle cores (by the load average), one for a small model.",
    "verbose": "Show the progress bar and summaries.",
}
