"""trellis-ts: time-series forecasting with Trellis attention (a fixed, learned key-value memory)."""

from __future__ import annotations

from trellis_ts._version import __version__

__all__ = ["TrellisConfig", "TrellisForecaster", "__version__"]

from trellis_ts import _moved

_moved.install()  # 0.1.0's module paths (trellis_ts.estimator, ...) keep working until 0.3.0


def __getattr__(name: str):
    # Lazy: `import trellis_ts` stays light (the CLI's --help should not wait for Lightning).
    if name == "TrellisForecaster":
        from trellis_ts.forecaster.estimator import TrellisForecaster

        return TrellisForecaster
    if name == "TrellisConfig":
        from trellis_ts.forecaster.config import TrellisConfig

        return TrellisConfig
    raise AttributeError(f"module 'trellis_ts' has no attribute {name!r}")
