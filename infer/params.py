"""The settings of one conversion and what it returns."""

from __future__ import annotations

import math
import numbers
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
        problems = [_range_problem(name, getattr(self, name), low, high) for name, low, high in _FLOAT_RANGES]
        problems += [_whole_problem(name, getattr(self, name), low, high) for name, low, high in _WHOLE_RANGES]
        if self.f0_method not in F0_METHODS:
            problems.append(f"f0 method must be one of {', '.join(F0_METHODS)}, got {self.f0_method!r}")
        if self.resample_sr and _is_number(self.resample_sr) and not 8000 <= self.resample_sr <= 192000:
            problems.append(f"resample_sr must be 0 (keep) or 8000..192000 Hz, got {self.resample_sr}")
        if self.seed is not None:
            problems.append(_whole_problem("seed", self.seed, None, None))
        problems = [problem for problem in problems if problem]
        if problems:
            raise ValueError("; ".join(problems))


# field, lowest, highest (None: no bound)
_FLOAT_RANGES: tuple[tuple[str, float, float | None], ...] = (
    ("key", -48, 48),
    ("index_rate", 0, 1),
    ("rms_mix_rate", 0, 1),
    ("protect", 0, 0.5),
    ("noise_scale", 0, None),
)
_WHOLE_RANGES: tuple[tuple[str, int, int | None], ...] = (
    ("filter_radius", 0, 32),
    ("resample_sr", 0, None),
    ("speaker_id", 0, None),
)


def _is_number(value: object) -> bool:
    """A real, finite number (NaN and infinity are not; neither are bools or strings)."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _bounds(low: float | None, high: float | None, *, number: bool) -> str:
    """`` between 0 and 1`` / `` 0 or more`` (`` (0 or more)`` after "a number")."""
    if low is None:
        return ""
    if high is not None:
        return f" between {low} and {high}"
    return f" ({low} or more)" if number else f" {low} or more"


def _range_problem(name: str, value: object, low: float, high: float | None) -> str | None:
    """What is wrong with a float setting, naming it (None when it is fine)."""
    if not _is_number(value):
        return f"{name} must be a number{_bounds(low, high, number=True)}, got {value!r}"
    if value < low or (high is not None and value > high):
        return f"{name} must be{_bounds(low, high, number=False)}, got {value}"
    return None


def _whole_problem(name: str, value: object, low: int | None, high: int | None) -> str | None:
    """What is wrong with a whole-number setting, naming it (None when it is fine)."""
    if not _is_number(value) or not float(value).is_integer():
        return f"{name} must be a whole number{_bounds(low, high, number=True)}, got {value!r}"
    if low is not None and (value < low or (high is not None and value > high)):
        return f"{name} must be{_bounds(low, high, number=False)}, got {value}"
    return None


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
