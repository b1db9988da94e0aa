"""Training the streaming model: crops of whole series with a loss at every patch token.

Each training item is a crop of `burn_in_tokens + crop_tokens` consecutive patch tokens of one
series, from a random token of its training part. The burn-in tokens are read without a loss or
a gradient, to bring the state near what a read from the series' start gives; every later token
forecasts the horizon after a random origin inside the next patch (the partial patch `r`
steps long, as a forecast between patch boundaries has it), and the loss covers every token
whose targets lie in the training part. The tokens are made by the code `advance` uses
(`token_inputs`), so the model trained is the model streamed.

Validation reads each series from its first step, as inference does, and scores the tokens
whose origins and targets lie in the held-out end.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import Dataset

from trellis_ts.data.features.running import moments
from trellis_ts.data.splits import train_val_ranges
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.lightning_module import TrellisLightningModule, forecast_loss
from trellis_ts.forecaster.streaming.inputs import StreamInputs
from trellis_ts.forecaster.streaming.state import (
    normalised,
    stream_decay,
    token_inputs,
    window_values,
)
from trellis_ts.forecaster.training import run_training
from trellis_ts.models.covariates import ModelInputs

__all__ = ["SeriesTokens", "StreamingLightningModule", "train_streaming"]

# Random crops per epoch: enough that each training token is read about this many times (an
# epoch of one crop per span was 4 optimiser steps on ETTh1, too few for the step budget).
CROP_DRAWS = 8


class SeriesTokens:
    """One series' tokens (the whole series read from its start) and what crops cut from it."""

    def __init__(self, values: np.ndarray, dynamic: np.ndarray | None, P: int, decay: float):
        c = len(values) // P
        self.values = values
        self.n_tokens = c
        sums = moments(values, decay)
        ends = (np.arange(c) + 1) * P - 1
        self.patches, self.stats, self.dynamic, self.mean, self.std = token_inputs(
            values[None],
            None if dynamic is None else dynamic[None],
            sums[None, ends],
            np.full((1, 2), np.nan),
            P,
        )
        self.known = dynamic


class CropDataset(Dataset):
    """Items of `tokens` consecutive tokens (`SeriesTokens`), targets within `[lo, hi)` steps.

    `crops` lists `(series, first token, n tokens)`; with `random_starts`, each draw moves the
    crop to a random first token of its series (the training crops)."""

    def __init__(self, series, crops, *, config, n_known, ranges, random_starts, seed=0):
        self.series, self.crops, self.ranges = series, crops, ranges
        self.P, self.H, self.L = config.patch_len, config.prediction_length, config.context_length
        self.n_known, self.random_starts = n_known, random_starts
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return len(self.crops)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, first, n = self.crops[i]
        tokens, (lo, hi) = self.series[s], self.ranges[s]
        P, H = self.P, self.H
        last = max(0, (hi - 1) // P - 1)  # the last token with a target inside [.., hi)
        if self.random_starts:
            first = int(self.rng.integers(0, max(1, last - n + 2)))
        t = np.arange(first, min(first + n, last + 1, tokens.n_tokens))
        rng = self.rng if self.random_starts else np.random.default_rng(s)
        r = rng.integers(0, P, size=len(t))
        origin = (t + 1) * P + r
        steps = origin[:, None] + np.arange(H)
        mean, std = tokens.mean[0, t][:, None], tokens.std[0, t][:, None]
        inside = (steps < hi) & (origin[:, None] >= lo)
        target = np.where(inside, (tokens.values[np.minimum(steps, hi - 1)] - mean) / std, 0.0)
        at_token = np.concatenate([mean, std], axis=1)  # [len(t), 2]: each token's statistics
        observed = np.arange(P - 1)[None] < r[:, None]
        after = window_values(tokens.values, (t + 1) * P, P - 1)
        partial = normalised(np.where(observed, after, np.nan), at_token)
        recent = normalised(window_values(tokens.values, origin - self.L, self.L), at_token)
        item = {
            "patches": tokens.patches[0, t],
            "stats": tokens.stats[0, t],
            "partial": partial,
            "observed": observed,
            "recent": recent,
            "target": target,
            "target_mask": inside,
        }
        if tokens.dynamic is not None:
            item["dynamic"] = tokens.dynamic[0, t]
        if self.n_known:
            known = tokens.known[:, -self.n_known :]
            item["future"] = known[np.minimum(steps, len(known) - 1)]
        out = {k: torch.as_tensor(np.asarray(v), dtype=torch.float32) for k, v in item.items()}
        out["length"] = torch.tensor(len(t))
        out["series"] = torch.tensor(s)
        return out


def pad_collate(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Items of different token counts padded at the end (causal: the padding reads after the
    real tokens and its targets are masked)."""
    width = max(int(item["length"]) for item in items)
    out = {}
    for key in items[0]:
        if items[0][key].dim() == 0:
            out[key] = torch.stack([item[key] for item in items])
            continue
        padded = []
        for item in items:
            v = item[key]
            pad = width - v.shape[0]
            padded.append(torch.cat([v, v.new_zeros((pad, *v.shape[1:]))]) if pad else v)
        out[key] = torch.stack(padded)
    return out


class StreamingLightningModule(TrellisLightningModule):
    """The training system of `TrellisLightningModule` with the streaming loss (module doc)."""

    def __init__(self, config: TrellisConfig, inputs: ModelInputs | None, static) -> None:
        super().__init__(config, inputs)
        self.static = static  # (static_real [n, S] | None, static_cat [n, K] | None) per series

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        model = self.model
        real, cat = self.static
        rows = batch["series"].cpu().numpy()
        static = model.static_vector(
            None if real is None else torch.as_tensor(real[rows], device=self.device),
            None if cat is None else torch.as_tensor(cat[rows], device=self.device),
        )
        burn = self.config.burn_in_tokens if self.training else 0
        burn = min(burn, batch["patches"].shape[1] - 1)
        dynamic = batch.get("dynamic")
        state = None
        if burn > 0:
            with torch.no_grad():
                _, state = model.read(
                    batch["patches"][:, :burn],
                    batch["stats"][:, :burn],
                    None if dynamic is None else dynamic[:, :burn],
                    static,
                    return_state=True,
                )
        rest = slice(burn, None)
        h = model.read(
            batch["patches"][:, rest],
            batch["stats"][:, rest],
            None if dynamic is None else dynamic[:, rest],
            static,
            state=state,
        )
        future = batch.get("future")
        y = model.forecast(
            h,
            batch["partial"][:, rest],
            batch["observed"][:, rest],
            batch["recent"][:, rest],
            None if future is None else future[:, rest],
            static,
        )
        mask = batch["target_mask"][:, rest].bool()
        if not mask.any():
            return y.sum() * 0.0
        return forecast_loss(y[mask], batch["target"][:, rest][mask], self.config)


def train_streaming(
    config: TrellisConfig,
    data: StreamInputs,
    *,
    inputs: ModelInputs | None = None,
    names=None,
    callbacks=None,
    checkpoint_dir=None,
    resume: bool = False,
    init_state=None,
    val_ranges=None,
):
    """Fit the streaming model on whole series (`data`), holding out the last `val_fraction` of
    each for early stopping, as `train_model` does for windows (or the given `val_ranges`,
    `(first target, end)` per series). Returns `(model, summary, val_ranges)`."""
    config.require_sized()
    if config.random_state is not None:
        pl.seed_everything(config.random_state, workers=True, verbose=False)
    P, H = config.patch_len, config.prediction_length
    lengths = [len(v) for v in data.values]
    if val_ranges is None:
        _, val_ranges = train_val_ranges(
            lengths, config.context_length, H, config.val_fraction, names=names
        )
    decay = stream_decay(config)
    series = [
        SeriesTokens(v, None if data.dynamic is None else data.dynamic[i], P, decay)
        for i, v in enumerate(data.values)
    ]
    n_known = (inputs or ModelInputs()).feat_dynamic_real
    train_hi = lengths if val_ranges is None else [lo for lo, _ in val_ranges]
    width = config.burn_in_tokens + config.crop_tokens
    crops = []
    for s, hi in enumerate(train_hi):
        usable = max(0, (hi - 1) // P)  # tokens with a target in the training part
        crops += [(s, 0, width)] * max(1, math.ceil(CROP_DRAWS * usable / config.crop_tokens))
    train_set = CropDataset(
        series,
        crops,
        config=config,
        n_known=n_known,
        ranges=[(0, hi) for hi in train_hi],
        random_starts=True,
        seed=config.random_state or 0,
    )
    val_set = None
    if val_ranges:
        val_set = CropDataset(
            series,
            [(s, 0, series[s].n_tokens) for s in range(len(series))],
            config=config,
            n_known=n_known,
            ranges=val_ranges,
            random_starts=False,
        )
    module = StreamingLightningModule(config, inputs, (data.static_real, data.static_cat))
    longest = max(t.n_tokens for t in series)
    model, summary = run_training(
        config,
        module,
        train_set,
        val_set,
        callbacks=callbacks,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
        init_state=init_state,
        collate_fn=pad_collate,
        val_batch_size=max(1, 2_000_000 // max(longest * H, 1)),
    )
    return model, summary, val_ranges
