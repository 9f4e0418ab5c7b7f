"""FCPE pitch estimation, numerically matching torchfcpe 0.0.4 as RVC calls it.

RVC: ``spawn_bundled_infer_model().infer(wav, sr=16000, decoder_mode="local_argmax",
threshold=0.006, f0_min=50, f0_max=1100, interp_uv=False,
output_interp_target_length=p_len)``.  The model yields one frame per 160
samples plus one (``N // 160 + 1``); the final nearest-neighbour resize to
``p_len`` frames keeps the first ``p_len`` of them when ``p_len = N // 160``.

Long inputs are processed in chunks of ``chunk_frames`` model frames, so memory
stays bounded.  The mel frames are computed per chunk (each frame depends on
its own samples only).  The network is convolutional except for the input
stack's GroupNorm, whose statistics span the whole input: a first pass
accumulates them in float64, and each chunk then runs with enough context to be
exact.  Chunked results equal the one-shot ones up to float32 rounding; inputs
of at most ``chunk_frames`` frames take the one-shot path unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from infer.f0.bundled import bundled_weight_path
from infer.f0.crepe import audio_tensor
from infer.mel import mel_filterbank
from infer.models.fcpe import CFNaiveMelPE
from infer.models.weight_norm import remove_all_weight_norm
from infer.safe_load import ModelFileError, load_torch_file

SAMPLE_RATE = 16000
LOCAL_HALF_WIDTH = 4  # the local-argmax decoder averages bins k-4 … k+4 around the peak k
DEFAULT_CHUNK_FRAMES = 8192


class MelFrontEnd:
    """16 kHz audio ``(N,)`` → FCPE log-mel ``(N // hop + 1, n_mels)`` float32.

    Reflect padding ``(win - hop) // 2`` left and at least as much right, STFT
    without centring (periodic Hann), magnitude ``sqrt(re² + im² + 1e-9)``,
    Slaney mel, ``log(max(mel, 1e-5))``; the last frame is repeated to reach
    ``N // hop + 1`` frames.
    """

    def __init__(self, mel_config: dict, device: torch.device) -> None:
        if int(mel_config["sr"]) != SAMPLE_RATE:
            raise ValueError(f"FCPE model expects {mel_config['sr']} Hz audio; only 16000 Hz models are supported")
        self.n_fft = int(mel_config["n_fft"])
        self.win_size = int(mel_config["win_size"])
        self.hop = int(mel_config["hop_size"])
        basis = mel_filterbank(
            SAMPLE_RATE, self.n_fft, int(mel_config["num_mels"]), mel_config["fmin"], mel_config["fmax"]
        )
        self.basis = torch.from_numpy(basis).to(device)
        self.window = torch.hann_window(self.win_size, device=device)

    def frame_count(self, num_samples: int) -> int:
        """Model frames for ``num_samples`` samples: ``num_samples // hop + 1``."""
        return num_samples // self.hop + 1

    def __call__(self, audio: torch.Tensor, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> torch.Tensor:
        length = len(audio)
        pad_left = (self.win_size - self.hop) // 2
        pad_right = max((self.win_size - self.hop + 1) // 2, self.win_size - length - pad_left)
        mode = "reflect" if pad_right < length else "constant"
        padded = F.pad(audio[None, None], (pad_left, pad_right), mode=mode)[0, 0]
        n_stft = (len(padded) - self.n_fft) // self.hop + 1
        pieces = []
        for start in range(0, n_stft, chunk_frames):
            stop = min(start + chunk_frames, n_stft)
            segment = padded[start * self.hop : (stop - 1) * self.hop + self.n_fft]
            spec = torch.stft(
                segment, self.n_fft, self.hop, self.win_size, self.window, center=False, return_complex=True
            )
            magnitude = torch.sqrt(spec.real.pow(2) + spec.imag.pow(2) + 1e-9)
            pieces.append(torch.log(torch.clamp(self.basis @ magnitude, min=1e-5)).T)
        mel = torch.cat(pieces)
        target = self.frame_count(length)
        if target > len(mel):
            mel = torch.cat([mel, mel[-1:]])
        return mel[:target]


def local_argmax_f0(latent: torch.Tensor, cent_table: torch.Tensor, threshold: float) -> torch.Tensor:
    """torchfcpe's local-argmax decoder: ``(T, bins)`` latent → f0 Hz ``(T,)`` float32.

    Averages the cent table over the 9 bins around each frame's peak (indices
    clamped to the ends, so end bins repeat), weighted by the latent; frames
    whose peak latent is ``<= threshold`` get 0.
    """
    confidence, peak = latent.max(dim=1, keepdim=True)
    offsets = torch.arange(-LOCAL_HALF_WIDTH, LOCAL_HALF_WIDTH + 1, device=latent.device)
    index = (peak + offsets).clamp(0, latent.shape[1] - 1)
    weights = latent.gather(1, index)
    cents = (cent_table[index] * weights).sum(dim=1) / weights.sum(dim=1)
    f0 = 10.0 * 2 ** (cents / 1200.0)
    return torch.where(confidence[:, 0] > threshold, f0, torch.zeros_like(f0))


class FcpePredictor:
    """FCPE on 16 kHz audio; safe to share between threads.

    Weights default to ``torchfcpe/assets/fcpe_c_v001.pt`` from the installed
    wheel (``pip install --no-deps torchfcpe==0.0.4``); ``weights_path`` overrides.
    """

    def __init__(
        self, weights_path: str | Path | None = None, device="cpu", *, chunk_frames: int = DEFAULT_CHUNK_FRAMES
    ) -> None:
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be at least 1; got {chunk_frames}")
        path = (
            Path(weights_path)
            if weights_path is not None
            else bundled_weight_path("torchfcpe", "assets/fcpe_c_v001.pt")
        )
        checkpoint = load_torch_file(path)
        self.device = torch.device(device)
        try:
            net = CFNaiveMelPE.from_checkpoint(checkpoint)
            self.front_end = MelFrontEnd(checkpoint["config_dict"]["mel"], self.device)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            detail = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            raise ModelFileError(
                f"'{path}' is not a usable FCPE checkpoint ({detail}). Use torchfcpe's assets/fcpe_c_v001.pt."
            ) from exc
        # Fold the weight norm once: a per-call hook that sets and drops the weight is not thread-safe.
        remove_all_weight_norm(net)
        self.net = net.to(self.device)
        self.weights_path = path
        self.chunk_frames = chunk_frames

    def mel(self, wav16k: np.ndarray) -> np.ndarray:
        """Log-mel fed to the network: float32 ``(N // 160 + 1, 128)``."""
        with torch.inference_mode():
            return self.front_end(audio_tensor(wav16k).to(self.device), self.chunk_frames).cpu().numpy()

    def latent(self, wav16k: np.ndarray) -> np.ndarray:
        """Sigmoid pitch salience: float32 ``(N // 160 + 1, 360)``."""
        with torch.inference_mode():
            mel = self.front_end(audio_tensor(wav16k).to(self.device), self.chunk_frames)
            return torch.cat([chunk.cpu() for chunk in self._latent_chunks(mel)]).numpy()

    def model_f0(self, wav16k: np.ndarray, *, threshold: float = 0.006) -> np.ndarray:
        """Local-argmax f0 per model frame, 0 where unvoiced: float32 ``(N // 160 + 1,)``."""
        with torch.inference_mode():
            mel = self.front_end(audio_tensor(wav16k).to(self.device), self.chunk_frames)
            table = self.net.cent_table
            parts = [local_argmax_f0(chunk, table, threshold).cpu() for chunk in self._latent_chunks(mel)]
            return torch.cat(parts).numpy()

    def rvc_f0(
        self,
        wav16k: np.ndarray,
        *,
        p_len: int,
        f0_min: float = 50.0,
        f0_max: float = 1100.0,
        threshold: float = 0.006,
    ) -> np.ndarray:
        """RVC's FCPE f0: float32 ``(p_len,)``, 0 where unvoiced, capped at ``f0_max``.

        ``f0_min`` only marks frames as unvoiced inside torchfcpe, which RVC
        ignores (``interp_uv=False``), so voiced values below it pass unchanged.
        """
        if p_len < 1:
            raise ValueError(f"p_len must be at least 1; got {p_len}")
        if not 0 <= f0_min < f0_max:
            raise ValueError(f"need 0 <= f0_min < f0_max; got f0_min={f0_min}, f0_max={f0_max}")
        f0 = torch.from_numpy(self.model_f0(wav16k, threshold=threshold))
        f0 = torch.where(f0 > f0_max, torch.full_like(f0, f0_max), f0)
        resized = F.interpolate(f0[None, None], size=int(p_len), mode="nearest")
        return resized[0, 0].numpy().astype(np.float32)

    def _latent_chunks(self, mel: torch.Tensor) -> Iterator[torch.Tensor]:
        """Latent ``(frames, 360)`` for consecutive chunks of ``mel`` ``(M, n_mels)``."""
        total = len(mel)
        if total <= self.chunk_frames:
            yield self.net(mel[None])[0]
            return
        channels_first = mel.T[None]
        stem = self.net.input_stack[0]
        group_norm = self.net.input_stack[1]
        mean, inv_std = self._group_statistics(channels_first)
        radius = self.net.trunk_radius
        for start in range(0, total, self.chunk_frames):
            stop = min(start + self.chunk_frames, total)
            lo, hi = max(0, start - radius), min(total, stop + radius)
            h = _exact_conv_slice(stem, channels_first, lo, hi)
            groups = h.reshape(group_norm.num_groups, -1, hi - lo)
            normed = ((groups - mean[:, None, None]) * inv_std[:, None, None]).reshape_as(h)
            normed = normed * group_norm.weight[None, :, None] + group_norm.bias[None, :, None]
            yield self.net.trunk(normed)[0, start - lo : stop - lo]

    def _group_statistics(self, channels_first: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """GroupNorm mean and 1/sqrt(var + eps) over all frames, from float64 sums per chunk."""
        stem, group_norm = self.net.input_stack[0], self.net.input_stack[1]
        total = channels_first.shape[-1]
        sums = torch.zeros(group_norm.num_groups, dtype=torch.float64)
        squares = torch.zeros_like(sums)
        for start in range(0, total, self.chunk_frames):
            stop = min(start + self.chunk_frames, total)
            h = _exact_conv_slice(stem, channels_first, start, stop).reshape(group_norm.num_groups, -1)
            h = h.to("cpu", torch.float64)  # float64 on the CPU: some accelerators lack it
            sums += h.sum(dim=1)
            squares += (h * h).sum(dim=1)
        count = total * stem.out_channels // group_norm.num_groups
        mean = sums / count
        variance = (squares / count - mean * mean).clamp(min=0.0)
        inv_std = torch.rsqrt(variance + group_norm.eps)
        return mean.float().to(channels_first.device), inv_std.float().to(channels_first.device)


def _exact_conv_slice(conv: torch.nn.Conv1d, x: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Output frames ``start … stop-1`` of the padded k=3 ``conv`` over all of ``x`` ``(1, C, T)``."""
    total = x.shape[-1]
    lo, hi = max(0, start - 1), min(total, stop + 1)
    out = conv(x[..., lo:hi])
    return out[..., start - lo : out.shape[-1] - (hi - stop)]
