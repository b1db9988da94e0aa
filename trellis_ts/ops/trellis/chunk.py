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


def _stack_passes(key: Tensor, value: Tensor, dim: int = 2) -> Tensor:
    """Stack key- and value-pass tensors on a new axis `dim`, zero-padding the last axis to match."""
    width = max(key.shape[-1], value.shape[-1])
    key = F.pad(key, (0, width - key.shape[-1]))
    value = F.pad(value, (0, width - value.shape[-1]))
    return torch.stack([key, value], dim)


def _unstack_passes(x: Tensor, d: int, dv: int, dim: int = 2) -> tuple[Tensor, Tensor]:
    """Inverse of `_stack_passes` (unbind, not indexing: its backward needs no zero-filled copy)."""
    key, value = x.unbind(dim)
    return (key if key.shape[-1] == d else key[..., :d]), (
        value if value.shape[-1] == dv else value[..., :dv]
    )


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

    # The sequential part: chunk-start states and gradient codes, chunk by chunk. Both passes
    # run in one loop, stacked on a pass axis; zero-padding k/v/memories to a common width is
    # exact (padded columns never enter z and stay zero), and halves the loop's op count.
    d, dv = k.shape[-1], v.shape[-1]
    memory = _stack_passes(state.key_memory, state.value_memory)  # [B, H, 2, m, D]
    anchor = _stack_passes(state.key_anchor, state.value_anchor)
    inputs = _stack_passes(kc, vc, dim=3)  # [B, H, N, 2, C, D]
    starts, codes = [], []
    # unbind once: indexing chunk j inside the loop would make backward allocate (and zero) a
    # full-size gradient per chunk, quadratic in the number of chunks.
    per_chunk = zip(inputs.unbind(2), ac.unbind(2), end_weight.unbind(2), chunk_decay.unbind(2),
                    strict=True)  # fmt: skip
    for j, (x_j, a_j, w_j, decay_j) in enumerate(per_chunk):
        if j > 0:
            anchor = memory
        u = gradient_code(x_j @ anchor.mT, a_j[:, :, None], phi)  # [B, H, 2, C, m]
        starts.append(memory)
        codes.append(u)
        memory = decay_j[:, :, None] * memory - (u * w_j[:, :, None, :, None]).mT @ x_j
    start_states = torch.stack(starts, 2)  # [B, H, N, 2, m, D]
    key_start, value_start = _unstack_passes(start_states, d, dv, dim=3)
    u_k, u_v = torch.stack(codes, 2).unbind(3)  # [B, H, N, C, m] each

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
        *_unstack_passes(memory, d, dv), *_unstack_passes(anchor, d, dv), front + length, chunk_size
    )
    return y, end
