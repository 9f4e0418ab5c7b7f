"""Training step 1: a folder of recordings -> ``0_gt_wavs`` and ``1_16k_wavs`` pieces (spec §2).

Per source file: decode to mono float at the model rate, 48 Hz high-pass (causal,
as RVC), RVC's silence slicer, 3.7 s pieces every 3.4 s, normalisation, and two
32-bit float WAVs per piece, ``<file index>_<piece index>.wav``.  Unlike RVC,
sub-folders are read too, pieces are numbered 0, 1, 2, ... without gaps, silent
pieces are skipped instead of written as NaN, pieces too short to train on are
dropped and reported with their source, and an unreadable file is reported by
name while the rest goes on.

Several files run at once in spawned processes (as many as cores and memory
allow); callers running this from a script need the usual
``if __name__ == "__main__":`` guard.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soxr
from scipy import signal
from scipy.io import wavfile

from infer.audio import AudioFileError, audio_info, load_audio
from infer.audio_read import RESAMPLE_QUALITY
from train.slicer import Slicer

REPORT_NAME = "preprocess_report.json"
NOT_AUDIO_SUFFIXES = frozenset(
    ".txt .md .pdf .doc .docx .rtf .nfo .json .xml .csv .ini .db .cue .log .m3u .m3u8 .pls .lrc .srt .ass "
    ".jpg .jpeg .png .gif .bmp .webp .tif .tiff .ico .zip .rar .7z .gz .tar .exe .py .npy .pth .index".split()
)
WORKER_BASE_BYTES = 150 * 2**20  # a spawned worker with numpy, scipy, PyAV and soxr loaded
MEMORY_FACTOR = 10  # float32-sized copies of the source at the model rate a worker holds at its peak (generous)
_POLL_SECONDS = 0.2

Progress = Callable[[float, str], None]


class PreprocessError(ValueError):
    """Preprocessing cannot start (no dataset folder, no files, bad settings); the message says what to do."""


# ---------------------------------------------------------------- one source file (runs in a worker process)

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


def split_pieces(length: int, sample_rate: int, piece_seconds: float = PIECE_SECONDS,
                 overlap_seconds: float = OVERLAP_SECONDS) -> list[tuple[int, int]]:  # fmt: skip
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


# ---------------------------------------------------------------- the whole dataset


@dataclass
class PreprocessReport:
    """What one preprocessing run did.

    ``failed`` holds (source file, reason) for files that could not be read;
    ``dropped`` holds (source file and time range, reason) for pieces not written,
    the reason starting with its kind ("silent", "too loud after filtering",
    "too short", "silent file").  ``seconds`` is the run's wall time.
    ``audio_seconds`` is the total length of the written pieces (the 0.3 s overlaps
    count twice), ``unique_seconds`` the source time they cover (overlaps once).
    ``clipped`` holds (source file, clipped runs, clipped seconds).  Source names
    are relative to ``dataset_dir``.
    """

    sources_ok: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    pieces: int = 0
    dropped: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0
    sources: int = 0
    audio_seconds: float = 0.0
    unique_seconds: float = 0.0
    clipped: list[tuple[str, int, float]] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    cancelled: bool = False
    sample_rate: int = 0
    piece_seconds: float = PIECE_SECONDS
    overlap_seconds: float = OVERLAP_SECONDS
    dataset_dir: str = ""

    def text(self) -> str:
        """A human-readable summary: counts first, then one line per failure, dropped piece and clipped file."""
        lines = [
            f"{self.sources_ok} of {self.sources} files read, {self.pieces} pieces written "
            f"({self.unique_seconds / 60:.1f} min of audio) in {self.seconds:.1f} s"
        ]
        if self.cancelled:
            lines.append("Cancelled: not every file was processed; run preprocessing again before training.")
        if self.failed:
            lines.append(f"Could not read {len(self.failed)} file(s):")
            lines += [f"  {name}: {reason}" for name, reason in self.failed]
        if self.dropped:
            lines.append(f"Dropped {len(self.dropped)} piece(s):")
            lines += [f"  {name}: {reason}" for name, reason in self.dropped]
        if self.clipped:
            lines.append(f"Clipping in {len(self.clipped)} file(s):")
            lines += [f"  {name}: {runs} clipped run(s), {secs:.3f} s" for name, runs, secs in self.clipped]
        if self.ignored:
            lines.append(f"Ignored {len(self.ignored)} file(s) that are not audio: {', '.join(self.ignored)}")
        return "\n".join(lines)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the report as UTF-8 JSON (atomically)."""
        from infer.atomic import atomic_write_text  # imports torch: kept out of the spawned workers

        return atomic_write_text(json.dumps(asdict(self), indent=1, ensure_ascii=False), path)

    @classmethod
    def load(cls, path: str | os.PathLike) -> PreprocessReport:
        """Read a report written by :meth:`save`; raises ValueError naming the file if it is unreadable."""
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
            report = cls(**data)
        except (OSError, ValueError, TypeError) as exc:
            raise ValueError(
                f"Cannot read the preprocessing report '{path}' ({exc}); run preprocessing again."
            ) from exc
        report.failed = [tuple(item) for item in report.failed]
        report.dropped = [tuple(item) for item in report.dropped]
        report.clipped = [tuple(item) for item in report.clipped]
        return report


def list_sources(dataset_dir: Path, exclude: Path | None = None) -> tuple[list[Path], list[Path]]:
    """(audio candidates, ignored non-audio files) under ``dataset_dir``, sorted by relative path.

    Sub-folders are searched; hidden files and folders (name starting with ".") and
    anything inside ``exclude`` are left out.  Files with a typical non-audio suffix
    (text, images, playlists, archives) are returned as ignored.
    """
    found: list[Path] = []
    excluded = exclude.resolve() if exclude is not None else None
    for folder, subfolders, names in os.walk(dataset_dir):
        folder_path = Path(folder)
        subfolders[:] = [
            name for name in subfolders
            if not name.startswith(".") and (folder_path / name).resolve() != excluded
        ]  # fmt: skip
        found += [folder_path / name for name in names if not name.startswith(".") and (folder_path / name).is_file()]
    found.sort(key=lambda path: path.relative_to(dataset_dir).parts)
    audio = [path for path in found if path.suffix.lower() not in NOT_AUDIO_SUFFIXES]
    return audio, [path for path in found if path.suffix.lower() in NOT_AUDIO_SUFFIXES]


def _available_memory() -> int | None:
    """Bytes of memory available now (``MemAvailable`` on Linux, free pages elsewhere), None if unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _cpu_count() -> int:
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def worker_bytes(seconds: float, sample_rate: int, source_rate: int = 48000, channels: int = 2) -> int:
    """Estimated peak memory of one worker preprocessing a source of ``seconds`` (bytes)."""
    decoded = source_rate * channels * 4 * 2  # the decoded source and its mono mix, float32
    return int(WORKER_BASE_BYTES + seconds * (decoded + sample_rate * 4 * MEMORY_FACTOR))


def plan_workers(
    n_files: int, largest_bytes: int, *, cpus: int | None = None, available_bytes: int | None = None
) -> int:
    """Worker processes: at most one per core and per file, and all together within half the available memory."""
    limit = max(1, min(cpus or _cpu_count(), n_files))
    if available_bytes is None:
        available_bytes = _available_memory()
    if available_bytes is None or largest_bytes <= 0:
        return limit
    return max(1, min(limit, int(available_bytes * 0.5 // largest_bytes)))


def _largest_source_bytes(files: list[Path], sample_rate: int) -> int:
    largest = 0
    for path in files:
        try:
            info = audio_info(path)
        except AudioFileError:
            continue  # reported by its worker
        seconds = info.duration if info.duration is not None else path.stat().st_size / 16000
        largest = max(largest, worker_bytes(seconds, sample_rate, info.sample_rate, info.channels))
    return largest


def _derived_folders(paths) -> list[Path]:
    """The folders a run replaces: its pieces, and the f0 and features later steps made from old pieces."""
    return [paths.gt_wavs, paths.wavs16k, paths.f0_coarse, paths.f0_hz, *sorted(paths.root.glob("3_feature*"))]


def _clear_outputs(paths) -> list[str]:
    """Empty the piece folders and remove stale derived folders; returns the names removed."""
    removed = []
    for folder in _derived_folders(paths):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder.name)
    (paths.root / REPORT_NAME).unlink(missing_ok=True)
    paths.gt_wavs.mkdir(parents=True)
    paths.wavs16k.mkdir(parents=True)
    return removed


def _remove_pieces(job: SourceJob) -> None:
    for folder in (job.gt_dir, job.wav16k_dir):
        for piece in Path(folder).glob(f"{job.index}_*.wav"):
            piece.unlink(missing_ok=True)


def _run_in_pool(jobs: list[SourceJob], workers: int, handle: Callable, cancel: Callable[[], bool]) -> None:
    """Process ``jobs`` in spawned processes, calling ``handle(result)`` here; ``cancel()`` is polled."""
    cancelled = False
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        pending: dict[Future, SourceJob] = {pool.submit(process_source, job): job for job in jobs}
        while pending:
            done, _ = wait(pending, timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f].index):
                job = pending.pop(future)
                try:
                    result = future.result()
                except Exception as exc:  # the worker process died (killed, out of memory, ...)
                    reason = f"its worker process stopped ({type(exc).__name__}: {exc}); try again with workers=1"
                    result = SourceResult(job.index, job.name, job.path, error=reason)
                handle(result)
            if not cancelled and cancel():
                cancelled = True
                for future in [f for f in pending if f.cancel()]:
                    del pending[future]
    finally:  # on an error here, files not started yet are not started; running ones finish
        pool.shutdown(wait=True, cancel_futures=True)


def _log_lines(result: SourceResult) -> list[str]:
    if result.error is not None:
        return [f"{result.path}\t-> {result.error}"]
    lines = [f"{result.path}\t-> Success" if result.pieces else f"{result.path}\t-> Success, but no pieces were kept"]
    lines += [f"  dropped {name}: {reason}" for name, reason in result.dropped]
    if result.clip_runs:
        lines.append(f"  clipping: {result.clip_runs} run(s), {result.clip_seconds:.3f} s")
    return lines


def _build_report(results: list[SourceResult], report: PreprocessReport) -> PreprocessReport:
    for result in sorted(results, key=lambda r: r.index):
        if result.error is not None:
            report.failed.append((result.name, result.error))
            continue
        report.sources_ok += 1
        report.pieces += result.pieces
        report.dropped += result.dropped
        report.audio_seconds += result.audio_seconds
        report.unique_seconds += result.unique_seconds
        if result.clip_runs:
            report.clipped.append((result.name, result.clip_runs, result.clip_seconds))
    return report


def preprocess_dataset(
    dataset_dir: str | os.PathLike,
    exp_dir: str | os.PathLike,
    sample_rate: int,
    *,
    workers: int | None = None,
    piece_seconds: float = PIECE_SECONDS,
    overlap_seconds: float = OVERLAP_SECONDS,
    min_piece_seconds: float = MIN_PIECE_SECONDS,
    progress: Progress | None = None,
    cancel: Callable[[], bool] | None = None,
    log: Callable[[str], None] | None = None,
) -> PreprocessReport:
    """Cut every recording under ``dataset_dir`` into training pieces in the experiment folder ``exp_dir``.

    Writes ``0_gt_wavs/<i>_<j>.wav`` (float32 at ``sample_rate`` Hz) and
    ``1_16k_wavs/<i>_<j>.wav`` (float32, 16 kHz) for piece j of the i-th source
    (sorted by relative path), ``preprocess.log`` (UTF-8) and
    ``preprocess_report.json``.  Old pieces, and the f0/features extracted from
    them, are removed first.  Pieces are ``piece_seconds`` long every
    ``piece_seconds - overlap_seconds``; pieces shorter than ``min_piece_seconds``
    are dropped.  ``workers`` None picks as many processes as cores and memory
    allow; 1 runs here.  ``progress(fraction, message)`` is called per finished
    source, ``cancel()`` is polled between files, ``log(line)`` receives the log lines.
    """
    from train.experiment import ExperimentPaths  # imports torch: kept out of the spawned workers

    started = time.monotonic()
    if (
        isinstance(sample_rate, bool)
        or not isinstance(sample_rate, (int, np.integer))
        or not 8000 <= sample_rate <= 384000
    ):
        raise PreprocessError(f"sample_rate must be an integer in Hz such as 40000, got {sample_rate!r}")
    sample_rate = int(sample_rate)
    if not 0 <= overlap_seconds < piece_seconds or not 0 < min_piece_seconds <= piece_seconds + overlap_seconds:
        raise PreprocessError(
            f"need 0 <= overlap_seconds < piece_seconds and 0 < min_piece_seconds <= piece + overlap, got "
            f"{overlap_seconds}, {piece_seconds}, {min_piece_seconds}"
        )
    dataset = Path(dataset_dir)
    if not dataset.is_dir():
        raise PreprocessError(f"Dataset folder '{dataset}' does not exist or is not a folder; check the path.")
    paths = ExperimentPaths(Path(exp_dir).absolute())
    inside = [f for f in _derived_folders(paths) if f.resolve() in (dataset.resolve(), *dataset.resolve().parents)]
    if inside:
        raise PreprocessError(
            f"The dataset folder '{dataset}' is inside '{inside[0]}', which preprocessing empties; "
            "move the recordings to a folder of their own."
        )
    files, ignored = list_sources(dataset, exclude=paths.root)
    if not files:
        raise PreprocessError(f"'{dataset}' contains no audio files; put the recordings (wav, flac, mp3, ...) in it.")
    paths.root.mkdir(parents=True, exist_ok=True)
    removed = _clear_outputs(paths)
    report = PreprocessReport(
        sources=len(files), ignored=[p.relative_to(dataset).as_posix() for p in ignored], sample_rate=sample_rate,
        piece_seconds=piece_seconds, overlap_seconds=overlap_seconds, dataset_dir=str(dataset),
    )  # fmt: skip
    jobs = [
        SourceJob(index, path.relative_to(dataset).as_posix(), str(path), str(paths.gt_wavs), str(paths.wavs16k),
                  sample_rate, piece_seconds, overlap_seconds, min_piece_seconds)
        for index, path in enumerate(files)
    ]  # fmt: skip
    if workers is None:
        many = min(_cpu_count(), len(files)) > 1
        workers = plan_workers(len(files), _largest_source_bytes(files, sample_rate)) if many else 1
    workers = max(1, min(int(workers), len(files)))
    results: list[SourceResult] = []
    with open(paths.preprocess_log, "w", encoding="utf-8") as log_file:

        def emit(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()
            if log is not None:
                log(line)

        def handle(result: SourceResult) -> None:
            if result.error is not None:
                _remove_pieces(jobs[result.index])
            results.append(result)
            for line in _log_lines(result):
                emit(line)
            if progress is not None:
                progress(len(results) / len(jobs), f"{len(results)}/{len(jobs)}: {result.name}")

        emit("start preprocess")
        emit(f"{dataset} -> {paths.root} at {sample_rate} Hz, {len(files)} file(s), {workers} worker(s)")
        if removed:
            emit(f"removed the previous run's {', '.join(removed)}")
        for name in report.ignored:
            emit(f"{dataset / name}\t-> ignored: not an audio file")
        should_stop = cancel or (lambda: False)
        if workers == 1:
            for job in jobs:
                if should_stop():
                    break
                handle(process_source(job))
        else:
            _run_in_pool(jobs, workers, handle, should_stop)
        report.cancelled = len(results) < len(jobs)
        _build_report(results, report)
        if report.cancelled:
            emit(f"cancelled: {len(jobs) - len(results)} of {len(jobs)} file(s) not processed")
        report.seconds = time.monotonic() - started
        report.save(paths.root / REPORT_NAME)
        emit(f"{report.pieces} pieces, {report.unique_seconds / 60:.1f} min of audio, {len(report.dropped)} dropped")
        emit("end preprocess")
    return report
