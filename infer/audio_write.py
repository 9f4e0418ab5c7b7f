"""Write audio in any output format, streaming and atomically.

wav, flac and ogg (Vorbis) go through soundfile/libsndfile; mp3 (LAME), m4a (AAC in
MP4) and opus (Opus in Ogg) through PyAV's bundled ffmpeg.  Samples are written to a
hidden temporary file beside the target, which replaces the target only when the
writer closes without error, so a failed conversion never leaves a partial file.
"""

from __future__ import annotations

import os
import secrets
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import soundfile as sf
import soxr

from infer.atomic import check_replaceable
from infer.audio_read import RESAMPLE_QUALITY

SUPPORTED_OUTPUT_FORMATS = ("wav", "flac", "mp3", "m4a", "ogg", "opus")

_SOUNDFILE_SUBTYPES = {  # format -> (libsndfile major format, allowed subtypes, default first)
    "wav": ("WAV", ("PCM_16", "PCM_24", "PCM_32", "FLOAT")),
    "flac": ("FLAC", ("PCM_16", "PCM_24")),
    "ogg": ("OGG", ("VORBIS",)),
}
_PYAV_ENCODERS = {  # format -> (ffmpeg muxer, encoders in order of preference, bit rate or None, codec options)
    # mp3 is LAME VBR quality 2 (about 190 kbit/s for stereo): LAME's CBR presets scale the
    # signal down (0.97 at 192 kbit/s), VBR keeps the level.
    "mp3": ("mp3", ("libmp3lame", "mp3"), None, {"flags": "+qscale", "global_quality": str(2 * 118)}),
    "m4a": ("mp4", ("aac",), 192_000, {}),
    "opus": ("ogg", ("libopus", "opus"), 128_000, {}),
    "ogg": ("ogg", ("libvorbis", "vorbis"), 160_000, {}),  # only when libsndfile lacks Vorbis
}
_LAYOUTS = {1: "mono", 2: "stereo", 3: "2.1", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}
_MAX_BLOCK = 1 << 20  # save_audio writes in pieces of this many frames


def _soundfile_can_write(fmt: str) -> bool:
    major, subtypes = _SOUNDFILE_SUBTYPES[fmt]
    return subtypes[0] in sf.available_subtypes(major)


def _pick_encoder(fmt: str) -> str:
    for name in _PYAV_ENCODERS[fmt][1]:
        if name in av.codecs_available:
            try:
                return av.Codec(name, "w").name
            except (av.FFmpegError, ValueError):  # a decoder of that name, but no encoder
                continue
    raise ValueError(f"This PyAV build has no encoder for {fmt}; choose one of {', '.join(SUPPORTED_OUTPUT_FORMATS)}.")


def _encoder_rate(codec_name: str, sample_rate: int) -> int:
    """The rate the encoder runs at: ``sample_rate`` if it supports it, else the next higher rate it does."""
    rates = av.Codec(codec_name, "w").audio_rates
    if not rates or sample_rate in rates:
        return sample_rate
    higher = [rate for rate in rates if rate >= sample_rate]
    return min(higher) if higher else max(rates)


class _PyAVSink:
    """Feeds (C, N) float32 blocks to an ffmpeg encoder frame by frame, resampling with soxr if needed."""

    def __init__(self, handle, fmt: str, sample_rate: int, channels: int) -> None:
        muxer, _, bit_rate, options = _PYAV_ENCODERS[fmt]
        codec_name = _pick_encoder(fmt)
        options = dict(options)
        self._upmix = codec_name == "vorbis" and channels == 1  # ffmpeg's own Vorbis encoder is stereo-only
        if codec_name == "vorbis":
            options["strict"] = "experimental"
        encoded_channels = 2 if self._upmix else channels
        if encoded_channels not in _LAYOUTS:
            raise ValueError(f"{fmt} output supports at most 8 channels, got {channels}")
        self.sample_rate = _encoder_rate(codec_name, sample_rate)
        self._resampler = None
        if self.sample_rate != sample_rate:
            self._resampler = soxr.ResampleStream(sample_rate, self.sample_rate, channels, quality=RESAMPLE_QUALITY)
        self._channels = channels
        self._layout = _LAYOUTS[encoded_channels]
        self._container = av.open(handle, mode="w", format=muxer)
        self._stream = self._container.add_stream(
            codec_name, rate=self.sample_rate, layout=self._layout, options=options
        )
        if bit_rate is not None:
            self._stream.bit_rate = bit_rate
        self._pts = 0

    def write(self, samples: np.ndarray) -> None:
        if samples.dtype == np.int16:
            samples = samples.astype(np.float32) / 32768.0
        if self._resampler is not None:
            samples = self._resample(samples, last=False)
        self._encode(samples)

    def _resample(self, samples: np.ndarray, *, last: bool) -> np.ndarray:
        resampled = self._resampler.resample_chunk(np.ascontiguousarray(samples.T, np.float32), last=last)
        return resampled.reshape(resampled.shape[0], -1).T  # (M, C) or (M,) -> (C, M)

    def _encode(self, samples: np.ndarray | None) -> None:
        frame = None
        if samples is not None:
            if samples.shape[1] == 0:
                return
            if self._upmix:
                samples = np.repeat(samples, 2, axis=0)
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, np.float32), format="fltp", layout=self._layout
            )
            frame.sample_rate = self.sample_rate
            frame.pts, frame.time_base = self._pts, Fraction(1, self.sample_rate)
            self._pts += samples.shape[1]
        for packet in self._stream.encode(frame):
            self._container.mux(packet)

    def close(self) -> None:
        if self._resampler is not None:
            self._encode(self._resample(np.zeros((self._channels, 0), np.float32), last=True))
        self._encode(None)
        self._container.close()

    def abort(self) -> None:
        self._container.close()


class _SoundFileSink:
    """Writes (C, N) blocks with libsndfile (int16 blocks are written exactly)."""

    def __init__(self, handle, fmt: str, sample_rate: int, channels: int, subtype: str) -> None:
        self.sample_rate = sample_rate
        self._file = sf.SoundFile(handle, "w", sample_rate, channels, subtype, format=_SOUNDFILE_SUBTYPES[fmt][0])

    def write(self, samples: np.ndarray) -> None:
        self._file.write(np.ascontiguousarray(samples.T))

    def close(self) -> None:
        self._file.close()

    abort = close


class AudioWriter:
    """Streaming, atomic writer for any of :data:`SUPPORTED_OUTPUT_FORMATS`.

    ``format`` defaults to the path's suffix.  ``subtype`` applies to wav ("PCM_16",
    the default, "PCM_24", "PCM_32", "FLOAT") and flac ("PCM_16", "PCM_24").  An existing
    file is refused unless ``overwrite``.  Use as a context manager: on success the
    temporary file replaces ``path``; on an exception it is deleted and ``path`` is left
    as it was.  Lossy encoders that lack ``sample_rate`` (mp3/m4a at 40 kHz, opus at
    44.1 kHz) get the audio resampled with soxr to their next higher rate, reported by
    :attr:`file_sample_rate`.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        sample_rate: int,
        *,
        format: str | None = None,
        channels: int = 1,
        subtype: str | None = None,
        overwrite: bool = False,
    ) -> None:
        self.path = Path(path)
        self.format = _resolve_format(self.path, format)
        self.channels = channels
        if sample_rate <= 0 or channels <= 0:
            raise ValueError(f"sample_rate and channels must be positive, got {sample_rate} and {channels}")
        subtype = _resolve_subtype(self.format, subtype)
        if self.path.is_dir():
            raise IsADirectoryError(f"'{self.path}' is a folder; give a file name such as '{self.path / 'out.wav'}'.")
        check_replaceable(self.path)
        if self.path.exists() and not overwrite:
            raise FileExistsError(f"'{self.path}' already exists; choose another name or allow overwriting.")
        self._overwrite = overwrite
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._temp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.part")
        self._handle = open(self._temp, "x+b")  # owned by the writer until close/abort
        self._closed = False
        try:
            if self.format in _SOUNDFILE_SUBTYPES and _soundfile_can_write(self.format):
                self._sink: _SoundFileSink | _PyAVSink = _SoundFileSink(
                    self._handle, self.format, sample_rate, channels, subtype
                )
            else:
                self._sink = _PyAVSink(self._handle, self.format, sample_rate, channels)
        except BaseException:
            self._discard()
            raise
        self.file_sample_rate = self._sink.sample_rate
        self.frames_written = 0

    def write(self, block: np.ndarray) -> None:
        """Append samples: float (clipped to [-1, 1]) or int16, shape (N,) for mono or (channels, N)."""
        if self._closed:
            raise ValueError(f"the writer for '{self.path}' is already closed")
        samples = np.asarray(block)
        if samples.ndim == 1:
            samples = samples[np.newaxis]
        if samples.ndim != 2 or samples.shape[0] != self.channels:
            raise ValueError(
                f"expected a block of shape (N,) or ({self.channels}, N) for {self.channels} channel(s), "
                f"got {np.shape(block)}; multi-channel audio is (channels, samples)"
            )
        if samples.dtype != np.int16:
            if samples.dtype.kind != "f":
                raise ValueError(f"audio must be float in [-1, 1] or int16, got {samples.dtype}")
            if not np.isfinite(samples).all():
                raise ValueError(f"audio for '{self.path}' contains NaN or infinite values")
            samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
        self._sink.write(samples)
        self.frames_written += samples.shape[1]

    def close(self) -> Path:
        """Finish encoding and move the file into place; returns the final path."""
        if self._closed:
            return self.path
        try:
            self._sink.close()
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self._handle.close()
            if not self._overwrite and self.path.exists():
                raise FileExistsError(
                    f"'{self.path}' appeared while writing; choose another name or allow overwriting."
                )
            check_replaceable(self.path)
            os.replace(self._temp, self.path)
        except BaseException:
            self._discard()
            raise
        self._closed = True
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the temporary file; the target is left untouched."""
        if self._closed:
            return
        try:
            self._sink.abort()
        except Exception:  # the sink may be half-written; the file goes anyway
            pass
        self._discard()

    def _discard(self) -> None:
        self._closed = True
        self._handle.close()
        self._temp.unlink(missing_ok=True)

    def __enter__(self) -> AudioWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:
        if getattr(self, "_closed", True) is False:
            self.abort()


def _resolve_format(path: Path, fmt: str | None) -> str:
    name = (fmt if fmt is not None else path.suffix).lower().lstrip(".")
    if name not in SUPPORTED_OUTPUT_FORMATS:
        choices = ", ".join(SUPPORTED_OUTPUT_FORMATS)
        if fmt is not None:
            raise ValueError(f"Unsupported output format {fmt!r}; choose one of {choices}.")
        raise ValueError(
            f"Cannot tell the output format of '{path}' from its suffix; end the name with one of {choices}."
        )
    return name


def _resolve_subtype(fmt: str, subtype: str | None) -> str | None:
    if subtype is None:
        return _SOUNDFILE_SUBTYPES[fmt][1][0] if fmt in _SOUNDFILE_SUBTYPES else None
    allowed = _SOUNDFILE_SUBTYPES[fmt][1] if fmt in ("wav", "flac") else ()
    if subtype.upper() not in allowed:
        choices = ", ".join(allowed) if allowed else "none (leave it unset)"
        raise ValueError(f"subtype {subtype!r} is not available for {fmt}; choose {choices}")
    return subtype.upper()


def save_audio(
    path: str | os.PathLike,
    audio: np.ndarray,
    sample_rate: int,
    *,
    format: str | None = None,
    subtype: str | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``audio`` ((N,) or (C, N), float in [-1, 1] or int16) in one call; returns the path."""
    audio = np.asarray(audio)
    if audio.ndim not in (1, 2) or (audio.ndim == 2 and audio.shape[0] > audio.shape[1] > 0):
        raise ValueError(
            f"audio must be (N,) or (channels, N), got shape {audio.shape}; transpose (N, channels) arrays"
        )
    channels = 1 if audio.ndim == 1 else audio.shape[0]
    with AudioWriter(
        path, sample_rate, format=format, channels=channels, subtype=subtype, overwrite=overwrite
    ) as writer:
        for start in range(0, audio.shape[-1], _MAX_BLOCK):
            writer.write(audio[..., start : start + _MAX_BLOCK])
    return writer.path


def output_path_for(input_path: str | os.PathLike, output_dir: str | os.PathLike, fmt: str) -> Path:
    """Where batch conversion writes ``input_path``: ``output_dir/<stem>.<fmt>`` ("a.b.wav" -> "a.b.flac")."""
    fmt = _resolve_format(Path(input_path), fmt)
    return Path(output_dir) / f"{Path(input_path).stem}.{fmt}"
