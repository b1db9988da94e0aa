"""The exact chunkwise form for φ = identity: each pass is a gated delta rule.

Inside a chunk the write errors `E_t = α_t − M_{t−1} x_t` (the negated gradient codes) solve a
unit-lower-triangular system, so a chunk of any size gives the token-by-token result
(ops/trellis/README.md, "Exact chunks"). One pass (solve, chunk-to-chunk recurrence, read) is one
autograd Function with an analytic backward that keeps only its inputs, the triangular inverse,
the errors and the chunk-start memories. The two passes share one matrix of decay ratios,
computed without autograd; gradients reach `log β` and `γ` through the vectors `b = log μ` and
`γ` (the inner learning rate scales vectors, never a matrix).

Shapes: leading batch dims `*`, chunks `N`, tokens per chunk `C`, memory `[*, m, n]`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .chunking import to_chunks
from .common import TrellisState, between_passes


def unit_lower_solve(a: Tensor, rhs: Tensor, transpose: bool = False) -> Tensor:
    """`(I + A)⁻¹ rhs` (or `(I + A)⁻ᵀ rhs`) for strictly lower-triangular `A [*, C, C]`.

    A's diagonal and upper part are not read. One batched triangular solve: measured on one
    CPU thread it beat forming the inverse (by a solve, by row-by-row forward substitution or by
    blocked doubling in batched products) and multiplying by it.
    """
    if transpose:
        return torch.linalg.solve_triangular(a.mT, rhs, upper=True, unitriangular=True)
    return torch.linalg.solve_triangular(a, rhs, upper=False, unitriangular=True)


def decay_ratios(b: Tensor) -> Tensor:
    """`R [*, C, C]`: `μ_r/μ_i = exp(b_r − b_i)` for `i ≤ r`, 0 above, from `b = log μ [*, C]`.

    As the outer product `exp(b_r) exp(−b_i)` (two exponentials per token instead of one per
    pair) when no `exp(−b_i)` can overflow; otherwise formed from the differences, only where
    `i ≤ r`, so it never overflows however small the forget gates get.
    """
    size = b.shape[-1]
    limit = 0.5 * math.log(torch.finfo(b.dtype).max)
    if size == 1 or -b.min() < limit:
        ratio = b.exp()[..., :, None] * (-b).exp()[..., None, :]
        return ratio.tril_()
    causal = torch.ones(size, size, dtype=torch.bool, device=b.device).tril()
    return torch.where(causal, b[..., :, None] - b[..., None, :], float("-inf")).exp_()


def _shifted(mu: Tensor) -> Tensor:
    """`μ_{r−1}` (1 before a chunk's first token)."""
    return F.pad(mu[..., :-1], (1, 0), value=1.0)


class DeltaRule(torch.autograd.Function):
    """One exact pass: write `x` with targets `alpha`, read with `r` after each write.

    `transposed=False` reads `M_t r_t` (`r [*, N, C, n]` → `[*, N, C, m]`, the key pass);
    `transposed=True` reads `M_tᵀ r_t` (`r [*, N, C, m]` → `[*, N, C, n]`, the value pass).
    `b, gamma [*, N, C]`: log-decay cumulated inside each chunk and the inner learning rate.
    `ratio [*, N, C, C]` (no autograd, from `decay_ratios(b)`): `μ_r/μ_i` for `i ≤ r`, 0
    above. `memory`: the start memory, or None for zeros. Returns the reads and the final
    memory (None unless `want_final`).
    """

    @staticmethod
    def forward(ctx, x, r, alpha, b, gamma, ratio, memory, transposed, want_final):
        n_chunks = x.shape[-3]
        a = x @ (gamma[..., None] * x).mT  # weighted in place into A = R_s ⊙ X (γ ⊙ X)ᵀ
        a[..., 1:, :] *= ratio[..., :-1, :]  # R_s[r] = R[r − 1]: μ_{r−1}/μ_i, zero for i ≥ r
        a[..., 0, :] = 0.0
        mu = b.exp()
        starts = final = w = None
        if memory is None and n_chunks == 1:  # one chunk from zero memory: E = (I + A)⁻¹ α
            errors = unit_lower_solve(a, alpha)
            if want_final:
                end = _end_weights(gamma, ratio)[..., 0, :, None] * x[..., 0, :, :]
                final = errors[..., 0, :, :].mT @ end
        else:  # (I + A)⁻¹ [α, μ⁻ ⊙ X] in one solve: T α and W of every chunk
            slots = alpha.shape[-1]
            both = unit_lower_solve(a, torch.cat([alpha, _shifted(mu)[..., None] * x], dim=-1))
            errors, w = both[..., :slots].contiguous(), both[..., slots:]
            starts, final = _scan(w, errors, gamma, ratio, mu, x, memory)
        writes = gamma[..., None] * errors  # γ_i E_i: the read's decay matrix is then γ-free
        # The read inside the chunk: local = S Y with S = R ⊙ (r Vᵀ), (V, Y) = (x, Γ) for the
        # key pass and (Γ, x) for the value pass; then the start memory's part.
        v_side, y_side = (writes, x) if transposed else (x, writes)
        s = (r @ v_side.mT).mul_(ratio)
        local = s @ y_side
        if starts is None:
            out = local
        else:
            out = local + mu[..., None] * (r @ (starts if transposed else starts.mT))
        ctx.save_for_backward(x, r, b, gamma, ratio, a, w, errors, starts, local, s)
        ctx.transposed, ctx.has_memory = transposed, memory is not None
        return out, (final if want_final else None)

    @staticmethod
    def backward(ctx, grad_out, grad_final):
        x, r, b, gamma, ratio, a, w, errors, starts, local, s = ctx.saved_tensors
        mu = b.exp()
        writes = gamma[..., None] * errors
        # The read. The log-ratio gradient L = dS ⊙ S enters b only through its row and column
        # sums, which are vector products: rowsum(L) = rowsum(dout ⊙ local) and
        # colsum(L) = rowsum(Y ⊙ Sᵀ dout).
        v_side, y_side = (writes, x) if ctx.transposed else (x, writes)
        grad_y = s.mT @ grad_out
        grad_s = grad_out @ y_side.mT
        grad_s *= ratio
        grad_r = grad_s @ v_side
        grad_v = grad_s.mT @ r
        del grad_s
        grad_b = (grad_out * local).sum(-1) - (y_side * grad_y).sum(-1)
        grad_x, grad_writes = (grad_y, grad_v) if ctx.transposed else (grad_v, grad_y)
        grad_gamma = (grad_writes * errors).sum(-1)
        grad_errors = grad_writes * gamma[..., None]
        del grad_writes, grad_y, grad_v
        grad_mu = torch.zeros_like(mu)
        grad_starts = grad_memory = None
        if starts is not None:  # out += μ ⊙ (r M₀ᵀ) (key pass) or μ ⊙ (r M₀) (value pass)
            start_t = starts if ctx.transposed else starts.mT
            grad_r += mu[..., None] * (grad_out @ start_t.mT)
            grad_mu += (grad_out * (r @ start_t)).sum(-1)
            grad_starts = (mu[..., None] * grad_out).mT @ r
            if ctx.transposed:
                grad_starts = grad_starts.mT
        # The recurrence in reverse (or, for one fresh chunk, the final memory alone).
        grads = (grad_x, grad_b, grad_gamma, grad_mu)
        if starts is None:
            if grad_final is not None:  # one chunk: its end memory is the final one
                grad_next = grad_final[..., None, :, :]
                grad_errors += (_end_weights(gamma, ratio)[..., None] * x) @ grad_next.mT
                _end_write_grads(x, errors, gamma, ratio, grad_next, *grads)
        else:
            grad_memory, grad_next = _scan_backward(
                x, gamma, ratio, mu, w, starts, grad_errors, grad_starts, grad_final, grad_mu
            )
            _end_write_grads(x, errors, gamma, ratio, grad_next, *grads)
        # The solve: E = T Z, Z = α − μ⁻ ⊙ (X M₀ᵀ), T = (I + A)⁻¹, A = R_s ⊙ (X Xᵀ) ⊙ γ_i with
        # R_s the ratios shifted down a row. With M = dZ Eᵀ ⊙ R_s (= −dL/dA ⊙ R_s), the gradients
        # of X, γ and b all come from the two products Mᵀ X and M (γ ⊙ X).
        grad_z = unit_lower_solve(a, grad_errors, transpose=True)
        m = grad_z @ errors.mT
        m[..., 1:, :] *= ratio[..., :-1, :]
        m[..., 0, :] = 0.0
        m_x = m.mT @ x
        m_gx = m @ (gamma[..., None] * x)
        del m
        grad_x -= m_gx + gamma[..., None] * m_x
        col = (x * m_x).sum(-1)  # Σ_r M[r, i] (x_r · x_i)
        grad_gamma -= col
        grad_b += gamma * col
        grad_b[..., :-1] -= (x * m_gx).sum(-1)[..., 1:]
        if starts is not None:
            grad_x -= _shifted(mu)[..., None] * (grad_z @ starts)
            grad_mu[..., :-1] -= (grad_z * (x @ starts.mT)).sum(-1)[..., 1:]
        grad_b += grad_mu * mu
        memory_grad = grad_memory if ctx.has_memory else None
        return grad_x, grad_r, grad_z, grad_b, grad_gamma, None, memory_grad, None, None


def _end_weights(gamma: Tensor, ratio: Tensor) -> Tensor:
    """`g_i = γ_i μ_C/μ_i`: each token's write weighted by its decay to the chunk's end."""
    return gamma * ratio[..., -1, :]


def _end_write_grads(x, errors, gamma, ratio, grad_next, grad_x, grad_b, grad_gamma, grad_mu):
    """Gradients of the end writes `E_jᵀ (g ⊙ X_j)` of every chunk, except their part in dE.

    `grad_next [*, N, m, n]` is the gradient of each chunk's end memory. Adds into the gradient
    tensors in place.
    """
    v = errors @ grad_next  # dL/d(g ⊙ X)
    g = _end_weights(gamma, ratio)
    grad_x += g[..., None] * v
    grad_g = (v * x).sum(-1)
    grad_gamma += grad_g * ratio[..., -1, :]
    weighted = grad_g * g  # dL/d log(μ_C/μ_i)
    grad_b[..., -1] += weighted.sum(-1)
    grad_b -= weighted


def _scan(w, errors, gamma, ratio, mu, x, memory):
    """Chunk-to-chunk recurrence: `E_j = T_j α_j − W_j M_jᵀ`, `M_{j+1} = μ_C M_j + E_jᵀ G_j`.

    `errors` holds `T α` of every chunk on entry and `E` on return (in place); `W = T (μ⁻ ⊙ X)`
    and `G = g ⊙ X` (writes weighted by their decay to the chunk end) are formed for all chunks
    at once. Returns the chunk-start memories `[*, N, m, n]` and the final memory.
    """
    n_chunks = x.shape[-3]
    gx = _end_weights(gamma, ratio)[..., None] * x
    if memory is None:
        memory = x.new_zeros(x.shape[:-3] + errors.shape[-1:] + x.shape[-1:])
    starts = memory.new_empty(memory.shape[:-2] + (n_chunks,) + memory.shape[-2:])
    for j in range(n_chunks):
        starts[..., j, :, :] = memory
        e = errors[..., j, :, :]
        e -= w[..., j, :, :] @ memory.mT
        memory = mu[..., j, -1, None, None] * memory + e.mT @ gx[..., j, :, :]
    return starts, memory


def _scan_backward(x, gamma, ratio, mu, w, starts, grad_errors, grad_starts, grad_final, grad_mu):
    """Reverse of `_scan`: adds the end writes' part into `grad_errors` and the chunk decays'
    into `grad_mu`, in place. Returns dL/d(start memory) and dL/d(each chunk's end memory).
    """
    n_chunks = x.shape[-3]
    gx = _end_weights(gamma, ratio)[..., None] * x
    grad_memory = torch.zeros_like(starts[..., 0, :, :]) if grad_final is None else grad_final
    grad_next = torch.empty_like(starts)
    for j in reversed(range(n_chunks)):
        grad_next[..., j, :, :] = grad_memory
        grad_errors[..., j, :, :] += gx[..., j, :, :] @ grad_memory.mT
        grad_memory = mu[..., j, -1, None, None] * grad_memory
        if grad_starts is not None:
            grad_memory = grad_memory + grad_starts[..., j, :, :]
        grad_memory = grad_memory - grad_errors[..., j, :, :].mT @ w[..., j, :, :]
    grad_mu[..., -1] += (grad_next * starts).sum((-1, -2))
    return grad_memory, grad_next


def exact_chunks(q, k, v, alpha, log_beta, gamma, chunk_size, f, state, fresh, output_final_state):
    """`chunk_trellis` for φ = identity: both passes exact, sharing the decays."""
    length = q.shape[1]
    # Exact for any chunk size, so spread T evenly over as many chunks as `chunk_size` asks for
    # (43 tokens at 64 are one chunk of 43, 90 are two of 45) instead of padding the last one.
    n_chunks = max(1, -(-length // chunk_size))
    chunk_size = max(1, -(-length // n_chunks))
    qc, kc, vc, ac = (to_chunks(x, 0, chunk_size) for x in (q, k, v, alpha))
    b = to_chunks(log_beta, 0, chunk_size).cumsum(-1)  # b_r = log μ_r inside each chunk
    gamma_c = to_chunks(gamma, 0, chunk_size)
    ratio = decay_ratios(b.detach())
    key_memory, value_memory = (None, None) if fresh else (state.key_memory, state.value_memory)
    key_read, key_end = DeltaRule.apply(
        kc, qc, ac, b, gamma_c, ratio, key_memory, False, output_final_state
    )
    s = between_passes(key_read, f)
    y, value_end = DeltaRule.apply(
        vc, s, ac, b, gamma_c, ratio, value_memory, True, output_final_state
    )
    y = y.flatten(2, 3)[:, :, :length].movedim(2, 1)
    if not output_final_state:
        return y, None
    return y, TrellisState.from_memories(key_end, value_end, state.chunk_size)
