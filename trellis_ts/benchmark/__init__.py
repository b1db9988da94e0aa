"""The long-term-forecasting benchmark protocol: the datasets it knows (`registry`) and the
runner that fits, scores and records every row (`runner`). Research tooling for
`trellis-ts benchmark` and `benchmarks/`; forecasting never needs it."""

from trellis_ts.benchmark.runner import *  # noqa: F403
from trellis_ts.benchmark.runner import __all__  # noqa: F401
