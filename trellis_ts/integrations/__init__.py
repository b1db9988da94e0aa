"""Bridges to other forecasting libraries; each needs its own optional extra.

- `trellis_ts.integrations.gluonts.estimator`: `TrellisEstimator`, a GluonTS estimator
  (`pip install "trellis-ts[gluonts]"`).

Nothing is imported here, so `import trellis_ts.integrations` never pulls in an optional library.
"""
