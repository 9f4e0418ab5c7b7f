"""Synthesizer on tiny random models: every variant, training and inference paths, RVC call styles."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from infer.models.commons import rand_slice_segments, sequence_mask, slice_segments
from infer.models.config import tiny_config
from infer.models.nsf import SineGen
from infer.models.synthesizer import Synthesizer, build_synthesizer
from infer.safe_load import load_torch_file
from infer.testing.synth import tiny_synthesizer

VARIANTS = list(itertools.product(("v1", "v2"), (32000, 40000, 48000), (True, False)))
VARIANT_IDS = [f"{v}-{sr // 1000}k-{'f0' if f0 else 'nof0'}" for v, sr, f0 in VARIANTS]
T = 24


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a busy machine cannot stall them."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _inputs(model: Synthesizer, frames: int = T, batch: int = 2, seed: int = 0) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    f0 = 100 + 200 * torch.rand(batch, frames, generator=gen)
    f0[:, :3] = 0  # an unvoiced stretch
    return {
        "phone": torch.randn(batch, frames, model.config.feature_dim, generator=gen),
        "phone_lengths": torch.tensor([frames] + [frames - 4] * (batch - 1)),
        "pitch": torch.randint(1, 256, (batch, frames), generator=gen),
        "pitchf": f0,
        "sid": torch.arange(batch) % model.config.spk_embed_dim,
    }


def _infer(model: Synthesizer, x: dict[str, torch.Tensor], **kwargs):
    with torch.no_grad():
        return model.infer(x["phone"], x["phone_lengths"], x["pitch"], x["pitchf"], x["sid"], **kwargs)


@pytest.mark.parametrize(("version", "sr", "use_f0"), VARIANTS, ids=VARIANT_IDS)
def test_every_variant_infers_with_hop_length_output(version, sr, use_f0):
    model = tiny_synthesizer(version, sr, use_f0)
    assert model.hop_length == sr // 100
    assert hasattr(model.dec, "m_source") == use_f0 == hasattr(model.enc_p, "emb_pitch")
    x = _inputs(model)
    o, x_mask, (z, z_p, m_p, logs_p) = _infer(model, x, generator=torch.Generator().manual_seed(1))
    assert o.shape == (2, 1, T * model.hop_length)
    assert x_mask.shape == (2, 1, T) and x_mask[1, 0, T - 4 :].sum() == 0
    assert z.shape == z_p.shape == m_p.shape == logs_p.shape == (2, model.config.inter_channels, T)
    assert torch.isfinite(o).all() and o.abs().max() <= 1
    assert o[0].std() > 1e-3  # not silent or constant


@pytest.mark.parametrize(("version", "sr", "use_f0"), VARIANTS, ids=VARIANT_IDS)
def test_training_forward_and_backward_reach_every_parameter(version, sr, use_f0):
    model = tiny_synthesizer(version, sr, use_f0, segment_size=8).train()
    x = _inputs(model, frames=12)
    spec = torch.randn(2, model.config.spec_channels, 12, generator=torch.Generator().manual_seed(2))
    spec_lengths = torch.tensor([12, 10])
    out = model(x["phone"], x["phone_lengths"], x["pitch"], x["pitchf"], spec, spec_lengths, x["sid"])
    o, ids_slice, x_mask, y_mask, (z, z_p, m_p, logs_p, m_q, logs_q) = out
    assert o.shape == (2, 1, 8 * model.hop_length)
    assert ids_slice.dtype == torch.long and 0 <= ids_slice[0] <= 4 and 0 <= ids_slice[1] <= 2
    assert y_mask.shape == (2, 1, 12) and z.shape == z_p.shape == m_q.shape == logs_q.shape
    loss = o.square().mean() + sum(t.square().mean() for t in (z_p, m_p, logs_p, m_q, logs_q))
    loss.backward()
    missing = [name for name, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []


def test_no_pitch_training_forward_accepts_rvc_positional_order():
    model = tiny_synthesizer("v1", 40000, False, segment_size=8)
    x = _inputs(model, frames=12)
    spec = torch.randn(2, model.config.spec_channels, 12)
    lengths = torch.tensor([12, 12])
    rvc_style = model(
        x["phone"], x["phone_lengths"], spec, lengths, x["sid"], generator=torch.Generator().manual_seed(3)
    )
    by_name = model(
        x["phone"],
        x["phone_lengths"],
        y=spec,
        y_lengths=lengths,
        ds=x["sid"],
        generator=torch.Generator().manual_seed(3),
    )
    torch.testing.assert_close(rvc_style[0], by_name[0], rtol=0, atol=0)
    assert torch.equal(rvc_style[1], by_name[1])


def test_training_slice_cuts_latent_and_pitch_at_the_same_frames():
    model = tiny_synthesizer("v2", 40000, True, segment_size=5)
    x = _inputs(model, frames=16)
    seen = {}
    model.dec.register_forward_pre_hook(lambda _m, args: seen.update(latent=args[0], f0=args[1]))
    spec = torch.randn(2, model.config.spec_channels, 16)
    o, ids, *_, (z, *_rest) = model(
        x["phone"],
        x["phone_lengths"],
        x["pitch"],
        x["pitchf"],
        spec,
        torch.tensor([16, 9]),
        x["sid"],
        generator=torch.Generator().manual_seed(4),
    )
    for i, start in enumerate(ids.tolist()):
        torch.testing.assert_close(seen["latent"][i], z[i, :, start : start + 5], rtol=0, atol=0)
        torch.testing.assert_close(seen["f0"][i], x["pitchf"][i, start : start + 5], rtol=0, atol=0)


def test_slice_helpers():
    x = torch.arange(2 * 3 * 10, dtype=torch.float32).view(2, 3, 10)
    out = slice_segments(x, torch.tensor([0, 8]), 4)
    assert torch.equal(out[0], x[0, :, :4])
    assert torch.equal(out[1, :, :2], x[1, :, 8:]) and out[1, :, 2:].abs().sum() == 0  # zero past the end
    lengths = torch.tensor([10, 6])
    starts = torch.cat([rand_slice_segments(x, lengths, 4, torch.Generator().manual_seed(s))[1] for s in range(50)])
    assert starts.min() >= 0 and starts.view(50, 2)[:, 1].max() <= 2 and starts.view(50, 2)[:, 0].max() <= 6
    assert sequence_mask(torch.tensor([2, 0]), 3).tolist() == [[True, True, False], [False, False, False]]


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_state_dict_keys_order_and_round_trip(tmp_path, version):
    model = tiny_synthesizer(version, 40000, True, seed=1)
    keys = list(model.state_dict())
    # RVC registers enc_p first in v1 and last in v2 (optimizer state is indexed by this order).
    order = (
        ["enc_p", "dec", "enc_q", "flow", "emb_g"] if version == "v1" else ["dec", "enc_q", "flow", "emb_g", "enc_p"]
    )
    assert list(dict.fromkeys(k.split(".")[0] for k in keys)) == order
    for key in (
        "dec.m_source.l_linear.weight",
        "dec.noise_convs.0.weight",
        "dec.ups.0.weight_g",
        "dec.ups.0.weight_v",
        "dec.resblocks.0.convs1.0.weight_g",
        "dec.cond.weight",
        "enc_q.enc.cond_layer.weight_v",
        "flow.flows.6.post.weight",
        "flow.flows.0.enc.in_layers.2.weight_g",
        "emb_g.weight",
        "enc_p.emb_pitch.weight",
        "enc_p.encoder.attn_layers.0.emb_rel_k",
        "enc_p.encoder.norm_layers_1.0.gamma",
        "enc_p.encoder.ffn_layers.0.conv_2.bias",
        "enc_p.proj.weight",
    ):
        assert key in keys
    assert not any(".flows.1." in k or ".flows.3." in k for k in keys)  # Flip layers hold nothing
    assert not [k for k in keys if k.endswith(".weight") and k[: -len("weight")] + "weight_g" in keys]

    torch.save(model.state_dict(), tmp_path / "G.pth")
    other = tiny_synthesizer(version, 40000, True, seed=2)
    x = _inputs(model)
    assert not torch.equal(_infer(model, x, noise_scale=0)[0], _infer(other, x, noise_scale=0)[0])
    other.load_state_dict(load_torch_file(tmp_path / "G.pth"), strict=True)
    torch.testing.assert_close(_infer(model, x, noise_scale=0)[0], _infer(other, x, noise_scale=0)[0], rtol=0, atol=0)


def test_small_model_weights_load_without_posterior():
    trained = tiny_synthesizer("v2", 48000, True, seed=5)
    small = {k: v.half() for k, v in trained.state_dict().items() if "enc_q" not in k}
    model = Synthesizer.from_config(trained.config, with_posterior=False)
    assert not model.has_posterior
    assert model.load_state_dict(small, strict=True)  # no missing or unexpected keys; fp16 → fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    trained.drop_posterior()
    assert list(trained.state_dict()) == list(small)
    with pytest.raises(RuntimeError, match="posterior"):
        x = _inputs(model)
        model(x["phone"], x["phone_lengths"], x["pitch"], x["pitchf"], torch.zeros(2, 1025, T), x["phone_lengths"])


def test_zero_noise_is_deterministic_and_uses_no_rng():
    model = tiny_synthesizer("v2", 40000, True)
    x = _inputs(model)
    torch.manual_seed(0)
    first = _infer(model, x, noise_scale=0)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    second = _infer(model, x, noise_scale=0)
    assert torch.equal(torch.get_rng_state(), state)
    for a, b in zip((first[0], *first[2]), (second[0], *second[2])):
        assert torch.equal(a, b)
    torch.testing.assert_close(first[2][1], first[2][2] * first[1], rtol=0, atol=0)  # z_p == m_p * mask


def test_generator_seed_reproduces_and_matches_global_rng():
    model = tiny_synthesizer("v2", 32000, True)
    x = _inputs(model)
    run = lambda seed: _infer(model, x, generator=torch.Generator().manual_seed(seed))[0]  # noqa: E731
    state = torch.get_rng_state()
    a, b, c = run(7), run(7), run(8)
    assert torch.equal(torch.get_rng_state(), state)  # a generator leaves the global RNG alone
    assert torch.equal(a, b) and not torch.allclose(a, c)
    torch.manual_seed(7)
    torch.testing.assert_close(_infer(model, x)[0], a, rtol=0, atol=0)  # same draws, same order


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_no_pitch_model_accepts_rvc_positional_calls(version):
    model = tiny_synthesizer(version, 48000, False)
    x = _inputs(model, frames=40)
    phone, lengths, sid = x["phone"], x["phone_lengths"], x["sid"]
    head, length, length2 = torch.LongTensor([30]), torch.LongTensor([6]), torch.LongTensor([7])
    with torch.no_grad():
        plain = model.infer(phone, lengths, sid, noise_scale=0)[0]
        by_name = model.infer(phone, lengths, sid=sid, noise_scale=0)[0]
        pitch_style = model.infer(phone, lengths, x["pitch"], x["pitchf"], sid, noise_scale=0)[0]
        realtime = model.infer(phone, lengths, sid, head, length, length2, noise_scale=0)[0]
        realtime_kw = model.infer(phone, lengths, sid, skip_head=30, return_length=6, return_length2=7, noise_scale=0)[
            0
        ]
        with pytest.raises(TypeError):
            model.infer(phone, lengths, sid, head, length, length2, return_length2=length2)
    assert torch.equal(plain, by_name) and torch.equal(plain, pitch_style)
    assert realtime.shape == (2, 1, 7 * model.hop_length)
    assert torch.equal(realtime, realtime_kw)


def test_pitch_model_requires_pitch():
    model = tiny_synthesizer("v1", 40000, True)
    x = _inputs(model)
    with pytest.raises(ValueError, match="pitch"):
        model.infer(x["phone"], x["phone_lengths"], sid=x["sid"])


def test_realtime_arguments_crop_and_resample():
    model = tiny_synthesizer("v2", 40000, True)
    x = _inputs(model, frames=60, batch=1)
    full = _infer(model, x, noise_scale=0)
    # skip_head ≤ 24: the flow sees the whole sequence, so z is a crop of the full run's z.
    o, mask, (z, z_p, m_p, _) = _infer(model, x, noise_scale=0, skip_head=10, return_length=12)
    assert o.shape[-1] == 12 * model.hop_length and mask.shape[-1] == 12
    torch.testing.assert_close(z, full[2][0][:, :, 10:22], rtol=0, atol=0)
    # skip_head > 24: the encoder output is cut at skip_head - 24 before the flow.
    o, mask, (z, z_p, m_p, _) = _infer(model, x, noise_scale=0, skip_head=40, return_length=15, return_length2=18)
    torch.testing.assert_close(m_p, full[2][2][:, :, 16:], rtol=0, atol=0)
    assert z.shape[-1] == 15 and o.shape[-1] == 18 * model.hop_length
    with pytest.raises(ValueError, match="together"):
        _infer(model, x, skip_head=40)


@pytest.mark.parametrize(("version", "use_f0"), [("v1", True), ("v2", False)])
def test_remove_weight_norm_keeps_output(version, use_f0):
    model = tiny_synthesizer(version, 48000, use_f0)
    x = _inputs(model)
    before = _infer(model, x, noise_scale=0)[0]
    model.remove_weight_norm()
    assert not any(k.endswith(("weight_g", "weight_v")) for k in model.state_dict())
    torch.testing.assert_close(_infer(model, x, noise_scale=0)[0], before, rtol=0, atol=1e-6)


def test_constructor_accepts_rvc_arguments_and_rejects_typos():
    cfg = tiny_config("v1", 40000, True)
    rvc_list = cfg.to_rvc_list()
    rvc_list[-1] = "40k"
    model = Synthesizer(256, True, *rvc_list, is_half=True, use_spectral_norm=False)
    assert model.config == cfg and build_synthesizer(cfg).config == cfg
    with pytest.raises(TypeError, match="is_halff"):
        Synthesizer(256, True, *rvc_list, is_halff=True)


def test_sine_source_matches_analytic_phase():
    sr, upp, frames = 16000, 160, 50
    f0 = torch.full((1, frames), 220.0)
    f0[0, 40:] = 0  # unvoiced tail is silent without noise
    sine, uv, noise = SineGen(sr)(f0, upp, add_noise=False)
    n = np.arange(1, frames * upp + 1)
    expected = 0.1 * np.sin(2 * math.pi * np.mod(n * 220.0 / sr, 1.0))
    assert sine.shape == uv.shape == (1, frames * upp, 1) and noise.abs().sum() == 0
    np.testing.assert_allclose(sine[0, : 40 * upp, 0].numpy(), expected[: 40 * upp], atol=2e-6)
    assert sine[0, 40 * upp :].abs().sum() == 0 and uv[0, 40 * upp :].sum() == 0


def test_tiny_synthesizer_is_seeded_and_exercises_every_path():
    a, b, c = tiny_synthesizer(seed=3), tiny_synthesizer(seed=3), tiny_synthesizer(seed=4)
    state_a, state_b, state_c = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    assert not torch.equal(state_a["emb_g.weight"], state_c["emb_g.weight"])
    for key, g in state_a.items():
        if key.endswith("weight_g"):
            v = state_a[key[: -len("_g")] + "_v"]
            assert not torch.allclose(g.flatten(), v.flatten(1).norm(dim=1)), key  # gains are not ‖v‖
    assert state_a["flow.flows.0.post.weight"].abs().min() > 0
    assert not torch.allclose(state_a["enc_p.encoder.norm_layers_1.0.gamma"], torch.ones(8))
