"""The settings of one conversion and what it returns."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from infer.f0 import F0_METHODS
from infer.pipeline import StageTimes


@dataclass(frozen=True)
class ConvertParams:
    """What the user chooses for a conversion (RVC's controls, spec §9.2).

    ``key``: semitones (+12 = an octave up).  ``index_rate``: share of the
    retrieved features (0 = index off).  ``filter_radius``: median-filter
    radius for harvest pitch (0 = off).  ``resample_sr``: output rate (0 or
    the voice's rate = unchanged).  ``rms_mix_rate``: 1 keeps the converted
    loudness envelope, 0 imposes the input's.  ``protect``: how much of the
    unretrieved features voiceless frames keep (0.5 = off).  ``noise_scale``:
    RVC's 0.66666; 0 gives deterministic output.  ``seed``: makes the noise
    reproducible.  ``auto_key``: pick the key that moves the input's median
    pitch to the voice's (replaces ``key``).
    """

    key: float = 0.0
    f0_method: str = "rmvpe"
    index_rate: float = 0.75
    filter_radius: int = 3
    resample_sr: int = 0
    rms_mix_rate: float = 0.25
    protect: float = 0.33
    speaker_id: int = 0
    f0_curve: str | Path | None = None
    auto_key: bool = False
    noise_scale: float = 0.66666
    seed: int | None = None

    def __post_init__(self) -> None:
        problems = []
        for name in ("key", "index_rate", "rms_mix_rate", "protect", "noise_scale"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if self.f0_method not in F0_METHODS:
            problems.append(f"f0 method must be one of {', '.join(F0_METHODS)}, got {self.f0_method!r}")
        if not -48 <= self.key <= 48:
            problems.append(f"key must be between -48 and 48 semitones, got {self.key}")
        for name, low, high in (("index_rate", 0, 1), ("rms_mix_rate", 0, 1), ("protect", 0, 0.5)):
            value = getattr(self, name)
            if not low <= value <= high:
                problems.append(f"{name} must be between {low} and {high}, got {value}")
        if not 0 <= self.filter_radius <= 32:
            problems.append(f"filter_radius must be between 0 and 32, got {self.filter_radius}")
        if self.resample_sr and not 8000 <= self.resample_sr <= 192000:
            problems.append(f"resample_sr must be 0 (keep) or 8000..192000 Hz, got {self.resample_sr}")
        if self.speaker_id < 0:
            problems.append(f"speaker_id must be 0 or more, got {self.speaker_id}")
        if self.noise_scale < 0:
            problems.append(f"noise_scale must be 0 or more, got {self.noise_scale}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class ConversionResult:
    """Output of a conversion: int16 audio (when kept in memory) and a report."""

    sample_rate: int
    audio: np.ndarray | None = None
    output_path: Path | None = None
    index_path: Path | None = None
    key: float = 0.0
    input_seconds: float = 0.0
    times: StageTimes = field(default_factory=StageTimes)
    warnings: list[str] = field(default_factory=list)

    def info_text(self) -> str:
        """RVC's message: ``Success.\\nIndex:\\n<path>.\\nTime:\\nnpy: ..s, f0: ..s, infer: ..s.``"""
        index = f"Index:\n{self.index_path}." if self.index_path else "Index not used."
        t = self.times
        lines = [
            "Success.",
            index,
            "Time:",
            f"npy: {t.features + t.retrieval:.2f}s, f0: {t.f0:.2f}s, infer: {t.synthesis:.2f}s.",
        ]
        if self.key:
            lines.append(f"Key: {self.key:+g} semitones.")
        lines.extend(self.warnings)
        return "\n".join(lines)
