"""``reuse``: a new experiment from another one's pieces, pitch and features; continuing from its G/D (FAQ Q15)."""

from __future__ import annotations

import dataclasses
import os
import shlex
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.testing.hubert import save_tiny_hubert
from tests.train.conftest import TINY_DISC, TINY_MODEL, make_experiment, tiny_options
from tests.train.test_commands import _parse
from train.commands import ReuseRequest
from train.experiment import ExperimentConfig, ExperimentError, ExperimentPaths
from train.fit_step import run_fit
from train.loop import fit
from train.preprocess import PreprocessReport
from train.reuse import run_reuse

DATA_FOLDERS = ("0_gt_wavs", "1_16k_wavs", "2a_f0", "2b-f0nsf", "3_feature768")


def source_experiment(root: Path, name: str = "old") -> ExperimentPaths:
    """A tiny v2 32k experiment with pieces, 16 kHz copies, pitch, features and a preprocessing report."""
    paths = ExperimentPaths(make_experiment(root, name, seconds=(0.9, 1.0), mute=False))
    paths.wavs16k.mkdir()
    for wav in paths.gt_wavs.glob("*.wav"):
        sf.write(paths.wavs16k / wav.name, np.zeros(16000, np.float32), 16000, subtype="FLOAT")
    PreprocessReport(pieces=2, sample_rate=32000, dataset_dir=str(root / "recordings ü")).save(paths.preprocess_report)
    return paths


def _names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_same_settings_link_everything_and_training_continues_from_the_old_checkpoints(tmp_path):
    old = source_experiment(tmp_path)
    fit(old.root, tiny_options(tmp_path, total_epochs=1, save_latest_only=True))  # G/D pair and spectrogram caches
    outcome = run_reuse(ReuseRequest(source="old", name="new ü", logs_dir=tmp_path / "logs"))
    new = ExperimentPaths(tmp_path / "logs" / "new ü")
    for name in DATA_FOLDERS:
        wanted = [n for n in _names(old.root / name) if not n.endswith(".spec.pt")]
        assert _names(new.root / name) == wanted and wanted, name
        assert all(os.path.samefile(old.root / name / n, new.root / name / n) for n in wanted)
    assert outcome.files == {name: 2 for name in DATA_FOLDERS} and outcome.linked == 10 and not outcome.skipped
    assert new.preprocess_report.is_file() and not list(new.root.glob("[GD]_*.pth"))
    assert not new.filelist.exists() and not list(new.root.glob(".reuse*"))
    old_config, new_config = ExperimentConfig.load(old.config), ExperimentConfig.load(new.config)
    assert new_config == dataclasses.replace(old_config, name="new ü")
    assert outcome.continue_from == (str(old.root / "G_2333333.pth"), str(old.root / "D_2333333.pth"))
    fit_command = outcome.next_commands[0]
    assert "--pretrained-g" in fit_command and outcome.next_commands[1].split()[3] == "index"
    # FAQ Q15: the suggested fit command trains the new experiment from the old one's G/D
    request = _parse(shlex.split(fit_command))
    hubert = save_tiny_hubert(tmp_path / "hubert16.pt", embed_dim=16)  # 16-d v2 features, like TINY_MODEL
    request = dataclasses.replace(
        request,
        epochs=1,
        device="cpu",
        num_workers=0,
        threads=1,
        hubert=hubert,
        weights_dir=tmp_path / "weights",
        disc_divisors=TINY_DISC,
    )
    result = run_fit(request)
    assert result.pretrained == outcome.continue_from and result.result["epoch"] == 1
    assert f"loaded pretrained {outcome.continue_from[0]}" in new.train_log.read_text(encoding="utf-8")
    assert result.final_model == tmp_path / "weights" / "new ü.pth" and result.final_model.is_file()


def test_another_version_takes_pieces_and_pitch_but_not_features(tmp_path):
    source_experiment(tmp_path)
    request = ReuseRequest(
        source="old",
        name="v1",
        version="v1",
        logs_dir=tmp_path / "logs",
        copy=True,
        config_overrides={"model": dict(TINY_MODEL, feature_dim=16), "train": {"batch_size": 2}},
    )
    outcome = run_reuse(request)
    new = ExperimentPaths(tmp_path / "logs" / "v1")
    assert sorted(outcome.files) == ["0_gt_wavs", "1_16k_wavs", "2a_f0", "2b-f0nsf"] and outcome.linked == 0
    assert not new.features("v1").exists() and not new.features("v2").exists()
    assert not os.path.samefile(new.gt_wavs / "0_0.wav", tmp_path / "logs" / "old" / "0_gt_wavs" / "0_0.wav")
    assert outcome.skipped == ["features: 'old' has no 3_feature256 (v1); extract them."]
    assert outcome.next_commands[0].split()[3] == "extract" and outcome.continue_from is None
    config = ExperimentConfig.load(new.config)
    assert (config.version, config.sample_rate, config.use_f0, config.model.feature_dim) == ("v1", 32000, True, 16)


def test_without_pitch_the_pitch_files_are_left_behind(tmp_path):
    source_experiment(tmp_path)
    outcome = run_reuse(ReuseRequest(source="old", name="flat", use_f0=False, logs_dir=tmp_path / "logs"))
    assert sorted(outcome.files) == ["0_gt_wavs", "1_16k_wavs", "3_feature768"]
    assert outcome.skipped == ["pitch: not used without pitch guidance."]
    assert not ExperimentConfig.load(tmp_path / "logs" / "flat" / "config.json").use_f0
    assert outcome.continue_from is None  # a model with pitch cannot start one without it


def test_refusals_touch_nothing(tmp_path):
    source_experiment(tmp_path)
    logs = tmp_path / "logs"
    with pytest.raises(ExperimentError, match="preprocessed at 32k") as info:
        run_reuse(ReuseRequest(source="old", name="hi-fi", sample_rate="48k", logs_dir=logs))
    assert "python -m train preprocess --name hi-fi" in str(info.value) and "recordings ü" in str(info.value)
    assert not (logs / "hi-fi").exists()
    with pytest.raises(ExperimentError, match="'nobody' does not exist"):
        run_reuse(ReuseRequest(source="nobody", name="new", logs_dir=logs))
    run_reuse(ReuseRequest(source="old", name="new", logs_dir=logs))
    with pytest.raises(ExperimentError, match="'new' already exists"):
        run_reuse(ReuseRequest(source="old", name="new", logs_dir=logs))
