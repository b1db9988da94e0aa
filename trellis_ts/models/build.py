"""`build_model`: the one factory of the networks a `ModelSpec` describes."""

from __future__ import annotations

from torch import nn

from trellis_ts.models.baselines import DLinear, SeasonalNaive
from trellis_ts.models.covariates import ModelInputs
from trellis_ts.models.encoder import TrellisModel
from trellis_ts.models.spec import ModelSpec
from trellis_ts.models.streaming import StreamingModel

__all__ = ["build_model"]


def build_model(spec: ModelSpec, inputs: ModelInputs | None = None) -> nn.Module:
    """The network `spec` describes, for the given covariate inputs: the Trellis/attention
    encoder, its streaming decoder, or a baseline."""
    if not isinstance(spec, ModelSpec):
        raise TypeError(
            f"build_model takes a ModelSpec, not {type(spec).__name__}; from a TrellisConfig use "
            "trellis_ts.forecaster.sizing.model_spec(config)"
        )
    inputs = inputs or ModelInputs()
    if spec.model == "dlinear":
        return DLinear(spec, inputs)
    if spec.model == "seasonal_naive":
        if inputs.any:
            raise ValueError("the seasonal naive baseline reads no covariates")
        return SeasonalNaive(spec)
    if spec.streaming:
        return StreamingModel(spec, inputs)
    return TrellisModel(spec, inputs)
