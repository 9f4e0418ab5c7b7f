"""Mel filterbanks equal librosa's (checked on the reference fixtures' stored bases)."""

from __future__ import annotations

import numpy as np
import pytest

from infer.mel import hz_to_mel, mel_filterbank, mel_to_hz


@pytest.mark.parametrize("htk", [True, False])
def test_mel_scale_round_trip(htk):
    freqs = np.array([0.0, 30.0, 440.0, 999.0, 1000.0, 1001.0, 8000.0])
    assert np.allclose(mel_to_hz(hz_to_mel(freqs, htk=htk), htk=htk), freqs)


def test_slaney_scale_is_linear_below_1khz():
    assert np.allclose(hz_to_mel([200.0, 400.0], htk=False), [3.0, 6.0])
    assert hz_to_mel(1000.0, htk=False) == pytest.approx(15.0)


def test_filterbank_shape_and_area_normalisation():
    bank = mel_filterbank(16000, 1024, 128, 30, 8000, htk=True)
    assert bank.shape == (128, 513) and bank.dtype == np.float32
    assert (bank >= 0).all() and (bank.max(axis=1) > 0).all()
    peaks = bank.argmax(axis=1)
    assert (np.diff(peaks) >= 0).all()  # bands rise with frequency


@pytest.mark.compat
def test_matches_librosa_bases_stored_in_fixtures(rvc_reference, pitch_reference):
    rmvpe = np.load(rvc_reference / "rmvpe" / "rmvpe_reduced" / "io.npz")["mel_basis"]
    fcpe = np.load(pitch_reference / "fcpe.npz")["mel_basis"]
    assert np.abs(mel_filterbank(16000, 1024, 128, 30, 8000, htk=True) - rmvpe).max() < 1e-7
    assert np.abs(mel_filterbank(16000, 1024, 128, 0, 8000, htk=False) - fcpe).max() < 1e-7
