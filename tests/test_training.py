"""The training system's learning-rate schedules."""

from __future__ import annotations

import pytest

from trellis_ts.config import TrellisConfig
from trellis_ts.lightning_module import TrellisLightningModule


class _Trainer:
    def __init__(self, steps: int) -> None:
        self.estimated_stepping_batches = steps


def _factors(steps: int, **settings) -> list[float]:
    config = TrellisConfig(context_length=32, prediction_length=8, patch_len=8, d_model=8,
                           n_heads=2, n_slots=4, **settings)  # fmt: skip
    module = TrellisLightningModule(config)
    module.trainer = _Trainer(steps)
    scheduler = module.configure_optimizers()["lr_scheduler"]["scheduler"]
    return [scheduler.lr_lambdas[0](step) for step in range(steps)]


def test_exponential_schedule_multiplies_by_lr_decay_every_epoch():
    # 4 epochs of 100 steps; warm-up is 20 steps (a twentieth), then 0.5 per epoch.
    factors = _factors(400, max_epochs=4, lr_schedule="exponential", lr_decay=0.5)
    assert factors[19] == pytest.approx(1.0)
    assert factors[20 + 100] == pytest.approx(0.5) and factors[20 + 200] == pytest.approx(0.25)


def test_cosine_schedule_warms_up_then_decays_to_five_percent():
    factors = _factors(400, max_epochs=4)
    assert factors[0] < factors[19] == pytest.approx(1.0)
    assert factors[-1] == pytest.approx(0.05, abs=1e-3) and min(factors[20:]) >= 0.05


def test_lr_decay_outside_its_range_is_refused():
    from trellis_ts.errors import ConfigError

    with pytest.raises(ConfigError, match="lr_decay"):
        TrellisConfig(lr_decay=0.0)
