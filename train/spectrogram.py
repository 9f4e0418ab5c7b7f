"""Linear and mel spectrograms with RVC's training numerics (spec §6.3).

Linear: reflect-pad the waveform by (n_fft − hop)/2 on each side, STFT with a
periodic Hann window and ``center=False``, magnitude √(re² + im² + 1e−6); a
waveform of N samples gives N // hop frames.  Mel: Slaney filterbank
(librosa's default) applied to that magnitude, then log(clamp(·, 1e−5)).

The window and filterbank are built once per (dtype, device) and kept in the
:class:`Spectrogram` object (thread-safe), never in module globals.
"""

from __future__ import annotations

import threading

import torch

from infer.mel import mel_filterbank

MAGNITUDE_EPS = 1e-6
LOG_CLAMP = 1e-5


class Spectrogram:
    """RVC's training spectrograms for one sample rate / STFT setting.

    ``fmax=None`` means sample_rate / 2 (RVC's ``mel_fmax: null``).
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        hop_length: int,
        win_length: int,
        n_mels: int,
        fmin: float = 0.0,
        fmax: float | None = None,
    ) -> None:
        if (n_fft - hop_length) % 2:
            raise ValueError(f"n_fft − hop must be even for RVC's symmetric padding (got {n_fft} and {hop_length})")
        self.sample_rate = int(sample_rate)
        self.n_fft = int(n_fft)
        self.hop_length = int(hop_length)
        self.win_length = int(win_length)
        self.n_mels = int(n_mels)
        self.fmin = float(fmin)
        self.fmax = None if fmax is None else float(fmax)
        self._cache: dict[tuple[str, torch.dtype, torch.device], torch.Tensor] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict:  # picklable for DataLoader workers started with "spawn"
        state = dict(self.__dict__)
        del state["_cache"], state["_lock"]
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._cache, self._lock = {}, threading.Lock()

    @classmethod
    def from_hparams(cls, data) -> Spectrogram:
        """From a :class:`train.experiment.DataHParams` (RVC's ``data`` section)."""
        return cls(
            data.sampling_rate,
            data.filter_length,
            data.hop_length,
            data.win_length,
            data.n_mel_channels,
            data.mel_fmin,
            data.mel_fmax,
        )

    @property
    def n_freqs(self) -> int:
        """Frequency bins of the linear spectrogram: n_fft // 2 + 1."""
        return self.n_fft // 2 + 1

    def frames(self, num_samples: int) -> int:
        """Spectrogram frames for ``num_samples`` samples: num_samples // hop."""
        return int(num_samples) // self.hop_length

    def _cached(self, kind: str, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
        key = (kind, dtype, device)
        with self._lock:
            tensor = self._cache.get(key)
            if tensor is None:
                if kind == "window":
                    tensor = torch.hann_window(self.win_length, periodic=True)
                else:
                    bank = mel_filterbank(self.sample_rate, self.n_fft, self.n_mels, self.fmin, self.fmax, htk=False)
                    tensor = torch.from_numpy(bank)
                tensor = tensor.to(dtype=dtype, device=device)
                self._cache[key] = tensor
            return tensor

    def linear(self, wave: torch.Tensor) -> torch.Tensor:
        """Magnitude spectrogram of float audio at ``sample_rate``.

        ``wave`` (B, N) or (N,) → (B, n_fft/2+1, N // hop) or (n_fft/2+1, N // hop),
        in the waveform's dtype.  N must exceed (n_fft − hop)/2 (reflect padding).
        """
        squeeze = wave.dim() == 1
        batch = wave.unsqueeze(0) if squeeze else wave
        if batch.dim() != 2:
            raise ValueError(f"expected audio of shape (B, N) or (N,), got {tuple(wave.shape)}")
        pad = (self.n_fft - self.hop_length) // 2
        if batch.shape[-1] <= pad:
            raise ValueError(f"audio of {batch.shape[-1]} samples is too short for n_fft {self.n_fft}")
        padded = torch.nn.functional.pad(batch.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
        window = self._cached("window", batch.dtype, batch.device)
        stft = torch.stft(
            padded,
            self.n_fft,
            hop_length=self.hop_length,
            win_length=self.win_length,
            window=window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )
        spec = torch.sqrt(torch.view_as_real(stft).pow(2).sum(-1) + MAGNITUDE_EPS)
        return spec.squeeze(0) if squeeze else spec

    def mel_from_linear(self, spec: torch.Tensor) -> torch.Tensor:
        """Log-mel from a linear spectrogram: (..., n_fft/2+1, T) → (..., n_mels, T)."""
        bank = self._cached("mel", spec.dtype, spec.device)
        return torch.log(torch.clamp(torch.matmul(bank, spec), min=LOG_CLAMP))

    def mel(self, wave: torch.Tensor) -> torch.Tensor:
        """Log-mel of audio: (B, N) → (B, n_mels, N // hop) (RVC's ``mel_spectrogram_torch``)."""
        return self.mel_from_linear(self.linear(wave))
