"""The training system: loss, steps, optimiser and schedule around a plain `TrellisModel`."""

from __future__ import annotations

import copy
import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import Tensor

from trellis_ts.data.windows import model_inputs
from trellis_ts.errors import TrainingError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.models.build import build_model
from trellis_ts.models.covariates import ModelInputs


def pinball_loss(pred: Tensor, target: Tensor, quantiles: Tensor) -> Tensor:
    """Mean quantile (pinball) loss: pred `[..., Q]`, target `[...]`, quantiles `[Q]`."""
    diff = target[..., None] - pred
    return torch.maximum(quantiles * diff, (quantiles - 1) * diff).mean()


def forecast_loss(pred: Tensor, target: Tensor, config: TrellisConfig) -> Tensor:
    if config.loss == "mse":
        return F.mse_loss(pred, target)
    if config.loss == "mae":
        return F.l1_loss(pred, target)
    if config.loss == "huber":
        return F.huber_loss(pred, target)
    quantiles = torch.tensor(config.quantiles, dtype=pred.dtype, device=pred.device)
    return pinball_loss(pred, target, quantiles)


class TrellisLightningModule(pl.LightningModule):
    """Trains the config's model (`trellis_ts.models.build_model`) on named batches (`WindowDataset`'s:
    ``past_target [B, L]``, ``future_target [B, H]`` and the covariate fields).

    `loss(batch)` is the one place a batch becomes a loss: the estimator's and the benchmark's
    batches use it as it is (the data is scaled before; RevIN normalises each window inside
    the model), the GluonTS module overrides it to weigh observed values. The steps log it and
    stop a fit whose training loss is no longer finite.
    """

    def __init__(self, config: TrellisConfig, inputs: ModelInputs | None = None) -> None:
        super().__init__()
        self.config = config
        self.model = build_model(model_spec(config), inputs)

    def forward(self, past_target: Tensor, **covariates: Tensor) -> Tensor:
        return self.model(past_target, **covariates)

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        return forecast_loss(self.model(**model_inputs(batch)), batch["future_target"], self.config)

    def log_loss(self, name: str, loss: Tensor, batch: dict[str, Tensor]) -> None:
        """Log ``<name>_loss``: per step and epoch in training, per epoch in validation."""
        on_step = name == "train"
        self.log(
            f"{name}_loss",
            loss,
            prog_bar=True,
            on_step=on_step,
            on_epoch=True,
            batch_size=len(next(iter(batch.values()))),
            sync_dist=not on_step,
        )

    def training_step(self, batch, batch_idx):
        loss = self.loss(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the training loss became {loss.item()} at step {self.global_step}; lower "
                f"learning_rate (now {self.config.learning_rate:g}) or check the data for extreme values"
            )
        self.log_loss("train", loss, batch)
        return loss

    def validation_step(self, batch, batch_idx):
        loss = self.loss(batch)
        self.log_loss("val", loss, batch)
        return loss

    def configure_optimizers(self):
        config = self.config
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
        )
        if config.lr_schedule == "constant":
            return optimizer
        total = max(int(self.trainer.estimated_stepping_batches), 1)
        warmup = max(1, min(100, total // 20))
        per_epoch = max(total // max(config.max_epochs or self.trainer.max_epochs or 1, 1), 1)

        def factor(step: int) -> float:
            if step < warmup:
                return (step + 1) / warmup
            if config.lr_schedule == "exponential":  # e.g. halved every epoch, as DLinear's
                return config.lr_decay ** ((step - warmup) / per_epoch)
            progress = min((step - warmup) / max(total - warmup, 1), 1.0)
            return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }


class BestWeights(pl.Callback):
    """Keeps the weights of the epoch with the lowest monitored loss and restores them at the end.

    Its state is part of a Lightning checkpoint, so a resumed fit still ends on the best epoch.
    """

    def __init__(self, monitor: str = "val_loss") -> None:
        self.monitor = monitor
        self.best_score = math.inf
        self.best_epoch: int | None = None
        self._state: dict[str, Tensor] | None = None

    def _consider(self, trainer, pl_module) -> None:
        score = trainer.callback_metrics.get(self.monitor)
        if score is not None and float(score) < self.best_score:
            self.best_score = float(score)
            self.best_epoch = trainer.current_epoch
            self._state = copy.deepcopy(pl_module.model.state_dict())

    def on_validation_end(self, trainer, pl_module) -> None:
        if not trainer.sanity_checking and self.monitor.startswith("val"):
            self._consider(trainer, pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.monitor.startswith("train"):
            self._consider(trainer, pl_module)

    def on_fit_end(self, trainer, pl_module) -> None:
        if self._state is not None:
            pl_module.model.load_state_dict(self._state)

    def state_dict(self) -> dict:
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "weights": self._state,
        }

    def load_state_dict(self, state_dict: dict) -> None:
        self.best_score = state_dict["best_score"]
        self.best_epoch = state_dict["best_epoch"]
        self._state = state_dict["weights"]


class WeightAverage(pl.Callback):
    """An exponential moving average of the weights, updated after every training step.

    Validation (so early stopping and `BestWeights`, which must come before this callback in
    the Trainer's list) sees the averaged weights, which therefore also become the fitted model;
    training continues from its own weights. Its state is part of a checkpoint.
    """

    def __init__(self, decay: float) -> None:
        self.decay = decay
        self._average: list[Tensor] | None = None
        self._training: list[Tensor] | None = None

    @staticmethod
    def _params(pl_module) -> list[Tensor]:
        return [p.detach() for p in pl_module.model.parameters()]

    def on_train_batch_end(self, trainer, pl_module, *args) -> None:
        params = self._params(pl_module)
        if self._average is None:
            self._average = [p.clone() for p in params]
        else:
            torch._foreach_lerp_(self._average, params, 1.0 - self.decay)

    def on_validation_start(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or self._average is None:
            return
        params = self._params(pl_module)
        self._training = [p.clone() for p in params]
        torch._foreach_copy_(params, self._average)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self._training is not None:
            torch._foreach_copy_(self._params(pl_module), self._training)
            self._training = None

    def state_dict(self) -> dict:
        return {"average": self._average}

    def load_state_dict(self, state_dict: dict) -> None:
        self._average = state_dict["average"]
