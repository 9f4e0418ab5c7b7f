"""Audio input and output for conversion: the one module the rest of the project imports.

Decoding lives in :mod:`infer.audio_read` (PyAV + soxr), writing in
:mod:`infer.audio_write` (soundfile + PyAV); this module re-exports both and adds
RVC's two level rules, :func:`peak_limit` (applied after loading) and
:func:`to_int16` (applied to the converted output).
"""

from __future__ import annotations

import numpy as np

from infer.audio_read import AudioFileError, AudioInfo, audio_info, clean_path, iter_audio, load_audio
from infer.audio_write import SUPPORTED_OUTPUT_FORMATS, AudioWriter, output_path_for, save_audio

__all__ = [
    "SUPPORTED_OUTPUT_FORMATS",
    "AudioFileError",
    "AudioInfo",
    "AudioWriter",
    "audio_info",
    "clean_path",
    "iter_audio",
    "load_audio",
    "output_path_for",
    "peak_limit",
    "save_audio",
    "to_int16",
]


def _peak(audio: np.ndarray) -> float:
    if audio.size == 0:
        return 0.0
    peak = float(np.abs(audio).max())
    if not np.isfinite(peak):
        raise ValueError("audio contains NaN or infinite values")
    return peak


def peak_limit(audio: np.ndarray, peak: float = 0.95) -> np.ndarray:
    """RVC's input limiter (``vc_single`` step 2): scale down so that max|x| <= ``peak``.

    ``audio`` is float of any shape; quieter audio is returned unchanged (as a copy,
    float32).  Louder audio is divided by ``max|x| / peak``.
    """
    audio = np.array(audio, dtype=np.float32)
    ratio = _peak(audio) / peak
    if ratio > 1:
        audio /= ratio
    return audio


def to_int16(audio: np.ndarray) -> np.ndarray:
    """RVC's output conversion (pipeline step 12): float audio -> int16, same shape.

    With ``peak = max|x| / 0.99`` the scale is 32768, divided by ``peak`` when
    ``peak > 1``; the product is computed in float32 and cast by truncation toward
    zero (``astype``), exactly like RVC.  So audio within +-0.99 maps to ``int(x * 32768)``
    and louder audio is scaled to a peak of 0.99 * 32768.
    """
    audio = np.asarray(audio, dtype=np.float32)
    scale = 32768.0
    peak = _peak(audio) / 0.99
    if peak > 1:
        scale /= peak
    return (audio * np.float32(scale)).astype(np.int16)
