"""Decode any audio file with PyAV and resample it with soxr.

RVC shells out to the ffmpeg binary; PyAV carries its own ffmpeg, so nothing
has to be on PATH and file names never pass through a shell.  Files are opened
with Python's ``open`` and handed to PyAV as file objects, so names with spaces,
quotes, ``%``, ``:`` or any Unicode reach the decoder unchanged.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import soxr

logger = logging.getLogger(__name__)

RESAMPLE_QUALITY = "VHQ"
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 8000, 384000  # a header outside this range is damaged or hostile
_BIDI_CONTROLS = dict.fromkeys(range(0x202A, 0x202F))  # U+202A..U+202E, deleted by str.translate
_INTEGER_SCALE = {np.dtype(np.int16): 2.0**15, np.dtype(np.int32): 2.0**31, np.dtype(np.int64): 2.0**63}
_CONVERT_HINT = "Open it in an audio player to check it, or convert it to WAV/FLAC and try again."


class AudioFileError(ValueError):
    """An input file that cannot be decoded; the message names the file and what to do."""


@dataclass(frozen=True)
class AudioInfo:
    """What :func:`audio_info` reads from a file's header (no full decode).

    ``duration`` is in seconds (None when the container does not say); ``sample_rate``
    in Hz and ``channels`` describe the first audio stream; ``codec`` and ``container``
    are ffmpeg's names (for example ``"pcm_s16le"`` and ``"wav"``).
    """

    path: Path
    duration: float | None
    sample_rate: int
    channels: int
    codec: str
    container: str


def clean_path(text: str) -> str:
    """Clean a path typed or pasted into the UI, as RVC does before loading.

    Deletes bidi control characters (U+202A..U+202E, which Windows' "copy as path"
    can insert), strips surrounding whitespace, newlines and double quotes, then
    removes single quotes only when they enclose the whole text (a name such as
    ``'til dawn.mp3`` keeps its quote; double quotes cannot occur in Windows names).
    """
    text = text.translate(_BIDI_CONTROLS).strip(' \t\r\n"')
    while len(text) >= 2 and text[0] == text[-1] == "'":
        text = text[1:-1].strip(' \t\r\n"')
    return text


def _check_file(path: Path) -> None:
    if not path.exists():
        raise AudioFileError(f"Audio file not found: '{path}'. Check the path and try again.")
    if path.is_dir():
        raise AudioFileError(f"'{path}' is a folder, not an audio file. Pick a file inside it.")
    if path.stat().st_size == 0:
        raise AudioFileError(f"Audio file '{path}' is empty (0 bytes); the copy or upload failed. Copy it again.")


def _undecodable(path: Path, reason: str) -> AudioFileError:
    return AudioFileError(f"Cannot decode '{path}' ({reason}): it is damaged or not audio. {_CONVERT_HINT}")


@contextlib.contextmanager
def _open_audio(path: Path) -> Iterator[tuple[av.container.InputContainer, av.AudioStream]]:
    """Open ``path`` and yield its container and best audio stream; errors become AudioFileError."""
    _check_file(path)
    try:
        handle = open(path, "rb")  # closed below, after the container
    except OSError as error:
        raise AudioFileError(f"Cannot read '{path}': {error.strerror}. Check its permissions.") from error
    try:
        try:
            container = av.open(handle, mode="r", metadata_errors="replace")
        except av.FFmpegError as error:
            raise _undecodable(path, error.strerror or str(error)) from error
        with container:
            if not container.streams.audio:
                kinds = sorted({s.type for s in container.streams}) or ["none"]
                raise AudioFileError(
                    f"'{path}' contains no audio stream (streams found: {', '.join(kinds)}). "
                    "Extract or export its audio track first."
                )
            stream = container.streams.best("audio") or container.streams.audio[0]
            context = stream.codec_context
            if context is None:
                raise _undecodable(path, "no decoder for its audio codec")
            if not context.sample_rate or not context.channels:
                raise _undecodable(path, "its header gives no sample rate or channel count")
            _check_rate(path, int(context.sample_rate))
            yield container, stream
    finally:
        handle.close()


def _check_rate(path: Path, rate: int) -> None:
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioFileError(
            f"'{path}' says its sample rate is {rate} Hz; audio from {MIN_SAMPLE_RATE} to {MAX_SAMPLE_RATE} Hz "
            "can be read. Its header is probably damaged: export it again from its source."
        )


def _frame_samples(frame: av.AudioFrame) -> np.ndarray:
    """One decoded frame as float32 of shape (channels, samples), integers scaled to [-1, 1)."""
    data = frame.to_ndarray()
    if not frame.format.is_planar:  # packed formats come back as (1, samples * channels)
        data = data.reshape(-1, frame.layout.nb_channels).T
    if data.dtype == np.uint8:
        return (data.astype(np.float32) - 128.0) / 128.0
    if data.dtype in _INTEGER_SCALE:
        return (data / _INTEGER_SCALE[data.dtype]).astype(np.float32)
    return data.astype(np.float32, copy=False)


def _decoded_frames(
    path: Path, container: av.container.InputContainer, stream: av.AudioStream
) -> Iterator[tuple[np.ndarray, int]]:
    """Yield ``(samples (C, n) float32, sample_rate)`` frame by frame.

    Like the ffmpeg command line, a damaged packet after audio has been decoded is
    skipped with a warning; damage before the first sample is an AudioFileError.
    """
    decoded = skipped = 0
    seconds = 0.0
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
            frames = packet.decode()
        except StopIteration:
            break
        except av.FFmpegError as error:
            if decoded == 0:
                raise _undecodable(path, error.strerror or str(error)) from error
            skipped += 1
            continue
        for frame in frames:
            _check_rate(path, frame.sample_rate)
            samples = _frame_samples(frame)
            decoded += samples.shape[1]
            seconds += samples.shape[1] / frame.sample_rate
            yield samples, frame.sample_rate
    if skipped:
        logger.warning("%s: skipped %d damaged packet(s) while decoding", path, skipped)
    declared = _declared_duration(container, stream)
    if decoded and declared is not None and seconds < min(0.9 * declared, declared - 1.0):
        logger.warning(
            "%s: decoded %.2f s of the %.2f s its header declares; it may be cut short", path, seconds, declared
        )
    if decoded == 0:
        raise AudioFileError(f"'{path}' decodes to no audio samples; it is damaged or cut short. Export it again.")


def _resample(samples: np.ndarray, rate: int, target_rate: int) -> np.ndarray:
    """(C, N) float32 at ``rate`` -> (C, M) float32 at ``target_rate`` (soxr, one shot)."""
    if rate == target_rate:
        return samples
    resampled = soxr.resample(np.ascontiguousarray(samples.T), rate, target_rate, quality=RESAMPLE_QUALITY)
    return np.ascontiguousarray(resampled.reshape(resampled.shape[0], -1).T)


def _declared_duration(container: av.container.InputContainer, stream: av.AudioStream) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / av.time_base
    return None


def audio_info(path: str | os.PathLike) -> AudioInfo:
    """Read duration, sample rate, channels and codec from the header; raises AudioFileError for non-audio.

    Cheap: nothing is decoded, so a file whose header is fine but whose data is
    damaged passes here and fails in :func:`load_audio`.
    """
    path = Path(path)
    with _open_audio(path) as (container, stream):
        context = stream.codec_context
        return AudioInfo(
            path,
            _declared_duration(container, stream),
            int(context.sample_rate),
            int(context.channels),
            context.name,
            container.format.name,
        )


def load_audio(path: str | os.PathLike, sample_rate: int = 16000, *, mono: bool = True) -> np.ndarray:
    """Decode a whole file to float32 at ``sample_rate`` Hz.

    Returns shape (N,) when ``mono`` (channels averaged, like ``ffmpeg -ac 1``), else
    (C, N).  Integer sources land in [-1, 1); float sources are not clipped.  When the
    file's rate differs it is resampled with soxr ("VHQ").  Any format ffmpeg knows is
    accepted.  Raises AudioFileError for a missing file, a folder, an empty file, a file
    with no audio stream, an undecodable file, or one that decodes to no samples.
    """
    path = Path(path)
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    runs: list[tuple[int, list[np.ndarray]]] = []  # consecutive frames sharing one sample rate
    with _open_audio(path) as (container, stream):
        for samples, rate in _decoded_frames(path, container, stream):
            if mono:
                samples = samples.mean(axis=0, keepdims=True, dtype=np.float32)
            if runs and runs[-1][0] == rate:
                runs[-1][1].append(samples)
            else:
                runs.append((rate, [samples]))
    channel_counts = {piece.shape[0] for _, pieces in runs for piece in pieces}
    if len(channel_counts) > 1:
        raise AudioFileError(
            f"'{path}' changes its channel count mid-stream; load it with mono=True or convert it first."
        )
    parts = [_resample(np.concatenate(pieces, axis=1), rate, sample_rate) for rate, pieces in runs]
    audio = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)
    return audio[0] if mono else audio


class _Blocks:
    """Cuts a stream of 1-D chunks into blocks of exactly ``size`` samples."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._pending: list[np.ndarray] = []
        self._count = 0

    def push(self, chunk: np.ndarray) -> Iterator[np.ndarray]:
        if chunk.size == 0:
            return
        self._pending.append(chunk)
        self._count += chunk.size
        if self._count < self.size:
            return
        joined = np.concatenate(self._pending)
        cut = self.size * (joined.size // self.size)
        yield from np.split(joined[:cut], cut // self.size)
        self._pending = [joined[cut:].copy()]
        self._count = joined.size - cut

    def finish(self) -> Iterator[np.ndarray]:
        if self._count:
            yield np.concatenate(self._pending)
        self._pending, self._count = [], 0


def iter_audio(
    path: str | os.PathLike, sample_rate: int = 16000, *, block_samples: int = 16000 * 30
) -> Iterator[np.ndarray]:
    """Stream a file as mono float32 blocks of ``block_samples`` at ``sample_rate`` Hz.

    Every block but the last has exactly ``block_samples`` samples.  Memory does not
    grow with the file's length: frames are decoded one at a time and resampled with a
    ``soxr.ResampleStream``.  The concatenated blocks equal :func:`load_audio` up to
    the resampler's rounding.  File errors (AudioFileError) are raised by this call,
    before iteration starts, except damage found later in the stream.
    """
    path = Path(path)
    if sample_rate <= 0 or block_samples <= 0:
        raise ValueError(f"sample_rate and block_samples must be positive, got {sample_rate} and {block_samples}")
    with _open_audio(path):
        pass  # fail now, not at the first next()
    return _stream_blocks(path, sample_rate, block_samples)


def _stream_blocks(path: Path, sample_rate: int, block_samples: int) -> Iterator[np.ndarray]:
    blocks = _Blocks(block_samples)
    resampler: soxr.ResampleStream | None = None
    current_rate = None
    with _open_audio(path) as (container, stream):
        for samples, rate in _decoded_frames(path, container, stream):
            mono = samples.mean(axis=0, dtype=np.float32)
            if rate != current_rate:
                if resampler is not None:
                    yield from blocks.push(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
                resampler = None
                if rate != sample_rate:
                    resampler = soxr.ResampleStream(rate, sample_rate, 1, dtype="float32", quality=RESAMPLE_QUALITY)
                current_rate = rate
            yield from blocks.push(mono if resampler is None else resampler.resample_chunk(mono, last=False))
    if resampler is not None:
        yield from blocks.push(resampler.resample_chunk(np.zeros(0, np.float32), last=True))
    yield from blocks.finish()
