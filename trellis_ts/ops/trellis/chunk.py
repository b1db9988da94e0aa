"""Chunkwise-parallel form, the training path (pure PyTorch, device-agnostic).

Tokens are grouped into chunks of `chunk_size`; everything inside a chunk runs for all chunks
at once as batched products, and only the memory's chunk-to-chunk recurrence is a loop, inside
autograd Functions with analytic backwards. Which recurrence depends on φ
(ops/trellis/README.md):

- `phi="identity"` (`exact.py`): each pass is a gated delta rule, solved exactly inside a chunk
  through a unit-lower-triangular system: the token-by-token result for any chunk size, so the
  chunk size is a speed knob only.
- nonlinear `phi` (`stale.py`): the paper's stale gradient, every code of a chunk taken at the
  chunk's first memory; the chunk size is part of the model.

Without autograd (inference), long sequences run in segments of a few chunks with the state
carried across, so the working memory does not grow with T.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .choices import DEFAULT_BETWEEN, DEFAULT_CHUNK_SIZE, DEFAULT_PHI
from .common import TrellisState, check_inputs
from .exact import exact_chunks
from .stale import stale_chunks

SEGMENT_CHUNKS = 8  # chunks per segment of the no-grad path (bounded working memory)


def chunk_trellis(
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
    """Two-pass Trellis attention, chunkwise. Returns `y [B, T, H, dv]` and the final state.

    Training memory is linear in T (each chunk's start memory and `O(C)` values per token are
    kept for the backward pass); time is linear in T with `O(C)` work per token.
    """
    state = check_inputs(q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, initial_state)
    segment = SEGMENT_CHUNKS * chunk_size
    tensors = (q, k, v, alpha, log_beta, gamma, *state[:4])
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in tensors)
    if q.shape[1] > segment and not grad:
        return _segments(
            q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, state, output_final_state, segment
        )
    if phi == "identity":
        return exact_chunks(
            q,
            k,
            v,
            alpha,
            log_beta,
            gamma,
            chunk_size,
            f,
            state,
            initial_state is None,
            output_final_state,
        )
    return stale_chunks(
        q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, state, output_final_state
    )


def _segments(
    q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, state, output_final_state, segment
):
    """Inference over a long sequence, a few chunks at a time with the state carried across."""
    outputs, start, length = [], 0, q.shape[1]
    first = segment - state.offset  # later segments then start on chunk boundaries
    while start < length:
        stop = min(length, start + (first if start == 0 else segment))
        piece = (x[:, start:stop] for x in (q, k, v, alpha, log_beta, gamma))
        y, state = chunk_trellis(
            *piece,
            chunk_size=chunk_size,
            phi=phi,
            f=f,
            initial_state=state,
            output_final_state=True,
        )
        outputs.append(y)
        start = stop
    return torch.cat(outputs, 1), (state if output_final_state else None)
