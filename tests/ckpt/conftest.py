"""Fixtures for the checkpoint-tool tests: tiny voices and G_ checkpoints in RVC's formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from infer.testing.voice import save_tiny_voice
from tests.ckpt.helpers import TINY_DIM, save_tiny_generator


@pytest.fixture(autouse=True)
def _isolated_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Default folders point into the test's tmp dir, so nothing lands in the repository."""
    for name, folder in (("RVC_WEIGHTS_DIR", "weights"), ("RVC_ASSETS_DIR", "assets"), ("RVC_LOGS_DIR", "logs")):
        monkeypatch.setenv(name, str(tmp_path / folder))


@pytest.fixture
def weights(tmp_path: Path) -> Path:
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


@pytest.fixture
def voice_a(weights: Path) -> Path:
    """A tiny v2 40k pitch voice with training metadata."""
    metadata = {
        "f0_stats": {"median": 200.0, "p5": 150.0, "p95": 300.0},
        "epochs": 20,
        "f0_method": "rmvpe",
        "content_encoder": "hubert_base",
    }
    return save_tiny_voice(weights / "alice.pth", "v2", 40000, True, 0, feature_dim=TINY_DIM, metadata=metadata)


@pytest.fixture
def voice_b(weights: Path) -> Path:
    """Another tiny v2 40k pitch voice (other weights, same architecture)."""
    metadata = {"f0_stats": {"median": 100.0, "p5": 80.0, "p95": 150.0}, "content_encoder": "hubert_base"}
    return save_tiny_voice(weights / "bob.pth", "v2", 40000, True, 1, feature_dim=TINY_DIM, metadata=metadata)


@pytest.fixture
def generator_ckpt(tmp_path: Path) -> Path:
    """A tiny ``G_*.pth`` (with enc_q) inside ``logs/tinyexp`` with RVC Studio's config.json."""
    return save_tiny_generator(tmp_path / "logs" / "tinyexp", iteration=7)
