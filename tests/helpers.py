"""Shared test helpers: real speech from espeak-ng and a tiny temporary RVC installation.

``make_installation(root)`` writes what a user's setup holds, with tiny random
models in the real file formats: ``assets/hubert/hubert_base.pt`` and
``assets/rmvpe/rmvpe.pt`` at the registry paths, voices in ``weights/`` and a
feature index in ``logs/<voice>/``.  ``Installation.env()`` points the
``RVC_*_DIR`` variables at it for subprocesses; the ``installation`` fixture
builds one per test module.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

from infer.assets import asset_path

REPO_ROOT = Path(__file__).resolve().parents[1]
HUBERT_EMBED_DIM = 32  # v2 voices use this feature size with the tiny encoder
HUBERT_FINAL_DIM = 16  # v1 voices use this one
SPEECH_TEXT = "The quick brown fox jumps over the lazy dog."


def espeak_path() -> str:
    """The espeak-ng binary; skips the calling test when it is not installed."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    return binary


def make_speech(path: Path, text: str = SPEECH_TEXT, *, voice: str = "en", speed: int = 175) -> Path:
    """Speak ``text`` into the WAV file ``path`` (22.05 kHz mono int16) with espeak-ng.

    The default sentence gives about 2.5 s of speech.  Skips the test without espeak-ng.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([espeak_path(), "-v", voice, "-s", str(speed), "-w", str(path), text], check=True, timeout=60)
    return path


@dataclass
class Installation:
    """A temporary RVC Studio setup: folders, tiny models and their paths."""

    root: Path
    voices: dict[str, Path] = field(default_factory=dict)
    indexes: dict[str, Path] = field(default_factory=dict)

    @property
    def assets_dir(self) -> Path:
        return self.root / "assets"

    @property
    def weights_dir(self) -> Path:
        return self.root / "weights"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    @property
    def hubert(self) -> Path:
        return asset_path("hubert_base", root=self.assets_dir)

    @property
    def rmvpe(self) -> Path:
        return asset_path("rmvpe", root=self.assets_dir)

    def env(self) -> dict[str, str]:
        """``os.environ`` plus ``RVC_ASSETS_DIR``/``RVC_WEIGHTS_DIR``/``RVC_LOGS_DIR`` for this setup, CPU only."""
        env = dict(os.environ)
        env.update(
            RVC_ASSETS_DIR=str(self.assets_dir),
            RVC_WEIGHTS_DIR=str(self.weights_dir),
            RVC_LOGS_DIR=str(self.logs_dir),
            RVC_DEVICE="cpu",
        )
        return env

    def set_env(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point this process at the setup (for in-process ``main(argv)`` calls)."""
        for name, value in self.env().items():
            if name.startswith("RVC_"):
                monkeypatch.setenv(name, value)

    def cache(self):
        """A fresh CPU :class:`~infer.cache.ModelCache` over this setup's models."""
        from infer.cache import ModelCache

        return ModelCache(hubert_path=self.hubert, rmvpe_path=self.rmvpe, device="cpu")


def write_index(path: Path, dim: int, count: int = 256, seed: int = 0) -> Path:
    """An RVC-style ``IVF,Flat`` FAISS index of ``count`` random ``dim``-d vectors."""
    import faiss

    vectors = np.random.default_rng(seed).standard_normal((count, dim)).astype(np.float32)
    index = faiss.index_factory(dim, "IVF4,Flat")
    index.train(vectors)
    index.add(vectors)
    path.parent.mkdir(parents=True, exist_ok=True)
    faiss.write_index(index, str(path))
    return path


def make_installation(root: Path) -> Installation:
    """Write a tiny setup under ``root``.

    Voices: ``alice`` (v2, 40 kHz, pitch; with an index in ``logs/alice``),
    ``bob`` (v1, 32 kHz, pitch) and ``carol`` (v2, 48 kHz, no pitch).
    Indexes: ``alice`` (32-d, paired by name) and ``wrong_dim`` (16-d, for no voice).
    """
    from infer.testing.hubert import save_tiny_hubert
    from infer.testing.rmvpe import save_tiny_rmvpe
    from infer.testing.voice import save_tiny_voice

    setup = Installation(Path(root))
    save_tiny_hubert(setup.hubert, embed_dim=HUBERT_EMBED_DIM, final_dim=HUBERT_FINAL_DIM)
    save_tiny_rmvpe(setup.rmvpe)
    specs = {
        "alice": ("v2", 40000, True, HUBERT_EMBED_DIM, 0),
        "bob": ("v1", 32000, True, HUBERT_FINAL_DIM, 1),
        "carol": ("v2", 48000, False, HUBERT_EMBED_DIM, 2),
    }
    for name, (version, rate, use_f0, dim, seed) in specs.items():
        path = setup.weights_dir / f"{name}.pth"
        setup.voices[name] = save_tiny_voice(path, version, rate, use_f0, seed, feature_dim=dim)
    setup.indexes["alice"] = write_index(
        setup.logs_dir / "alice" / "added_IVF4_Flat_nprobe_1_alice_v2.index", HUBERT_EMBED_DIM
    )
    setup.indexes["wrong_dim"] = write_index(setup.root / "other" / "wrong_dim.index", HUBERT_FINAL_DIM, seed=1)
    return setup


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """A tiny setup (see :func:`make_installation`), shared by the tests of one module."""
    return make_installation(tmp_path_factory.mktemp("installation"))


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 2.5 s of English speech as a 22.05 kHz WAV (skipped without espeak-ng)."""
    return make_speech(tmp_path_factory.mktemp("speech") / "speech.wav")


def run_python(args: list[str], env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``python <args>`` from the repository root and capture its text output."""
    return subprocess.run(
        [sys.executable, *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def check_output(path: Path, *, rate: int | tuple[int, ...], seconds: float, tolerance: float = 0.1) -> np.ndarray:
    """Assert that ``path`` decodes at ``rate`` Hz (one of them, for a tuple), lasts ``seconds`` ± ``tolerance``,
    is finite and not silent; returns the mono float32 samples."""
    from infer.audio import audio_info, load_audio

    assert path.is_file(), f"{path} was not written"
    info = audio_info(path)
    rates = rate if isinstance(rate, tuple) else (rate,)
    assert info.sample_rate in rates, f"{path}: {info.sample_rate} Hz, expected {rates}"
    audio = load_audio(path, info.sample_rate)
    assert abs(audio.shape[0] / info.sample_rate - seconds) <= tolerance, f"{path}: {audio.shape[0]} samples"
    assert np.isfinite(audio).all()
    assert np.abs(audio).max() > 0.01, f"{path} is silent"
    return audio
