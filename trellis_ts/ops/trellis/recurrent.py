"""Streaming form: one token at a time with a carried state, both passes in the same step.

Memory use is bounded (two `[m, d]` memories per head, plus the chunk-start copies when
`chunk_size > 1`) whatever the sequence length. Prefill with `chunk_trellis`, then call
`trellis_step` per new token: the outputs equal one `chunk_trellis` call over the whole sequence.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .choices import DEFAULT_BETWEEN, DEFAULT_CHUNK_SIZE, DEFAULT_PHI
from .common import TrellisState, apply_phi, between_passes, check_inputs, gradient_code


def _write(
    memory: Tensor, anchor: Tensor, x: Tensor, alpha: Tensor, beta: Tensor, gamma: Tensor, phi: str
) -> Tensor:
    """`M ← β M − γ u xᵀ` with `u` taken at `anchor`. memory `[B, H, m, n]`, x `[B, H, n]`."""
    u = gradient_code((anchor @ x[..., None])[..., 0], alpha, phi)
    return beta[..., None, None] * memory - gamma[..., None, None] * (
        u[..., :, None] * x[..., None, :]
    )


def trellis_step(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    alpha: Tensor,
    log_beta: Tensor,
    gamma: Tensor,
    state: TrellisState,
    *,
    phi: str = DEFAULT_PHI,
    f: str = DEFAULT_BETWEEN,
) -> tuple[Tensor, TrellisState]:
    """One token: `q, k [B, H, d]`, `v [B, H, dv]`, `alpha [B, H, m]`, `log_beta, gamma [B, H]`.

    Returns `y [B, H, dv]` and the next state. The state's `chunk_size` sets where the gradient
    anchor is refreshed.
    """
    key_memory, value_memory, key_anchor, value_anchor, offset, chunk_size = state
    exact = phi == "identity"  # no chunk anchor: every gradient at the previous memory
    if offset == 0 or exact:
        key_anchor, value_anchor = key_memory, value_memory
    beta = log_beta.exp()
    key_memory = _write(key_memory, key_anchor, k, alpha, beta, gamma, phi)
    value_memory = _write(value_memory, value_anchor, v, alpha, beta, gamma, phi)
    s = between_passes((key_memory @ q[..., None])[..., 0], f)  # [B, H, m]
    y = apply_phi((s[..., None, :] @ value_memory)[..., 0, :], phi)  # [B, H, dv]
    offset = 0 if exact else (offset + 1) % chunk_size
    if offset == 0:
        key_anchor, value_anchor = key_memory, value_memory
    return y, TrellisState(key_memory, value_memory, key_anchor, value_anchor, offset, chunk_size)


def recurrent_trellis(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    alpha: Tensor,
    log_beta: Tensor,
    gamma: Tensor,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    phi: str = DEFAULT_PHI,
    f: str = DEFAULT_BETWEEN,
    initial_state: TrellisState | tuple[Tensor, Tensor] | None = None,
    output_final_state: bool = False,
) -> tuple[Tensor, TrellisState | None]:
    """Two-pass Trellis attention token by token. Returns `y [B, T, H, dv]` and the final state."""
    state = check_inputs(q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, initial_state)
    outputs = []
    for t in range(q.shape[1]):
        y_t, state = trellis_step(
            q[:, t], k[:, t], v[:, t], alpha[:, t], log_beta[:, t], gamma[:, t], state, phi=phi, f=f
        )
        outputs.append(y_t)
    y = torch.stack(outputs, dim=1) if outputs else v.new_zeros(v.shape)
    return y, (state if output_final_state else None)
