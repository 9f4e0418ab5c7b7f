"""Runtime settings: where RVC Studio's files live and which device it runs on.

Model and training hyper-parameters are not here (see ``infer.models.config``
and ``train``).  Nothing is detected or written at import time; settings come
from :meth:`Settings.from_env` and command-line flags.

Environment variables: ``RVC_ASSETS_DIR``, ``RVC_WEIGHTS_DIR``,
``RVC_LOGS_DIR``, ``RVC_OUTPUT_DIR``, ``RVC_DEVICE`` (auto, cpu, cuda, cuda:N, mps),
``RVC_MAX_UPLOAD_MB`` and ``RVC_MAX_INPUT_MINUTES`` (web UI limits), ``RVC_INPUT_DIRS``
(more folders the web UI may read, separated by ``os.pathsep``).
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
    output_dir: Path = ROOT / "opt"  # the web UI writes batch outputs and exports only under the studio's folders
    device: str = "auto"
    half: bool | None = None  # None: fp16 on CUDA GPUs that do it well
    n_cpu: int = field(default_factory=lambda: os.cpu_count() or 1)
    # Web-server limits and switches (the CLI, run by the machine's owner, has none of these).
    max_upload_mb: int = 512  # one uploaded file
    max_input_minutes: float = 30.0  # decoded duration of one input to convert
    allow_private_urls: bool = False  # bundle import may fetch loopback/private/link-local addresses
    input_dirs: tuple[Path, ...] = ()  # more folders the web UI may read typed paths from (--allow-path)

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
            output_dir=Path(env.get("RVC_OUTPUT_DIR", base / "opt")),
            device=env.get("RVC_DEVICE", "auto"),
            max_upload_mb=int(env.get("RVC_MAX_UPLOAD_MB", 512)),
            max_input_minutes=float(env.get("RVC_MAX_INPUT_MINUTES", 30.0)),
            input_dirs=tuple(Path(p) for p in env.get("RVC_INPUT_DIRS", "").split(os.pathsep) if p),
        )
        return replace(settings, **overrides) if overrides else settings

    @property
    def hubert_path(self) -> Path:
        return asset_path("hubert_base", root=self.assets_dir)

    @property
    def rmvpe_path(self) -> Path:
        return asset_path("rmvpe", root=self.assets_dir)
