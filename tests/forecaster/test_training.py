"""The training system's learning-rate schedules."""

from __future__ import annotations

import pytest

from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.lightning_module import TrellisLightningModule


class _Trainer:
    def __init__(self, steps: int) -> None:
        self.estimated_stepping_batches = steps


def _factors(steps: int, **settings) -> list[float]:
    config = TrellisConfig(
        context_length=32,
        prediction_length=8,
        patch_len=8,
        d_model=8,
        n_heads=2,
        n_slots=4,
        **settings,
    )
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


def test_weight_average_is_what_validation_and_the_fitted_model_see(tiny):
    import numpy as np
    import torch

    from trellis_ts.forecaster.lightning_module import WeightAverage
    from trellis_ts.forecaster.training import train_model

    rng = np.random.default_rng(0)
    series = [
        np.sin(np.arange(400) / 5 + c).astype(np.float32)
        + 0.1 * rng.standard_normal(400).astype(np.float32)
        for c in range(3)
    ]
    settings = {k: v for k, v in tiny.items()} | {"max_epochs": 2, "ema_decay": 0.9}
    config = TrellisConfig(**settings)
    seen = []

    class Spy(WeightAverage):  # records what validation sees against the running average
        def on_validation_start(self, trainer, pl_module):
            super().on_validation_start(trainer, pl_module)
            if self._average is not None:
                seen.append(
                    all(
                        torch.equal(p, a)
                        for p, a in zip(self._params(pl_module), self._average, strict=True)
                    )
                )

    import trellis_ts.forecaster.training as training

    original = training.WeightAverage
    training.WeightAverage = Spy
    try:
        model, summary = train_model(config, series)
    finally:
        training.WeightAverage = original
    assert seen and all(seen) and summary.best_val_loss is not None
    plain, _ = train_model(config.replace(ema_decay=None), series)
    assert any(
        not torch.equal(a, b) for a, b in zip(model.parameters(), plain.parameters(), strict=True)
    )


def test_ema_decay_is_checked_and_parsed_from_the_command_line():
    from trellis_ts.cli.options import _parse_field
    from trellis_ts.errors import ConfigError

    with pytest.raises(ConfigError, match="ema_decay"):
        TrellisConfig(ema_decay=1.0)
    assert _parse_field("ema_decay", "0.99", float | None) == 0.99
    assert _parse_field("ema_decay", "none", float | None) is None
    with pytest.raises(ConfigError, match="--ema-decay"):
        _parse_field("ema_decay", "fast", float | None)
