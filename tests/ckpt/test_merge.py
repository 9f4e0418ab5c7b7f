"""Merging voices: the arithmetic, what is refused and why, G_ inputs, RVC's own files."""

from __future__ import annotations

import shutil

import pytest
import torch

from infer.checkpoints import read_small_model
from infer.ckpt import IncompatibleVoicesError, OutputExistsError, merge_voices
from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.ckpt.helpers import TINY_DIM, save_tiny_generator


def test_merge_is_weighted_sum_and_loads(voice_a, voice_b, weights):
    result = merge_voices(voice_a, voice_b, 0.25, "mix", weights_dir=weights)
    assert result.path == weights / "mix.pth"
    a, b, merged = read_small_model(voice_a), read_small_model(voice_b), read_small_model(result.path)
    assert set(merged.weight) == set(a.weight)
    for key, tensor in merged.weight.items():
        expected = (0.25 * a.weight[key].float() + 0.75 * b.weight[key].float()).half()
        assert tensor.dtype == torch.float16 and torch.equal(tensor, expected), key
    assert (merged.sample_rate, merged.version, merged.use_f0) == (40000, "v2", True)
    assert merged.info == "Merged: 0.25 × alice + 0.75 × bob"
    assert merged.metadata["merged_from"] == [{"name": "alice", "weight": 0.25}, {"name": "bob", "weight": 0.75}]
    # pitch ranges mix on a log scale: 200^0.25 · 100^0.75
    assert merged.metadata["f0_stats"]["median"] == pytest.approx(200**0.25 * 100**0.75)
    assert merged.metadata["content_encoder"] == "hubert_base"
    voice = load_voice(result.path)
    with torch.no_grad():
        audio = voice.synthesizer.infer(
            torch.randn(1, 20, TINY_DIM),
            torch.tensor([20]),
            torch.full((1, 20), 60),
            torch.full((1, 20), 200.0),
            noise_scale=0,
        )[0]
    assert audio.shape == (1, 1, 20 * 400) and torch.isfinite(audio).all()


def test_weight_one_gives_voice_a(voice_a, voice_b, weights):
    merged = read_small_model(merge_voices(voice_a, voice_b, 1.0, weights_dir=weights).path)
    a = read_small_model(voice_a)
    assert all(torch.equal(merged.weight[k], a.weight[k]) for k in a.weight)
    assert (weights / "alice+bob.pth").is_file()


@pytest.mark.parametrize(
    ("other", "message"),
    [
        (dict(version="v2", sample_rate=48000, use_f0=True), "sample rate"),
        (dict(version="v1", sample_rate=40000, use_f0=True), "version"),
        (dict(version="v2", sample_rate=40000, use_f0=False), "pitch guidance"),
    ],
)
def test_refuses_voices_that_do_not_fit(voice_a, weights, other, message):
    b = save_tiny_voice(weights / "other.pth", seed=3, feature_dim=TINY_DIM, **other)
    with pytest.raises(IncompatibleVoicesError, match=message) as info:
        merge_voices(voice_a, b, 0.5, "bad", weights_dir=weights)
    assert "alice" in str(info.value) and "other" in str(info.value)
    assert not (weights / "bad.pth").exists()


def test_refuses_other_feature_size_and_width(voice_a, weights):
    wide = save_tiny_voice(weights / "wide.pth", seed=3, feature_dim=TINY_DIM, hidden_channels=16)
    with pytest.raises(IncompatibleVoicesError, match="different widths"):
        merge_voices(voice_a, wide, weights_dir=weights)
    other_dim = save_tiny_voice(weights / "dim.pth", seed=3, feature_dim=48)
    with pytest.raises(IncompatibleVoicesError, match="content feature size"):
        merge_voices(voice_a, other_dim, weights_dir=weights)


def test_speaker_tables_are_cut_to_the_smaller(voice_a, weights):
    many = save_tiny_voice(weights / "many.pth", seed=4, feature_dim=TINY_DIM, spk_embed_dim=6)
    result = merge_voices(voice_a, many, 0.5, "cut", weights_dir=weights)
    assert read_small_model(result.path).n_speakers == 4
    assert any("speaker slots" in w for w in result.warnings)
    load_voice(result.path)


def test_bad_weight_and_existing_output(voice_a, voice_b, weights):
    with pytest.raises(ValueError, match="between 0 and 1"):
        merge_voices(voice_a, voice_b, 1.5, "x", weights_dir=weights)
    shutil.copy(voice_a, weights / "taken.pth")
    before = (weights / "taken.pth").read_bytes()
    with pytest.raises(OutputExistsError, match="already exists"):
        merge_voices(voice_a, voice_b, 0.5, "taken", weights_dir=weights)
    assert (weights / "taken.pth").read_bytes() == before
    merge_voices(voice_a, voice_b, 0.5, "taken", weights_dir=weights, overwrite=True)
    assert (weights / "taken.pth").read_bytes() != before


def test_full_g_checkpoints_are_accepted(tmp_path, weights):
    """RVC read 'config' from input A before checking for a G_ file, so merging raw G_ files failed (§11.10)."""
    g1 = save_tiny_generator(tmp_path / "logs" / "one", seed=0)
    g2 = save_tiny_generator(tmp_path / "logs" / "two", seed=1)
    result = merge_voices(g1, g2, 0.5, "gg", weights_dir=weights)
    merged = read_small_model(result.path)
    assert not any("enc_q" in k for k in merged.weight)
    assert merged.sample_rate == 40000 and merged.version == "v2"
    load_voice(result.path)


@pytest.mark.compat
def test_reference_voices_merge_and_load(rvc_reference, tmp_path, weights):
    """Two files in RVC's own format: RVC's export of a G_, and that G_ itself (also RVC's file)."""
    folder = rvc_reference / "train_ckpt" / "v2_f0_40k_reduced"
    savee = folder / "savee_small_model.pth"
    g_copy = tmp_path / "G_2333333.pth"
    shutil.copy(folder / "G_2333333.pth", g_copy)
    result = merge_voices(savee, g_copy, 0.3, "ref_mix", weights_dir=weights)
    reference = read_small_model(savee)
    merged = read_small_model(result.path)
    assert merged.config == reference.config
    assert all(torch.equal(merged.weight[k], reference.weight[k]) for k in reference.weight)  # same weights in both
    voice = load_voice(result.path)
    assert voice.sample_rate == 40000 and voice.version == "v2" and voice.use_f0


@pytest.mark.compat
def test_reference_voices_of_other_rate_refused(rvc_reference, weights):
    synth = rvc_reference / "synth"
    with pytest.raises(IncompatibleVoicesError, match="sample rate"):
        merge_voices(
            synth / "rvc_v2_f0_40k" / "rvc_v2_f0_40k.pth",
            synth / "rvc_v1_nof0_48k" / "rvc_v1_nof0_48k.pth",
            weights_dir=weights,
        )
