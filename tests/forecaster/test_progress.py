"""Progress a person can follow: a bar on a terminal, a line per epoch (numbered from 1, with
the validation loss) when stderr is a log."""

from __future__ import annotations

import io
import re

from tests.conftest import TINY
from trellis_ts import TrellisForecaster
from trellis_ts.data import make_demo_frame
from trellis_ts.forecaster.progress import EpochBar, EpochLines, progress_callbacks


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_terminal_gets_the_bar_a_log_gets_lines_and_quiet_gets_nothing():
    bar, callbacks = progress_callbacks(True, Terminal())
    assert bar and isinstance(callbacks[0], EpochBar)
    bar, callbacks = progress_callbacks(True, io.StringIO())
    assert not bar and isinstance(callbacks[0], EpochLines)
    assert progress_callbacks(False, Terminal()) == (False, [])


def test_a_fit_logs_one_line_per_epoch_from_one_with_the_validation_loss(capsys):
    params = TINY | {"max_epochs": 2, "verbose": True, "early_stopping_patience": 5}
    TrellisForecaster(**params).fit(make_demo_frame(n_steps=200, n_channels=1))
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    assert [line.split(",")[0] for line in lines] == ["epoch 1/2", "epoch 2/2"]
    assert all(re.search(r"val loss [0-9.e+-]+", line) for line in lines)
    assert lines[0].endswith("(best)")
