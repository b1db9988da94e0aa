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

This module and the prediction network's, `gluonts_lightning`, are the only ones in trellis_ts
that import GluonTS. Neither uses `from __future__ import annotations`: GluonTS's `@validated()`
reads the annotations of `__init__` at run time.
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
        f"trellis_ts.integrations.gluonts.estimator needs GluonTS with its PyTorch extras ({error}); "
        'install them with: pip install "trellis-ts[gluonts]"'
    ) from error

import lightning.pytorch as pl
import numpy as np
import pandas as pd
import torch
from lightning.pytorch.callbacks import EarlyStopping

from trellis_ts.data.features.calendar import calendar_features_for, calendar_values
from trellis_ts.data.features.scaling import Scaler
from trellis_ts.errors import ConfigError, DataError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.sizing import default_sizes
from trellis_ts.forecaster.training import (
    trainer_settings,  # also quiets Lightning's start-up noise
)
from trellis_ts.integrations.gluonts.lightning_module import TrellisGluonModule, fill_unobserved
from trellis_ts.models.covariates import ModelInputs

__all__ = ["DEFAULT_QUANTILES", "TrellisEstimator", "TrellisGluonModule", "fill_unobserved"]

DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
PREDICTION_INPUT_NAMES = ["past_target", "past_observed_values"]
TRAINING_INPUT_NAMES = ["future_target", "future_observed_values"]
CALENDAR_FIELD = "trellis_calendar"  # the calendar features, before they join feat_dynamic_real


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
        As in `TrellisConfig`. GluonTS gives no data before `train`, so `context_length=None`
        and unset patches take the fixed sizes `trellis_ts.forecaster.sizing.default_sizes` gives without
        a frequency: 336 and 16/8. GluonTS reads each series' frequency from its start period;
        `freq` is recorded in the config only.
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
        fields = {
            "loss": "quantile",
            "quantiles": DEFAULT_QUANTILES,
            "target_transform": "none",
            **config,
        }
        fields |= {"prediction_length": prediction_length, "freq": freq}
        if context_length is not None:
            fields["context_length"] = context_length
        self.config = default_sizes(TrellisConfig.from_dict(fields))
        c = self.config
        if c.target_transform != "none":
            raise ConfigError(
                f"target_transform={c.target_transform!r} belongs to TrellisForecaster; the "
                "GluonTS path trains on the series as given (leave it at 'none')"
            )
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
        self.declared = {
            "feat_dynamic_real": num_feat_dynamic_real,
            "past_feat_dynamic_real": num_past_feat_dynamic_real,
            "feat_static_real": num_feat_static_real,
            "feat_static_cat": None if cardinality is None else tuple(cardinality),
        }
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
            dtype, ndim = (
                (np.int64, 1)
                if name == "feat_static_cat"
                else (np.float32, 1 if name == "feat_static_real" else 2)
            )
            chain += AsNumpyArray(field=name, expected_ndim=ndim, dtype=dtype)
        if self.calendar:
            chain += AddCalendarFeatures(list(self.calendar), self.prediction_length)
            user = (
                [FieldName.FEAT_DYNAMIC_REAL]
                if self.inputs.feat_dynamic_real > len(self.calendar)
                else []
            )
            chain += VstackFeatures(
                output_field=FieldName.FEAT_DYNAMIC_REAL, input_fields=[*user, CALENDAR_FIELD]
            )
        return chain

    def create_lightning_module(self) -> TrellisGluonModule:
        return TrellisGluonModule(
            config=self.config.to_dict(), inputs=self.inputs.to_dict(), scaling=self.scaling
        )

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
            for name in (
                "feat_dynamic_real",
                "past_feat_dynamic_real",
                "feat_static_real",
                "feat_static_cat",
            ):
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
            cards = (
                tuple(int(c) + 1 for c in np.concatenate(columns["feat_static_cat"], axis=1).max(1))
                if "feat_static_cat" in columns
                else ()
            )
        self.calendar = calendar_features_for(self.config.calendar_features, start.freqstr)
        self.inputs = ModelInputs(
            past_feat_dynamic_real=dims["past_feat_dynamic_real"],
            feat_dynamic_real=dims["feat_dynamic_real"] + len(self.calendar),
            feat_static_real=dims["feat_static_real"],
            feat_static_cat=cards,
        )
        self.scaling = {
            name: Scaler.fit(
                [f"{name}_{k}" for k in range(dims[name])], np.concatenate(columns[name], axis=1)
            ).to_dict()
            for name in ("feat_dynamic_real", "past_feat_dynamic_real", "feat_static_real")
            if dims[name]
        }

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
