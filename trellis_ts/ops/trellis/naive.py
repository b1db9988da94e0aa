"""Reference form: the equations of ops/trellis/README.md followed literally, token by token.

Slow on purpose (a Python loop over tokens, the two passes run one after the other); it is the
ground truth the chunkwise and recurrent forms are tested against. For a nonlinear φ the
gradient inside a chunk is taken at the chunk's first memory (the stale gradient); for
φ = identity it is taken at the previous token's memory whatever the chunk size, which is what
the chunkwise form computes exactly.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .choices import DEFAULT_BETWEEN, DEFAULT_CHUNK_SIZE, DEFAULT_PHI
from .common import (
    TrellisState,
    apply_phi,
    between_passes,
    check_inputs,
    final_state,
    gradient_code,
)


def _compress_pass(
    inputs: Tensor,
    readers: Tensor,
    alpha: Tensor,
    log_beta: Tensor,
    gamma: Tensor,
    memory: Tensor,
    anchor: Tensor,
    offset: int,
    chunk_size: int,
    phi: str,
    read_transposed: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """One compression pass over all tokens.

    inputs `[B, T, H, n]` are written into memory `[B, H, m, n]` with targets alpha `[B, T, H, m]`;
    after each write the memory is read with `readers` (`[B, T, H, n]` read as `M r`, giving
    `[B, T, H, m]`; or `[B, T, H, m]` read as `Mᵀ r`, giving `[B, T, H, n]`).
    Returns the reads, the last memory and the anchor of the chunk the last token is in.
    """
    reads = []
    exact = phi == "identity"  # the delta rule chunks exactly: every gradient at M_{t-1}
    for t in range(inputs.shape[1]):
        if exact or (offset + t) % chunk_size == 0:
            anchor = memory  # a new chunk: gradients are taken at this state until the next one
        x_t = inputs[:, t]  # [B, H, n]
        z_t = torch.einsum("bhmn,bhn->bhm", anchor, x_t)
        u_t = gradient_code(z_t, alpha[:, t], phi)  # [B, H, m]
        beta_t = log_beta[:, t].exp()[..., None, None]
        gamma_t = gamma[:, t][..., None, None]
        memory = beta_t * memory - gamma_t * u_t[..., :, None] * x_t[..., None, :]
        if read_transposed:
            reads.append(torch.einsum("bhmn,bhm->bhn", memory, readers[:, t]))
        else:
            reads.append(torch.einsum("bhmn,bhn->bhm", memory, readers[:, t]))
    return torch.stack(reads, dim=1), memory, anchor


def naive_trellis(
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
    """Two-pass Trellis attention, reference loop. Returns `y [B, T, H, dv]` and the final state."""
    state = check_inputs(q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, initial_state)
    # Pass 1: compress keys, read with the queries.
    key_reads, key_memory, key_anchor = _compress_pass(
        k,
        q,
        alpha,
        log_beta,
        gamma,
        state.key_memory,
        state.key_anchor,
        state.offset,
        chunk_size,
        phi,
        read_transposed=False,
    )
    s = between_passes(key_reads, f)
    # Pass 2: compress values with the same targets and gates, read transposed with s.
    value_reads, value_memory, value_anchor = _compress_pass(
        v,
        s,
        alpha,
        log_beta,
        gamma,
        state.value_memory,
        state.value_anchor,
        state.offset,
        chunk_size,
        phi,
        read_transposed=True,
    )
    y = apply_phi(value_reads, phi)
    if not output_final_state:
        return y, None
    end_offset = 0 if phi == "identity" else state.offset + q.shape[1]
    end = final_state(key_memory, value_memory, key_anchor, value_anchor, end_offset, chunk_size)
    return y, end
