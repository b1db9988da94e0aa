"""The stale-gradient chunkwise form for a nonlinear φ (silu, tanh): the paper's choice.

Inside a chunk every gradient code is taken at the chunk's first memory, so the recurrence is
linear within the chunk (ops/trellis/README.md, "Chunks and the stale gradient"). The
chunk-to-chunk loop is one autograd Function (`StaleScan`) that keeps only the chunk-start
memories and recomputes the codes in its backward; the reads of all chunks run at once after it.
Shapes: leading batch dims `*`, chunks `N`, tokens per chunk `C`, memories `[*, m, n]`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .chunking import chunk_decays, stack_passes, to_chunks, unstack_passes
from .common import TrellisState, apply_phi, between_passes, derivatives, final_state


class StaleScan(torch.autograd.Function):
    """The stale-gradient chunk recurrence for a nonlinear φ (the paper's chunkwise form).

    Chunk `j` takes every code at its anchor `A_j` (the chunk-start memory; for the first chunk
    of a call that continues mid-chunk, the given anchor): `Z_j = X_j A_jᵀ`,
    `U_j = φ'(Z_j) ⊙ (φ(Z_j) − α_j)`, then `M_{j+1} = μ_C M_j − U_jᵀ G_j` with `G = g ⊙ X`.

    Inputs: `x, gx [*, N, C, n]`, `alpha [*, N, C, m]`, `chunk_decay [*, N]`,
    `memory, anchor [*, m, n]`. Returns codes, chunk-start memories and the final memory, as
    `ExactScan`. The backward recomputes `Z` from the saved chunk-start memories.
    """

    @staticmethod
    def forward(x, gx, alpha, chunk_decay, memory, anchor, phi):
        n_chunks = x.shape[-3]
        codes = torch.empty(x.shape[:-1] + alpha.shape[-1:], dtype=x.dtype, device=x.device)
        starts = memory.new_empty(memory.shape[:-2] + (n_chunks,) + memory.shape[-2:])
        for j in range(n_chunks):
            starts[..., j, :, :] = memory
            z = x[..., j, :, :] @ (anchor if j == 0 else memory).mT
            value, slope, _ = derivatives(z, phi, order=1)
            u = slope * (value - alpha[..., j, :, :])
            codes[..., j, :, :] = u
            memory = chunk_decay[..., j, None, None] * memory - u.mT @ gx[..., j, :, :]
        return codes, starts, memory

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gx, alpha, chunk_decay, memory, anchor, phi = inputs
        codes, starts, _ = output
        ctx.save_for_backward(x, gx, alpha, chunk_decay, anchor, codes, starts)
        ctx.phi = phi

    @staticmethod
    def backward(ctx, grad_codes, grad_starts, grad_final):
        x, gx, alpha, chunk_decay, anchor, codes, starts = ctx.saved_tensors
        n_chunks = x.shape[-3]
        anchors = starts.clone()
        anchors[..., 0, :, :] = anchor
        z = x @ anchors.mT  # [*, N, C, m], all chunks at once
        value, slope, curvature = derivatives(z, ctx.phi, order=2)
        hessian = curvature * (value - alpha) + slope * slope  # du/dz, elementwise
        grad_memory = torch.zeros_like(starts[..., 0, :, :]) if grad_final is None else grad_final
        grad_u = torch.zeros_like(codes) if grad_codes is None else grad_codes.clone()
        grad_z = torch.empty_like(grad_u)
        grad_next = torch.empty_like(starts)
        grad_anchor = None
        for j in reversed(range(n_chunks)):
            grad_next[..., j, :, :] = grad_memory
            grad_u[..., j, :, :] -= gx[..., j, :, :] @ grad_memory.mT
            dz = grad_u[..., j, :, :] * hessian[..., j, :, :]
            grad_z[..., j, :, :] = dz
            grad_memory = chunk_decay[..., j, None, None] * grad_memory
            if grad_starts is not None:
                grad_memory = grad_memory + grad_starts[..., j, :, :]
            through_anchor = dz.mT @ x[..., j, :, :]
            if j == 0:
                grad_anchor = through_anchor
            else:
                grad_memory = grad_memory + through_anchor
        grad_x = grad_z @ anchors
        grad_gx = -(codes @ grad_next)
        grad_alpha = -grad_u * slope
        grad_decay = (grad_next * starts).sum((-1, -2))
        return grad_x, grad_gx, grad_alpha, grad_decay, grad_memory, grad_anchor, None


def _reads(qc, kc, vc, u_k, u_v, key_start, value_start, decay, mu, f) -> Tensor:
    """Both passes' reads of every chunk at once (write first, then read).

    Pass 1: `Ŷ = μ ⊙ (Q M_K,0ᵀ) − (D ⊙ Q Kᵀ) U_K`; pass 2, read transposed with `S = f(Ŷ)`:
    `O = μ ⊙ (S M_V,0) − (D ⊙ S U_Vᵀ) V`.
    """
    key_read = mu[..., None] * (qc @ key_start.mT) - (decay * (qc @ kc.mT)) @ u_k
    s = between_passes(key_read, f)
    return mu[..., None] * (s @ value_start) - (decay * (s @ u_v.mT)) @ vc


def _regroup(t: Tensor, group: int, chunk_axis: int) -> Tensor:
    """Merge `group` consecutive chunks: `[..., N, C, ...]` → `[..., N / group, group·C, ...]`."""
    return t.unflatten(chunk_axis, (-1, group)).flatten(chunk_axis, chunk_axis + 1)


READ_BLOCK = 32  # tokens per block of the parallel reads (at least; a multiple of the chunk)


def stale_chunks(q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, state,
                 output_final_state) -> tuple[Tensor, TrellisState | None]:  # fmt: skip
    """`chunk_trellis` for a nonlinear φ. Both passes share one loop, stacked on a pass axis.

    Given the codes, the recurrence is linear whatever the chunking, so the reads need not run
    per chunk: they run over blocks of `G` chunks (at least `READ_BLOCK` tokens), from the
    memory at each block's start. Small chunks then never mean tiny batched products.
    """
    length, front = q.shape[1], state.offset
    n_chunks = -(-(front + length) // chunk_size)
    group = max(1, min(-(-READ_BLOCK // chunk_size), n_chunks))
    block = group * chunk_size
    qc, kc, vc, ac, log_beta_c, gamma_c = (to_chunks(x, front, chunk_size, block)
                                           for x in (q, k, v, alpha, log_beta, gamma))  # fmt: skip
    decay, mu = chunk_decays(log_beta_c, gamma_c)
    d, dv = k.shape[-1], v.shape[-1]
    x = stack_passes(kc, vc)  # [B, H, 2, N, C, n]
    gx = decay[:, :, None, :, -1, :, None] * x  # writes weighted by their decay to the chunk end
    memories = stack_passes(state.key_memory, state.value_memory)
    anchors = stack_passes(state.key_anchor, state.value_anchor)
    codes, starts, memory = StaleScan.apply(
        x, gx, ac[:, :, None], mu[:, :, None, :, -1], memories, anchors, phi
    )
    if group > 1:  # regroup chunks into read blocks: [B, H, N, C, ...] → [B, H, N / G, G·C, ...]
        qc, kc, vc, codes = (_regroup(t, group, -3) for t in (qc, kc, vc, codes))
        decay, mu = chunk_decays(_regroup(log_beta_c, group, -2), _regroup(gamma_c, group, -2))
        block_starts = starts[:, :, :, ::group]
    else:
        block_starts = starts
    u_k, u_v = codes.unbind(2)
    key_start, value_start = unstack_passes(block_starts, d, dv)
    y = _reads(qc, kc, vc, u_k, u_v, key_start, value_start, decay, mu, f)
    y = apply_phi(y, phi).flatten(2, 3)[:, :, front : front + length].movedim(2, 1)
    if not output_final_state:
        return y, None
    # The anchors of the chunk holding the last token: its start memory, or the given anchor.
    last = (front + length - 1) // chunk_size
    anchor = anchors if last == 0 else starts[:, :, :, last]
    end = final_state(*unstack_passes(memory, d, dv), *unstack_passes(anchor, d, dv),
                      front + length, chunk_size)  # fmt: skip
    return y, end
