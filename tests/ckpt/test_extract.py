"""Extracting a voice from a G_ checkpoint: settings from the experiment (FAQ Q12), RVC's expected file."""

from __future__ import annotations

import shutil

import pytest
import torch

from infer.checkpoints import read_small_model, small_model_to_dict
from infer.ckpt import CkptError, OutputExistsError, extract_small_model, extract_voice, find_experiment_settings
from infer.voice import load_voice
from tests.ckpt.helpers import save_tiny_generator, write_train_log


def test_settings_come_from_the_experiments_config(generator_ckpt, weights):
    """The tiny G_ has 32-dim features: only the experiment's config.json can say it is v2."""
    settings = find_experiment_settings(generator_ckpt)
    assert (settings.source, settings.version, settings.sample_rate, settings.use_f0) == (
        "config.json",
        "v2",
        40000,
        True,
    )
    result = extract_voice(generator_ckpt, weights_dir=weights)
    assert result.path == weights / "tinyexp_e7.pth"  # the trainer's naming: pairs with the experiment's index
    model = read_small_model(result.path)
    assert (model.version, model.sample_rate, model.info) == ("v2", 40000, "Extracted model.")
    assert model.metadata["epochs"] == 7 and model.metadata["f0_method"] == "rmvpe"
    assert 150 < model.metadata["f0_stats"]["median"] < 260
    load_voice(result.path)


def test_without_experiment_the_weights_or_the_caller_decide(tmp_path, weights):
    g = save_tiny_generator(tmp_path / "loose", config_json=False, f0_files=False)
    assert find_experiment_settings(g) is None
    with pytest.raises(CkptError, match="version"):
        extract_small_model(g)
    model = extract_small_model(g, version="v2", sample_rate="40k")
    assert model.metadata == {} and model.sample_rate == 40000
    assert set(small_model_to_dict(model)) == {"weight", "config", "info", "sr", "f0", "version"}  # RVC's keys only


def test_rvc_train_log_fills_the_settings(tmp_path):
    folder = tmp_path / "logs" / "rvcexp"
    g = save_tiny_generator(folder, version="v1", sample_rate=32000, config_json=False, f0_files=False)
    write_train_log(folder, sample_rate="32k", if_f0=1, version="v1")
    settings = find_experiment_settings(g)
    assert (settings.source, settings.version, settings.sample_rate, settings.use_f0) == (
        "train.log",
        "v1",
        32000,
        True,
    )
    model = extract_small_model(g)
    assert (model.version, model.sample_rate, model.config.upsample_rates) == ("v1", 32000, (10, 4, 2, 2, 2))


def test_train_log_is_read_not_run(tmp_path):
    folder = tmp_path / "logs" / "evil"
    g = save_tiny_generator(folder, config_json=False, f0_files=False)
    marker = tmp_path / "ran"
    (folder / "train.log").write_text(f"t\tn\tINFO\t__import__('pathlib').Path({str(marker)!r}).touch()\n")
    assert find_experiment_settings(g) is None and not marker.exists()


def test_wrong_rate_is_refused_clearly(generator_ckpt):
    with pytest.raises(ValueError, match="upsampling stages"):
        extract_small_model(generator_ckpt, version="v1", sample_rate="48k")


def test_pitch_contradiction_gives_a_warning(tmp_path):
    folder = tmp_path / "logs" / "mixed"
    g = save_tiny_generator(folder, config_json=False, f0_files=False)
    write_train_log(folder, if_f0=0)
    model = extract_small_model(g, version="v2")
    assert model.use_f0 and any("pitch guidance is off" in w for w in model.warnings)


def test_existing_output_is_kept(generator_ckpt, weights):
    first = extract_voice(generator_ckpt, "mine", weights_dir=weights)
    before = first.path.read_bytes()
    with pytest.raises(OutputExistsError):
        extract_voice(generator_ckpt, "mine", weights_dir=weights, info="other")
    assert first.path.read_bytes() == before
    out = extract_voice(generator_ckpt, tmp := generator_ckpt.parent / "here.pth", info="other")
    assert out.path == tmp and read_small_model(tmp).info == "other"


def test_discriminator_is_refused(tmp_path):
    path = tmp_path / "D_1.pth"
    torch.save({"model": {"discriminators.0.convs.0.weight_v": torch.zeros(1)}, "iteration": 1}, path)
    with pytest.raises(ValueError, match="G_"):
        extract_voice(path, weights_dir=tmp_path)


@pytest.mark.compat
def test_matches_reference_extraction(rvc_reference, tmp_path, weights):
    folder = rvc_reference / "train_ckpt" / "v2_f0_40k_reduced"
    expected = torch.load(folder / "extracted_small_model.pth", weights_only=True)
    savee = torch.load(folder / "savee_small_model.pth", weights_only=True)
    g = shutil.copy(folder / "G_2333333.pth", tmp_path / "G_2333333.pth")

    faithful = small_model_to_dict(extract_small_model(g, rvc_table_config=True))  # RVC's own behaviour
    assert set(faithful) == set(expected)
    for key in ("config", "info", "sr", "f0", "version"):
        assert faithful[key] == expected[key], key
    assert list(faithful["weight"]) == list(expected["weight"])
    assert all(
        torch.equal(faithful["weight"][k], v) and faithful["weight"][k].dtype == v.dtype
        for k, v in expected["weight"].items()
    )

    # Default (§11.10 fixed): the same file, except that the config describes the reduced weights.
    result = extract_voice(g, "ref", weights_dir=weights)
    fixed = torch.load(result.path, weights_only=True)
    assert fixed["config"] == savee["config"]
    assert all(torch.equal(fixed["weight"][k], v) for k, v in expected["weight"].items())
    assert [fixed[k] for k in ("info", "sr", "f0", "version")] == [expected[k] for k in ("info", "sr", "f0", "version")]
    load_voice(result.path)
