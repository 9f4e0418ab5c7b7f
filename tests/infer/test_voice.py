"""load_voice: RVC small models become ready-to-run synthesizers."""

from __future__ import annotations

import pytest
import torch

import infer
from infer.checkpoints import TrainCheckpoint, read_small_model, small_model_to_dict, write_checkpoint
from infer.testing.synth import tiny_synthesizer
from infer.testing.voice import save_tiny_voice


def _inputs(voice_dim, frames=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    phone = torch.randn(1, frames, voice_dim, generator=g)
    f0 = 150 + 50 * torch.rand(1, frames, generator=g)
    pitch = torch.clamp((f0 / 4).long(), 1, 255)
    return phone, torch.tensor([frames]), pitch, f0, torch.tensor([0])


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("sample_rate", [32000, 40000, 48000])
@pytest.mark.parametrize("use_f0", [True, False])
def test_load_voice_every_variant(tmp_path, version, sample_rate, use_f0):
    path = save_tiny_voice(tmp_path / "v.pth", version, sample_rate, use_f0, seed=3)
    voice = infer.load_voice(path)
    assert (voice.version, voice.sample_rate, voice.use_f0) == (version, sample_rate, use_f0)
    assert voice.n_speakers == 4 and voice.info == "tiny-random" and voice.name == "v"
    assert not voice.synthesizer.training and not voice.synthesizer.has_posterior
    assert voice.dtype == torch.float32 and voice.device.type == "cpu"

    reference = tiny_synthesizer(version, sample_rate, use_f0, seed=3, with_posterior=False)
    reference.load_state_dict({k: v.float() for k, v in read_small_model(path).weight.items()})
    phone, lengths, pitch, f0, sid = _inputs(voice.feature_dim)
    with torch.no_grad():
        if use_f0:
            expected = reference.infer(phone, lengths, pitch, f0, sid, noise_scale=0)[0]
            got = voice.synthesizer.infer(phone, lengths, pitch, f0, sid, noise_scale=0)[0]
        else:
            expected = reference.infer(phone, lengths, sid=sid, noise_scale=0)[0]
            got = voice.synthesizer.infer(phone, lengths, sid, noise_scale=0)[0]  # RVC's no-pitch call
    assert got.shape == (1, 1, 30 * sample_rate // 100)
    assert torch.allclose(got, expected, atol=1e-6)


def test_weight_norm_can_be_kept(tmp_path):
    path = save_tiny_voice(tmp_path / "v.pth")
    fused = infer.load_voice(path)
    kept = infer.load_voice(path, fuse_weight_norm=False)
    assert "dec.ups.0.weight_g" in kept.synthesizer.state_dict()
    assert "dec.ups.0.weight_g" not in fused.synthesizer.state_dict()


def test_half_precision_request(tmp_path):
    voice = infer.load_voice(save_tiny_voice(tmp_path / "v.pth"), dtype=torch.float16)
    assert voice.dtype == torch.float16


def test_old_file_without_version_and_f0(tmp_path):
    path = save_tiny_voice(tmp_path / "old.pth", "v1", 40000, True)
    raw = torch.load(path, weights_only=True)
    del raw["version"], raw["f0"]
    torch.save(raw, path)
    voice = infer.load_voice(path)
    assert voice.version == "v1" and voice.use_f0


def test_g_checkpoint_is_refused_with_advice(tmp_path):
    model = tiny_synthesizer()
    g = write_checkpoint(TrainCheckpoint(model=model.state_dict(), iteration=3), tmp_path / "G_300.pth")
    with pytest.raises(infer.ModelFileError, match="Extract a small model"):
        infer.load_voice(g)


def test_config_that_does_not_fit_the_weights(tmp_path):
    path = save_tiny_voice(tmp_path / "v.pth")
    raw = small_model_to_dict(read_small_model(path))
    raw["config"][13] = 64  # upsample_initial_channel no longer matches dec.conv_pre
    torch.save(raw, path)
    with pytest.raises(infer.ModelFileError, match="does not match its own config"):
        infer.load_voice(path)


@pytest.mark.compat
@pytest.mark.parametrize("name", ["rvc_v2_f0_40k", "rvc_v1_nof0_48k"])
def test_reference_voices_through_load_voice(rvc_reference, name):
    import numpy as np

    folder = rvc_reference / "synth" / name
    io = np.load(folder / "io.npz")
    voice = infer.load_voice(folder / f"{name}.pth")
    args = [torch.from_numpy(io["phone"]), torch.from_numpy(io["phone_lengths"])]
    if voice.use_f0:
        args += [torch.from_numpy(io["pitch"]), torch.from_numpy(io["pitchf"])]
    args.append(torch.from_numpy(io["sid"]))
    with torch.no_grad():
        audio = voice.synthesizer.infer(*args, noise_scale=0)[0].numpy()
    tolerance = 1e-5 if voice.use_f0 else 2e-6
    assert np.abs(audio - io["zero_noise/audio"]).max() < tolerance
