"""TrellisConfig: validation and its link to the estimator's parameters."""

from __future__ import annotations

import inspect

import pytest

from trellis_ts.errors import ConfigError
from trellis_ts.forecaster.config import TrellisConfig, config_fields
from trellis_ts.forecaster.estimator import TrellisForecaster


def test_estimator_parameters_are_the_config_fields_with_the_same_defaults():
    params = inspect.signature(TrellisForecaster.__init__).parameters
    names = [n for n in params if n != "self"]
    assert names == [f.name for f in config_fields()]
    defaults = TrellisConfig()
    for name in names:
        assert params[name].default == getattr(defaults, name), name


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"context_length": 0}, "context_length=0"),
        ({"mixer": "lstm"}, "mixer='lstm'"),
        ({"d_model": 30, "n_heads": 4}, "not divisible"),
        ({"patch_len": 400, "context_length": 336}, "patch_len=400"),
        ({"prediction_length": 0}, "prediction_length=0"),
        ({"target_transform": "log"}, "target_transform='log'"),
        ({"dropout": 1.0}, "dropout"),
        ({"quantiles": (0.9, 0.1)}, "quantiles"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"phi": "relu"}, "phi='relu'"),
        ({"missing": "drop"}, "missing='drop'"),
        ({"model": "dlinear", "loss": "quantile"}, "needs model='encoder'"),
    ],
)
def test_invalid_values_name_the_field(change, phrase):
    with pytest.raises(ConfigError, match=phrase.replace("(", r"\(")):
        TrellisConfig(**change)


def test_round_trip_through_dict():
    config = TrellisConfig(context_length=96, loss="quantile", quantiles=(0.05, 0.5, 0.95))
    assert TrellisConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ConfigError, match="unknown setting"):
        TrellisConfig.from_dict({"context_lenght": 3})


def test_sizes_default_to_none_and_a_model_needs_them():
    config = TrellisConfig()
    assert [
        config.prediction_length,
        config.context_length,
        config.patch_len,
        config.patch_stride,
    ] == [None] * 4
    with pytest.raises(ConfigError, match="prediction_length, context_length, patch_len"):
        config.require_sized()
    with pytest.raises(ConfigError, match="prediction_length, context_length, patch_len"):
        config.n_patches  # noqa: B018
    sized = config.replace(prediction_length=96, context_length=336, patch_len=16, patch_stride=8)
    assert sized.require_sized() is sized and sized.n_patches == 42


def test_op_choices_and_defaults_are_the_configs():
    # One home (ops/trellis/choices.py, torch-free): the op's defaults are the forecaster's.
    import inspect

    from trellis_ts.forecaster import config
    from trellis_ts.ops.trellis import BETWEEN, PHIS, chunk_trellis, naive_trellis

    assert config.PHIS is PHIS and config.BETWEEN is BETWEEN
    defaults = TrellisConfig()
    for form in (chunk_trellis, naive_trellis):
        params = inspect.signature(form).parameters
        assert params["phi"].default == defaults.phi
        assert params["chunk_size"].default == defaults.chunk_size
        assert params["f"].default == defaults.between


@pytest.mark.parametrize("value", [0, -3, 2.0, True, "4", None])
def test_positive_int_refuses_what_is_not_a_positive_integer_and_names_it(value):
    from trellis_ts.errors import positive_int

    with pytest.raises(
        ConfigError, match=rf"^n_trials={value!r} must be a positive integer, e\.g\. 20\.$"
    ):
        positive_int(value, "n_trials", example=20)


def test_positive_int_takes_numpy_integers_as_ints():
    import numpy as np

    from trellis_ts.errors import positive_int

    assert positive_int(np.int64(7), "n") == 7 and type(positive_int(np.int32(7), "n")) is int
