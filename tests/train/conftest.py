"""Helpers shared by the trainer tests: tiny experiments, tiny fit options, test tones.

``make_experiment`` writes a tiny synthetic experiment folder (config.json,
float32 pieces, features, pitch and a real filelist); ``tiny_options`` the
matching :class:`~train.loop.FitOptions`; ``tone``/``write_audio`` make
recordings for preprocessing.  Test modules import them from here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.testing.hubert import save_tiny_hubert
from train.experiment import ExperimentConfig, ExperimentPaths
from train.filelist import write_filelist
from train.loop import FitOptions
from train.mute import MuteSample

TINY_MODEL = dict(
    inter_channels=8,
    hidden_channels=8,
    filter_channels=16,
    n_layers=1,
    upsample_initial_channel=32,
    gin_channels=8,
    spk_embed_dim=4,
    feature_dim=16,
)
TINY_DISC = (16, 32)  # discriminator channel divisors (scale, period)
SR = 32000


def tiny_config(
    name: str,
    *,
    use_f0: bool = True,
    version: str = "v2",
    sample_rate: int = SR,
    model_overrides: dict | None = None,
    **train,
) -> ExperimentConfig:
    overrides = dict(segment_size=4 * (sample_rate // 100), batch_size=2, log_interval=1)
    overrides.update(train)
    return ExperimentConfig.create(
        name, version, sample_rate, use_f0, model_overrides=model_overrides or TINY_MODEL, train_overrides=overrides
    )


def write_mute(root: Path, feature_dim: int, sr: int) -> MuteSample:
    """RVC's mute sample: 3 s of int16 silence, 149 zero feature frames, 301 unvoiced pitch frames."""
    folder = root / "mute"
    sample = MuteSample(folder / "mute.wav", folder / "mute.npy", folder / "mute_2a.npy", folder / "mute_2b.npy")
    folder.mkdir(parents=True, exist_ok=True)
    sf.write(sample.gt_wav, np.zeros(3 * sr, dtype=np.int16), sr, subtype="PCM_16")
    np.save(sample.features, np.zeros((149, feature_dim), dtype=np.float32))
    np.save(sample.f0_coarse, np.ones(301, dtype=np.int64))
    np.save(sample.f0_hz, np.zeros(301, dtype=np.float32))
    return sample


def make_experiment(
    root: Path,
    name: str = "tiny",
    *,
    seconds: tuple[float, ...] = (0.9, 1.1, 1.3),
    use_f0: bool = True,
    mute: bool = True,
    seed: int = 0,
    sample_rate: int = SR,
    model_overrides: dict | None = None,
    **train,
) -> Path:
    """``root/logs/<name>``: config.json, float32 WAVs (32 kHz), features (T/2+1, 16), pitch, filelist."""
    config = tiny_config(name, use_f0=use_f0, sample_rate=sample_rate, model_overrides=model_overrides, **train)
    sr, hop, dim = sample_rate, sample_rate // 100, config.model.feature_dim
    paths = ExperimentPaths(root / "logs" / name)
    for folder in (paths.gt_wavs, paths.features(config.version), paths.f0_coarse, paths.f0_hz):
        folder.mkdir(parents=True, exist_ok=True)
    config.save(paths.config)
    rng = np.random.default_rng(seed)
    for i, duration in enumerate(seconds):
        n = int(duration * sr)
        t = np.arange(n) / sr
        f0 = 180 + 40 * np.sin(2 * np.pi * 0.7 * t)
        audio = 0.3 * np.sin(2 * np.pi * np.cumsum(f0) / sr) + 0.01 * rng.standard_normal(n)
        sf.write(paths.gt_wavs / f"{i}_0.wav", audio.astype(np.float32), sr, subtype="FLOAT")
        frames = n // hop
        np.save(
            paths.features(config.version) / f"{i}_0.npy",
            rng.standard_normal((frames // 2 + 1, dim)).astype(np.float32),
        )
        hz = (180 + 40 * np.sin(2 * np.pi * 0.7 * np.arange(frames + 1) / 100)).astype(np.float32)
        hz[:5] = 0
        np.save(paths.f0_hz / f"{i}_0.wav.npy", hz)
        np.save(paths.f0_coarse / f"{i}_0.wav.npy", np.where(hz > 0, 60, 1).astype(np.int64))
    mute_sample = write_mute(root, dim, sr)
    write_filelist(paths.root, config.version, use_f0, 0, mute_sample, mute_copies=2 if mute else 0, seed=seed)
    return paths.root


def tiny_options(tmp_path: Path, **changes) -> FitOptions:
    """Two epochs on the CPU, saving every epoch, with the tiny discriminator; ``changes`` override."""
    options = dict(
        total_epochs=2,
        save_every=1,
        num_workers=0,
        device="cpu",
        threads=1,
        weights_dir=tmp_path / "weights",
        discriminator_divisors=TINY_DISC,
    )
    options.update(changes)
    return FitOptions(**options)


def tone(seconds: float, sr: int = 40000, freq: float = 220.0, amp: float = 0.5) -> np.ndarray:
    """A float32 sine of ``seconds`` at ``sr`` Hz."""
    t = np.arange(int(round(seconds * sr))) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_audio(path: Path, audio, sr: int = 40000, subtype: str = "FLOAT") -> Path:
    """Write ``audio`` ((N,) or (channels, N)) as a WAV file, creating its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.asarray(audio).T, sr, subtype=subtype)
    return path


@pytest.fixture(scope="module")
def tiny_hubert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny content encoder file (fairseq format): v1 features are 16 wide, v2 features 32."""
    return save_tiny_hubert(tmp_path_factory.mktemp("hubert") / "hubert_base.pt", seed=5)
