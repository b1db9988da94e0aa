"""Import paths of 0.1.0 that moved in 0.2.0: they keep working, with a DeprecationWarning,
until 0.3.0.

One finder answers for every old name by importing the new module and handing it over, so an
old import, a pickled reference or a `mock.patch` target all reach the one live module (no
copies, no shim files in the tree).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

MOVED = {
    "trellis_ts.baselines": "trellis_ts.models.baselines",
    "trellis_ts.cli_options": "trellis_ts.cli.app",
    "trellis_ts.cli_outputs": "trellis_ts.cli.outputs",
    "trellis_ts.cli_report": "trellis_ts.cli.report",
    "trellis_ts.cli_research": "trellis_ts.cli.research",
    "trellis_ts.config": "trellis_ts.forecaster.config",
    "trellis_ts.conformal": "trellis_ts.forecaster.conformal",
    "trellis_ts.data.calendar": "trellis_ts.data.features.calendar",
    "trellis_ts.data.columns": "trellis_ts.data.io.columns",
    "trellis_ts.data.covariates": "trellis_ts.data.features.covariates",
    "trellis_ts.data.csv": "trellis_ts.data.io.csv",
    "trellis_ts.data.dates": "trellis_ts.data.io.dates",
    "trellis_ts.data.frames": "trellis_ts.data.io.frames",
    "trellis_ts.data.future": "trellis_ts.data.features.future",
    "trellis_ts.data.inputs": "trellis_ts.forecaster.inputs",
    "trellis_ts.data.layout": "trellis_ts.data.io.layout",
    "trellis_ts.data.registry": "trellis_ts.benchmark.registry",
    "trellis_ts.data.scaling": "trellis_ts.data.features.scaling",
    "trellis_ts.data.timegrid": "trellis_ts.data.io.timegrid",
    "trellis_ts.data.transforms": "trellis_ts.data.features.transforms",
    "trellis_ts.data.writing": "trellis_ts.data.io.writing",
    "trellis_ts.estimator": "trellis_ts.forecaster.estimator",
    "trellis_ts.evaluation": "trellis_ts.forecaster.backtest",
    "trellis_ts.integrations.gluonts_lightning": "trellis_ts.integrations.gluonts.lightning_module",
    "trellis_ts.lightning_module": "trellis_ts.forecaster.lightning_module",
    "trellis_ts.model": "trellis_ts.models.encoder",
    "trellis_ts.nn": "trellis_ts.modules",
    "trellis_ts.nn.blocks": "trellis_ts.modules.blocks",
    "trellis_ts.nn.covariates": "trellis_ts.models.covariates",
    "trellis_ts.nn.fused": "trellis_ts.modules.fused",
    "trellis_ts.nn.heads": "trellis_ts.modules.heads",
    "trellis_ts.nn.patching": "trellis_ts.modules.patching",
    "trellis_ts.nn.revin": "trellis_ts.modules.revin",
    "trellis_ts.persistence": "trellis_ts.forecaster.persistence",
    "trellis_ts.sizing": "trellis_ts.forecaster.sizing",
    "trellis_ts.training": "trellis_ts.forecaster.training",
    "trellis_ts.tuning_space": "trellis_ts.tuning.space",
    "trellis_ts.warm_start": "trellis_ts.forecaster.warm_start",
}


class MovedFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path=None, target=None):
        if fullname in MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = MOVED[spec.name]
        warnings.warn(
            f"{spec.name} moved to {new} in trellis-ts 0.2.0; the old path goes in 0.3.0",
            DeprecationWarning,
            stacklevel=2,
        )
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """The new module ran already: nothing to execute."""


def install() -> None:
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
