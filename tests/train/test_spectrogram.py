"""Training spectrograms against a direct numpy transcription of RVC's formula (spec §6.3)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from infer.mel import mel_filterbank
from train.spectrogram import Spectrogram


def rvc_linear_spectrogram(wave: np.ndarray, n_fft: int, hop: int, win: int) -> np.ndarray:
    """RVC's spectrogram_torch written out in float64 numpy: reflect pad, frame, periodic Hann, |rFFT|."""
    pad = (n_fft - hop) // 2
    padded = np.pad(wave.astype(np.float64), (pad, pad), mode="reflect")
    n_frames = 1 + (len(padded) - n_fft) // hop
    window = np.zeros(n_fft)
    offset = (n_fft - win) // 2
    window[offset : offset + win] = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(win) / win)  # periodic Hann
    frames = np.stack([padded[i * hop : i * hop + n_fft] * window for i in range(n_frames)])
    spectrum = np.fft.rfft(frames, axis=1)
    return np.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-6).T  # (F, T)


@pytest.fixture
def wave() -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(9000) / 32000
    return (0.4 * np.sin(2 * np.pi * 220 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize(("sr", "n_fft", "hop", "mels"), [(32000, 1024, 320, 80), (40000, 2048, 400, 125)])
def test_linear_matches_rvc_formula(wave, sr, n_fft, hop, mels):
    spec = Spectrogram(sr, n_fft, hop, n_fft, mels)
    ours = spec.linear(torch.from_numpy(wave)).numpy()
    reference = rvc_linear_spectrogram(wave, n_fft, hop, n_fft)
    assert ours.shape == reference.shape == (n_fft // 2 + 1, len(wave) // hop)
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=2e-5)


def test_linear_batch_equals_single(wave):
    spec = Spectrogram(32000, 1024, 320, 1024, 80)
    batch = torch.from_numpy(np.stack([wave, wave[::-1].copy()]))
    out = spec.linear(batch)
    assert out.shape == (2, 513, 28)
    torch.testing.assert_close(out[1], spec.linear(batch[1]))


def test_silence_gives_the_epsilon_floor():
    spec = Spectrogram(32000, 1024, 320, 1024, 80)
    out = spec.linear(torch.zeros(3200))
    torch.testing.assert_close(out, torch.full((513, 10), 1e-3))


def test_mel_is_log_of_slaney_filterbank(wave):
    spec = Spectrogram(40000, 2048, 400, 2048, 125)
    linear = spec.linear(torch.from_numpy(wave))
    bank = mel_filterbank(40000, 2048, 125, 0.0, None, htk=False)
    expected = np.log(np.maximum(bank.astype(np.float64) @ linear.numpy().astype(np.float64), 1e-5))
    mel = spec.mel_from_linear(linear)
    assert mel.shape == (125, len(wave) // 400)
    np.testing.assert_allclose(mel.numpy(), expected, atol=1e-4)
    torch.testing.assert_close(spec.mel(torch.from_numpy(wave)[None])[0], mel)
    assert spec.mel_from_linear(torch.zeros(1025, 3)).max().item() == pytest.approx(np.log(1e-5))


def test_mel_uses_fmax_and_caches_per_dtype(wave):
    spec = Spectrogram(32000, 1024, 320, 1024, 80, fmin=0.0, fmax=8000.0)
    linear = spec.linear(torch.from_numpy(wave))
    bank = mel_filterbank(32000, 1024, 80, 0.0, 8000.0)
    torch.testing.assert_close(
        spec.mel_from_linear(linear), torch.log(torch.clamp(torch.from_numpy(bank) @ linear, 1e-5))
    )
    spec.mel_from_linear(linear.double())
    assert {key[:2] for key in spec._cache} == {
        ("window", torch.float32),
        ("mel", torch.float32),
        ("mel", torch.float64),
    }


def test_rejects_bad_shapes():
    spec = Spectrogram(32000, 1024, 320, 1024, 80)
    with pytest.raises(ValueError, match="too short"):
        spec.linear(torch.zeros(100))
    with pytest.raises(ValueError, match="shape"):
        spec.linear(torch.zeros(1, 1, 4000))
