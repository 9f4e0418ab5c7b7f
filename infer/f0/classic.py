"""CPU pitch trackers without neural networks: Praat's autocorrelation ("pm"), WORLD's harvest and dio.

All take a 1-D float64 waveform at 16 kHz and work on 10 ms frames, with the
exact calls RVC makes (spec §3.2).  Outputs are float64 Hz, 0 = unvoiced.
"""

from __future__ import annotations

import warnings
from types import ModuleType

import numpy as np

SAMPLE_RATE = 16000
FRAME_PERIOD_MS = 10.0
PM_VOICING_THRESHOLD = 0.6
PM_PERIODS_PER_WINDOW = 3  # Praat's autocorrelation window spans 3 periods of the pitch floor


def pad_centered(f0: np.ndarray, p_len: int) -> np.ndarray:
    """Zero-pad to ``p_len`` frames, ⌊(p_len − len + 1)/2⌋ on the left and the rest on the right.

    Arrays already at least ``p_len`` long are returned unchanged (never truncated), as in RVC.
    """
    missing = p_len - len(f0)
    if missing <= 0:
        return f0
    left = (missing + 1) // 2
    return np.pad(f0, (left, missing - left))


def pm_f0(wav16k: np.ndarray, p_len: int, f0_min: float, f0_max: float) -> np.ndarray:
    """Praat autocorrelation pitch, centred in ``p_len`` frames by :func:`pad_centered`.

    Returns float64 of length ``max(p_len, Praat's frame count)``.  Praat needs at
    least 3 periods of ``f0_min``; shorter inputs give all-unvoiced frames.
    """
    import parselmouth

    if len(wav16k) * f0_min < PM_PERIODS_PER_WINDOW * SAMPLE_RATE:
        return np.zeros(p_len)
    pitch = parselmouth.Sound(wav16k, SAMPLE_RATE).to_pitch_ac(
        time_step=FRAME_PERIOD_MS / 1000.0,
        voicing_threshold=PM_VOICING_THRESHOLD,
        pitch_floor=f0_min,
        pitch_ceiling=f0_max,
    )
    return pad_centered(np.asarray(pitch.selected_array["frequency"], dtype=np.float64), p_len)


def _pyworld() -> ModuleType:
    # pyworld imports pkg_resources, which warns on every fresh import with recent setuptools.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="pkg_resources is deprecated", category=UserWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        import pyworld
    return pyworld


def harvest_f0(wav16k: np.ndarray, f0_min: float, f0_max: float) -> np.ndarray:
    """WORLD harvest + stonemask refinement; float64 ``(N // 160 + 1,)``."""
    pyworld = _pyworld()
    x = np.ascontiguousarray(wav16k, dtype=np.float64)
    f0, times = pyworld.harvest(x, fs=SAMPLE_RATE, f0_floor=f0_min, f0_ceil=f0_max, frame_period=FRAME_PERIOD_MS)
    return pyworld.stonemask(x, f0, times, SAMPLE_RATE)


def dio_f0(wav16k: np.ndarray, f0_min: float, f0_max: float) -> np.ndarray:
    """WORLD dio + stonemask refinement; float64 ``(N // 160 + 1,)``."""
    pyworld = _pyworld()
    x = np.ascontiguousarray(wav16k, dtype=np.float64)
    f0, times = pyworld.dio(x, fs=SAMPLE_RATE, f0_floor=f0_min, f0_ceil=f0_max, frame_period=FRAME_PERIOD_MS)
    return pyworld.stonemask(x, f0, times, SAMPLE_RATE)
