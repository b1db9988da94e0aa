"""The long-term-forecasting benchmark: the datasets it knows (`registry`), the protocol's splits,
windows and scores (`protocol`), the runner that fits and records every row (`runner`), and
the records and tables (`results`). Research tooling for `trellis-ts benchmark` and
`benchmarks/`; forecasting never needs it."""

from trellis_ts.benchmark.protocol import (
    FEATURES,
    evaluate_windows,
    prepare_splits,
    split_borders,
    split_windows,
)
from trellis_ts.benchmark.results import mean_std, read_results, render_table, row_key
from trellis_ts.benchmark.runner import MODEL_CHOICES, load_config, resolve_config, run_benchmark

__all__ = [
    "FEATURES",
    "MODEL_CHOICES",
    "evaluate_windows",
    "load_config",
    "mean_std",
    "prepare_splits",
    "read_results",
    "render_table",
    "resolve_config",
    "row_key",
    "run_benchmark",
    "split_borders",
    "split_windows",
]
