"""The stale-gradient chunkwise form for a nonlinear φ (silu, tanh): the paper's choice.

Inside a chunk every gradient code is taken at the chunk's first memory, so the recurrence is
linear within the chunk (ops/trellis/README.md, "Chunks and the stale gradient"). The
chunk-to-chunk loop is one autograd Function (`StaleScan`) with an analytic backward that keeps
the chunk-start memories and each code's derivatives; the reads run over blocks after it.
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

    Chunk-major layout, so that each chunk's slice is one contiguous block (strided slices made
    every small product and write of the loop copy): `x, gx [N, *, C, n]`, `alpha [N, *, C, m]`,
    `chunk_decay [N, *]`, `memory, anchor [*, m, n]`. Returns the codes `[N, *, C, m]`, the
    chunk-start memories `[N, *, m, n]` and the final memory (and, for the backward, each
    code's φ' and du/dz, empty when `for_backward` is false).
    """

    @staticmethod
    def forward(x, gx, alpha, chunk_decay, memory, anchor, phi, for_backward):
        n_chunks = x.shape[0]
        codes = x.new_empty(x.shape[:-1] + alpha.shape[-1:])
        starts = memory.new_empty((n_chunks,) + memory.shape)
        # For the backward: φ' and du/dz = φ''·(φ − α) + φ'² of every code, kept as the loop
        # makes them (recomputing them there cost more than the loop itself).
        slopes = torch.empty_like(codes) if for_backward else codes.new_empty(0)
        hessians = torch.empty_like(codes) if for_backward else codes.new_empty(0)
        for j in range(n_chunks):
            starts[j] = memory
            z = x[j] @ (anchor if j == 0 else memory).mT
            value, slope, curvature = derivatives(z, phi, order=2 if for_backward else 1)
            residual = value.sub_(alpha[j])
            u = torch.mul(slope, residual, out=codes[j])
            if for_backward:
                slopes[j] = slope
                torch.addcmul(slope * slope, curvature, residual, out=hessians[j])
            memory = torch.baddbmm(
                (chunk_decay[j, ..., None, None] * memory).flatten(0, -3),
                u.mT.flatten(0, -3),
                gx[j].flatten(0, -3),
                alpha=-1,
            ).view(memory.shape)
        return codes, starts, memory, slopes, hessians

    @staticmethod
    def setup_context(ctx, inputs, output):
        x, gx, alpha, chunk_decay, memory, anchor, phi, _ = inputs
        codes, starts, _, slopes, hessians = output
        ctx.mark_non_differentiable(slopes, hessians)
        ctx.save_for_backward(x, gx, chunk_decay, anchor, codes, starts, slopes, hessians)

    @staticmethod
    def backward(ctx, grad_codes, grad_starts, grad_final, _slopes, _hessians):
        x, gx, chunk_decay, anchor, codes, starts, slope, hessian = ctx.saved_tensors
        n_chunks = x.shape[0]
        anchors = starts.clone()
        anchors[0] = anchor
        grad_memory = torch.zeros_like(starts[0]) if grad_final is None else grad_final
        grad_u = torch.zeros_like(codes) if grad_codes is None else grad_codes.clone()
        grad_z = torch.empty_like(grad_u)
        grad_next = torch.empty_like(starts)
        grad_anchor = None
        for j in reversed(range(n_chunks)):
            grad_next[j] = grad_memory
            grad_u[j].sub_(gx[j] @ grad_memory.mT)
            dz = torch.mul(grad_u[j], hessian[j], out=grad_z[j])
            grad_memory = chunk_decay[j, ..., None, None] * grad_memory
            if grad_starts is not None:
                grad_memory = grad_memory + grad_starts[j]
            through_anchor = dz.mT @ x[j]
            if j == 0:
                grad_anchor = through_anchor
            else:
                grad_memory = grad_memory + through_anchor
        grad_x = grad_z @ anchors
        grad_gx = -(codes @ grad_next)
        grad_alpha = -grad_u * slope
        grad_decay = (grad_next * starts).sum((-1, -2))
        return grad_x, grad_gx, grad_alpha, grad_decay, grad_memory, grad_anchor, None, None


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


def stale_chunks(
    q, k, v, alpha, log_beta, gamma, chunk_size, phi, f, state, output_final_state
) -> tuple[Tensor, TrellisState | None]:
    """`chunk_trellis` for a nonlinear φ. Both passes share one loop, stacked on a pass axis.

    Given the codes, the recurrence is linear whatever the chunking, so the reads need not run
    per chunk: they run over blocks of `G` chunks (at least `READ_BLOCK` tokens), from the
    memory at each block's start. Small chunks then never mean tiny batched products.
    """
    length, front = q.shape[1], state.offset
    n_chunks = -(-(front + length) // chunk_size)
    # Chunks per read block: about READ_BLOCK tokens, balanced so that padding the chunks to a
    # whole number of blocks adds less than one chunk per block.
    widest = max(1, min(-(-READ_BLOCK // chunk_size), n_chunks))
    group = -(-n_chunks // -(-n_chunks // widest))
    block = group * chunk_size
    qc, kc, vc, ac, log_beta_c, gamma_c = (
        to_chunks(x, front, chunk_size, block) for x in (q, k, v, alpha, log_beta, gamma)
    )
    decay, mu = chunk_decays(log_beta_c, gamma_c)
    d, dv = k.shape[-1], v.shape[-1]
    x = stack_passes(kc, vc)  # [B, H, 2, N, C, n]
    gx = decay[:, :, None, :, -1, :, None] * x  # writes weighted by their decay to the chunk end
    memories = stack_passes(state.key_memory, state.value_memory)
    anchors = stack_passes(state.key_anchor, state.value_anchor)
    # The loop runs chunk-major ([N, B, H, 2, ...]); the reads take the usual layout back.
    inputs = (
        x.movedim(3, 0).contiguous(),
        gx.movedim(3, 0).contiguous(),
        ac[:, :, None].movedim(3, 0).contiguous(),
        mu[:, :, None, :, -1].movedim(3, 0).contiguous(),
        memories,
        anchors,
    )
    for_backward = torch.is_grad_enabled() and any(t.requires_grad for t in inputs)
    codes, starts, memory, _, _ = StaleScan.apply(*inputs, phi, for_backward)
    codes, starts = codes.movedim(0, 3), starts.movedim(0, 3)
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
    end = final_state(
        *unstack_passes(memory, d, dv), *unstack_passes(anchor, d, dv), front + length, chunk_size
    )
    return y, end
