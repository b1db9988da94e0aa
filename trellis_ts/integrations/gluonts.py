"""GluonTS integration: `TrellisEstimator`, a GluonTS estimator over the same `TrellisModel`.

    from gluonts.dataset.pandas import PandasDataset
    from trellis_ts.integrations.gluonts import TrellisEstimator

    estimator = TrellisEstimator(prediction_length=24, context_length=96, max_epochs=5)
    predictor = estimator.train(PandasDataset(dict(df)))   # a GluonTS PyTorchPredictor
    forecasts = list(predictor.predict(dataset))          # QuantileForecast, one per series

How the GluonTS conventions are met:
- One dataset entry is one series (target `[T]`). A 2-D target `[C, T]` works too: the model
  treats channels independently, so a multivariate entry is C univariate series that share
  a forecast object.
- Missing values (NaN) arrive as the observed-values mask. The model sees each unobserved value
  replaced by the last observed one (the first observed one for leading gaps); the loss skips
  unobserved targets.
- Series shorter than `context_length` are left-padded by GluonTS's `InstanceSplitter`; the
  padding is marked unobserved, so it is filled the same way.
- Scaling: RevIN inside the model normalises every window. The loss is measured in units of
  each window's mean absolute observed value, so series of different magnitudes weigh alike.
- Forecasts are `QuantileForecast`s keyed by the trained quantile levels. A point model
  (loss "mse", "mae", "huber") gives a degenerate one: its forecast under both "mean" and
  "0.5", so `Evaluator(quantiles=[0.5])` scores it.
- Covariates use GluonTS's fields: `feat_dynamic_real` (known over the horizon too: in a test
  entry it runs `prediction_length` steps past the target), `past_feat_dynamic_real` (known up
  to the forecast origin), `feat_static_real` and `feat_static_cat` (0-based codes; set
  `cardinality`, or it is read from the training data). They reach the same model inputs as
  `TrellisForecaster`'s covariates, scaled per column by the training data's mean and standard
  deviation (`trellis_ts.data.Scaler`). `calendar_features` adds calendar inputs computed from
  each entry's start and frequency.
- The prediction network is built from the config, the covariate inputs and their scaling as
  plain dicts of JSON values, so `predictor.serialize(path)` / `Predictor.deserialize(path)`
  round-trip it.

This module is the only one in trellis_ts that imports GluonTS. The file deliberately does not
use `from __future__ import annotations`: GluonTS's `@validated()` reads the annotations of
`__init__` at run time.
"""

import itertools
import tempfile
from collections.abc import Iterable, Iterator
from typing import Any

try:
    import gluonts  # noqa: F401  (first, so that a missing GluonTS is reported as such)
    from gluonts.core.component import validated
    from gluonts.dataset.common import Dataset
    from gluonts.dataset.field_names import FieldName
    from gluonts.dataset.loader import as_stacked_batches
    from gluonts.itertools import Cyclic
    from gluonts.model.forecast import Quantile
    from gluonts.model.forecast_generator import QuantileForecastGenerator
    from gluonts.torch.model.estimator import PyTorchLightningEstimator, TrainOutput
    from gluonts.torch.model.predictor import PyTorchPredictor
    from gluonts.transform import (
        AddObservedValuesIndicator,
        AsNumpyArray,
        ExpectedNumInstanceSampler,
        InstanceSampler,
        MapTransformation,
        SelectFields,
        TestSplitSampler,
        Transformation,
        ValidationSplitSampler,
        VstackFeatures,
    )
    from gluonts.transform.split import TFTInstanceSplitter
except ImportError as error:
    raise ImportError(
        f"trellis_ts.integrations.gluonts needs GluonTS with its PyTorch extras ({error}); "
        'install them with: pip install "trellis-ts[gluonts]"'
    ) from error

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import Tensor

from trellis_ts.config import TrellisConfig
from trellis_ts.data.calendar import calendar_features_for, calendar_values
from trellis_ts.data.scaling import Scaler
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.lightning_module import TrellisLightningModule, forecast_loss
from trellis_ts.nn.covariates import ModelInputs
from trellis_ts.training import trainer_settings  # also quiets Lightning's start-up noise

__all__ = ["DEFAULT_QUANTILES", "TrellisEstimator", "TrellisGluonModule", "fill_unobserved"]

DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PREDICTION_INPUT_NAMES = ["past_target", "past_observed_values"]
TRAINING_INPUT_NAMES = ["future_target", "future_observed_values"]
CALENDAR_FIELD = "trellis_calendar"  # the calendar features, before they join feat_dynamic_real


def _channels(x: Tensor) -> Tensor:
    """Univariate batches `[B, T]` as `[B, T, 1]`; multivariate `[B, T, C]` unchanged."""
    return x[..., None] if x.dim() == 2 else x


def fill_unobserved(x: Tensor, observed: Tensor) -> Tensor:
    """`x [B, L, C]` with every unobserved value (`observed == 0`) replaced by the last observed
    value before it, or by the first observed one where none comes before (leading gaps and
    GluonTS's left padding). A window with no observed value is returned as it is.
    """
    seen = observed > 0
    steps = torch.arange(x.shape[1], device=x.device).view(1, -1, 1).expand_as(x)
    last_seen = torch.where(seen, steps, -1).cummax(dim=1).values
    first_seen = seen.to(torch.uint8).argmax(dim=1, keepdim=True)  # 0 when nothing is observed
    return x.gather(1, torch.maximum(last_seen, first_seen))


def _loss_scale(x: Tensor, observed: Tensor) -> Tensor:
    """Mean absolute observed value of each window and channel, `[B, 1, C]`.

    Windows that are all zero (or unobserved) take the batch's mean scale, or 1 if every window
    is zero, so their loss stays finite.
    """
    weight = (observed > 0).to(x.dtype)
    scale = (x.abs() * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
    positive = scale > 0
    fallback = scale[positive].mean() if positive.any() else scale.new_tensor(1.0)
    return torch.where(positive, scale, fallback)


class TrellisGluonModule(TrellisLightningModule):
    """The GluonTS prediction network and training system around a `TrellisModel`.

    `forward(past_target [B, L] or [B, L, C], past_observed_values, same shape, **covariates)`
    returns `((out,), None, None)`, the layout `QuantileForecastGenerator` reads, with `out`
    `[B, H, K]` (or `[B, H, C, K]`): the K trained quantiles, or the point forecast twice
    ("mean", "0.5"). The covariate fields are GluonTS's (`ModelInputs` names them); `scaling`
    maps each real-valued field to the `Scaler.to_dict()` of its columns, and categorical codes
    are shifted by one (the model keeps code 0 for an unknown category). Optimiser, schedule
    and the training step are `TrellisLightningModule`'s. Every argument is plain JSON values
    (`TrellisConfig.to_dict()`, `ModelInputs.to_dict()`), which GluonTS's serde writes and reads
    back to rebuild the network.
    """

    @validated()
    def __init__(
        self, config: dict, inputs: dict | None = None, scaling: dict | None = None
    ) -> None:
        super().__init__(TrellisConfig.from_dict(config), ModelInputs(**(inputs or {})))
        self.scalers = {k: Scaler.from_dict(v) for k, v in (scaling or {}).items()}

    def _covariates(self, given: dict[str, Tensor | None]) -> dict[str, Tensor]:
        out = {}
        for name in self.model.inputs.fields:
            value = given.get(name)
            if value is None:
                raise DataError(f"the model was trained with {name}; give every entry that field")
            if name == "feat_static_cat":
                cards = value.new_tensor(self.model.inputs.feat_static_cat)
                value = torch.where((value >= 0) & (value < cards), value + 1, 0)
            elif name in self.scalers:
                scaler, value = self.scalers[name], value.to(self.dtype)
                k = len(scaler)  # calendar columns come after the user's and are not scaled
                mean, scale = (value.new_tensor(a) for a in (scaler.mean, scaler.scale))
                value = torch.cat([(value[..., :k] - mean) / scale, value[..., k:]], dim=-1)
            out[name] = value
        return out

    def forecast(self, past_target: Tensor, past_observed_values: Tensor, **covariates) -> Tensor:
        """`[B, H, C]`, or `[B, H, C, Q]` for a quantile model, in the data's units."""
        x = fill_unobserved(_channels(past_target).to(self.dtype), _channels(past_observed_values))
        y = self.model(x, **self._covariates(covariates))
        return y

    def forward(self, past_target: Tensor, past_observed_values: Tensor,
                past_feat_dynamic_real: Tensor | None = None, feat_dynamic_real: Tensor | None = None,
                feat_static_real: Tensor | None = None, feat_static_cat: Tensor | None = None):  # fmt: skip
        out = self.forecast(past_target, past_observed_values,
                            past_feat_dynamic_real=past_feat_dynamic_real,
                            feat_dynamic_real=feat_dynamic_real, feat_static_real=feat_static_real,
                            feat_static_cat=feat_static_cat)  # fmt: skip
        if out.dim() == 3:  # a point forecast, as the "mean" and "0.5" keys
            out = torch.stack([out, out], dim=-1)
        if past_target.dim() == 2:
            out = out.squeeze(2)
        return (out,), None, None

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The config's loss over the observed future values, in units of each window's scale."""
        covariates = {k: batch.get(k) for k in self.model.inputs.fields}
        pred = self.forecast(batch["past_target"], batch["past_observed_values"], **covariates)
        past = _channels(batch["past_target"]).to(pred.dtype)
        past_observed = _channels(batch["past_observed_values"])
        target = _channels(batch["future_target"]).to(pred.dtype)
        observed = _channels(batch["future_observed_values"]) > 0
        if not observed.any():  # nothing to learn from (zero loss keeps the graph intact)
            return pred.sum() * 0.0
        scale = _loss_scale(past, past_observed).expand_as(target)[observed]
        pred, target = pred[observed], target[observed]  # [N] or [N, Q], and [N]
        pred = pred / (scale[:, None] if pred.dim() == 2 else scale)
        return forecast_loss(pred, target / scale, self.config)

    def log_loss(self, name: str, loss: Tensor, batch: dict[str, Tensor]) -> None:
        # GluonTS's estimator keeps the checkpoint with the lowest epoch-level "train_loss".
        self.log(f"{name}_loss", loss, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=batch["past_target"].shape[0], sync_dist=name == "val")  # fmt: skip


class _EpochBatches:
    """`num_batches` batches per epoch from an endless stream, with the length Lightning needs
    to size the learning-rate schedule."""

    def __init__(self, batches: Iterable, num_batches: int) -> None:
        self.batches = batches
        self.num_batches = num_batches

    def __iter__(self) -> Iterator:
        return itertools.islice(iter(self.batches), self.num_batches)

    def __len__(self) -> int:
        return self.num_batches


class AddCalendarFeatures(MapTransformation):
    """Adds ``trellis_calendar`` ``[K, T]`` (``T + prediction_length`` for prediction): the
    calendar features of each time step, from the entry's start period."""

    @validated()
    def __init__(self, features: list, prediction_length: int) -> None:
        self.features = list(features)
        self.prediction_length = prediction_length

    def map_transform(self, data: dict, is_train: bool) -> dict:
        length = np.shape(data[FieldName.TARGET])[-1] + (0 if is_train else self.prediction_length)
        times = pd.period_range(data[FieldName.START], periods=length).to_timestamp()
        data[CALENDAR_FIELD] = calendar_values(times, self.features).T.astype(np.float32)
        return data


class TrellisEstimator(PyTorchLightningEstimator):
    """GluonTS estimator for the Trellis forecaster; `train(dataset)` returns a `PyTorchPredictor`.

    Parameters
    ----------
    prediction_length, context_length, freq
        As in `TrellisConfig` (`context_length=None` takes its default). GluonTS reads each
        series' frequency from its start period; `freq` is recorded in the config only.
    num_feat_dynamic_real, num_past_feat_dynamic_real, num_feat_static_real, cardinality
        The covariates the entries carry (GluonTS's `feat_dynamic_real`, `past_feat_dynamic_real`,
        `feat_static_real`, and the number of categories of each `feat_static_cat`); None reads
        them from the training data.
    num_batches_per_epoch
        Training batches per epoch, drawn from the series at random (GluonTS style).
    trainer_kwargs
        Extra `lightning.pytorch.Trainer` arguments; they override the ones derived from the
        config (`max_epochs`, `gradient_clip`, `accelerator`, `devices`, `strategy`,
        `num_nodes`, `verbose`). Without a `default_root_dir`, each training run writes its
        checkpoints to a fresh temporary directory that is removed afterwards. (GluonTS adds its
        own ModelCheckpoint, so `enable_checkpointing=False` is not allowed.)
    train_sampler, validation_sampler
        GluonTS instance samplers; by default every training window has at least one patch of
        observed history and a full horizon, and validation uses the end of each series.
    **config
        Any other `TrellisConfig` field (`d_model`, `batch_size`, `max_epochs`,
        `calendar_features`, ...). This estimator defaults to `loss="quantile"` with quantiles
        0.1, 0.2, ..., 0.9. Used by the GluonTS path: the model and training fields,
        `batch_size`, `early_stopping_patience` (when `train` gets validation data),
        `calendar_features` and `random_state`; the data-policy fields (`missing`, `fill_gaps`,
        `val_fraction`, `windows_per_epoch`, `num_workers`) belong to `TrellisForecaster` and
        are ignored here, and `model` must stay "encoder".

    Settings are validated on construction (GluonTS's convention) and a bad one raises
    `trellis_ts.errors.ConfigError` naming it.
    """

    @validated()
    def __init__(
        self,
        prediction_length: int,
        context_length: int | None = None,
        freq: str | None = None,
        num_feat_dynamic_real: int | None = None,
        num_past_feat_dynamic_real: int | None = None,
        num_feat_static_real: int | None = None,
        cardinality: list[int] | None = None,
        num_batches_per_epoch: int = 50,
        trainer_kwargs: dict[str, Any] | None = None,
        train_sampler: InstanceSampler | None = None,
        validation_sampler: InstanceSampler | None = None,
        **config: Any,
    ) -> None:
        fields = {"loss": "quantile", "quantiles": DEFAULT_QUANTILES, **config}
        fields |= {"prediction_length": prediction_length, "freq": freq}
        if context_length is not None:
            fields["context_length"] = context_length
        self.config = TrellisConfig.from_dict(fields)
        c = self.config
        if c.model != "encoder":
            raise ConfigError(
                f"model={c.model!r}: TrellisEstimator trains the Trellis encoder only; use "
                "model='encoder', or TrellisForecaster for the baselines"
            )
        defaults = trainer_settings(c) | {"enable_model_summary": c.verbose}
        super().__init__(trainer_kwargs={**defaults, **(trainer_kwargs or {})})
        self.prediction_length = c.prediction_length
        self.context_length = c.context_length
        self.batch_size = c.batch_size
        self.num_batches_per_epoch = num_batches_per_epoch
        self.declared = {"feat_dynamic_real": num_feat_dynamic_real,
                         "past_feat_dynamic_real": num_past_feat_dynamic_real,
                         "feat_static_real": num_feat_static_real,
                         "feat_static_cat": None if cardinality is None else tuple(cardinality)}  # fmt: skip
        self.train_sampler = train_sampler or ExpectedNumInstanceSampler(
            num_instances=1.0, min_past=c.patch_len, min_future=c.prediction_length
        )
        self.validation_sampler = validation_sampler or ValidationSplitSampler(
            min_future=c.prediction_length
        )
        # What the training data decides (`_describe`): the model's inputs, their scaling and
        # the calendar features of its frequency.
        self.inputs, self.scaling, self.calendar = ModelInputs(), {}, ()

    @property
    def forecast_keys(self) -> list[str]:
        """The `QuantileForecast` keys of this model's forecasts."""
        if self.config.loss != "quantile":
            return ["mean", "0.5"]
        return [Quantile.parse(q).name for q in self.config.quantiles]

    @property
    def input_names(self) -> list[str]:
        return PREDICTION_INPUT_NAMES + list(self.inputs.fields)

    # ------------------------------------------------------------------ GluonTS hooks
    def create_transformation(self) -> Transformation:
        fields = self.inputs.fields
        chain = SelectFields(
            [FieldName.ITEM_ID, FieldName.INFO, FieldName.START, FieldName.TARGET, *fields],
            allow_missing=True,
        ) + AddObservedValuesIndicator(
            target_field=FieldName.TARGET, output_field=FieldName.OBSERVED_VALUES
        )
        for name in fields:
            dtype, ndim = (np.int64, 1) if name == "feat_static_cat" else (
                np.float32, 1 if name == "feat_static_real" else 2)  # fmt: skip
            chain += AsNumpyArray(field=name, expected_ndim=ndim, dtype=dtype)
        if self.calendar:
            chain += AddCalendarFeatures(list(self.calendar), self.prediction_length)
            user = (
                [FieldName.FEAT_DYNAMIC_REAL]
                if self.inputs.feat_dynamic_real > len(self.calendar)
                else []
            )
            chain += VstackFeatures(output_field=FieldName.FEAT_DYNAMIC_REAL,
                                    input_fields=[*user, CALENDAR_FIELD])  # fmt: skip
        return chain

    def create_lightning_module(self) -> TrellisGluonModule:
        return TrellisGluonModule(config=self.config.to_dict(), inputs=self.inputs.to_dict(),
                                  scaling=self.scaling)  # fmt: skip

    def _create_instance_splitter(self, mode: str) -> TFTInstanceSplitter:
        sampler = {
            "training": self.train_sampler,
            "validation": self.validation_sampler,
            "test": TestSplitSampler(),
        }[mode]
        return TFTInstanceSplitter(
            instance_sampler=sampler,
            past_length=self.context_length,
            future_length=self.prediction_length,
            observed_value_field=FieldName.OBSERVED_VALUES,
            time_series_fields=[FieldName.FEAT_DYNAMIC_REAL]
            if self.inputs.feat_dynamic_real
            else [],
            past_time_series_fields=(
                [FieldName.PAST_FEAT_DYNAMIC_REAL] if self.inputs.past_feat_dynamic_real else []
            ),
            dummy_value=0.0,
        )

    def create_training_data_loader(
        self, data: Dataset, module, shuffle_buffer_length: int | None = None, **kwargs
    ) -> Iterable:
        instances = self._create_instance_splitter("training").apply(
            Cyclic(data).stream(), is_train=True
        )
        batches = as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            shuffle_buffer_length=shuffle_buffer_length,
            field_names=self.input_names + TRAINING_INPUT_NAMES,
            output_type=torch.tensor,
        )
        return _EpochBatches(batches, self.num_batches_per_epoch)

    def create_validation_data_loader(self, data: Dataset, module, **kwargs) -> Iterable:
        instances = self._create_instance_splitter("validation").apply(data, is_train=True)
        return as_stacked_batches(
            instances,
            batch_size=self.batch_size,
            field_names=self.input_names + TRAINING_INPUT_NAMES,
            output_type=torch.tensor,
        )

    def create_predictor(self, transformation: Transformation, module) -> PyTorchPredictor:
        return PyTorchPredictor(
            input_names=self.input_names,
            prediction_net=module,
            batch_size=self.batch_size,
            prediction_length=self.prediction_length,
            input_transform=transformation + self._create_instance_splitter("test"),
            forecast_generator=QuantileForecastGenerator(quantiles=self.forecast_keys),
            device="auto",
        )

    def train_model(
        self,
        training_data: Dataset,
        validation_data: Dataset | None = None,
        from_predictor: PyTorchPredictor | None = None,
        shuffle_buffer_length: int | None = None,
        cache_data: bool = False,
        ckpt_path: str | None = None,
        **kwargs,
    ) -> TrainOutput:
        """GluonTS's training, plus: a check that some series is long enough (an endless wait
        otherwise), the covariates read from the data (`_describe`), seeding from
        `random_state`, early stopping on validation data, and a temporary checkpoint
        directory unless `trainer_kwargs` names one."""
        self._check_long_enough(training_data)
        self._describe(training_data)
        config = self.config
        if config.random_state is not None:
            pl.seed_everything(config.random_state, workers=True, verbose=False)
        saved = self.trainer_kwargs  # GluonTS pops "callbacks" from it: work on a copy
        trainer_kwargs = dict(saved)
        callbacks = list(trainer_kwargs.get("callbacks", []))
        if validation_data is not None and config.early_stopping_patience > 0:
            callbacks.append(EarlyStopping("val_loss", patience=config.early_stopping_patience))
        trainer_kwargs["callbacks"] = callbacks
        try:
            with tempfile.TemporaryDirectory(prefix="trellis-ts-gluonts-") as root:
                trainer_kwargs.setdefault("default_root_dir", root)
                self.trainer_kwargs = trainer_kwargs
                return super().train_model(
                    training_data,
                    validation_data,
                    from_predictor=from_predictor,
                    shuffle_buffer_length=shuffle_buffer_length,
                    cache_data=cache_data,
                    ckpt_path=ckpt_path,
                )
        finally:
            self.trainer_kwargs = saved

    def _describe(self, data: Dataset) -> None:
        """Read the covariates of the training data: their widths (where not declared), the
        categories of `feat_static_cat`, each real field's per-column `Scaler`, and the calendar
        features of the data's frequency."""
        columns: dict[str, list[np.ndarray]] = {}
        for entry in data:
            for name in ("feat_dynamic_real", "past_feat_dynamic_real", "feat_static_real",
                         "feat_static_cat"):  # fmt: skip
                if entry.get(name) is not None:
                    value = np.asarray(entry[name], dtype=np.float64)
                    columns.setdefault(name, []).append(value.reshape(len(value), -1))
            start = entry[FieldName.START]
        widths = {k: len(v[0]) for k, v in columns.items()}
        dims = {}
        for name in ("feat_dynamic_real", "past_feat_dynamic_real", "feat_static_real"):
            declared = self.declared[name]
            dims[name] = widths.get(name, 0) if declared is None else declared
            if dims[name] != widths.get(name, 0):
                raise DataError(
                    f"the estimator declares {dims[name]} {name} but the training data has "
                    f"{widths.get(name, 0)}; declare what the entries carry"
                )
        cards = self.declared["feat_static_cat"]
        if cards is None:
            cards = tuple(int(c) + 1 for c in np.concatenate(columns["feat_static_cat"], axis=1).max(1)) \
                if "feat_static_cat" in columns else ()  # fmt: skip
        self.calendar = calendar_features_for(self.config.calendar_features, start.freqstr)
        self.inputs = ModelInputs(
            past_feat_dynamic_real=dims["past_feat_dynamic_real"],
            feat_dynamic_real=dims["feat_dynamic_real"] + len(self.calendar),
            feat_static_real=dims["feat_static_real"],
            feat_static_cat=cards,
        )
        self.scaling = {
            name: Scaler.fit([f"{name}_{k}" for k in range(dims[name])],
                             np.concatenate(columns[name], axis=1)).to_dict()
            for name in ("feat_dynamic_real", "past_feat_dynamic_real", "feat_static_real")
            if dims[name]
        }  # fmt: skip

    def _check_long_enough(self, data: Dataset) -> None:
        needed = max(
            getattr(self.train_sampler, "min_past", 0)
            + getattr(self.train_sampler, "min_future", 0),
            1,
        )
        for entry in data:
            if np.shape(entry[FieldName.TARGET])[-1] >= needed:
                return
        raise DataError(
            f"no training series has the {needed} time steps one training window needs "
            "(the training sampler's min_past + min_future; by default patch_len + "
            "prediction_length); pass longer series or lower prediction_length / patch_len"
        )
