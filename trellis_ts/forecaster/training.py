"""Training and batched inference on arrays: the engine under the estimator and the benchmarks.

`train_model` fits the config's model (the encoder or a baseline) on univariate series (already
scaled, with their covariates in a `SeriesSet`) with Lightning; `forecast_contexts` runs a
trained model over many context windows in batches.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import pickle
import signal
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch import nn
from torch.utils.data import DataLoader

from trellis_ts.data import EpochSubsampler, SeriesSet, WindowDataset, train_val_ranges
from trellis_ts.errors import ConfigError, Interrupted, ModelFileError, OutputError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.lightning_module import (
    BestWeights,
    TrellisLightningModule,
    WeightAverage,
)
from trellis_ts.forecaster.progress import progress_callbacks
from trellis_ts.forecaster.sizing import DEFAULT_MAX_EPOCHS, training_budget
from trellis_ts.forecaster.threads import choose_threads, torch_threads
from trellis_ts.models.covariates import ModelInputs

# Lightning's start-up banners ("GPU available: False", tips) are noise for a forecasting tool.
for _name in (
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.accelerators.cuda",
    "lightning.pytorch.trainer.connectors.signal_connector",
):
    logging.getLogger(_name).setLevel(logging.WARNING)
warnings.filterwarnings("ignore", message=".*does not have many workers.*")
warnings.filterwarnings("ignore", message=".*LeafSpec.*")
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
warnings.filterwarnings(
    "ignore", message="You defined a `validation_step` but have no `val_dataloader`"
)


LAST_CHECKPOINT = "last"  # last.ckpt (trellis_ts.forecaster.checkpoints names the folder's files)


class AtomicCheckpoint(ModelCheckpoint):
    """`ModelCheckpoint` writing to a temporary file beside the checkpoint, renamed over it when
    complete: a full disk or a kill mid-write never leaves a truncated last.ckpt (the previous
    epoch's stays whole); a failed write (ENOSPC) is an `OutputError`."""

    def _save_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        final = Path(filepath)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex[:12]}.tmp")
        try:
            super()._save_checkpoint(trainer, str(tmp))
            if trainer.is_global_zero:
                os.replace(tmp, final)
        except OSError as exc:
            kept = " (the previous epoch's is kept)" if final.is_file() else ""
            what = exc.strerror or os.strerror(exc.errno or errno.EIO)
            raise OutputError(
                f"cannot write the checkpoint {final} ({what}){kept}; free some space, then "
                "rerun the same command with --resume"
            ) from None
        finally:
            tmp.unlink(missing_ok=True)
        self._last_checkpoint_saved = str(final)


@dataclass
class TrainingSummary:
    """What a fit did, for the user's summary line and the benchmark records."""

    epochs: int
    best_epoch: int | None
    best_val_loss: float | None
    last_train_loss: float | None
    seconds: float
    train_windows: int
    val_windows: int
    parameters: int
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "extra"} | self.extra


def trainer_settings(config: TrellisConfig) -> dict[str, Any]:
    """The Trainer arguments a config decides: epochs, clipping, devices, progress, no logger.

    The one mapping from `TrellisConfig` to Lightning, shared with the GluonTS estimator.
    """
    return dict(
        max_epochs=config.max_epochs or DEFAULT_MAX_EPOCHS,
        accelerator=config.accelerator,
        devices=config.devices,
        strategy=config.strategy,
        num_nodes=config.num_nodes,
        gradient_clip_val=config.gradient_clip or None,
        enable_progress_bar=config.verbose,
        logger=False,
    )


def make_trainer(
    config: TrellisConfig, callbacks: list, root_dir: str, **overrides: Any
) -> pl.Trainer:
    """A Lightning Trainer with the config's device settings passed through, and the progress
    a person sees (`progress_callbacks`: a bar on a terminal, a line per epoch in a log)."""
    bar, progress = progress_callbacks(config.verbose)
    kwargs: dict[str, Any] = trainer_settings(config) | dict(
        callbacks=[*callbacks, *progress],
        enable_model_summary=False,
        enable_checkpointing=False,
        default_root_dir=root_dir,
        num_sanity_val_steps=0,
        enable_progress_bar=bar,
    )
    kwargs.update(overrides)
    return pl.Trainer(**kwargs)


def train_model(
    config: TrellisConfig,
    series: list[np.ndarray] | SeriesSet,
    *,
    inputs: ModelInputs | None = None,
    names: list[str] | None = None,
    val_series: list[np.ndarray] | SeriesSet | None = None,
    val_stride: int = 1,
    callbacks: list[pl.Callback] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    trainer_overrides: dict[str, Any] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
) -> tuple[nn.Module, TrainingSummary]:
    """Fit a model on univariate series `[T_i]` (float, already scaled), or on a `SeriesSet`
    of them with their covariates, which `inputs` describes.

    Validation: when `val_series` is given (e.g. the benchmark's own split), its windows (every
    `val_stride`-th start) are the validation set; otherwise the last `val_fraction` of every series is held out
    (`trellis_ts.data.train_val_ranges`). Early stopping watches the validation loss and the
    best epoch's weights are restored at the end. `callbacks` are added to the Trainer's (e.g. a
    pruning callback that reads `val_loss` each epoch).

    With `checkpoint_dir`, the training state is written to `<checkpoint_dir>/last.ckpt` after
    every epoch; `resume=True` continues from it (same data and config), so a killed fit loses at
    most one epoch. Without a checkpoint there, `resume=True` starts from scratch.

    `init_state` (a state dict of the same config's model) is a warm start: training continues
    from those weights, with a fresh optimiser and learning-rate schedule over `max_epochs`.
    """
    config.require_sized()  # sizes are resolved once, by the caller (the estimator, the runner)
    L, H = config.context_length, config.prediction_length
    if config.random_state is not None:
        pl.seed_everything(config.random_state, workers=True, verbose=False)
    if val_series is None:
        lengths = [len(s) for s in (series.target if isinstance(series, SeriesSet) else series)]
        train_ranges, val_ranges = train_val_ranges(lengths, L, H, config.val_fraction, names=names)
        train_set = WindowDataset(series, L, H, ranges=train_ranges)
        val_set = WindowDataset(series, L, H, ranges=val_ranges) if val_ranges else None
    else:
        train_set = WindowDataset(series, L, H)
        val_set = WindowDataset(val_series, L, H, stride=val_stride)
    module = TrellisLightningModule(config, inputs)
    return run_training(
        config,
        module,
        train_set,
        val_set,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        trainer_overrides=trainer_overrides,
        init_state=init_state,
    )


def run_training(
    config: TrellisConfig,
    module: TrellisLightningModule,
    train_set,
    val_set,
    *,
    callbacks: list[pl.Callback] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    trainer_overrides: dict[str, Any] | None = None,
    init_state: dict[str, torch.Tensor] | None = None,
    collate_fn=None,
    val_batch_size: int | None = None,
) -> tuple[nn.Module, TrainingSummary]:
    """Train `module` on the items of `train_set` (validation: `val_set`, or None) with the
    budget, early stopping, best-weights restore, checkpoints and threads every fit shares;
    `train_model` (windows) and the streaming fit (crops of whole series) differ only in what
    the items are. Returns the trained network in eval mode and the summary."""
    seed = config.random_state if config.random_state is not None else 0
    budget = training_budget(config, len(train_set))
    # The module and the Trainer see the budget (the schedules spread over its epochs).
    config = config.replace(batch_size=budget.batch_size, max_epochs=budget.max_epochs)
    if config.windows_per_epoch is not None:
        sampler = EpochSubsampler(len(train_set), config.windows_per_epoch, seed=seed)
        train_loader = DataLoader(
            train_set,
            config.batch_size,
            sampler=sampler,
            num_workers=config.num_workers,
            collate_fn=collate_fn,
        )
    else:
        generator = torch.Generator().manual_seed(seed)
        train_loader = DataLoader(
            train_set,
            config.batch_size,
            shuffle=True,
            generator=generator,
            num_workers=config.num_workers,
            collate_fn=collate_fn,
        )
    val_loader = None
    if val_set is not None and len(val_set):
        val_loader = DataLoader(
            val_set,
            val_batch_size or max(config.batch_size, 256),
            shuffle=False,
            num_workers=config.num_workers,
            collate_fn=collate_fn,
        )

    if init_state is not None:
        module.model.load_state_dict(init_state)
    n_parameters = sum(p.numel() for p in module.model.parameters())
    if n_parameters == 0:  # seasonal naive: nothing to train
        return module.model.eval(), TrainingSummary(
            epochs=0,
            best_epoch=None,
            best_val_loss=None,
            last_train_loss=None,
            seconds=0.0,
            train_windows=len(train_set),
            val_windows=0 if val_set is None else len(val_set),
            parameters=0,
        )
    monitor = "val_loss" if val_loader is not None else "train_loss_epoch"
    best = BestWeights(monitor)
    all_callbacks: list = [best, *(callbacks or [])]
    if config.ema_decay is not None and val_loader is not None:  # after BestWeights: see its doc
        all_callbacks.insert(1, WeightAverage(config.ema_decay))
    if val_loader is not None:
        all_callbacks.append(
            EarlyStopping(monitor, patience=config.early_stopping_patience, mode="min")
        )
    overrides = dict(trainer_overrides or {})
    ckpt_path = None
    if checkpoint_dir is not None:
        checkpoint_dir = Path(checkpoint_dir)
        all_callbacks.append(
            AtomicCheckpoint(
                dirpath=checkpoint_dir,
                filename=LAST_CHECKPOINT,
                monitor=None,
                save_top_k=1,
                enable_version_counter=False,
            )
        )
        overrides["enable_checkpointing"] = True
        last_file = checkpoint_dir / f"{LAST_CHECKPOINT}.ckpt"
        if resume and last_file.is_file():
            check_resumable(last_file, module, config)
            ckpt_path = str(last_file)
    threads = choose_threads(config.num_threads, n_parameters)
    started = time.perf_counter()
    with (
        tempfile.TemporaryDirectory(prefix="trellis-ts-") as root,
        _signals_raised(),
        torch_threads(threads),
    ):
        trainer = make_trainer(
            config, all_callbacks, root, min_epochs=budget.min_epochs, **overrides
        )
        if ckpt_path is not None:
            # weights_only: the checkpoint holds tensors and plain values only; nothing executes.
            trainer.fit(module, train_loader, val_loader, ckpt_path=ckpt_path, weights_only=True)
        else:
            trainer.fit(module, train_loader, val_loader)
    seconds = time.perf_counter() - started
    model = module.model.cpu().eval()
    last = trainer.callback_metrics.get("train_loss_epoch")
    summary = TrainingSummary(
        epochs=trainer.current_epoch,
        best_epoch=None if best.best_epoch is None else best.best_epoch + 1,
        best_val_loss=best.best_score
        if val_loader is not None and best.best_epoch is not None
        else None,
        last_train_loss=None if last is None else float(last),
        seconds=seconds,
        train_windows=len(train_set),
        val_windows=0 if val_loader is None else len(val_set),
        parameters=n_parameters,
        extra={"batch_size": budget.batch_size, "min_epochs": budget.min_epochs}
        | ({"resumed_from": ckpt_path} if ckpt_path else {})
        | {"threads": threads},
    )
    return model, summary


def check_resumable(path: Path, module: pl.LightningModule, config: TrellisConfig) -> None:
    """Refuse, in one line, a checkpoint that Lightning would fail on with a traceback: not a
    checkpoint (truncated, or a planted pickle: weights_only loads no code), written by a fit
    with other model options (tensor shapes), or past `max_epochs`."""
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # objects weights_only refuses to build: nothing was run
        ckpt, why = None, "it holds objects other than tensors and plain values; none was built"
    except Exception as exc:  # noqa: BLE001 - an untrusted file: any failure to parse it
        ckpt, why = None, f"unreadable: {type(exc).__name__}"
    else:
        why = "no model state in it"
    state = ckpt.get("state_dict") if isinstance(ckpt, dict) else None
    if not isinstance(state, dict) or not isinstance(ckpt.get("epoch"), int):
        raise ModelFileError(
            f"{path} is truncated or not a checkpoint written by trellis-ts ({why}); remove it, "
            "or fit without resuming to start over"
        )
    current = module.state_dict()
    for name in sorted(set(current) | set(state)):
        mine, saved = current.get(name), state.get(name)
        if mine is None or not isinstance(saved, torch.Tensor) or mine.shape != saved.shape:
            detail = (
                f"tensor {name.removeprefix('model.')} is "
                f"{'absent' if not isinstance(saved, torch.Tensor) else list(saved.shape)} "
                f"there, {'absent' if mine is None else list(mine.shape)} now"
            )
            raise ConfigError(
                f"the checkpoint {path} was written by a fit with other model options ({detail}); "
                "resume with the interrupted fit's options, or fit without resuming to start over"
            )
    if ckpt["epoch"] > config.max_epochs:
        raise ConfigError(
            f"the checkpoint {path} is at epoch {ckpt['epoch']}, beyond max_epochs={config.max_epochs}; "
            f"resume with max_epochs={ckpt['epoch']} or more (the interrupted fit's), or fit without "
            "resuming to start over"
        )


@contextlib.contextmanager
def _signals_raised():
    """Lightning turns Ctrl-C into `sys.exit(1)` and SIGTERM into a `SystemExit` of status 0 (a
    stopped fit looked like a finished one): both come out of here as `Interrupted`."""
    try:
        yield
    except SIGTERMException:
        raise Interrupted(signal.SIGTERM) from None
    except SystemExit as exc:
        cause = exc.__context__
        if isinstance(cause, KeyboardInterrupt):
            raise (
                cause if isinstance(cause, Interrupted) else Interrupted(signal.SIGINT)
            ) from None
        raise


TOKENS_PER_BATCH = 32768  # inference batches hold about this many patch tokens (bounded memory)


@torch.no_grad()
def forecast_contexts(
    model: nn.Module,
    contexts: np.ndarray | dict[str, np.ndarray],
    batch_size: int | None = None,
    num_threads: int | None = None,
) -> np.ndarray:
    """`contexts [n, L]` (scaled) → forecasts `[n, H]`, or `[n, H, Q]` for a quantile model.

    `contexts` is the past targets, or a dict of the model's named inputs (``past_target
    [n, L]`` and the covariate fields, each with a leading ``[n]``). Batches are sized by
    tokens, not windows (default: about `TOKENS_PER_BATCH` patch tokens), so memory stays flat
    as the context grows (a fixed number of windows grows with it, and is no faster). Threads:
    `num_threads`, else `trellis_ts.forecaster.threads.choose_threads`'s.
    """
    model.eval()
    inputs = contexts if isinstance(contexts, dict) else {"past_target": contexts}
    n = len(inputs["past_target"])
    if batch_size is None:
        tokens = getattr(model.config, "n_patches", 1) if model.config.model == "encoder" else 1
        batch_size = max(1, TOKENS_PER_BATCH // tokens)
    device = next(iter(model.parameters()), torch.empty(0)).device
    threads = choose_threads(num_threads, sum(p.numel() for p in model.parameters()))
    out = []
    with torch_threads(threads):
        for start in range(0, n, batch_size):
            batch = {
                k: torch.as_tensor(
                    v[start : start + batch_size],
                    device=device,
                    dtype=torch.int64 if k == "feat_static_cat" else torch.float32,
                )
                for k, v in inputs.items()
            }
            out.append(model(**batch).cpu().numpy())  # [b, H] or [b, H, Q]
    if not out:
        return np.zeros((0, model.config.prediction_length), dtype=np.float32)
    return np.concatenate(out).astype(np.float64)


def is_main_process() -> bool:
    """False on the non-zero ranks of a distributed fit (they must not write outputs)."""
    dist = torch.distributed
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
