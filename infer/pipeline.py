"""RVC's conversion pipeline over arrays (spec §8.3–§8.4), one segment at a time.

The functions here follow the reference step by step so that the same weights,
input and seed give the same output: the 48 Hz zero-phase high-pass, the
reflect padding, the cut points at quiet places, per-segment content features,
index blending, the protect rule, synthesis and trimming, and the loudness
envelope mix.  :mod:`infer.convert` drives them over a whole input.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from scipy import signal

from infer.frames import HOP_16K, SR_16K

_HIGHPASS_B, _HIGHPASS_A = signal.butter(N=5, Wn=48, btype="high", fs=SR_16K)


STAGES = ("decode", "f0", "features", "retrieval", "synthesis", "postprocess", "write")
StageObserver = Callable[[str, bool], None]
"""Called as ``observer(stage, entering)`` when a stage starts (True) and ends (False)."""


@dataclass
class StageTimes:
    """Seconds spent per stage of one conversion (:data:`STAGES`).

    ``observer``, if given, hears every stage start and end (a benchmark uses it
    to attribute memory peaks); it runs on the converting thread and should be
    quick.  One object may be shared by threads: updates take a lock.
    """

    decode: float = 0.0
    f0: float = 0.0
    features: float = 0.0
    retrieval: float = 0.0
    synthesis: float = 0.0
    postprocess: float = 0.0
    write: float = 0.0
    observer: StageObserver | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    @contextmanager
    def measure(self, stage: str) -> Iterator[None]:
        """Add the time spent inside the ``with`` block to ``stage`` (one of :data:`STAGES`)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
        if self.observer is not None:
            self.observer(stage, True)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            with self._lock:
                setattr(self, stage, getattr(self, stage) + elapsed)
            if self.observer is not None:
                self.observer(stage, False)

    def as_dict(self) -> dict[str, float]:
        return {stage: round(getattr(self, stage), 4) for stage in STAGES}


@dataclass(frozen=True)
class ChunkSizes:
    """RVC's x_pad / x_query / x_center / x_max in seconds (spec §8.3).

    ``x_pad``: context converted on each side of a segment and dropped;
    segments are cut near every ``x_center`` seconds at the quietest 10 ms
    within ``±x_query``; inputs shorter than ``x_max`` are not cut.
    """

    x_pad: int = 1
    x_query: int = 6
    x_center: int = 38
    x_max: int = 41

    @classmethod
    def for_device(cls, device: torch.device, half: bool, memory_gb: float | None = None) -> ChunkSizes:
        """RVC's defaults: bigger pieces in half precision, smaller on GPUs with ≤ 4 GB."""
        if device.type == "cuda" and memory_gb is not None and memory_gb <= 4:
            return cls(1, 5, 30, 32)
        return cls(3, 10, 60, 65) if half else cls(1, 6, 38, 41)

    def smaller(self) -> ChunkSizes:
        """Half-size pieces (used to retry after running out of GPU memory)."""
        return ChunkSizes(self.x_pad, max(1, self.x_query // 2), max(2, self.x_center // 2), max(3, self.x_max // 2))

    @property
    def t_pad(self) -> int:
        return SR_16K * self.x_pad

    @property
    def t_query(self) -> int:
        return SR_16K * self.x_query

    @property
    def t_center(self) -> int:
        return SR_16K * self.x_center

    @property
    def t_max(self) -> int:
        return SR_16K * self.x_max


def highpass(audio: np.ndarray) -> np.ndarray:
    """RVC's 5th-order Butterworth high-pass at 48 Hz, zero-phase (float64 out)."""
    return signal.filtfilt(_HIGHPASS_B, _HIGHPASS_A, audio)


def split_points(audio: np.ndarray, sizes: ChunkSizes) -> list[int]:
    """Where RVC cuts a long input (16 kHz sample indices, not yet rounded to frames).

    Only inputs longer than ``t_max`` (after a 160-sample pad) are cut.  Near
    every multiple of ``t_center`` the cut goes to the first minimum of
    |moving sum of 160 samples| within ``±t_query`` (the reference sums the
    signed samples, then takes the absolute value).
    """
    return split_points_from(lambda start, stop: _reflect_slice(audio, start, stop), audio.shape[0], sizes)


def split_points_from(read: Callable[[int, int], np.ndarray], length: int, sizes: ChunkSizes) -> list[int]:
    """:func:`split_points` over audio read on demand: ``read(start, stop)`` returns samples
    ``[start, stop)`` of the signal reflected at its ends (as ``np.pad(..., mode="reflect")``)."""
    if length + HOP_16K <= sizes.t_max:
        return []
    half = HOP_16K // 2
    points = []
    for t in range(sizes.t_center, length, sizes.t_center):
        lo, hi = max(t - sizes.t_query, 0), min(t + sizes.t_query, length)
        # The moving sum over [lo, hi), added slice by slice in the reference's order so that
        # exact ties (digital silence) resolve to the same sample.
        region = np.asarray(read(lo - half, hi + half), dtype=np.float64)
        moving = np.zeros(hi - lo, dtype=np.float64)
        for i in range(HOP_16K):
            moving += region[i : i + hi - lo]
        points.append(lo + int(np.argmin(np.abs(moving))))
    return points


def reflect_indices(start: int, stop: int, length: int) -> np.ndarray:
    """Indices of ``np.pad(x, n, mode="reflect")[start + n : stop + n]`` into ``x`` (one reflection)."""
    index = np.arange(start, stop)
    index = np.where(index < 0, -index, index)
    return np.where(index >= length, 2 * (length - 1) - index, index)


def _reflect_slice(audio: np.ndarray, start: int, stop: int) -> np.ndarray:
    return audio[reflect_indices(start, stop, audio.shape[0])]


@dataclass
class SegmentInputs:
    """Everything one segment conversion needs besides the audio."""

    encoder: object  # infer.content.ContentEncoder
    synthesizer: torch.nn.Module
    version: str
    speaker: torch.Tensor  # (1,) int64 on the device
    index: object | None = None  # infer.retrieval.FeatureIndex
    index_rate: float = 0.0
    protect: float = 0.5
    noise_scale: float = 0.66666
    generator: torch.Generator | None = None
    times: StageTimes = field(default_factory=StageTimes)
    cancel: Callable[[], bool] | None = None


def convert_segment(
    audio: np.ndarray, pitch: torch.Tensor | None, pitchf: torch.Tensor | None, ctx: SegmentInputs
) -> np.ndarray:
    """Convert one padded 16 kHz segment (RVC's ``Pipeline.vc``).

    ``audio``: (N,) float; ``pitch``/``pitchf``: (1, ≥N//160) int64 / float32
    on the synthesizer's device, or None for models without pitch.  Returns
    float32 audio at the voice's rate, ``frames × hop`` samples, where frames
    is ``min(N // 160, 2 × content frames)``.
    """
    device = ctx.speaker.device
    with ctx.times.measure("features"):
        feats = ctx.encoder.extract_tensor(torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), ctx.version)
    use_pitch = pitch is not None and pitchf is not None
    protect = use_pitch and ctx.protect < 0.5
    feats0 = feats.clone() if protect else None
    if ctx.index is not None and ctx.index_rate != 0:
        with ctx.times.measure("retrieval"):
            blended = ctx.index.blend(feats[0].float().cpu().numpy(), ctx.index_rate)
            feats = torch.from_numpy(blended).unsqueeze(0).to(device=device, dtype=feats.dtype)
    feats = feats.repeat_interleave(2, dim=1)  # 50 → 100 frames/s (nearest)
    p_len = audio.shape[0] // HOP_16K
    if feats.shape[1] < p_len:
        p_len = feats.shape[1]
    feats = feats[:, :p_len]
    if use_pitch:
        pitch, pitchf = pitch[:, :p_len], pitchf[:, :p_len]
    if protect:
        feats0 = feats0.repeat_interleave(2, dim=1)[:, :p_len]
        weight = torch.where(pitchf < 1, torch.full_like(pitchf, ctx.protect), torch.ones_like(pitchf))
        weight = weight.unsqueeze(-1)
        feats = (feats * weight + feats0 * (1 - weight)).to(feats0.dtype)
    if ctx.cancel is not None and ctx.cancel():
        raise ConversionCancelled("Conversion cancelled.")
    lengths = torch.tensor([p_len], device=device, dtype=torch.long)
    with ctx.times.measure("synthesis"), torch.inference_mode():
        args = (feats, lengths, pitch, pitchf, ctx.speaker) if use_pitch else (feats, lengths, None, None, ctx.speaker)
        out = ctx.synthesizer.infer(*args, noise_scale=ctx.noise_scale, generator=ctx.generator)[0]
        return out[0, 0].float().cpu().numpy()


class ConversionCancelled(RuntimeError):
    """Raised when the caller's cancel check returns True."""


def convert_segments(
    padded: np.ndarray,
    cuts: list[int],
    pitch: torch.Tensor | None,
    pitchf: torch.Tensor | None,
    ctx: SegmentInputs,
    *,
    t_pad: int,
    t_pad_tgt: int,
    final: bool,
    progress: Callable[[int, int], None] | None = None,
) -> list[np.ndarray]:
    """RVC's segment loop over one reflect/context-padded stretch of audio.

    ``padded`` holds the audio of unpadded samples ``[0, L)`` with ``t_pad``
    samples of context (or reflection) on each side, so unpadded sample ``u``
    is ``padded[u + t_pad]``.  ``cuts`` are cut points in unpadded samples;
    pitch frames are aligned with ``padded``.  With ``final`` the last segment
    runs to the end of ``padded`` as in the reference; otherwise it ends at
    the last cut, which must then be ``L`` (a block boundary).
    """
    outputs = []
    start = 0
    cuts = [c // HOP_16K * HOP_16K for c in cuts]
    ends = cuts if final else cuts[:-1]
    total = len(ends) + 1
    for number, cut in enumerate(ends):
        stop = cut + 2 * t_pad + HOP_16K
        frames = slice(start // HOP_16K, (cut + 2 * t_pad) // HOP_16K)
        seg_pitch = None if pitch is None else pitch[:, frames]
        seg_pitchf = None if pitchf is None else pitchf[:, frames]
        outputs.append(convert_segment(padded[start:stop], seg_pitch, seg_pitchf, ctx)[t_pad_tgt:-t_pad_tgt])
        start = cut
        if progress:
            progress(number + 1, total)
    if final:
        last = slice(start // HOP_16K, None)
        seg_pitch = None if pitch is None else pitch[:, last]
        seg_pitchf = None if pitchf is None else pitchf[:, last]
        outputs.append(convert_segment(padded[start:], seg_pitch, seg_pitchf, ctx)[t_pad_tgt:-t_pad_tgt])
    else:
        cut = cuts[-1]
        frames = slice(start // HOP_16K, (cut + 2 * t_pad) // HOP_16K)
        seg_pitch = None if pitch is None else pitch[:, frames]
        seg_pitchf = None if pitchf is None else pitchf[:, frames]
        stop = cut + 2 * t_pad + HOP_16K
        outputs.append(convert_segment(padded[start:stop], seg_pitch, seg_pitchf, ctx)[t_pad_tgt:-t_pad_tgt])
    if progress:
        progress(total, total)
    return outputs


def frame_rms(audio: np.ndarray, frame_length: int, hop_length: int) -> np.ndarray:
    """librosa's time-domain RMS (centered, zero padding): one value per hop."""
    pad = frame_length // 2
    padded = np.pad(audio, (pad, pad))
    n_frames = 1 + (padded.shape[0] - frame_length) // hop_length
    squares = np.concatenate(([0.0], np.cumsum(np.square(padded, dtype=np.float64))))
    starts = np.arange(n_frames) * hop_length
    energy = (squares[starts + frame_length] - squares[starts]) / frame_length
    return np.sqrt(np.maximum(energy, 0.0)).astype(audio.dtype if audio.dtype == np.float32 else np.float64)


def change_rms(source: np.ndarray, output: np.ndarray, output_rate: int, rate: float) -> np.ndarray:
    """RVC's loudness envelope mix: ``output · rms_in^(1-rate) · rms_out^(rate-1)``.

    Envelopes are RMS over 1 s frames every 0.5 s, linearly stretched over the
    output; ``rate`` 1 keeps the output's envelope, 0 imposes the input's.
    """
    rms_in = torch.from_numpy(frame_rms(source, SR_16K // 2 * 2, SR_16K // 2))
    rms_out = torch.from_numpy(frame_rms(output, output_rate // 2 * 2, output_rate // 2))
    size = output.shape[0]
    rms_in = F.interpolate(rms_in.view(1, 1, -1), size=size, mode="linear").view(-1)
    rms_out = F.interpolate(rms_out.view(1, 1, -1), size=size, mode="linear").view(-1)
    rms_out = torch.clamp(rms_out, min=1e-6)
    gain = torch.pow(rms_in, torch.tensor(1 - rate)) * torch.pow(rms_out, torch.tensor(rate - 1))
    return (output * gain.numpy()).astype(np.float32)
