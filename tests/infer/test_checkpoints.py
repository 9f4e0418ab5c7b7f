"""Reading and writing RVC's small models and G_/D_ checkpoints (no synthesizer needed)."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch

from infer.checkpoints import (
    METADATA_KEY,
    TrainCheckpoint,
    file_kind,
    make_small_model,
    read_checkpoint,
    read_small_model,
    small_model_from_dict,
    write_checkpoint,
    write_small_model,
)
from infer.models.config import preset
from infer.safe_load import ModelFileError


def _weights(feature_dim=768, speakers=109, pitch=True, dtype=torch.float16):
    w = {
        "enc_p.emb_phone.weight": torch.randn(192, feature_dim, dtype=dtype),
        "emb_g.weight": torch.randn(speakers, 256, dtype=dtype),
        "dec.ups.0.weight_g": torch.rand(512, 1, 1, dtype=dtype),
        "dec.ups.0.weight_v": torch.randn(512, 256, 16, dtype=dtype),
    }
    if pitch:
        w["enc_p.emb_pitch.weight"] = torch.randn(256, 192, dtype=dtype)
    return w


def _rvc_dict(**changes):
    obj = OrderedDict(
        weight=_weights(), config=preset("v2", 40000).to_rvc_list(), info="20epoch", sr="40k", f0=1, version="v2"
    )
    obj.update(changes)
    return obj


def test_reads_trainer_format():
    model = small_model_from_dict(_rvc_dict())
    assert (model.version, model.sample_rate, model.use_f0, model.n_speakers) == ("v2", 40000, True, 109)
    assert model.config.feature_dim == 768 and model.info == "20epoch" and not model.warnings


def test_old_file_without_version_and_f0_defaults_like_rvc():
    obj = _rvc_dict(weight=_weights(feature_dim=256), config=preset("v1", 40000).to_rvc_list())
    del obj["version"], obj["f0"]
    model = small_model_from_dict(obj)
    assert model.version == "v1" and model.use_f0 and model.config.feature_dim == 256


def test_speaker_count_comes_from_the_weights():
    model = small_model_from_dict(_rvc_dict(weight=_weights(speakers=3)))
    assert model.n_speakers == 3 and model.config.spk_embed_dim == 3


def test_weights_decide_pitch_and_a_contradiction_is_reported():
    model = small_model_from_dict(_rvc_dict(weight=_weights(pitch=False), f0=1))
    assert not model.use_f0
    assert any("pitch" in w for w in model.warnings)


def test_parametrization_names_and_ddp_prefix_are_normalised():
    weight = {
        f"module.{k}".replace("weight_g", "parametrizations.weight.original0").replace(
            "weight_v", "parametrizations.weight.original1"
        ): v
        for k, v in _weights().items()
    }
    model = small_model_from_dict(_rvc_dict(weight=weight))
    assert "dec.ups.0.weight_g" in model.weight and "dec.ups.0.weight_v" in model.weight


def test_int_sample_rate_tag_and_17_item_config():
    config = preset("v2", 48000).to_rvc_list()[:17]
    model = small_model_from_dict(_rvc_dict(config=config, sr=48000))
    assert model.sample_rate == 48000


def test_unsupported_vocoder_and_version_are_refused():
    with pytest.raises(ModelFileError, match="RefineGAN"):
        small_model_from_dict(_rvc_dict(vocoder="RefineGAN"))
    with pytest.raises(ModelFileError, match="version"):
        small_model_from_dict(_rvc_dict(version="v3"))


def test_written_small_model_is_rvc_format(tmp_path):
    cfg = preset("v2", 40000)
    model = make_small_model(
        {**_weights(dtype=torch.float32), "enc_q.pre.weight": torch.ones(1)},
        cfg,
        "v2",
        "3epoch",
        metadata={"f0_method": "rmvpe"},
    )
    path = write_small_model(model, tmp_path / "voice.pth")
    raw = torch.load(path, weights_only=True)  # how RVC (torch >= 2.6) loads it
    assert list(raw)[:6] == ["weight", "config", "info", "sr", "f0", "version"]
    assert raw["config"] == cfg.to_rvc_list() and raw["sr"] == "40k" and raw["f0"] == 1 and raw["version"] == "v2"
    assert all(v.dtype == torch.float16 for v in raw["weight"].values())
    assert not any("enc_q" in k for k in raw["weight"])
    assert raw[METADATA_KEY]["f0_method"] == "rmvpe" and raw[METADATA_KEY]["format_version"] == 1
    again = read_small_model(path)
    assert again.metadata["f0_method"] == "rmvpe" and again.info == "3epoch"
    assert list(tmp_path.iterdir()) == [path]  # no temporary files left


def test_newer_metadata_is_ignored_with_a_warning():
    model = small_model_from_dict(_rvc_dict(**{METADATA_KEY: {"format_version": 99, "x": 1}}))
    assert model.metadata == {} and model.warnings


def test_checkpoint_round_trip_and_kinds(tmp_path):
    g = TrainCheckpoint(
        model={"enc_p.x": torch.randn(3), "enc_q.y": torch.randn(2)},
        iteration=7,
        optimizer={"state": {}, "param_groups": []},
        learning_rate=1e-4,
    )
    path = write_checkpoint(g, tmp_path / "G_7.pth")
    raw = torch.load(path, weights_only=True)
    assert list(raw) == ["model", "iteration", "optimizer", "learning_rate"] and raw["iteration"] == 7
    again = read_checkpoint(path)
    assert again.kind == "generator" and again.iteration == 7
    assert torch.equal(again.model["enc_q.y"], g.model["enc_q.y"])
    d = write_checkpoint(
        TrainCheckpoint(model={"discriminators.0.conv_post.bias": torch.ones(1)}), tmp_path / "D_1.pth"
    )
    assert read_checkpoint(d).kind == "discriminator"


def test_wrong_kind_errors_say_what_to_do(tmp_path):
    g = write_checkpoint(TrainCheckpoint(model=_weights()), tmp_path / "G_100.pth")
    with pytest.raises(ModelFileError, match="extract"):
        read_small_model(g)
    d = write_checkpoint(
        TrainCheckpoint(model={"discriminators.0.conv_post.bias": torch.ones(1)}), tmp_path / "D_1.pth"
    )
    with pytest.raises(ModelFileError, match="discriminator"):
        read_small_model(d)
    small = write_small_model(small_model_from_dict(_rvc_dict()), tmp_path / "v.pth")
    with pytest.raises(ModelFileError, match="small voice model"):
        read_checkpoint(small)
    other = tmp_path / "other.pth"
    torch.save({"a": torch.ones(1)}, other)
    with pytest.raises(ModelFileError, match="not an RVC voice model"):
        read_small_model(other)
    assert file_kind([1, 2]) == "unknown"


def test_atomic_writes_get_normal_permissions(tmp_path):
    import os
    import stat

    from infer.atomic import atomic_write_text

    path = atomic_write_text("x", tmp_path / "a.txt")
    plain = tmp_path / "b.txt"
    plain.write_text("x")
    assert stat.S_IMODE(os.stat(path).st_mode) == stat.S_IMODE(os.stat(plain).st_mode)
