"""Runtime settings: where RVC Studio's files live and which device it runs on.

Model and training hyper-parameters are not here (see ``infer.models.config``
and ``train``).  Nothing is detected or written at import time; settings come
from :meth:`Settings.from_env` and command-line flags.

Environment variables: ``RVC_ASSETS_DIR``, ``RVC_WEIGHTS_DIR``,
``RVC_LOGS_DIR``, ``RVC_DEVICE`` (auto, cpu, cuda, cuda:N, mps).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from infer.assets import asset_path

ROOT = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Settings:
    """Folders and device choice for one running RVC Studio."""

    root: Path = ROOT
    assets_dir: Path = ROOT / "assets"
    weights_dir: Path = ROOT / "weights"
    logs_dir: Path = ROOT / "logs"
    device: str = "auto"
    half: bool | None = None  # None: fp16 on CUDA GPUs that do it well
    n_cpu: int = field(default_factory=lambda: os.cpu_count() or 1)

    @classmethod
    def from_env(cls, root: Path | None = None, **overrides: Any) -> Settings:
        """Defaults under ``root`` (the repository), then environment variables, then ``overrides``."""
        base = Path(root) if root else ROOT
        env = os.environ
        settings = cls(
            root=base,
            assets_dir=Path(env.get("RVC_ASSETS_DIR", base / "assets")),
            weights_dir=Path(env.get("RVC_WEIGHTS_DIR", base / "weights")),
            logs_dir=Path(env.get("RVC_LOGS_DIR", base / "logs")),
            device=env.get("RVC_DEVICE", "auto"),
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def hubert_path(self) -> Path:
        return asset_path("hubert_base", root=self.assets_dir)

    @property
    def rmvpe_path(self) -> Path:
        return asset_path("rmvpe", root=self.assets_dir)
