"""GluonTS integration (`pip install "trellis-ts[gluonts]"`): `TrellisEstimator` (`estimator`)
trains the same `TrellisModel` through GluonTS's Lightning module (`lightning_module`)."""

from trellis_ts.integrations.gluonts.estimator import (
    DEFAULT_QUANTILES,
    TrellisEstimator,
    TrellisGluonModule,
    fill_unobserved,
)

__all__ = ["DEFAULT_QUANTILES", "TrellisEstimator", "TrellisGluonModule", "fill_unobserved"]
