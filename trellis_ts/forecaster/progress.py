"""How a fit shows its progress: a bar on a terminal, one line per epoch anywhere else (a log
file, a notebook's captured stderr, a job scheduler), epochs counted from 1."""

from __future__ import annotations

import math
import sys
import time
from typing import Any, TextIO

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar

__all__ = ["EpochBar", "EpochLines", "progress_callbacks"]


class EpochBar(TQDMProgressBar):
    """Lightning's progress bar, its epochs numbered 1 to `max_epochs` ("Epoch 1/20")."""

    def on_train_epoch_start(self, trainer: pl.Trainer, *args: Any) -> None:
        super().on_train_epoch_start(trainer, *args)
        self.train_progress_bar.set_description(
            f"Epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"
        )


class EpochLines(pl.Callback):
    """One line per epoch on `stream` (stderr): its number from 1, its time, the training and
    validation losses and whether the validation loss is the best so far."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream
        self.best = math.inf
        self.started = 0.0

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.started = time.perf_counter()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        words = [
            f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}",
            f"{time.perf_counter() - self.started:.1f} s",
        ]
        train = metrics.get("train_loss_epoch", metrics.get("train_loss"))
        if train is not None:
            words.append(f"train loss {float(train):.4g}")
        val = metrics.get("val_loss")
        if val is not None:
            val = float(val)
            best = val < self.best
            self.best = min(self.best, val)
            words.append(f"val loss {val:.4g}" + (" (best)" if best else ""))
        print(", ".join(words), file=self.stream or sys.stderr, flush=True)


def progress_callbacks(verbose: bool, stream: TextIO | None = None) -> tuple[bool, list]:
    """(whether Lightning's bar is on, the progress callback): the bar on a terminal, lines
    elsewhere, nothing when not `verbose`."""
    if not verbose:
        return False, []
    stream = stream or sys.stderr
    isatty = getattr(stream, "isatty", lambda: False)
    return (True, [EpochBar()]) if isatty() else (False, [EpochLines(stream)])
