"""Mel filterbanks, computed the way librosa does (without depending on librosa).

RVC's RMVPE uses HTK-scale bands, FCPE and the VITS training loss use the
Slaney scale; all three use Slaney area normalisation.
"""

from __future__ import annotations

import numpy as np

_F_SP = 200.0 / 3  # Slaney scale: linear below 1 kHz, 200/3 Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(freq: np.ndarray | float, *, htk: bool) -> np.ndarray:
    """Hz → mel on the HTK or Slaney scale (float64)."""
    f = np.asarray(freq, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    mel = f / _F_SP
    high = f >= _MIN_LOG_HZ
    return np.where(high, _MIN_LOG_MEL + np.log(np.maximum(f, _MIN_LOG_HZ) / _MIN_LOG_HZ) / _LOG_STEP, mel)


def mel_to_hz(mel: np.ndarray | float, *, htk: bool) -> np.ndarray:
    """Mel → Hz, inverse of :func:`hz_to_mel` (float64)."""
    m = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    freq = m * _F_SP
    high = m >= _MIN_LOG_MEL
    return np.where(high, _MIN_LOG_HZ * np.exp(_LOG_STEP * (np.maximum(m, _MIN_LOG_MEL) - _MIN_LOG_MEL)), freq)


def mel_filterbank(
    sample_rate: int,
    n_fft: int,
    n_mels: int,
    fmin: float = 0.0,
    fmax: float | None = None,
    *,
    htk: bool = False,
) -> np.ndarray:
    """Triangular mel filters with Slaney area normalisation.

    Returns float32 ``(n_mels, n_fft // 2 + 1)``, equal to
    ``librosa.filters.mel(sr=sample_rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin,
    fmax=fmax, htk=htk)`` up to float32 rounding.
    """
    if fmax is None:
        fmax = sample_rate / 2.0
    fft_freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    mel_points = np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2)
    band_edges = mel_to_hz(mel_points, htk=htk)
    widths = np.diff(band_edges)
    ramps = band_edges[:, None] - fft_freqs[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights *= (2.0 / (band_edges[2 : n_mels + 2] - band_edges[:n_mels]))[:, None]
    return weights.astype(np.float32)
