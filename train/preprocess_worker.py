"""Training step 1, one source file: the work a preprocessing worker process does (spec §2).

Decode to mono float at the model rate, 48 Hz high-pass (causal, as RVC), RVC's
silence slicer, 3.7 s pieces every 3.4 s, normalisation, and two 32-bit float
WAVs per piece, ``<file index>_<piece index>.wav``.  Silent, too loud and too
short pieces are reported instead of written.  :mod:`train.preprocess` runs this
for every file of a dataset; this module is all a spawned worker imports.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr
from scipy import signal
from scipy.io import wavfile

from infer.audio import AudioFileError, audio_info, load_audio
from infer.audio_read import RESAMPLE_QUALITY
from train.slicer import Slicer

PIECE_SECONDS = 3.7
OVERLAP_SECONDS = 0.3
# Longer than the longest training segment (17280 samples = 0.36 s at 48 kHz v2) and than the
# training sampler's cut (items under about 0.75 s are dropped there).
MIN_PIECE_SECONDS = 1.0
MAX_PEAK = 2.5  # RVC drops pieces louder than this after the high-pass
SILENCE_PEAK = 10 ** (-60 / 20)  # pieces whose peak is below -60 dBFS are skipped as silent
NORM_PEAK, NORM_ALPHA = 0.9, 0.75  # RVC: x / max|x| * 0.9 * 0.75 + (1 - 0.75) * x
HIGHPASS_HZ, HIGHPASS_ORDER = 48, 5
WAV16K_RATE = 16000
CLIP_LEVEL, CLIP_MIN_RUN = 0.999, 3  # clipping: at least 3 samples in a row at >= 0.999 full scale


@dataclass(frozen=True)
class SourceJob:
    """One source file to preprocess: plain values, so it pickles into a spawned worker."""

    index: int
    name: str  # relative to the dataset folder, for reports
    path: str
    gt_dir: str
    wav16k_dir: str
    sample_rate: int
    piece_seconds: float = PIECE_SECONDS
    overlap_seconds: float = OVERLAP_SECONDS
    min_piece_seconds: float = MIN_PIECE_SECONDS


@dataclass
class SourceResult:
    """What a worker did with one source; ``error`` is set when the file could not be read or written."""

    index: int
    name: str
    path: str
    error: str | None = None
    pieces: int = 0
    audio_seconds: float = 0.0
    unique_seconds: float = 0.0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    clip_runs: int = 0
    clip_seconds: float = 0.0


def highpass(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    """RVC's 5th-order Butterworth 48 Hz high-pass, causal (``lfilter``): (N,) float -> (N,) float64."""
    b, a = signal.butter(HIGHPASS_ORDER, HIGHPASS_HZ, btype="high", fs=sample_rate)
    return signal.lfilter(b, a, audio)


def split_pieces(
    length: int, sample_rate: int, piece_seconds: float = PIECE_SECONDS, overlap_seconds: float = OVERLAP_SECONDS
) -> list[tuple[int, int]]:
    """Sample ranges of the pieces of a chunk of ``length`` samples (spec §2 step 5).

    Pieces of ``int(piece_seconds * sr)`` samples start every ``(piece - overlap)`` seconds
    while more than ``piece + overlap`` seconds remain; the remainder is the last piece.
    """
    ranges = []
    step = 0
    while length > 0:
        start = int(sample_rate * (piece_seconds - overlap_seconds) * step)
        if length - start > (piece_seconds + overlap_seconds) * sample_rate:
            ranges.append((start, start + int(piece_seconds * sample_rate)))
            step += 1
        else:
            ranges.append((start, length))
            break
    return ranges


def normalize_piece(piece: np.ndarray) -> np.ndarray:
    """RVC's level rule: ``x / max|x| * 0.675 + 0.25 * x`` (same shape; float64 for float64 input).

    The caller must have rejected silent pieces (max|x| = 0 would give NaN).
    """
    peak = np.abs(piece).max()
    return piece / peak * (NORM_PEAK * NORM_ALPHA) + (1 - NORM_ALPHA) * piece


def piece_problem(piece: np.ndarray, sample_rate: int, min_piece_seconds: float = MIN_PIECE_SECONDS) -> str | None:
    """Why a high-passed piece must not be written, or None when it is fine.

    The reason starts with its kind: "invalid", "silent", "too loud after filtering" or "too short".
    """
    peak = float(np.abs(piece).max()) if piece.size else 0.0
    if not np.isfinite(peak):
        return "invalid: NaN or infinite samples"
    if peak < SILENCE_PEAK:
        level = f"{20 * np.log10(peak):.0f} dBFS" if peak > 0 else "no signal"
        return f"silent: peak {level} (below {20 * np.log10(SILENCE_PEAK):.0f} dBFS)"
    if peak > MAX_PEAK:
        return f"too loud after filtering: peak {peak:.2f} > {MAX_PEAK}"
    if piece.shape[-1] < min_piece_seconds * sample_rate:
        return f"too short: {piece.shape[-1] / sample_rate:.2f} s < {min_piece_seconds:.2f} s"
    return None


def find_clipping(audio: np.ndarray) -> tuple[int, int]:
    """(runs, samples) of clipping in (N,) or (channels, N) float audio: >= 3 samples in a row at |x| >= 0.999."""
    hot = np.abs(np.atleast_2d(audio)) >= CLIP_LEVEL
    hot = np.concatenate([[False], hot.any(axis=0), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(hot))
    lengths = edges[1::2] - edges[0::2]
    long_runs = lengths[lengths >= CLIP_MIN_RUN]
    return int(long_runs.size), int(long_runs.sum())


def _decode(path: Path, sample_rate: int) -> tuple[np.ndarray, int, float]:
    """(mono float32 at ``sample_rate`` exactly as ``load_audio`` gives it, clipped runs, clipped seconds).

    Clipping is measured on the channels at the file's own rate, before mixing and resampling.
    """
    native = audio_info(path).sample_rate
    try:
        channels = load_audio(path, native, mono=False)
    except AudioFileError:  # e.g. a channel count that changes mid-stream: mono decoding still works
        channels = load_audio(path, native)
    clipping = find_clipping(channels)
    mono = channels.mean(axis=0, dtype=np.float32) if channels.ndim > 1 else channels
    if native != sample_rate:
        mono = soxr.resample(mono, native, sample_rate, quality=RESAMPLE_QUALITY)
    return mono, clipping[0], clipping[1] / native


def _write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    """32-bit float WAV (scipy's writer, as RVC; no timestamped chunk, so identical runs give identical bytes).

    Written beside ``path`` and renamed, so no half-written file is ever visible.
    """
    temp = path.with_name(f".{path.name}.part")
    try:
        wavfile.write(temp, sample_rate, audio.astype(np.float32))
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def _covered(ranges: list[tuple[int, int]]) -> int:
    """Samples covered by sorted, possibly overlapping ranges."""
    total, reach = 0, 0
    for begin, end in ranges:
        total += max(0, end - max(begin, reach))
        reach = max(reach, end)
    return total


def process_source(job: SourceJob) -> SourceResult:
    """Preprocess one file: decode, high-pass, slice, cut into pieces, normalise, write both WAVs."""
    result = SourceResult(job.index, job.name, job.path)
    sr = job.sample_rate
    try:
        audio, result.clip_runs, result.clip_seconds = _decode(Path(job.path), sr)
        if not np.isfinite(audio).all():
            raise AudioFileError(f"'{job.path}' contains NaN or infinite samples; export it again from its source.")
        filtered = highpass(audio, sr)
        del audio
        chunks = [(b, e) for b, e in Slicer(sr).ranges(filtered) if e > b]
        if not chunks:
            result.dropped.append((job.name, "silent file: nothing above -42 dB"))
        for chunk_start, chunk_end in chunks:
            kept = []
            for begin, end in split_pieces(chunk_end - chunk_start, sr, job.piece_seconds, job.overlap_seconds):
                piece = filtered[chunk_start + begin : chunk_start + end]
                problem = piece_problem(piece, sr, job.min_piece_seconds)
                if problem is not None:
                    where = f"{job.name} [{(chunk_start + begin) / sr:.2f}-{(chunk_start + end) / sr:.2f} s]"
                    result.dropped.append((where, problem))
                    continue
                piece = normalize_piece(piece)
                name = f"{job.index}_{result.pieces}.wav"
                _write_wav(Path(job.gt_dir) / name, piece, sr)
                piece16k = soxr.resample(piece, sr, WAV16K_RATE, quality=RESAMPLE_QUALITY)
                _write_wav(Path(job.wav16k_dir) / name, piece16k, WAV16K_RATE)
                result.pieces += 1
                result.audio_seconds += (end - begin) / sr
                kept.append((begin, end))
            result.unique_seconds += _covered(kept) / sr
    except AudioFileError as exc:
        result.error = str(exc)
    except Exception as exc:  # reported by name; the other files go on
        result.error = f"{type(exc).__name__}: {exc}"
    return result
