"""Parity and invariance tests for the three forms of the Trellis op."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trellis_ts.errors import ConfigError
from trellis_ts.ops.trellis import (
    TrellisState,
    chunk_trellis,
    naive_trellis,
    recurrent_trellis,
    trellis_step,
)

FORMS = {"chunk": chunk_trellis, "recurrent": recurrent_trellis}
NAMES = ("q", "k", "v", "alpha", "log_beta", "gamma")


def make_inputs(B=2, T=7, H=2, d=4, dv=5, m=3, *, dtype=torch.float64, seed=0, with_state=False):
    """Random op inputs with unit-norm q/k/v and gates in the layer's ranges (leaf tensors)."""
    gen = torch.Generator().manual_seed(seed)

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=dtype)

    inputs = {
        "q": F.normalize(randn(B, T, H, d), dim=-1),
        "k": F.normalize(randn(B, T, H, d), dim=-1),
        "v": F.normalize(randn(B, T, H, dv), dim=-1),
        "alpha": randn(B, T, H, m),
        "log_beta": F.logsigmoid(randn(B, T, H) + 3.0),
        "gamma": torch.sigmoid(randn(B, T, H)),
    }
    if with_state:
        inputs["key_memory"] = 0.3 * randn(B, H, m, d)
        inputs["value_memory"] = 0.3 * randn(B, H, m, dv)
    return {name: x.requires_grad_() for name, x in inputs.items()}


def run(form, inputs, **kwargs):
    kwargs.setdefault("phi", "silu")  # these tests are about the stale-gradient (nonlinear) form
    args = [inputs[n] for n in NAMES]
    if "key_memory" in inputs:
        kwargs["initial_state"] = (inputs["key_memory"], inputs["value_memory"])
    return form(*args, output_final_state=True, **kwargs)


def outputs_and_grads(form, inputs, **kwargs):
    """Output, final state, and the gradient of a fixed scalar of both w.r.t. every input."""
    y, state = run(form, inputs, **kwargs)
    weights = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).reshape(y.shape)
    loss = (y * weights).sum() + state.key_memory.sum() + 0.5 * state.value_memory.square().sum()
    grads = torch.autograd.grad(loss, list(inputs.values()))
    return y, state, dict(zip(inputs, grads, strict=True))


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def assert_states_close(a: TrellisState, b: TrellisState, **tol):
    assert a.offset == b.offset and a.chunk_size == b.chunk_size
    for x, y in zip(a[:4], b[:4], strict=True):
        torch.testing.assert_close(x, y, **tol)


@pytest.mark.parametrize("form_name", FORMS)
@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("T", [1, 7, 63, 100])
def test_forms_match_naive_fp64(form_name, chunk_size, T):
    inputs = make_inputs(T=T, with_state=True, seed=T)
    y_ref, s_ref, g_ref = outputs_and_grads(naive_trellis, inputs, chunk_size=chunk_size)
    y, s, g = outputs_and_grads(FORMS[form_name], inputs, chunk_size=chunk_size)
    tol = {"atol": 1e-10, "rtol": 1e-9}
    torch.testing.assert_close(y, y_ref, **tol)
    assert_states_close(s, s_ref, **tol)
    for name in inputs:
        torch.testing.assert_close(g[name], g_ref[name], **tol, msg=f"gradient of {name}")


@pytest.mark.parametrize("phi", ["identity", "silu", "tanh"])
@pytest.mark.parametrize("f", ["ln_silu", "l2_silu", "softmax"])
def test_every_phi_and_f_match_naive(phi, f):
    inputs = make_inputs(T=23, with_state=True, seed=1)
    y_ref, _, g_ref = outputs_and_grads(naive_trellis, inputs, chunk_size=4, phi=phi, f=f)
    y, _, g = outputs_and_grads(chunk_trellis, inputs, chunk_size=4, phi=phi, f=f)
    torch.testing.assert_close(y, y_ref, atol=1e-10, rtol=1e-9)
    for name in inputs:
        torch.testing.assert_close(g[name], g_ref[name], atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 16])
def test_chunk_matches_naive_fp32(chunk_size):
    inputs = make_inputs(B=2, T=100, H=2, d=16, dv=16, m=8, dtype=torch.float32, seed=3)
    wide = {n: x.detach().double().requires_grad_() for n, x in inputs.items()}
    y_ref, _, g_ref = outputs_and_grads(naive_trellis, wide, chunk_size=chunk_size)
    y, _, g = outputs_and_grads(chunk_trellis, inputs, chunk_size=chunk_size)
    assert y.dtype == torch.float32
    assert rel_err(y.double(), y_ref) < 1e-5
    for name in inputs:
        assert rel_err(g[name].double(), g_ref[name]) < 1e-4, name


def _exact_write(memory, x, alpha, beta, gamma, phi):
    """One OGD step on ½‖φ(M x) − α‖², its gradient taken by autograd (independent of the op)."""
    memory = memory.detach().requires_grad_()
    act = {"identity": lambda z: z, "silu": F.silu, "tanh": torch.tanh}[phi]
    loss = 0.5 * (act(memory @ x) - alpha).square().sum()
    (grad,) = torch.autograd.grad(loss, memory)
    return beta * memory.detach() - gamma * grad


@pytest.mark.parametrize("phi", ["silu", "tanh", "identity"])
def test_chunk_size_one_is_the_exact_nonlinear_recurrence(phi):
    inputs = make_inputs(B=1, T=9, H=1, d=3, dv=4, m=3, seed=5)
    x = {n: t.detach()[0, :, 0] for n, t in inputs.items()}  # drop batch and head
    act = {"identity": lambda z: z, "silu": F.silu, "tanh": torch.tanh}[phi]
    mk, mv = torch.zeros(3, 3, dtype=torch.float64), torch.zeros(3, 4, dtype=torch.float64)
    expected = []
    for t in range(9):
        beta, gamma = x["log_beta"][t].exp(), x["gamma"][t]
        mk = _exact_write(mk, x["k"][t], x["alpha"][t], beta, gamma, phi)
        mv = _exact_write(mv, x["v"][t], x["alpha"][t], beta, gamma, phi)
        s = F.layer_norm(F.silu(mk @ x["q"][t]), (3,), eps=1e-6)
        expected.append(act(mv.T @ s))
    expected = torch.stack(expected)
    for form in (naive_trellis, chunk_trellis, recurrent_trellis):
        y, _ = form(*[inputs[n].detach() for n in NAMES], chunk_size=1, phi=phi)
        torch.testing.assert_close(y[0, :, 0], expected, atol=1e-12, rtol=1e-10)


def test_identity_phi_pass_one_is_the_gated_delta_rule():
    # With v = 0 nothing is written to the value memory, so starting it at the identity (m = dv)
    # makes the output a read-out of pass 1: y_t = μ_t softmax(M_K,t q_t) with μ_t = Π β.
    B, T, H, d, m = 1, 20, 2, 4, 4
    inputs = {n: t.detach() for n, t in make_inputs(B=B, T=T, H=H, d=d, dv=m, m=m, seed=7).items()}
    inputs["v"] = torch.zeros_like(inputs["v"])
    eye = torch.eye(m, dtype=torch.float64).expand(B, H, m, m)
    zeros = torch.zeros(B, H, m, d, dtype=torch.float64)
    reference = torch.empty(B, T, H, m, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            S = torch.zeros(m, d, dtype=torch.float64)
            for t in range(T):
                k, q = inputs["k"][b, t, h], inputs["q"][b, t, h]
                beta, gamma = inputs["log_beta"][b, t, h].exp(), inputs["gamma"][b, t, h]
                S = beta * S + gamma * torch.outer(inputs["alpha"][b, t, h] - S @ k, k)
                reference[b, t, h] = S @ q
    mu = inputs["log_beta"].cumsum(1).exp()[..., None]
    for form in (naive_trellis, chunk_trellis, recurrent_trellis):
        args = [inputs[n] for n in NAMES]
        y, _ = form(*args, chunk_size=1, phi="identity", f="softmax", initial_state=(zeros, eye))
        logits = (y / mu).log()
        centred = logits - logits.mean(-1, keepdim=True)
        torch.testing.assert_close(centred, reference - reference.mean(-1, keepdim=True))


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
@pytest.mark.parametrize("split", [1, 13, 48, 99])
def test_split_and_carry_equals_one_call(chunk_size, split):
    inputs = make_inputs(T=100, seed=11)
    args = [inputs[n] for n in NAMES]
    y_full, s_full = chunk_trellis(
        *args, chunk_size=chunk_size, phi="silu", output_final_state=True
    )
    first = [a[:, :split] for a in args]
    second = [a[:, split:] for a in args]
    y1, s1 = chunk_trellis(*first, chunk_size=chunk_size, phi="silu", output_final_state=True)
    assert s1.offset == split % chunk_size
    y2, s2 = chunk_trellis(
        *second, chunk_size=chunk_size, phi="silu", initial_state=s1, output_final_state=True
    )
    torch.testing.assert_close(torch.cat([y1, y2], 1), y_full, atol=1e-12, rtol=1e-10)
    assert_states_close(s2, s_full, atol=1e-12, rtol=1e-10)
    # Gradients flow through the carried state exactly as through one call.
    g_full = torch.autograd.grad(y_full.square().sum(), args)
    g_split = torch.autograd.grad(torch.cat([y1, y2], 1).square().sum(), args)
    for a, b in zip(g_split, g_full, strict=True):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9)


@pytest.mark.parametrize("chunk_size", [1, 4, 16])
def test_prefill_with_chunk_then_step_equals_one_chunk_call(chunk_size):
    inputs = {n: t.detach() for n, t in make_inputs(T=40, seed=13).items()}
    args = [inputs[n] for n in NAMES]
    y_full, s_full = chunk_trellis(
        *args, chunk_size=chunk_size, phi="silu", output_final_state=True
    )
    prefill = 27
    y_pre, state = chunk_trellis(
        *[a[:, :prefill] for a in args], chunk_size=chunk_size, phi="silu", output_final_state=True
    )
    steps = []
    for t in range(prefill, 40):
        y_t, state = trellis_step(*[a[:, t] for a in args], state, phi="silu")
        steps.append(y_t)
    y = torch.cat([y_pre, torch.stack(steps, 1)], 1)
    torch.testing.assert_close(y, y_full, atol=1e-12, rtol=1e-10)
    assert_states_close(state, s_full, atol=1e-12, rtol=1e-10)


@pytest.mark.parametrize("chunk_size", [1, 2])
def test_gradcheck_chunk(chunk_size):
    inputs = make_inputs(B=1, T=5, H=1, d=2, dv=2, m=2, seed=17, with_state=True)

    def fn(q, k, v, alpha, log_beta, gamma, key_memory, value_memory):
        y, s = chunk_trellis(
            q,
            k,
            v,
            alpha,
            log_beta,
            gamma,
            chunk_size=chunk_size,
            phi="silu",
            initial_state=(key_memory, value_memory),
            output_final_state=True,
        )
        return y, s.key_memory, s.value_memory

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()))


@pytest.mark.parametrize("chunk_size", [4, 16])
def test_gradcheck_stale_over_read_blocks(chunk_size):
    # 43 tokens: 11 chunks of 4 read in 2 blocks of 6 (the last padded), or 3 chunks of 16 in
    # 2 blocks of 2; gradients through the loop, the merged reads and the padding.
    inputs = make_inputs(B=1, T=43, H=1, d=2, dv=2, m=2, seed=29, with_state=True)

    def fn(q, k, v, alpha, log_beta, gamma, key_memory, value_memory):
        y, s = chunk_trellis(
            q,
            k,
            v,
            alpha,
            log_beta,
            gamma,
            chunk_size=chunk_size,
            phi="silu",
            initial_state=(key_memory, value_memory),
            output_final_state=True,
        )
        return y, s.key_memory, s.value_memory

    assert torch.autograd.gradcheck(fn, tuple(inputs.values()))


@pytest.mark.parametrize("log_beta", [-30.0, -1e-8])
@pytest.mark.parametrize("gamma_at_max", [False, True])
@pytest.mark.parametrize("chunk_size", [1, 16])
@pytest.mark.parametrize("phi", ["silu", "identity"])
def test_long_sequence_extreme_gates_stay_finite(log_beta, gamma_at_max, chunk_size, phi):
    # The layer bounds the inner learning rate by 1/chunk_size (README: "Stability"), so with
    # unit-norm keys a chunk's summed step stays contractive; test both ends of that range.
    gamma = 1.0 / chunk_size if gamma_at_max else 0.0
    inputs = make_inputs(B=1, T=4096, H=2, d=8, dv=8, m=8, dtype=torch.float32, seed=19)
    inputs["alpha"] = (5.0 * inputs["alpha"]).detach().requires_grad_()
    inputs["log_beta"] = torch.full((1, 4096, 2), log_beta, requires_grad=True)
    inputs["gamma"] = torch.full((1, 4096, 2), gamma, requires_grad=True)
    y, s, grads = outputs_and_grads(chunk_trellis, inputs, chunk_size=chunk_size, phi=phi)
    assert torch.isfinite(y).all() and torch.isfinite(s.key_memory).all()
    assert s.key_memory.abs().max() < 1e3  # bounded, not merely finite
    for name, g in grads.items():
        assert torch.isfinite(g).all(), name


def test_bad_arguments_raise_config_error():
    args = [t.detach() for t in make_inputs().values()]
    with pytest.raises(ConfigError, match="phi"):
        chunk_trellis(*args, phi="relu")
    with pytest.raises(ConfigError, match="f="):
        chunk_trellis(*args, f="gelu")
    with pytest.raises(ConfigError, match="chunk_size"):
        naive_trellis(*args, chunk_size=0)
    with pytest.raises(ConfigError, match="alpha"):
        recurrent_trellis(*args[:3], args[3][..., :-1].unsqueeze(1), *args[4:])
    _, state = chunk_trellis(
        *args, chunk_size=4, phi="silu", output_final_state=True
    )  # T=7 stops mid-chunk
    with pytest.raises(ConfigError, match="chunk_size=4"):
        chunk_trellis(*args, chunk_size=8, phi="silu", initial_state=state)
