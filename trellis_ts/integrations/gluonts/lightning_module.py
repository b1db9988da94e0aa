"""The GluonTS prediction network and training system: `TrellisGluonModule`.

Imported through `trellis_ts.integrations.gluonts.estimator` (which says so when GluonTS is missing). This
file deliberately does not use `from __future__ import annotations`: GluonTS's `@validated()`
reads the annotations of `__init__` at run time.
"""

import torch
from gluonts.core.component import validated
from torch import Tensor

from trellis_ts.data.features.scaling import Scaler
from trellis_ts.errors import DataError
from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.lightning_module import TrellisLightningModule, forecast_loss
from trellis_ts.models.covariates import ModelInputs

__all__ = ["TrellisGluonModule", "fill_unobserved"]


def _channels(x: Tensor) -> Tensor:
    """Univariate batches `[B, T]` as `[B, T, 1]`; multivariate `[B, T, C]` unchanged."""
    return x[..., None] if x.dim() == 2 else x


def fill_unobserved(x: Tensor, observed: Tensor) -> Tensor:
    """`x [B, L, C]` with every unobserved value (`observed == 0`) replaced by the last observed
    value before it, or by the first observed one where none comes before (leading gaps and
    GluonTS's left padding). A window with no observed value is returned as it is.
    """
    seen = observed > 0
    steps = torch.arange(x.shape[1], device=x.device).view(1, -1, 1).expand_as(x)
    last_seen = torch.where(seen, steps, -1).cummax(dim=1).values
    first_seen = seen.to(torch.uint8).argmax(dim=1, keepdim=True)  # 0 when nothing is observed
    return x.gather(1, torch.maximum(last_seen, first_seen))


def _loss_scale(x: Tensor, observed: Tensor) -> Tensor:
    """Mean absolute observed value of each window and channel, `[B, 1, C]`.

    Windows that are all zero (or unobserved) take the batch's mean scale, or 1 if every window
    is zero, so their loss stays finite.
    """
    weight = (observed > 0).to(x.dtype)
    scale = (x.abs() * weight).sum(1, keepdim=True) / weight.sum(1, keepdim=True).clamp_min(1)
    positive = scale > 0
    fallback = scale[positive].mean() if positive.any() else scale.new_tensor(1.0)
    return torch.where(positive, scale, fallback)


class TrellisGluonModule(TrellisLightningModule):
    """The GluonTS prediction network and training system around a `TrellisModel`.

    `forward(past_target [B, L] or [B, L, C], past_observed_values, same shape, **covariates)`
    returns `((out,), None, None)`, the layout `QuantileForecastGenerator` reads, with `out`
    `[B, H, K]` (or `[B, H, C, K]`): the K trained quantiles, or the point forecast twice
    ("mean", "0.5"). The covariate fields are GluonTS's (`ModelInputs` names them); `scaling`
    maps each real-valued field to the `Scaler.to_dict()` of its columns, and categorical codes
    are shifted by one (the model keeps code 0 for an unknown category). Optimiser, schedule
    and the training step are `TrellisLightningModule`'s. Every argument is plain JSON values
    (`TrellisConfig.to_dict()`, `ModelInputs.to_dict()`), which GluonTS's serde writes and reads
    back to rebuild the network.
    """

    @validated()
    def __init__(
        self, config: dict, inputs: dict | None = None, scaling: dict | None = None
    ) -> None:
        super().__init__(TrellisConfig.from_dict(config), ModelInputs(**(inputs or {})))
        self.scalers = {k: Scaler.from_dict(v) for k, v in (scaling or {}).items()}

    def _covariates(self, given: dict[str, Tensor | None]) -> dict[str, Tensor]:
        out = {}
        for name in self.model.inputs.fields:
            value = given.get(name)
            if value is None:
                raise DataError(f"the model was trained with {name}; give every entry that field")
            if name == "feat_static_cat":
                cards = value.new_tensor(self.model.inputs.feat_static_cat)
                value = torch.where((value >= 0) & (value < cards), value + 1, 0)
            elif name in self.scalers:
                scaler, value = self.scalers[name], value.to(self.dtype)
                k = len(scaler)  # calendar columns come after the user's and are not scaled
                mean, scale = (value.new_tensor(a) for a in (scaler.mean, scaler.scale))
                value = torch.cat([(value[..., :k] - mean) / scale, value[..., k:]], dim=-1)
            out[name] = value
        return out

    def forecast(self, past_target: Tensor, past_observed_values: Tensor, **covariates) -> Tensor:
        """`[B, H, C]`, or `[B, H, C, Q]` for a quantile model, in the data's units."""
        x = fill_unobserved(_channels(past_target).to(self.dtype), _channels(past_observed_values))
        y = self.model(x, **self._covariates(covariates))
        return y

    def forward(
        self,
        past_target: Tensor,
        past_observed_values: Tensor,
        past_feat_dynamic_real: Tensor | None = None,
        feat_dynamic_real: Tensor | None = None,
        feat_static_real: Tensor | None = None,
        feat_static_cat: Tensor | None = None,
    ):
        out = self.forecast(
            past_target,
            past_observed_values,
            past_feat_dynamic_real=past_feat_dynamic_real,
            feat_dynamic_real=feat_dynamic_real,
            feat_static_real=feat_static_real,
            feat_static_cat=feat_static_cat,
        )
        if out.dim() == 3:  # a point forecast, as the "mean" and "0.5" keys
            out = torch.stack([out, out], dim=-1)
        if past_target.dim() == 2:
            out = out.squeeze(2)
        return (out,), None, None

    def loss(self, batch: dict[str, Tensor]) -> Tensor:
        """The config's loss over the observed future values, in units of each window's scale."""
        covariates = {k: batch.get(k) for k in self.model.inputs.fields}
        pred = self.forecast(batch["past_target"], batch["past_observed_values"], **covariates)
        past = _channels(batch["past_target"]).to(pred.dtype)
        past_observed = _channels(batch["past_observed_values"])
        target = _channels(batch["future_target"]).to(pred.dtype)
        observed = _channels(batch["future_observed_values"]) > 0
        if not observed.any():  # nothing to learn from (zero loss keeps the graph intact)
            return pred.sum() * 0.0
        scale = _loss_scale(past, past_observed).expand_as(target)[observed]
        pred, target = pred[observed], target[observed]  # [N] or [N, Q], and [N]
        pred = pred / (scale[:, None] if pred.dim() == 2 else scale)
        return forecast_loss(pred, target / scale, self.config)

    def log_loss(self, name: str, loss: Tensor, batch: dict[str, Tensor]) -> None:
        # GluonTS's estimator keeps the checkpoint with the lowest epoch-level "train_loss".
        self.log(
            f"{name}_loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=batch["past_target"].shape[0],
            sync_dist=name == "val",
        )
