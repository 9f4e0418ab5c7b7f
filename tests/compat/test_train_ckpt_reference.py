"""Trainer checkpoints written by the reference code (fixture README §B, reduced widths).

Checks that ``G_2333333.pth`` (with ``enc_q``) and ``D_2333333.pth`` load
strictly, that their AdamW state lines up with our parameter order (so RVC
runs can be resumed), and that the full-size structure matches the manifest.
"""

from __future__ import annotations

import json

import pytest
import torch

from infer.models.config import SynthesizerConfig, audio_preset, preset
from infer.models.discriminators import MultiPeriodDiscriminator, build_discriminator
from infer.models.synthesizer import Synthesizer
from infer.safe_load import load_torch_file
from tests.conftest import fixture_path

pytestmark = pytest.mark.compat


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def ckpt_dir():
    return fixture_path("rvc-reference", "train_ckpt", "v2_f0_40k_reduced")


@pytest.fixture(scope="module")
def meta(ckpt_dir):
    return json.loads((ckpt_dir / "meta.json").read_text())


def training_config(**overrides) -> SynthesizerConfig:
    """v2/40k f0 as train.py builds it: segment_size in frames (12800 // 400 = 32)."""
    frames = audio_preset("v2", 40000).segment_size // 400
    return preset("v2", 40000, True, segment_size=frames, **overrides)


def reduced_generator(meta) -> Synthesizer:
    return Synthesizer.from_config(training_config(**meta["reduced_g_overrides"]))


def reduced_discriminator(meta) -> MultiPeriodDiscriminator:
    divisors = meta["reduced_d_channel_divisors"]
    return build_discriminator("v2", channel_divisor_s=divisors["Conv1d"], channel_divisor_p=divisors["Conv2d"])


def _build(kind: str, meta) -> torch.nn.Module:
    return reduced_generator(meta) if kind == "G" else reduced_discriminator(meta)


@pytest.mark.parametrize("kind", ["G", "D"])
def test_checkpoint_loads_strictly_in_reference_order(ckpt_dir, meta, kind):
    ckpt = load_torch_file(ckpt_dir / f"{kind}_2333333.pth")
    model = _build(kind, meta)
    result = model.load_state_dict(ckpt["model"], strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    assert list(model.state_dict()) == list(ckpt["model"])
    for key, value in model.state_dict().items():
        assert torch.equal(value, ckpt["model"][key]), key


@pytest.mark.parametrize("kind", ["G", "D"])
def test_optimizer_state_lines_up_with_parameters(ckpt_dir, meta, kind):
    """AdamW state is stored by parameter index: resuming needs RVC's parameter order."""
    ckpt = load_torch_file(ckpt_dir / f"{kind}_2333333.pth")
    model = _build(kind, meta)
    model.load_state_dict(ckpt["model"])
    params = list(model.parameters())
    state = ckpt["optimizer"]["state"]
    assert len(state) == len(params)
    for index, param in enumerate(params):
        assert state[index]["exp_avg"].shape == param.shape, index
    optimizer = torch.optim.AdamW(params, 1e-4, betas=(0.8, 0.99), eps=1e-9)
    optimizer.load_state_dict(ckpt["optimizer"])
    for param in params:
        param.grad = torch.full_like(param, 1e-3)
    optimizer.step()  # fails on any shape mismatch


@pytest.mark.parametrize("kind", ["G", "D"])
def test_state_dict_save_load_round_trip(ckpt_dir, meta, tmp_path, kind):
    original = load_torch_file(ckpt_dir / f"{kind}_2333333.pth")["model"]
    model = _build(kind, meta)
    model.load_state_dict(original)
    torch.save(model.state_dict(), tmp_path / "model.pth")
    reloaded = load_torch_file(tmp_path / "model.pth")
    assert list(reloaded) == list(original)
    for key in original:
        assert torch.equal(reloaded[key], original[key]), key


def test_full_size_structure_matches_manifest(ckpt_dir):
    manifest = json.loads((ckpt_dir.parent / "full_size_manifest.json").read_text())
    with torch.device("meta"):  # structure only
        generator = Synthesizer.from_config(training_config())
        discriminator = build_discriminator("v2")
        small = Synthesizer.from_config(
            SynthesizerConfig.from_rvc_list(manifest["savee_small_model"]["config"], feature_dim=768, use_f0=True),
            with_posterior=False,
        )
    for model, keys in (
        (generator, manifest["G"]["model_keys"]),
        (discriminator, manifest["D"]["model_keys"]),
        (small, manifest["savee_small_model"]["weight_keys"]),
    ):
        assert [(k, list(v.shape)) for k, v in model.state_dict().items()] == [(k, shape) for k, shape, _ in keys]


def test_trainer_small_model_export_loads_and_runs(ckpt_dir):
    cpt = load_torch_file(ckpt_dir / "savee_small_model.pth")
    cfg = SynthesizerConfig.from_rvc_list(cpt["config"], feature_dim=768, use_f0=bool(cpt["f0"]))
    model = Synthesizer.from_config(cfg, with_posterior=False).eval()
    model.load_state_dict(cpt["weight"], strict=True)
    gen = torch.Generator().manual_seed(0)
    frames = 30
    with torch.inference_mode():
        audio = model.infer(
            torch.randn(1, frames, 768, generator=gen),
            torch.tensor([frames]),
            torch.randint(1, 256, (1, frames), generator=gen),
            torch.full((1, frames), 180.0),
            torch.tensor([0]),
            generator=gen,
        )[0]
    assert audio.shape == (1, 1, frames * 400) and torch.isfinite(audio).all() and audio.std() > 0


def test_one_training_step_from_reference_checkpoints(ckpt_dir, meta):
    net_g, net_d = reduced_generator(meta).train(), reduced_discriminator(meta).train()
    net_g.load_state_dict(load_torch_file(ckpt_dir / "G_2333333.pth")["model"])
    net_d.load_state_dict(load_torch_file(ckpt_dir / "D_2333333.pth")["model"])
    gen = torch.Generator().manual_seed(1)
    batch, frames, hop = 2, 40, 400
    phone = torch.randn(batch, frames, 768, generator=gen)
    pitch = torch.randint(1, 256, (batch, frames), generator=gen)
    pitchf = 100 + 200 * torch.rand(batch, frames, generator=gen)
    spec = torch.rand(batch, 1025, frames, generator=gen)
    lengths = torch.tensor([frames, frames - 6])
    wave = 0.1 * torch.randn(batch, 1, frames * hop, generator=gen)
    out = net_g(phone, lengths, pitch, pitchf, spec, lengths, torch.tensor([0, 1]), generator=gen)
    o, ids, _x_mask, y_mask, (_z, z_p, m_p, logs_p, _m_q, logs_q) = out
    real = torch.stack([wave[i, :, s * hop : (s + net_g.segment_size) * hop] for i, s in enumerate(ids.tolist())])
    y_d_rs, y_d_gs, fmap_rs, fmap_gs = net_d(real, o)
    loss_gen = sum(((1 - g) ** 2).mean() for g in y_d_gs)
    loss_fm = sum((r.detach() - g).abs().mean() for fr, fg in zip(fmap_rs, fmap_gs) for r, g in zip(fr, fg))
    kl = logs_p - logs_q - 0.5 + 0.5 * (z_p - m_p) ** 2 * torch.exp(-2 * logs_p)
    loss_kl = (kl * y_mask).sum() / y_mask.sum()
    (loss_gen + loss_fm + loss_kl).backward()
    assert o.shape == (batch, 1, net_g.segment_size * hop) and torch.isfinite(loss_kl)
    missing = [name for name, p in net_g.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert all(p.grad is not None for p in net_d.parameters())
