"""Pieces shared by the three forms of the Trellis op: the state, the nonlinearities, checks.

Shapes: `q, k [B, T, H, d]`, `v [B, T, H, dv]`, `alpha [B, T, H, m]`, `log_beta, gamma [B, T, H]`.
Memories: `key_memory [B, H, m, d]`, `value_memory [B, H, m, dv]`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from trellis_ts.errors import ConfigError, positive_int

from .choices import BETWEEN, PHIS


class TrellisState(NamedTuple):
    """Everything needed to continue a sequence exactly where a call stopped.

    `key_memory`/`value_memory` are the two passes' memories after the last token. With a chunk
    size above one the gradient inside a chunk is taken at the chunk's first state, so a call that
    stops mid-chunk also hands on that state (`key_anchor`/`value_anchor`) and how many tokens of
    the chunk are already consumed (`offset`, in `[0, chunk_size)`). When `offset == 0` the
    anchors equal the memories.
    """

    key_memory: Tensor  # [B, H, m, d]
    value_memory: Tensor  # [B, H, m, dv]
    key_anchor: Tensor  # [B, H, m, d]
    value_anchor: Tensor  # [B, H, m, dv]
    offset: int = 0
    chunk_size: int = 1

    @classmethod
    def from_memories(
        cls, key_memory: Tensor, value_memory: Tensor, chunk_size: int = 1
    ) -> TrellisState:
        """A state at a chunk boundary (offset 0) from the two memories alone."""
        return cls(key_memory, value_memory, key_memory, value_memory, 0, chunk_size)

    @classmethod
    def zeros(
        cls,
        batch: int,
        heads: int,
        slots: int,
        d: int,
        dv: int,
        *,
        chunk_size: int = 1,
        like: Tensor,
    ) -> TrellisState:
        key = like.new_zeros(batch, heads, slots, d)
        value = like.new_zeros(batch, heads, slots, dv)
        return cls.from_memories(key, value, chunk_size)


def apply_phi(z: Tensor, phi: str) -> Tensor:
    if phi == "identity":
        return z
    if phi == "silu":
        return F.silu(z)
    if phi == "tanh":
        return torch.tanh(z)
    raise ConfigError(f"phi={phi!r} is not one of {PHIS}; pick one of those")


def between_passes(y: Tensor, f: str, eps: float = 1e-6) -> Tensor:
    """`f`: the parameter-free map from the key pass's read `[..., m]` to the value pass's query."""
    if f == "ln_silu":
        return F.layer_norm(F.silu(y), y.shape[-1:], eps=eps)
    if f == "l2_silu":
        s = F.silu(y)
        return s / torch.sqrt((s * s).sum(-1, keepdim=True) + eps)
    if f == "softmax":
        return torch.softmax(y, dim=-1)
    raise ConfigError(f"f={f!r} is not one of {BETWEEN}; pick one of those")


def derivatives(z: Tensor, phi: str, order: int = 2) -> tuple[Tensor, Tensor, Tensor | None]:
    """`φ(z)`, `φ'(z)` and (for `order=2`) `φ''(z)` of the elementwise nonlinearities silu, tanh."""
    if phi == "silu":
        sig = torch.sigmoid(z)
        slope = sig * (1 + z * (1 - sig))
        curvature = sig * (1 - sig) * (2 + z * (1 - 2 * sig)) if order > 1 else None
        return z * sig, slope, curvature
    t = torch.tanh(z)  # tanh
    slope = 1 - t * t
    return t, slope, (-2 * t * slope if order > 1 else None)


class _GradientCode(torch.autograd.Function):
    """`u = φ'(z) ⊙ (φ(z) − α)` as one autograd node with an analytic backward.

    The token loops (`naive_trellis`, `trellis_step`) evaluate this once per token and pass;
    recording its half-dozen elementwise ops in the autograd graph cost more than the matrix
    products around it. (The stale chunk loop keeps these derivatives itself: `StaleScan`.)
    """

    @staticmethod
    def forward(z: Tensor, alpha: Tensor, phi: str) -> Tensor:
        value, slope, _ = derivatives(z, phi, order=1)
        return slope * (value - alpha)

    @staticmethod
    def setup_context(ctx, inputs, output):
        z, alpha, phi = inputs
        ctx.save_for_backward(z, alpha)
        ctx.phi = phi

    @staticmethod
    def backward(ctx, grad_u: Tensor):
        z, alpha = ctx.saved_tensors
        # Written with differentiable ops so that gradcheck's double evaluation stays exact.
        value, slope, curvature = derivatives(z, ctx.phi)
        grad_z = grad_u * (curvature * (value - alpha) + slope * slope)
        return grad_z, -grad_u * slope, None


def gradient_code(z: Tensor, alpha: Tensor, phi: str) -> Tensor:
    """`u = φ'(z) ⊙ (φ(z) − α)`: the vector-Jacobian product of the write loss (per token).

    Checked against autograd's own gradient of ½‖φ(M x) − α‖² in the tests.
    """
    if phi == "identity":
        return z - alpha
    if phi not in PHIS:
        raise ConfigError(f"phi={phi!r} is not one of {PHIS}; pick one of those")
    return _GradientCode.apply(z, alpha, phi)


def check_inputs(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    alpha: Tensor,
    log_beta: Tensor,
    gamma: Tensor,
    chunk_size: int,
    phi: str,
    f: str,
    initial_state: TrellisState | tuple[Tensor, Tensor] | None,
) -> TrellisState:
    """Validate shapes and options; return the starting state (zeros when none is given)."""
    if q.dim() != 4 or k.shape != q.shape:
        raise ConfigError(
            f"q and k must both be [B, T, H, d]; got {tuple(q.shape)} and {tuple(k.shape)}"
        )
    batch, length, heads, d = q.shape
    if v.dim() != 4 or v.shape[:3] != q.shape[:3]:
        raise ConfigError(
            f"v must be [B, T, H, dv] with B, T, H of q {tuple(q.shape)}; got {tuple(v.shape)}"
        )
    if alpha.dim() != 4 or alpha.shape[:3] != q.shape[:3]:
        raise ConfigError(f"alpha must be [B, T, H, m]; got {tuple(alpha.shape)}")
    for name, gate in (("log_beta", log_beta), ("gamma", gamma)):
        if gate.shape != q.shape[:3]:
            raise ConfigError(
                f"{name} must be [B, T, H] = {tuple(q.shape[:3])}; got {tuple(gate.shape)}"
            )
    positive_int(chunk_size, "chunk_size")
    if phi not in PHIS:
        raise ConfigError(f"phi={phi!r} is not one of {PHIS}; pick one of those")
    if f not in BETWEEN:
        raise ConfigError(f"f={f!r} is not one of {BETWEEN}; pick one of those")
    slots, dv = alpha.shape[-1], v.shape[-1]
    if initial_state is None:
        return TrellisState.zeros(batch, heads, slots, d, dv, chunk_size=chunk_size, like=q)
    if not isinstance(initial_state, TrellisState):
        key_memory, value_memory = initial_state
        initial_state = TrellisState.from_memories(key_memory, value_memory, chunk_size)
    want_k, want_v = (batch, heads, slots, d), (batch, heads, slots, dv)
    if (
        tuple(initial_state.key_memory.shape) != want_k
        or tuple(initial_state.value_memory.shape) != want_v
    ):
        raise ConfigError(
            f"initial_state memories must be {want_k} and {want_v}; got "
            f"{tuple(initial_state.key_memory.shape)} and {tuple(initial_state.value_memory.shape)}"
        )
    if initial_state.offset and initial_state.chunk_size != chunk_size and phi != "identity":
        raise ConfigError(
            f"initial_state stopped mid-chunk with chunk_size={initial_state.chunk_size}; "
            f"continue with that chunk_size, not {chunk_size}"
        )
    if phi == "identity":
        # The exact recurrence has no chunk anchor: any state continues at any chunk size.
        return TrellisState.from_memories(
            initial_state.key_memory, initial_state.value_memory, chunk_size
        )
    # A state saved at a chunk boundary may be continued with any chunk size.
    return initial_state._replace(chunk_size=chunk_size)


def final_state(
    key_memory: Tensor,
    value_memory: Tensor,
    key_anchor: Tensor,
    value_anchor: Tensor,
    offset: int,
    chunk_size: int,
) -> TrellisState:
    """The state after a call; at a chunk boundary the anchors are the memories themselves."""
    offset %= chunk_size
    if offset == 0:
        return TrellisState.from_memories(key_memory, value_memory, chunk_size)
    return TrellisState(key_memory, value_memory, key_anchor, value_anchor, offset, chunk_size)
