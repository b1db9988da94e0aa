"""The forecasting model: shapes, RevIN, causality, channel independence, heads."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from trellis_ts.forecaster.config import TrellisConfig
from trellis_ts.forecaster.sizing import model_spec
from trellis_ts.layers import TrellisMixer
from trellis_ts.models.encoder import EncoderBlock, TrellisModel, example_inputs, make_mixer
from trellis_ts.modules.patching import make_patches
from trellis_ts.modules.revin import denormalize, normalize
from trellis_ts.ops.trellis import naive_trellis

SMALL = dict(
    context_length=64,
    prediction_length=16,
    patch_len=8,
    patch_stride=4,
    d_model=16,
    n_heads=2,
    n_layers=2,
    n_slots=8,
    chunk_size=4,
    dropout=0.0,
)


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
@pytest.mark.parametrize("head", ["flatten", "pool"])
def test_output_shapes(mixer, head):
    config = TrellisConfig(**SMALL, mixer=mixer, head=head)
    y = TrellisModel(model_spec(config))(example_inputs(config, batch=3, channels=5))
    assert y.shape == (3, 16, 5)
    assert torch.isfinite(y).all()


def test_quantile_outputs_are_ordered():
    config = TrellisConfig(**SMALL, loss="quantile", quantiles=(0.1, 0.25, 0.5, 0.75, 0.9))
    y = TrellisModel(model_spec(config))(example_inputs(config, batch=4, channels=2))
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
    for module in (make_mixer(model_spec(config)), EncoderBlock(model_spec(config))):
        x = torch.randn(2, 20, 16)
        later = x.clone()
        later[:, 11:] = torch.randn(2, 9, 16)  # change tokens 11.. only
        y, y_later = module(x), module(later)
        torch.testing.assert_close(y[:, :11], y_later[:, :11])
        assert not torch.allclose(y[:, 11:], y_later[:, 11:])


@pytest.mark.parametrize("mixer", ["trellis", "attention"])
def test_channel_permutation_equivariance(mixer):
    config = TrellisConfig(**SMALL, mixer=mixer)
    model = TrellisModel(model_spec(config)).eval()
    x = example_inputs(config, batch=2, channels=6)
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    torch.testing.assert_close(model(x[..., perm]), model(x)[..., perm])


def test_pool_head_size_does_not_grow_with_context():
    def n_params(head, context_length):
        config = TrellisConfig(**{**SMALL, "context_length": context_length}, head=head)
        return sum(p.numel() for p in TrellisModel(model_spec(config)).parameters())

    assert n_params("pool", 64) == n_params("pool", 1024)
    assert n_params("flatten", 1024) > n_params("flatten", 64)


def test_wrong_input_length_is_refused():
    config = TrellisConfig(**SMALL)
    with pytest.raises(ValueError, match="expected 64 input steps"):
        TrellisModel(model_spec(config))(torch.randn(1, 63, 1))


def test_dlinear_shapes_and_seasonal_naive_repeats_the_last_season():
    from trellis_ts.models import build_model

    config = TrellisConfig(**SMALL, model="dlinear")
    x = example_inputs(config, batch=2, channels=3)
    assert build_model(model_spec(config))(x).shape == (2, 16, 3)
    naive = build_model(model_spec(TrellisConfig(**SMALL, model="seasonal_naive", season_length=5)))
    y = naive(x)
    assert y.shape == (2, 16, 3)
    torch.testing.assert_close(y[:, :5], x[:, -5:])
    torch.testing.assert_close(y[:, 5:10], x[:, -5:])
    assert sum(p.numel() for p in naive.parameters()) == 0


def test_mixer_loads_weights_saved_with_separate_projections():
    # trellis-ts 0.1.0 saved qkv, alpha, beta, gamma and out_gate as separate Linears and the
    # short convolutions as nn.Conv1d; such weights load into the fused layer unchanged.
    gen = torch.Generator().manual_seed(0)
    D, H, m, K, d = 8, 2, 3, 3, 4

    def w(*shape):
        return torch.randn(*shape, generator=gen) * 0.3

    old = {
        "qkv.weight": w(3 * D, D),
        "conv_q.conv.weight": w(D, 1, K),
        "conv_q.conv.bias": w(D),
        "conv_k.conv.weight": w(D, 1, K),
        "conv_k.conv.bias": w(D),
        "alpha.weight": w(H * m, D),
        "alpha.bias": w(H * m),
        "beta.weight": w(H, D),
        "beta.bias": w(H) + 3,
        "gamma.weight": w(H, D),
        "gamma.bias": w(H),
        "out_norm.weight": 1 + w(d),
        "out_gate.weight": w(D, D),
        "out_gate.bias": w(D),
        "out.weight": w(D, D),
    }
    x = torch.randn(2, 9, D, generator=gen)

    def conv(t, name):  # the old CausalConv1d
        padded = F.pad(t.transpose(1, 2), (K - 1, 0))
        out = F.conv1d(padded, old[f"{name}.conv.weight"], old[f"{name}.conv.bias"], groups=D)
        return out.transpose(1, 2)

    def unit(t):
        return F.normalize(t.unflatten(-1, (H, d)), dim=-1)

    q, k, v = F.linear(x, old["qkv.weight"]).chunk(3, -1)
    q, k, v = unit(F.silu(conv(q, "conv_q"))), unit(F.silu(conv(k, "conv_k"))), unit(F.silu(v))
    alpha = F.linear(x, old["alpha.weight"], old["alpha.bias"]).unflatten(-1, (H, m))
    log_beta = F.logsigmoid(F.linear(x, old["beta.weight"], old["beta.bias"]))
    gamma = torch.sigmoid(F.linear(x, old["gamma.weight"], old["gamma.bias"])) / 4
    y, _ = naive_trellis(q, k, v, alpha, log_beta, gamma, chunk_size=4, phi="silu")
    y = F.rms_norm(y, (d,), old["out_norm.weight"], eps=1e-6).flatten(-2)
    expected = F.linear(
        y * F.gelu(F.linear(x, old["out_gate.weight"], old["out_gate.bias"])), old["out.weight"]
    )

    mixer = TrellisMixer(8, 2, n_slots=3, chunk_size=4, conv_size=3, phi="silu")
    mixer.load_state_dict(old)
    torch.testing.assert_close(mixer(x), expected, atol=1e-5, rtol=1e-4)


def test_linear_path_adds_a_linear_forecast_of_the_normalised_context():
    config = TrellisConfig(**SMALL, linear_path=True)
    model = TrellisModel(model_spec(config)).eval()
    with torch.no_grad():  # silence the encoder's head: the forecast is the linear path alone
        model.head.linear.weight.zero_()
        model.head.linear.bias.zero_()
    x = example_inputs(config, batch=2, channels=3)
    x_n, stats = normalize(x)
    series = x_n.transpose(1, 2)  # [B, C, L]
    expected = denormalize(model.linear(series).transpose(1, 2), stats)
    torch.testing.assert_close(model(x), expected)
    quantile = TrellisModel(model_spec(config.replace(loss="quantile"))).eval()
    y = quantile(x)
    assert y.shape == (2, config.prediction_length, 3, 3) and (y.diff(dim=-1) >= 0).all()


# ------------------------------------------------------------------ covariates
def covariate_batch(config, inputs, batch=3, seed=0):
    from trellis_ts.models.encoder import ModelInputs  # noqa: F401  (the type the inputs are)

    gen = torch.Generator().manual_seed(seed)
    L, H = config.context_length, config.prediction_length
    out = {"past_target": torch.randn(batch, L, generator=gen)}
    if inputs.past_feat_dynamic_real:
        out["past_feat_dynamic_real"] = torch.randn(
            batch, L, inputs.past_feat_dynamic_real, generator=gen
        )
    if inputs.feat_dynamic_real:
        out["feat_dynamic_real"] = torch.randn(
            batch, L + H, inputs.feat_dynamic_real, generator=gen
        )
    if inputs.feat_static_real:
        out["feat_static_real"] = torch.randn(batch, inputs.feat_static_real, generator=gen)
    if inputs.feat_static_cat:
        out["feat_static_cat"] = torch.tensor(
            [[i % (c + 1) for c in inputs.feat_static_cat] for i in range(batch)]
        )
    return out


ALL_INPUTS = dict(
    past_feat_dynamic_real=2, feat_dynamic_real=3, feat_static_real=1, feat_static_cat=(4,)
)


@pytest.mark.parametrize("kind", ["trellis", "attention", "dlinear"])
def test_covariates_shapes_and_every_input_counts(kind):
    from trellis_ts.models import build_model
    from trellis_ts.models.covariates import ModelInputs

    extra = {"model": "dlinear"} if kind == "dlinear" else {"mixer": kind}
    config = TrellisConfig(**{**SMALL, "prediction_length": 12}, **extra)
    inputs = ModelInputs(**ALL_INPUTS)
    model = build_model(model_spec(config), inputs).eval()
    batch = covariate_batch(config, inputs)
    y = model(**batch)
    assert y.shape == (3, 12) and torch.isfinite(y).all()
    for name in inputs.fields:
        changed = dict(batch)
        changed[name] = batch[name] + 1 if name != "feat_static_cat" else (batch[name] + 1) % 5
        assert not torch.allclose(model(**changed), y), name
    late = dict(batch, feat_dynamic_real=batch["feat_dynamic_real"].clone())
    late["feat_dynamic_real"][:, -1] += 1  # the horizon's last known values reach the forecast
    assert not torch.allclose(model(**late), y)
    if kind != "dlinear":
        with pytest.raises(ValueError, match="missing inputs"):
            model(batch["past_target"])


def test_covariates_are_shared_by_the_channels_of_a_row():
    from trellis_ts.models import build_model
    from trellis_ts.models.covariates import ModelInputs

    config = TrellisConfig(**SMALL)
    inputs = ModelInputs(**ALL_INPUTS)
    model = build_model(model_spec(config), inputs).eval()
    batch = covariate_batch(config, inputs, batch=2)
    channels = torch.randn(2, config.context_length, 4)
    joint = model(**(batch | {"past_target": channels}))  # [B, H, C]
    for c in range(4):
        alone = model(**(batch | {"past_target": channels[..., c]}))
        torch.testing.assert_close(joint[..., c], alone)


def test_without_covariates_no_weights_are_added():
    from trellis_ts.models import build_model
    from trellis_ts.models.covariates import ModelInputs

    config = TrellisConfig(**SMALL)
    torch.manual_seed(0)
    plain = build_model(model_spec(config))
    torch.manual_seed(0)
    empty = build_model(model_spec(config), ModelInputs())
    assert plain.covariates is None and empty.covariates is None
    for (name, a), (_, b) in zip(
        plain.state_dict().items(), empty.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


@pytest.mark.parametrize(("conv", "forget_gate"), [(True, True), (False, False)])
def test_gradcheck_layer_inputs(conv, forget_gate):
    # The mixer's one autograd node from the projection to the op's inputs (conv, SiLU + unit
    # norm, gates, head-major layout) against finite differences, every output at once.
    from trellis_ts.layers.trellis import LayerInputs

    heads, head_dim, slots, length = 2, 3, 2, 5
    d_model = heads * head_dim
    width = 3 * d_model + heads * slots + 2 * heads + d_model
    gen = torch.Generator().manual_seed(31)
    h = torch.randn(2, length, width, generator=gen, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(2 * d_model, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    bias = torch.randn(2 * d_model, generator=gen, dtype=torch.float64, requires_grad=True)

    def fn(h, weight, bias):
        w, b = (weight, bias) if conv else (None, None)
        return LayerInputs.apply(h, w, b, heads, head_dim, slots, 0.25, forget_gate)

    assert torch.autograd.gradcheck(fn, (h, weight, bias))
