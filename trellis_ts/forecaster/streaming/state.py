"""The per-series state of a streaming model, and the one path that advances it.

A `StreamState` holds, for each series, everything the model needs to forecast after its last
observation and to read the next ones, and nothing that grows with the history: the running
moments of the causal normalisation (`trellis_ts.data.features.running`), the statistics at the
last full patch, the steps since it (the partial patch, fewer than `patch_len`), the blocks'
output at the last full patch and each block's state (the Trellis memories and the conv's last
rows, or an attention window's keys and values). It is data: tensors and names, saved beside
the weights without pickle.

`advance` is the only code that reads observations into a state: `fit` reads each series whole
from an empty state, `update` reads new rows from the stored one, `predict(df)` and the
backtests read a frame from an empty state. Reading `a` then `b` equals reading `a + b` up to
float rounding (the moments are bit-identical; the network runs in float32).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from trellis_ts.data.features.running import decay_for, mean_std, moments
from trellis_ts.layers import MixerState, WindowCache
from trellis_ts.models.streaming import N_TOKEN_STATS

__all__ = [
    "StreamState",
    "TokenRecord",
    "advance",
    "forecast_state",
    "normalised",
    "stream_decay",
    "token_inputs",
    "window_values",
]

SEGMENT_TOKENS = 256  # tokens per model call when a long stretch is read (bounded memory)
TOKENS_PER_CALL = 65_536  # series x tokens per model call


@dataclass
class StreamState:
    """The state of `n` series (module docstring); row `i` is series `names[i]`."""

    names: list
    seen: np.ndarray  # int64 [n]: observations read
    sums: np.ndarray  # float64 [n, 3]: the running moments
    token_stats: np.ndarray  # float64 [n, 2]: mean, std at the last full patch (NaN before one)
    partial: np.ndarray  # float64 [n, P - 1]: the first `seen % P` are the steps since it
    partial_dynamic: np.ndarray  # float32 [n, P - 1, k]: their time-varying covariates
    recent: np.ndarray  # float64 [n, L]: the last context_length steps (NaN before the first)
    outputs: torch.Tensor  # float32 [n, D]: the blocks' output at the last full patch
    layers: list[dict[str, torch.Tensor]] = field(default_factory=list)  # per block, [n, ...]

    @classmethod
    def empty(cls, model: nn.Module, names, n_dynamic: int) -> StreamState:
        """The state of series that have read nothing yet."""
        n, spec = len(names), model.config
        P = spec.patch_len
        with torch.no_grad():
            _, states = model.read(
                torch.zeros(1, 1, P),
                torch.zeros(1, 1, N_TOKEN_STATS),
                torch.zeros(1, 1, P * n_dynamic) if n_dynamic else None,
                return_state=True,
            )
        layers = [
            {k: v.new_zeros((n, *v.shape[1:])) for k, v in _as_dict(s).items()} for s in states
        ]
        return cls(
            names=list(names),
            seen=np.zeros(n, np.int64),
            sums=np.zeros((n, 3)),
            token_stats=np.full((n, 2), np.nan),
            partial=np.zeros((n, P - 1)),
            partial_dynamic=np.zeros((n, P - 1, n_dynamic), np.float32),
            recent=np.full((n, spec.context_length), np.nan),
            outputs=torch.zeros(n, spec.d_model),
            layers=layers,
        )

    def __len__(self) -> int:
        return len(self.names)

    def copy(self) -> StreamState:
        return StreamState(
            names=list(self.names),
            **{f: getattr(self, f).copy() for f in ARRAY_FIELDS},
            outputs=self.outputs.clone(),
            layers=[{k: v.clone() for k, v in layer.items()} for layer in self.layers],
        )

    def extended(self, other: StreamState) -> StreamState:
        """This state with `other`'s series appended (new series of an update)."""
        return StreamState(
            names=self.names + other.names,
            **{f: np.concatenate([getattr(self, f), getattr(other, f)]) for f in ARRAY_FIELDS},
            outputs=torch.cat([self.outputs, other.outputs]),
            layers=[
                {k: torch.cat([a[k], b[k]]) for k in a}
                for a, b in zip(self.layers, other.layers, strict=True)
            ],
        )

    def nbytes(self) -> int:
        """Bytes of state per series (all fields, as stored)."""
        tensors = [self.outputs, *(v for layer in self.layers for v in layer.values())]
        total = sum(getattr(self, f).nbytes for f in ARRAY_FIELDS)
        total += sum(t.numel() * t.element_size() for t in tensors)
        return total // max(len(self), 1)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        """Every field as a named tensor (for safetensors); the names go in the JSON."""
        out = {f"stream.{f}": torch.from_numpy(getattr(self, f)) for f in ARRAY_FIELDS}
        out["stream.outputs"] = self.outputs
        for i, layer in enumerate(self.layers):
            out |= {f"stream.layers.{i}.{k}": v for k, v in layer.items()}
        return {k: v.contiguous() for k, v in out.items()}

    @classmethod
    def from_tensors(cls, names, tensors: dict[str, torch.Tensor]) -> StreamState:
        layers: dict[int, dict] = defaultdict(dict)
        for key, value in tensors.items():
            if key.startswith("stream.layers."):
                _, _, i, name = key.split(".", 3)
                layers[int(i)][name] = value
        return cls(
            names=list(names),
            **{f: tensors[f"stream.{f}"].numpy().copy() for f in ARRAY_FIELDS},
            outputs=tensors["stream.outputs"].clone(),
            layers=[layers[i] for i in sorted(layers)],
        )


# The numpy fields of a `StreamState`, each `[n, ...]`.
ARRAY_FIELDS = ("seen", "sums", "token_stats", "partial", "partial_dynamic", "recent")


@dataclass
class TokenRecord:
    """What a read from a series' start saw at each full patch (for one-pass backtests): the
    token's statistics and the blocks' output; token `t` ends after `(t + 1) * patch_len` steps."""

    stats: np.ndarray  # float64 [c, 2]
    outputs: torch.Tensor  # float32 [c, D]


def stream_decay(config) -> float:
    """The causal normalisation's decay per step: a trailing window of `norm_window` steps
    (None: `context_length`, the window a window model normalises over; 0: running statistics
    since the first step)."""
    window = config.context_length if config.norm_window is None else config.norm_window
    return decay_for(window)


def _as_dict(state) -> dict[str, torch.Tensor]:
    if isinstance(state, MixerState):
        memory = state.memory
        return {
            "key_memory": memory.key_memory,
            "value_memory": memory.value_memory,
            "conv_rows": state.conv_rows,
        }
    return {"keys": state.keys, "values": state.values, "valid": state.valid}


def _as_state(layer: dict[str, torch.Tensor]):
    if "key_memory" in layer:  # phi = identity: the memories are the whole op state
        return MixerState((layer["key_memory"], layer["value_memory"]), layer["conv_rows"])
    return WindowCache(layer["keys"], layer["values"], layer["valid"])


def token_inputs(
    buffer: np.ndarray,
    dynamic: np.ndarray | None,
    sums_at_ends: np.ndarray,
    previous: np.ndarray,
    patch_len: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """The tokens of `c` full patches of `g` series: from `buffer [g, >= c P]` (the values, as
    the model sees them before normalising), `dynamic [g, >= c P, k]`, the running sums at each
    patch's end `[g, c, 3]` and the statistics before the first patch `previous [g, 2]` (NaN for
    a fresh series). Returns `(patches [g, c, P], stats [g, c, 2], dynamic [g, c, P k], mean
    [g, c], std [g, c])`, patches normalised by their own end's statistics."""
    g, c, _ = sums_at_ends.shape
    P = patch_len
    mean, std = mean_std(sums_at_ends)
    patches = (buffer[:, : c * P].reshape(g, c, P) - mean[..., None]) / std[..., None]
    first = np.where(np.isnan(previous), np.stack([mean[:, 0], std[:, 0]], -1), previous)
    prev_mean = np.concatenate([first[:, :1], mean[:, :-1]], 1)
    prev_std = np.concatenate([first[:, 1:], std[:, :-1]], 1)
    stats = np.stack([(mean - prev_mean) / std, np.log(std / prev_std)], -1)
    dyn = None
    if dynamic is not None and dynamic.shape[-1]:
        dyn = dynamic[:, : c * P].reshape(g, c, P * dynamic.shape[-1])
    return patches.astype(np.float32), stats.astype(np.float32), dyn, mean, std


@torch.no_grad()
def advance(
    model: nn.Module,
    state: StreamState,
    rows: list[int],
    values: list[np.ndarray],
    dynamic: list[np.ndarray] | None = None,
    static: torch.Tensor | None = None,
    decay: float = 1.0,
    keep_tokens: bool = False,
) -> list[TokenRecord] | None:
    """Read `values[j]` (float64 `[k_j]`, as the model sees them before normalising; with their
    time-varying covariates `dynamic[j] [k_j, k]`) into row `rows[j]` of `state`, in place.
    `static [len(rows), D]` is the static vector of each (`model.static_vector`).

    Series are read together when they bring as many steps onto partial patches of one length.
    With `keep_tokens` the record of every full patch read is returned, per `values` entry."""
    model.eval()
    P = model.config.patch_len
    records: list[TokenRecord | None] = [None] * len(rows)
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for j, row in enumerate(rows):
        groups[(len(values[j]), int(state.seen[row] % P))].append(j)
    for (k, r), members in groups.items():
        if k == 0:
            continue
        at = np.asarray([rows[j] for j in members])
        new = np.stack([values[j] for j in members]).astype(np.float64)  # [g, k]
        sums = moments(new, decay, state.sums[at])  # [g, k, 3]
        buffer = np.concatenate([state.partial[at, :r], new], 1)
        dyn = None
        width = state.partial_dynamic.shape[-1]
        if width:
            dyn = np.concatenate(
                [state.partial_dynamic[at, :r], np.stack([dynamic[j] for j in members])], 1
            )
        c, rest = divmod(r + k, P)
        if c:
            ends = (np.arange(c) + 1) * P - 1 - r
            patches, stats, dyn_tokens, mean, std = token_inputs(
                buffer, dyn, sums[:, ends], state.token_stats[at], P
            )
            vector = None if static is None else static[[int(j) for j in members]]
            outputs = _read(model, state, at, patches, stats, dyn_tokens, vector)
            state.outputs[at] = outputs[:, -1]
            state.token_stats[at] = np.stack([mean[:, -1], std[:, -1]], -1)
            if keep_tokens:
                for i, j in enumerate(members):
                    records[j] = TokenRecord(np.stack([mean[i], std[i]], -1), outputs[i])
        state.partial[at] = 0.0
        state.partial[at, :rest] = buffer[:, c * P :]
        if width:
            state.partial_dynamic[at] = 0.0
            state.partial_dynamic[at, :rest] = dyn[:, c * P :]
        state.sums[at] = sums[:, -1]
        state.recent[at] = np.concatenate([state.recent[at], new], 1)[:, -state.recent.shape[1] :]
        state.seen[at] += k
    return records if keep_tokens else None


def _read(model, state: StreamState, at, patches, stats, dynamic, static) -> torch.Tensor:
    """Run the tokens `[g, c, ...]` of rows `at` through the blocks from their stored state, in
    pieces of bounded size, and store the state after them; the outputs `[g, c, D]`."""
    g, c, _ = patches.shape
    per_call = max(1, TOKENS_PER_CALL // min(c, SEGMENT_TOKENS))
    out = torch.empty(g, c, model.config.d_model)
    for lo in range(0, g, per_call):
        rows = torch.as_tensor(at[lo : lo + per_call])
        layer_states = [_as_state({k: v[rows] for k, v in layer.items()}) for layer in state.layers]
        for start in range(0, c, SEGMENT_TOKENS):
            piece = slice(start, start + SEGMENT_TOKENS)
            y, layer_states = model.read(
                torch.from_numpy(patches[lo : lo + per_call, piece]),
                torch.from_numpy(stats[lo : lo + per_call, piece]),
                None if dynamic is None else torch.from_numpy(dynamic[lo : lo + per_call, piece]),
                None if static is None else static[lo : lo + per_call],
                state=layer_states,
                return_state=True,
            )
            out[lo : lo + per_call, piece] = y
        for layer, new in zip(state.layers, layer_states, strict=True):
            for k, v in _as_dict(new).items():
                layer[k][rows] = v.to(layer[k].dtype)
    return out


def window_values(values: np.ndarray, starts: np.ndarray, length: int) -> np.ndarray:
    """`values[start : start + length]` for each of `starts [n]`, as `[n, length]`, NaN where a
    step falls outside the series: the partial patches after tokens and the recent steps before
    origins, cut alike for training, forecasts and backtests."""
    steps = np.asarray(starts)[:, None] + np.arange(length)
    inside = (steps >= 0) & (steps < len(values))
    return np.where(inside, values[np.clip(steps, 0, len(values) - 1)], np.nan)


def normalised(values: np.ndarray, stats: np.ndarray) -> np.ndarray:
    """`values [n, w]` normalised by `stats [n, 2]` (mean, std); NaN (not observed) become 0."""
    out = (values - stats[:, :1]) / stats[:, 1:]
    return np.nan_to_num(out, nan=0.0).astype(np.float32)


@torch.no_grad()
def forecast_state(
    model: nn.Module,
    outputs: torch.Tensor,
    stats: np.ndarray,
    partial: np.ndarray,
    observed: np.ndarray,
    recent: np.ndarray,
    future: np.ndarray | None = None,
    static: torch.Tensor | None = None,
) -> np.ndarray:
    """Forecasts `[n, H]` (`[n, H, Q]`), in the units the model reads, from origins that follow
    a full patch with block output `outputs [n, D]` and statistics `stats [n, 2]` by
    `observed [n]` steps `partial [n, P - 1]` (the first `observed` are used); `recent [n, L]`
    are the last steps before each origin (NaN: none) and `future [n, H, F]` the known
    covariates over each horizon."""
    model.eval()
    width = partial.shape[1]
    mask = np.arange(width)[None] < observed[:, None]
    values = normalised(np.where(mask, partial, np.nan), stats)
    y = (
        model.forecast(
            outputs[:, None],
            torch.from_numpy(values)[:, None],
            torch.from_numpy(mask.astype(np.float32))[:, None],
            torch.from_numpy(normalised(recent, stats))[:, None],
            None if future is None else torch.as_tensor(future, dtype=torch.float32)[:, None],
            static,
        )[:, 0]
        .double()
        .numpy()
    )
    shape = (-1,) + (1,) * (y.ndim - 1)
    return y * stats[:, 1].reshape(shape) + stats[:, 0].reshape(shape)
