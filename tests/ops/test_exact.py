"""The exact chunkwise form for phi="identity": every chunk size is the token-by-token recurrence."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tests.ops.test_trellis import NAMES, assert_states_close, make_inputs, outputs_and_grads
from trellis_ts.ops.trellis import chunk_trellis, naive_trellis, recurrent_trellis, trellis_step
from trellis_ts.ops.trellis.exact import DeltaRule, decay_ratios, unit_lower_solve

TIGHT = {"atol": 1e-10, "rtol": 1e-9}


@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("T", [1, 7, 63, 100])
@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 16, 64, 128])
def test_every_chunk_size_equals_the_token_loop(with_state, T, chunk_size):
    inputs = make_inputs(T=T, m=6, with_state=with_state, seed=T + chunk_size)
    y_ref, s_ref, g_ref = outputs_and_grads(naive_trellis, inputs, chunk_size=1, phi="identity")
    y, s, g = outputs_and_grads(chunk_trellis, inputs, chunk_size=chunk_size, phi="identity")
    torch.testing.assert_close(y, y_ref, **TIGHT)
    torch.testing.assert_close(s.key_memory, s_ref.key_memory, **TIGHT)
    torch.testing.assert_close(s.value_memory, s_ref.value_memory, **TIGHT)
    for name in inputs:  # q, k, v, alpha, log_beta, gamma and both initial memories
        torch.testing.assert_close(g[name], g_ref[name], **TIGHT, msg=f"gradient of {name}")


@pytest.mark.parametrize("chunk_size", [1, 5, 16])
def test_naive_and_step_forms_are_exact_for_identity_at_any_chunk_size(chunk_size):
    inputs = make_inputs(T=40, with_state=True, seed=2)
    y_ref, s_ref, g_ref = outputs_and_grads(naive_trellis, inputs, chunk_size=1, phi="identity")
    for form in (naive_trellis, recurrent_trellis):
        y, s, g = outputs_and_grads(form, inputs, chunk_size=chunk_size, phi="identity")
        torch.testing.assert_close(y, y_ref, **TIGHT)
        assert_states_close(s, s_ref._replace(chunk_size=chunk_size), **TIGHT)
        for name in inputs:
            torch.testing.assert_close(g[name], g_ref[name], **TIGHT)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("split", [1, 13, 48, 99])
def test_split_and_carry_equals_one_call(chunk_size, split):
    inputs = make_inputs(T=100, seed=11)
    args = [inputs[n] for n in NAMES]
    kw = {"chunk_size": chunk_size, "phi": "identity", "output_final_state": True}
    y_full, s_full = chunk_trellis(*args, **kw)
    y1, s1 = chunk_trellis(*[a[:, :split] for a in args], **kw)
    assert s1.offset == 0  # the exact form has no chunk anchor to carry
    y2, s2 = chunk_trellis(*[a[:, split:] for a in args], initial_state=s1, **kw)
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full, **TIGHT)
    assert_states_close(s2, s_full, **TIGHT)
    g_full = torch.autograd.grad(y_full.square().sum(), args)
    g_split = torch.autograd.grad(torch.cat([y1, y2], 1).square().sum(), args)
    for a, b in zip(g_split, g_full, strict=True):
        torch.testing.assert_close(a, b, **TIGHT)


@pytest.mark.parametrize("chunk_size", [1, 4, 64])
def test_prefill_with_chunk_then_step_equals_one_call(chunk_size):
    inputs = {n: t.detach() for n, t in make_inputs(T=40, seed=13).items()}
    args = [inputs[n] for n in NAMES]
    kw = {"chunk_size": chunk_size, "phi": "identity", "output_final_state": True}
    y_full, s_full = chunk_trellis(*args, **kw)
    y_pre, state = chunk_trellis(*[a[:, :27] for a in args], **kw)
    steps = []
    for t in range(27, 40):
        y_t, state = trellis_step(*[a[:, t] for a in args], state, phi="identity")
        steps.append(y_t)
    torch.testing.assert_close(torch.cat([y_pre, torch.stack(steps, 1)], 1), y_full, **TIGHT)
    assert_states_close(state, s_full, **TIGHT)


@pytest.mark.parametrize("chunk_size", [2, 3, 8])
@pytest.mark.parametrize("with_state", [False, True])
def test_gradcheck_exact_form(chunk_size, with_state):
    inputs = make_inputs(B=1, T=6, H=1, d=2, dv=3, m=2, seed=17, with_state=with_state)

    def fn(*tensors):
        named = dict(zip(inputs, tensors, strict=True))
        state = (named["key_memory"], named["value_memory"]) if with_state else None
        y, s = chunk_trellis(
            *[named[n] for n in NAMES],
            chunk_size=chunk_size,
            phi="identity",
            initial_state=state,
            output_final_state=True,
        )
        return y, s.key_memory, s.value_memory

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()))


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("chunks", [1, 3])
def test_gradcheck_delta_rule_function(transposed, chunks):
    gen = torch.Generator().manual_seed(5)
    n, m, c = 3, 2, 4

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    x = F.normalize(randn(2, chunks, c, n), dim=-1).requires_grad_()
    r = randn(2, chunks, c, m if transposed else n).requires_grad_()
    alpha = randn(2, chunks, c, m).requires_grad_()
    b = F.logsigmoid(randn(2, chunks, c) + 2).cumsum(-1).detach().requires_grad_()
    gamma = torch.sigmoid(randn(2, chunks, c)).requires_grad_()
    memory = (0.3 * randn(2, m, n)).requires_grad_()

    def fn(x, r, alpha, b, gamma, memory):
        ratio = decay_ratios(b.detach())
        return DeltaRule.apply(x, r, alpha, b, gamma, ratio, memory, transposed, True)

    assert torch.autograd.gradcheck(fn, (x, r, alpha, b, gamma, memory))


def test_decay_ratios_outer_product_equals_the_differences():
    b = F.logsigmoid(torch.randn(3, 5, 16, dtype=torch.float64) + 2).cumsum(-1)
    ratio = decay_ratios(b)
    expected = (b[..., :, None] - b[..., None, :]).exp().tril()
    torch.testing.assert_close(ratio, expected)
    far = b * 1e3  # exp(−b) would overflow: the difference form takes over, still exact
    torch.testing.assert_close(
        decay_ratios(far), (far[..., :, None] - far[..., None, :]).tril().exp().tril()
    )
    assert torch.isfinite(decay_ratios(far)).all()


def test_unit_lower_solve():
    a = torch.randn(4, 2, 9, 9, dtype=torch.float64).tril(-1)
    rhs = torch.randn(4, 2, 9, 3, dtype=torch.float64)
    noisy = a + torch.randn_like(a).triu()  # the diagonal and upper part are not read
    system = torch.eye(9, dtype=torch.float64) + a
    torch.testing.assert_close(system @ unit_lower_solve(noisy, rhs), rhs)
    torch.testing.assert_close(system.mT @ unit_lower_solve(noisy, rhs, transpose=True), rhs)


@pytest.mark.parametrize("log_beta", [-30.0, -1e-8])
@pytest.mark.parametrize("gamma", [0.0, 1.0])
@pytest.mark.parametrize("chunk_size", [1, 16, 64])
def test_long_sequence_at_full_learning_rate_stays_bounded(log_beta, gamma, chunk_size):
    # Unit-norm keys and γ ∈ [0, 1] keep every exact step contractive: no 1/C bound needed.
    inputs = make_inputs(B=1, T=4096, H=2, d=8, dv=8, m=8, dtype=torch.float32, seed=19)
    inputs["alpha"] = (5.0 * inputs["alpha"]).detach().requires_grad_()
    inputs["log_beta"] = torch.full((1, 4096, 2), log_beta, requires_grad=True)
    inputs["gamma"] = torch.full((1, 4096, 2), gamma, requires_grad=True)
    y, s, grads = outputs_and_grads(chunk_trellis, inputs, chunk_size=chunk_size, phi="identity")
    assert torch.isfinite(y).all() and torch.isfinite(s.key_memory).all()
    assert s.key_memory.abs().max() < 1e3 and s.value_memory.abs().max() < 1e3
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name


@pytest.mark.parametrize("phi", ["identity", "silu"])
def test_inference_in_segments_equals_one_pass(phi):
    inputs = {n: t.detach() for n, t in make_inputs(T=300, seed=23).items()}
    args = [inputs[n] for n in NAMES]
    # With an input that needs gradients the whole sequence runs at once ...
    y_full, s_full = chunk_trellis(
        *[a.clone().requires_grad_() for a in args], chunk_size=8, phi=phi, output_final_state=True
    )
    # ... without, in segments of eight chunks with the state carried across.
    with torch.no_grad():
        y, s = chunk_trellis(*args, chunk_size=8, phi=phi, output_final_state=True)
    torch.testing.assert_close(y, y_full.detach(), **TIGHT)
    assert_states_close(s, s_full, **TIGHT)
