"""`StreamingModel`: a causal decoder over a whole series' patch tokens, one forecast per token.

A series is cut into non-overlapping patches of `patch_len` steps from its first observation.
Each patch becomes a token (its values, normalised by the series' causal statistics at the
patch's end, the change of those statistics since the previous token, and the patch's
covariates); the blocks read the tokens in order and carry their state (the Trellis memory, or
a sliding window of keys and values for `mixer="attention"`), so the state after any token is
bounded and a series of any length is read at constant cost per token.

The head reads one token's output and forecasts the `prediction_length` steps after an origin
that may lie inside the next patch: the `r < patch_len` steps observed since the token (the
partial patch, with a mask) enter the head beside it, and so do the known covariates over the
horizon. Beside the head, a linear map of the last `context_length` steps before the origin
forecasts as DLinear/RLinear do (the state then models what a window misses): a bounded
buffer of recent values is part of the state. Training draws `r` at random per token; a forecast after any time step uses the `r`
its origin has. The statistics themselves are computed outside the network (in float64, by
`trellis_ts.data.features.running`), alike for training, updates and backtests.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from trellis_ts.models.covariates import ModelInputs
from trellis_ts.models.encoder import EncoderBlock, _monotone
from trellis_ts.models.spec import ModelSpec
from trellis_ts.modules.fused import Dropout

__all__ = ["N_TOKEN_STATS", "StreamingModel"]

N_TOKEN_STATS = 2  # per-token inputs beside the values: the change in level and in log scale


class StreamingModel(nn.Module):
    """`read(tokens) -> outputs (and state)`, `forecast(outputs, partial, ...) -> [N, T, H(, Q)]`.

    Shapes (N series, T tokens, P = patch_len, H = prediction_length): `patches [N, T, P]`,
    `stats [N, T, 2]`, `dynamic [N, T, P * k]` (the k time-varying covariates of each patch),
    `partial`/`mask [N, T, P - 1]`, `recent [N, T, L]` (the `context_length` steps before each
    origin, zeros before the series' start), `future [N, T, H, F]` (the known covariates after
    each origin). All values are normalised; the caller scales the forecasts back.
    """

    def __init__(self, spec: ModelSpec, inputs: ModelInputs | None = None) -> None:
        super().__init__()
        inputs = inputs or ModelInputs()
        self.config, self.inputs = spec, inputs
        P, D = spec.patch_len, spec.d_model
        self.n_dynamic = inputs.past_feat_dynamic_real + inputs.feat_dynamic_real
        self.embed = nn.Linear(P * (1 + self.n_dynamic) + N_TOKEN_STATS, D)
        self.embed_dropout = Dropout(spec.dropout)
        self.blocks = nn.ModuleList(EncoderBlock(spec) for _ in range(spec.n_layers))
        self.norm = nn.RMSNorm(D)
        self.partial = nn.Linear(2 * (P - 1), D, bias=False) if P > 1 else None
        self.future = (
            nn.Linear(spec.prediction_length * inputs.feat_dynamic_real, D, bias=False)
            if inputs.feat_dynamic_real
            else None
        )
        self.static_real = (
            nn.Linear(inputs.feat_static_real, D, bias=False) if inputs.feat_static_real else None
        )
        self.static_cat = nn.ModuleList(
            nn.Embedding(c + 1, D, padding_idx=0) for c in inputs.feat_static_cat
        )
        self.recent = nn.Linear(spec.context_length, spec.prediction_length)
        hidden = int(spec.ffn_mult * D)
        self.head = nn.Sequential(
            nn.Linear(D, hidden),
            nn.GELU(),
            Dropout(spec.dropout),
            nn.Linear(hidden, spec.prediction_length * spec.n_outputs),
        )

    def static_vector(
        self, feat_static_real: Tensor | None = None, feat_static_cat: Tensor | None = None
    ) -> Tensor | None:
        """`[N, D]`: what the static covariates add to every token and to the head (or None)."""
        out = None
        if self.static_real is not None:
            out = self.static_real(feat_static_real.float())
        for k, embedding in enumerate(self.static_cat):
            term = embedding(feat_static_cat[:, k].long())
            out = term if out is None else out + term
        return out

    def read(
        self,
        patches: Tensor,
        stats: Tensor,
        dynamic: Tensor | None = None,
        static: Tensor | None = None,
        state: list | None = None,
        return_state: bool = False,
    ):
        """The blocks' outputs `[N, T, D]` for the tokens, from `state` (None: a fresh series);
        with `return_state=True` also the state after the last token (one entry per block)."""
        parts = [patches] + ([dynamic] if self.n_dynamic else []) + [stats]
        x = self.embed(torch.cat(parts, dim=-1))
        if static is not None:
            x = x + static[:, None]
        x = self.embed_dropout(x)
        carried = return_state or state is not None
        states = []
        for i, block in enumerate(self.blocks):
            if carried:
                x, s = block(x, None if state is None else state[i], True)
                states.append(s)
            else:
                x = block(x)
        return (x, states) if return_state else x

    def forecast(
        self,
        outputs: Tensor,
        partial: Tensor,
        mask: Tensor,
        recent: Tensor,
        future: Tensor | None = None,
        static: Tensor | None = None,
    ) -> Tensor:
        """Normalised forecasts `[N, T, H]` (`[N, T, H, Q]` for quantiles) from the outputs of
        the tokens the origins follow, the partial patches after them and the known covariates
        over each horizon."""
        g = self.norm(outputs)
        if self.partial is not None:
            g = g + self.partial(torch.cat([partial, mask], dim=-1))
        if self.future is not None:
            g = g + self.future(future.flatten(-2))
        if static is not None:
            g = g + static[:, None]
        spec = self.config
        y = self.head(g).unflatten(-1, (spec.prediction_length, spec.n_outputs))
        mid = spec.n_outputs // 2  # into the point (middle) output: quantiles keep their gaps
        linear = self.recent(recent)[..., None]
        y = torch.cat([y[..., :mid], y[..., mid : mid + 1] + linear, y[..., mid + 1 :]], dim=-1)
        return _monotone(y) if spec.n_outputs > 1 else y.squeeze(-1)
