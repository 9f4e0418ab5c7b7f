"""Shared test helpers: where the reference fixtures live, and skip rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The ``shared`` folder beside the project (override with RVC_SHARED_DIR)."""
    return Path(os.environ.get("RVC_SHARED_DIR", REPO_ROOT.parent / "shared"))


def fixture_path(*parts: str) -> Path:
    """Path under ``shared/fixtures``; skips the calling test when it is absent."""
    path = shared_dir().joinpath("fixtures", *parts)
    if not path.exists():
        pytest.skip(f"reference fixture not available: {path}")
    return path


@pytest.fixture
def rvc_reference() -> Path:
    """``shared/fixtures/rvc-reference`` (the test is skipped without it)."""
    return fixture_path("rvc-reference")


@pytest.fixture
def pitch_reference() -> Path:
    """``shared/fixtures/pitch-reference`` (the test is skipped without it)."""
    return fixture_path("pitch-reference")
