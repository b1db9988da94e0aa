"""The forecasting model: shapes, RevIN, causality, channel independence, heads."""

from __future__ import annotations

import pytest
import torch

from trellis_ts.config import TrellisConfig
from trellis_ts.layers import make_mixer
from trellis_ts.model import EncoderBlock, TrellisModel, example_inputs
from trellis_ts.nn.patching import make_patches
from trellis_ts.nn.revin import denormalize, normalize

SMALL = dict(context_length=64, prediction_length=16, patch_len=8, patch_stride=4, d_model=16,
             n_heads=2, n_layers=2, n_slots=8, chunk_size=4, dropout=0.0)  # fmt: skip


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
@pytest.mark.parametrize("head", ["flatten", "pool"])
def test_output_shapes(mixer, head):
    config = TrellisConfig(**SMALL, mixer=mixer, head=head)
    y = TrellisModel(config)(example_inputs(config, batch=3, channels=5))
    assert y.shape == (3, 16, 5)
    assert torch.isfinite(y).all()


def test_quantile_outputs_are_ordered():
    config = TrellisConfig(**SMALL, loss="quantile", quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    y = TrellisModel(config)(example_inputs(config, batch=4, channels=2))
    assert y.shape == (4, 16, 2, 5)
    assert (y.diff(dim=-1) > 0).all()


def test_revin_round_trip_and_constant_windows():
    x = torch.randn(4, 50, 3) * 7 + 100
    x_n, stats = normalize(x)
    torch.testing.assert_close(x_n.mean(1), torch.zeros(4, 3), atol=1e-4, rtol=0)
    torch.testing.assert_close(denormalize(x_n, stats), x)
    flat = torch.full((2, 50, 1), 3.0)
    flat_n, flat_stats = normalize(flat)
    assert torch.isfinite(flat_n).all() and (flat_n == 0).all()
    torch.testing.assert_close(denormalize(flat_n, flat_stats), flat)


def test_patches_cover_the_end():
    x = torch.arange(20.0)[None]
    patches = make_patches(x, patch_len=8, stride=4)
    assert patches.shape == (1, (20 - 8) // 4 + 2, 8)
    assert patches[0, -1, -1] == 19  # the padded last patch repeats the newest value


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
def test_mixer_and_block_are_causal(mixer):
    torch.manual_seed(0)
    config = TrellisConfig(**SMALL, mixer=mixer)
    for module in (make_mixer(config), EncoderBlock(config)):
        x = torch.randn(2, 20, 16)
        later = x.clone()
        later[:, 11:] = torch.randn(2, 9, 16)  # change tokens 11.. only
        y, y_later = module(x), module(later)
        torch.testing.assert_close(y[:, :11], y_later[:, :11])
        assert not torch.allclose(y[:, 11:], y_later[:, 11:])


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
def test_channel_permutation_equivariance(mixer):
    config = TrellisConfig(**SMALL, mixer=mixer)
    model = TrellisModel(config).eval()
    x = example_inputs(config, batch=2, channels=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(model(x[..., perm]), model(x)[..., perm])


def test_pool_head_size_does_not_grow_with_context():
    def n_params(head, context_length):
        config = TrellisConfig(**{**SMALL, "context_length": context_length}, head=head)
        return sum(p.numel() for p in TrellisModel(config).parameters())

    assert n_params("pool", 64) == n_params("pool", 1024)
    assert n_params("flatten", 1024) > n_params("flatten", 64)


def test_wrong_input_length_is_refused():
    config = TrellisConfig(**SMALL)
    with pytest.raises(ValueError, match="expected 64 input steps"):
        TrellisModel(config)(torch.randn(1, 63, 1))


def test_dlinear_shapes_and_seasonal_naive_repeats_the_last_season():
    from trellis_ts.model import build_model

    config = TrellisConfig(**SMALL, model="dlinear")
    x = example_inputs(config, batch=2, channels=3)
    assert build_model(config)(x).shape == (2, 16, 3)
    naive = build_model(TrellisConfig(**SMALL, model="seasonal_naive", season_length=5))
    y = naive(x)
    assert y.shape == (2, 16, 3)
    torch.testing.assert_close(y[:, :5], x[:, -5:])
    torch.testing.assert_close(y[:, 5:10], x[:, -5:])
    assert sum(p.numel() for p in naive.parameters()) == 0
