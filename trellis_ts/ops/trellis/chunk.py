"""Chunkwise-parallel form, the training path (pure PyTorch, autograd through it).

Inside a chunk every gradient code `u_t` is taken at the chunk's first state, so the recurrence
is linear within the chunk and collapses to masked matrix products with decays accumulated in
log space (ops/trellis/README.md, "Chunkwise form"). Only the chunk-to-chunk state update is a
loop; the reads of all chunks are computed together after it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .common import (
    TrellisState,
    apply_phi,
    between_passes,
    check_inputs,
    final_state,
    gradient_code,
)


def _to_chunks(x: Tensor, front: int, chunk_size: int, value: float = 0.0) -> Tensor:
    """`[B, T, H, ...]` → `[B, H, N, C, ...]`, padding `front` tokens before and the end to a full chunk.

    Padded tokens carry gamma = 0 (no write) and log_beta = 0 (no decay), so they leave the
    memories untouched; their reads are dropped.
    """
    length = x.shape[1]
    back = (-(front + length)) % chunk_size
    x = x.movedim(1, 2)  # [B, H, T, ...]
    if front or back:
        pad = [0, 0] * (x.dim() - 3) + [front, back]
        x = F.pad(x, pad, value=value)
    return x.unflatten(2, (-1, chunk_size))


def chunk_trellis(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    alpha: Tensor,
    log_beta: Tensor,
    gamma: Tensor,
    *,
    chunk_size: int = 16,
    phi: str = "silu",
    f: str = "ln_silu",
    initial_state: TrellisState | tuple[Tensor, Tensor] | None = None,
    output_final_state: bool = False,
) -> tuple[Tensor, TrellisState | None]:
    """Two-pass Trellis attention, chunkwise. Returns `y [B, T, H, dv]` and the final state.

    Memory grows linearly with T (one `[m, d]` state per chunk is kept for the backward pass);
    time is linear in T with `O(C²)` work per chunk.
    """
    state = check_inputs(q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, initial_state)
    length, front = q.shape[1], state.offset
    qc, kc, vc, ac = (_to_chunks(x, front, chunk_size) for x in (q, k, v, alpha))
    log_beta_c = _to_chunks(log_beta, front, chunk_size)  # [B, H, N, C]
    gamma_c = _to_chunks(gamma, front, chunk_size)

    # Decays inside each chunk, in log space: b_r = log μ_r = Σ_{j≤r} log β_j.
    b = log_beta_c.cumsum(-1)
    causal = torch.ones(chunk_size, chunk_size, dtype=torch.bool, device=q.device).tril()
    log_ratio = torch.where(causal, b[..., :, None] - b[..., None, :], float("-inf"))
    decay = log_ratio.exp() * gamma_c[..., None, :]  # D[r, i] = γ_i μ_r / μ_i for i ≤ r
    end_weight = gamma_c * (b[..., -1:] - b).exp()  # γ_i μ_C / μ_i
    start_decay = b.exp()  # μ_r
    chunk_decay = start_decay[..., -1, None, None]  # μ_C, [B, H, N, 1, 1]

    # The sequential part: chunk-start states and gradient codes, chunk by chunk.
    key_memory, value_memory = state.key_memory, state.value_memory
    key_anchor, value_anchor = state.key_anchor, state.value_anchor
    key_starts, value_starts, key_codes, value_codes = [], [], [], []
    for j in range(qc.shape[2]):
        if j > 0:
            key_anchor, value_anchor = key_memory, value_memory
        k_j, v_j, a_j, w_j = kc[:, :, j], vc[:, :, j], ac[:, :, j], end_weight[:, :, j, :, None]
        u_k = gradient_code(k_j @ key_anchor.mT, a_j, phi)  # [B, H, C, m]
        u_v = gradient_code(v_j @ value_anchor.mT, a_j, phi)
        key_starts.append(key_memory)
        value_starts.append(value_memory)
        key_codes.append(u_k)
        value_codes.append(u_v)
        key_memory = chunk_decay[:, :, j] * key_memory - (u_k * w_j).mT @ k_j
        value_memory = chunk_decay[:, :, j] * value_memory - (u_v * w_j).mT @ v_j
    key_start = torch.stack(key_starts, 2)  # [B, H, N, m, d]
    value_start = torch.stack(value_starts, 2)
    u_k, u_v = torch.stack(key_codes, 2), torch.stack(value_codes, 2)  # [B, H, N, C, m]

    # The parallel part: reads of every chunk at once (write first, then read).
    mu = start_decay[..., None]
    key_read = mu * (qc @ key_start.mT) - (decay * (qc @ kc.mT)) @ u_k  # [B, H, N, C, m]
    s = between_passes(key_read, f)
    value_read = mu * (s @ value_start) - (decay * (s @ u_v.mT)) @ vc  # [B, H, N, C, dv]
    y = apply_phi(value_read, phi).flatten(2, 3)[:, :, front : front + length].movedim(2, 1)

    if not output_final_state:
        return y, None
    # The anchors left from the loop are those of the chunk holding the last token.
    end = final_state(
        key_memory, value_memory, key_anchor, value_anchor, front + length, chunk_size
    )
    return y, end
