"""State in and out of the mixers: a sequence read in pieces, with the state carried, gives the
output of one call over the whole sequence (what streaming builds on)."""

from __future__ import annotations

import pytest
import torch

from trellis_ts.layers import AttentionMixer, MixerState, TrellisMixer


def mixers():
    torch.manual_seed(0)
    yield "trellis", TrellisMixer(16, 2, n_slots=4, chunk_size=4, conv_size=4).double().eval()
    yield "trellis-silu", TrellisMixer(16, 2, n_slots=4, chunk_size=1, phi="silu").double().eval()
    yield (
        "trellis-noconv",
        TrellisMixer(16, 2, n_slots=4, chunk_size=4, conv_size=0).double().eval(),
    )
    yield "attention", AttentionMixer(16, 2).double().eval()
    window = AttentionMixer(16, 2, window=3).double().eval()
    with torch.no_grad():  # a bias that differs by distance, so that its indexing is checked
        window.distance_bias.copy_(torch.randn(2, 3, dtype=torch.float64))
    yield "attention-window", window


@pytest.mark.parametrize(
    "name, mixer", list(mixers()), ids=lambda v: v if isinstance(v, str) else ""
)
@pytest.mark.parametrize("splits", [(1,), (5,), (2, 7), (3, 4, 10)])
def test_pieces_with_the_state_carried_equal_one_call(name, mixer, splits):
    x = torch.randn(3, 13, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    whole = mixer(x)
    outputs, state, start = [], None, 0
    for stop in (*splits, x.shape[1]):
        y, state = mixer(x[:, start:stop], state=state, return_state=True)
        outputs.append(y)
        start = stop
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, atol=1e-10, rtol=1e-8)


def test_one_token_at_a_time_equals_one_call_and_the_trellis_state_stays_bounded():
    torch.manual_seed(2)
    mixer = TrellisMixer(16, 2, n_slots=4, chunk_size=8).double().eval()
    x = torch.randn(2, 40, 16, dtype=torch.float64)
    whole = mixer(x)
    state, outputs, sizes = None, [], set()
    for t in range(x.shape[1]):
        y, state = mixer(x[:, t : t + 1], state=state, return_state=True)
        outputs.append(y)
        assert isinstance(state, MixerState)
        sizes.add(
            (state.memory.key_memory.shape, state.memory.value_memory.shape, state.conv_rows.shape)
        )
    torch.testing.assert_close(torch.cat(outputs, dim=1), whole, atol=1e-10, rtol=1e-8)
    assert len(sizes) == 1  # the same size after 1 token and after 40


def test_without_return_state_the_output_is_a_tensor():
    mixer = TrellisMixer(8, 2, n_slots=2)
    assert isinstance(mixer(torch.randn(1, 5, 8)), torch.Tensor)
    assert isinstance(AttentionMixer(8, 2)(torch.randn(1, 5, 8)), torch.Tensor)


def test_a_window_cache_stays_bounded_and_a_token_sees_only_its_window():
    torch.manual_seed(3)
    mixer = AttentionMixer(8, 2, window=3).double().eval()
    x = torch.randn(1, 10, 8, dtype=torch.float64)
    _, cache = mixer(x, return_state=True)
    assert cache.keys.shape[2] == 2 and int(cache.valid[0]) == 2
    changed = x.clone()
    changed[:, 0] += 10.0  # token 0 is outside the window of tokens 3 and later
    torch.testing.assert_close(mixer(changed)[:, 3:], mixer(x)[:, 3:])
