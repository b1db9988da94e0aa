"""Forecasting networks: the patch encoder (`encoder`), the baselines (`baselines`), how
covariates enter them (`covariates`), and `build_model`, the one factory."""

from trellis_ts.models.encoder import TrellisModel, build_model

__all__ = ["TrellisModel", "build_model"]
