"""Showing and changing a voice's info."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from infer.checkpoints import read_small_model
from infer.ckpt import OutputExistsError, set_voice_info, voice_info
from infer.safe_load import ModelFileError, load_torch_file


def test_voice_info_fields_and_text(voice_a):
    info = voice_info(voice_a)
    assert (info.kind, info.sample_rate, info.version, info.use_f0) == ("voice", 40000, "v2", True)
    assert (info.speakers, info.feature_dim, info.epochs, info.info) == (4, 32, 20, "tiny-random")
    assert info.size_bytes == voice_a.stat().st_size
    assert info.parameters == sum(t.numel() for t in read_small_model(voice_a).weight.values())
    assert info.metadata["f0_method"] == "rmvpe"
    text = info.text()
    for line in (
        "Sample rate: 40k (40000 Hz)",
        "Pitch guidance: yes",
        "Version: v2",
        "Speakers: 4",
        "Training epochs: 20",
        "Training pitch: median 200 Hz (5–95 %: 150–300 Hz)",
        "F0 method: rmvpe",
    ):
        assert line in text, line
    data = json.loads(json.dumps(info.to_json()))
    assert data["sample_rate_tag"] == "40k" and data["metadata"]["f0_stats"]["p95"] == 300.0


def test_info_of_a_g_checkpoint(generator_ckpt):
    info = voice_info(generator_ckpt)
    assert info.kind == "generator checkpoint"
    assert (info.sample_rate, info.version, info.epochs, info.use_f0) == (40000, "v2", 7, True)
    assert any("enc_q" in k for k in torch.load(generator_ckpt, weights_only=True)["model"])
    assert "generator checkpoint" in info.text()


def test_info_refuses_other_files(tmp_path):
    path = tmp_path / "D_1.pth"
    torch.save({"model": {"discriminators.0.convs.0.weight_v": torch.zeros(1)}}, path)
    with pytest.raises(ModelFileError, match="discriminator"):
        voice_info(path)


def test_set_info_in_place_keeps_everything_else(voice_a):
    before = load_torch_file(voice_a)
    result = set_voice_info(voice_a, "Alice — studio take 2")
    after = load_torch_file(voice_a)
    assert result.path == voice_a and after["info"] == "Alice — studio take 2"
    assert list(after) == list(before)
    assert after["rvc_studio"] == before["rvc_studio"] and after["config"] == before["config"]
    assert all(torch.equal(after["weight"][k], v) for k, v in before["weight"].items())
    assert voice_info(voice_a).info == "Alice — studio take 2"


def test_set_info_output_stays_beside_the_source(tmp_path, voice_a):
    """RVC saved modified models into assets/weights whatever the source folder (§11.10)."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    source = shutil.copy(voice_a, elsewhere / "voice.pth")
    result = set_voice_info(source, "copy", "renamed")
    assert result.path == elsewhere / "renamed.pth"
    assert voice_info(result.path).info == "copy" and voice_info(source).info == "tiny-random"
    with pytest.raises(OutputExistsError):
        set_voice_info(source, "again", "renamed")
    assert voice_info(result.path).info == "copy"


def test_set_info_refuses_checkpoints(generator_ckpt):
    before = generator_ckpt.read_bytes()
    with pytest.raises(ModelFileError, match="not a voice model"):
        set_voice_info(generator_ckpt, "x")
    assert generator_ckpt.read_bytes() == before


@pytest.mark.compat
def test_reference_voice_info(rvc_reference):
    info = voice_info(rvc_reference / "synth" / "rvc_v1_nof0_48k" / "rvc_v1_nof0_48k.pth")
    assert (info.sample_rate, info.version, info.use_f0, info.epochs, info.info) == (48000, "v1", False, 20, "20epoch")
    assert info.speakers == 109 and info.feature_dim == 256
    g = voice_info(rvc_reference / "train_ckpt" / "v2_f0_40k_reduced" / "G_2333333.pth")
    assert (g.sample_rate, g.version, g.use_f0, g.epochs) == (40000, "v2", True, 1)
