"""RMVPE pitch estimation: log-mel front end, the :class:`~infer.models.rmvpe.E2E` network, decoding.

Numerics follow RVC's ``infer/lib/rmvpe.py`` (spec §1.8 and §3.5): frames are
10 ms (hop 160 at 16 kHz) and a waveform of N samples gives ``N // 160 + 1``
frames, frame i being centred on sample ``160·i``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from infer.mel import mel_filterbank
from infer.models.rmvpe import E2E, RmvpeConfig
from infer.safe_load import ModelFileError, load_torch_file

SAMPLE_RATE = 16000
HOP = 160
N_FFT = 1024
N_MELS = 128
MEL_FMIN, MEL_FMAX = 30.0, 8000.0
LOG_CLAMP = 1e-5
DEFAULT_THRESHOLD = 0.03
DEFAULT_WEIGHTS = Path("assets/rmvpe/rmvpe.pt")
DOWNLOAD_COMMAND = "python tools/download_models.py --only rmvpe"

# Bin k of the salience is 20·k + 1997.38 cents above 10 Hz (≈ 31.7 Hz … 2005.5 Hz).
CENTS_PER_BIN = 20.0
CENTS_OFFSET = 1997.3794084376191
DECODE_RADIUS = 4  # bins either side of the peak in the weighted average


def bin_cents(n_classes: int = 360) -> np.ndarray:
    """Cents of each salience bin, float64 ``(n_classes,)``."""
    return CENTS_PER_BIN * np.arange(n_classes) + CENTS_OFFSET


def salience_to_cents(salience: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
    """Local weighted average of bin cents around each frame's peak (spec §3.5).

    ``salience``: float32 ``(T, n_classes)``.  Returns float64 ``(T,)``; 0 where the
    frame's peak salience is ``<= threshold``.  The average covers the peak bin
    ±4 bins; bins beyond the table's ends count with zero weight.
    """
    salience = np.asarray(salience, dtype=np.float32)
    n_frames, n_classes = salience.shape
    padded = np.pad(salience, ((0, 0), (DECODE_RADIUS, DECODE_RADIUS)))
    padded_cents = np.pad(bin_cents(n_classes), DECODE_RADIUS)
    # In padded coordinates the window of a peak at bin c starts at c.
    window = np.argmax(salience, axis=1)[:, None] + np.arange(2 * DECODE_RADIUS + 1)
    weights = np.take_along_axis(padded, window, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        cents = (weights * padded_cents[window]).sum(axis=1) / weights.sum(axis=1)
    if n_frames:
        cents[salience.max(axis=1) <= threshold] = 0.0
    return cents


def cents_to_hz(cents: np.ndarray) -> np.ndarray:
    """``10·2^(cents/1200)`` Hz, with 0 cents (unvoiced) mapped to 0 Hz; float64."""
    f0 = 10.0 * 2.0 ** (np.asarray(cents, dtype=np.float64) / 1200.0)
    f0[f0 == 10.0] = 0.0
    return f0


def _waveform_array(wav16k: np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(wav16k, torch.Tensor):
        wav = wav16k.detach().to("cpu", torch.float32).numpy()
    else:
        wav = np.asarray(wav16k, dtype=np.float32)
    if wav.ndim != 1:
        raise ValueError(f"RMVPE expects a 1-D 16 kHz waveform, got shape {tuple(wav.shape)}")
    if wav.size == 0:
        raise ValueError("RMVPE got an empty waveform")
    return wav


class RmvpePredictor:
    """RMVPE loaded from RVC's ``rmvpe.pt`` (or any same-graph state dict), ready to predict f0.

    ``half=None`` means float16 on CUDA and float32 elsewhere; on CPU the model
    always runs in float32 (the file's float16 weights are cast).  Inputs longer
    than ``chunk_frames`` frames are processed in windows of that many frames plus
    ``context_frames`` on each side, which bounds memory; the U-Net and the
    BiGRU then do not see the whole input, so results differ slightly from RVC's
    single pass there.  Inputs up to ``chunk_frames`` frames (327 s by default)
    give RVC's results.  Instances hold no mutable state; calls may overlap in threads.
    """

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        half: bool | None = None,
        *,
        chunk_frames: int = 32768,
        context_frames: int = 1024,
    ) -> None:
        self.path = Path(path)
        self.device = torch.device(device)
        self.half = (self.device.type == "cuda") if half is None else (bool(half) and self.device.type != "cpu")
        self.model = self._load_model(self.path)
        multiple = self.model.frame_multiple
        if chunk_frames < multiple or chunk_frames % multiple or context_frames < 0 or context_frames % multiple:
            raise ValueError(f"chunk_frames and context_frames must be multiples of {multiple} (chunk_frames > 0)")
        self.chunk_frames = chunk_frames
        self.context_frames = context_frames
        # On the CPU the U-Net runs in the channels-last layout, which oneDNN convolves ~1.3× faster.
        layout = torch.channels_last if self.device.type == "cpu" else torch.contiguous_format
        self.model.to(self.device, torch.float16 if self.half else torch.float32, memory_format=layout)
        self.mel_basis = torch.from_numpy(mel_filterbank(SAMPLE_RATE, N_FFT, N_MELS, MEL_FMIN, MEL_FMAX, htk=True)).to(
            self.device
        )
        self.window = torch.hann_window(N_FFT, device=self.device)

    @staticmethod
    def _load_model(path: Path) -> E2E:
        if not path.exists():
            raise ModelFileError(
                f"RMVPE weights not found at '{path}'. They normally live at '{DEFAULT_WEIGHTS}'; "
                f"download them with `{DOWNLOAD_COMMAND}`."
            )
        state = load_torch_file(path)
        try:
            config = RmvpeConfig.from_state_dict(state)
            model = E2E(config)
            model.load_state_dict(state, strict=True)
        except (KeyError, AttributeError, TypeError, ValueError, RuntimeError) as exc:
            raise ModelFileError(
                f"'{path}' is not an RMVPE model file ({type(exc).__name__}: {str(exc)[:200]}). "
                f"Download RVC's rmvpe.pt with `{DOWNLOAD_COMMAND}`."
            ) from exc
        return model.eval()

    @property
    def n_classes(self) -> int:
        return self.model.config.n_classes

    def _padded_waveform(self, wav16k: np.ndarray | torch.Tensor) -> tuple[torch.Tensor, int]:
        """Reflect-pad by n_fft/2 as a centred STFT does; returns (padded samples on device, n_frames)."""
        wav = _waveform_array(wav16k)
        # numpy's reflect also covers inputs shorter than the pad (torch's refuses them).
        padded = np.pad(wav, N_FFT // 2, mode="reflect")
        return torch.from_numpy(padded).to(self.device), len(wav) // HOP + 1

    def _log_mel(self, padded: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """Log-mel of frames ``start..stop-1``: float32 ``(1, 128, stop - start)``."""
        segment = padded[start * HOP : (stop - 1) * HOP + N_FFT]
        spec = torch.stft(segment, N_FFT, HOP, window=self.window, center=False, return_complex=True)
        magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2))
        return torch.log(torch.clamp(self.mel_basis @ magnitude, min=LOG_CLAMP)).unsqueeze(0)

    def _salience_window(self, padded: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        mel = self._log_mel(padded, start, stop)
        n_frames = stop - start
        mel = torch.nn.functional.pad(mel, (0, -n_frames % self.model.frame_multiple))
        hidden = self.model(mel.half() if self.half else mel)
        return hidden[0, :n_frames].float()

    @torch.inference_mode()
    def mel(self, wav16k: np.ndarray | torch.Tensor) -> np.ndarray:
        """Log-mel of a 16 kHz waveform: float32 ``(128, N // 160 + 1)`` (RVC's ``mel_extractor``)."""
        padded, n_frames = self._padded_waveform(wav16k)
        return self._log_mel(padded, 0, n_frames)[0].cpu().numpy()

    @torch.inference_mode()
    def salience(self, wav16k: np.ndarray | torch.Tensor) -> np.ndarray:
        """Pitch salience (RVC's ``hidden``): float32 ``(N // 160 + 1, 360)`` in [0, 1]."""
        padded, n_frames = self._padded_waveform(wav16k)
        out = np.empty((n_frames, self.n_classes), dtype=np.float32)
        for start in range(0, n_frames, self.chunk_frames):
            stop = min(start + self.chunk_frames, n_frames)
            lo, hi = max(0, start - self.context_frames), min(n_frames, stop + self.context_frames)
            out[start:stop] = self._salience_window(padded, lo, hi)[start - lo : stop - lo].cpu().numpy()
        return out

    def predict(self, wav16k: np.ndarray | torch.Tensor, threshold: float = DEFAULT_THRESHOLD) -> np.ndarray:
        """f0 in Hz of a 16 kHz waveform (numpy or torch, 1-D, any float dtype).

        Returns float32 ``(N // 160 + 1,)``; 0 marks unvoiced frames (peak salience ``<= threshold``).
        """
        return cents_to_hz(salience_to_cents(self.salience(wav16k), threshold)).astype(np.float32)
