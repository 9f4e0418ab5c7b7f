"""Tiny voice models written in RVC's small-model format."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from infer.checkpoints import make_small_model, write_small_model
from infer.testing.synth import tiny_synthesizer


def save_tiny_voice(
    path: str | Path,
    version: str = "v2",
    sample_rate: int | str = 40000,
    use_f0: bool = True,
    seed: int = 0,
    *,
    info: str = "tiny-random",
    metadata: dict[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """Write a tiny random voice (``weights/<name>.pth`` format) and return its path.

    ``overrides`` change config fields; pass ``feature_dim`` to match a tiny
    content encoder (its ``final_dim`` for v1, ``embed_dim`` for v2).
    """
    model = tiny_synthesizer(version, sample_rate, use_f0, seed, with_posterior=False, **overrides)
    small = make_small_model(model.state_dict(), model.config, version, info, metadata)
    return write_small_model(small, path)
