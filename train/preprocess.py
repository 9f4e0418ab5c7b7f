"""Training step 1: a folder of recordings -> ``0_gt_wavs`` and ``1_16k_wavs`` pieces (spec §2).

This module finds the source files, plans and runs the workers, and logs and
reports; what happens to each file (decoding, high-pass, slicing, pieces,
normalisation, writing) is in :mod:`train.preprocess_worker`.  Unlike RVC,
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

from infer.atomic import atomic_write_text
from train import resources
from train.experiment import ExperimentPaths
from train.preprocess_worker import (
    MIN_PIECE_SECONDS,
    OVERLAP_SECONDS,
    PIECE_SECONDS,
    SourceJob,
    SourceResult,
    find_clipping,
    highpass,
    normalize_piece,
    piece_problem,
    process_source,
    split_pieces,
)

__all__ = [
    "MIN_PIECE_SECONDS",
    "OVERLAP_SECONDS",
    "PIECE_SECONDS",
    "REPORT_NAME",
    "PreprocessError",
    "PreprocessReport",
    "SourceJob",
    "SourceResult",
    "find_clipping",
    "highpass",
    "list_sources",
    "normalize_piece",
    "piece_problem",
    "preprocess_dataset",
    "process_source",
    "split_pieces",
]

REPORT_NAME = ExperimentPaths(Path()).preprocess_report.name  # for callers that join it themselves
NOT_AUDIO_SUFFIXES = frozenset(
    ".txt .md .pdf .doc .docx .rtf .nfo .json .xml .csv .ini .db .cue .log .m3u .m3u8 .pls .lrc .srt .ass "
    ".jpg .jpeg .png .gif .bmp .webp .tif .tiff .ico .zip .rar .7z .gz .tar .exe .py .npy .pth .index".split()
)
_POLL_SECONDS = 0.2

Progress = Callable[[float, str], None]


class PreprocessError(ValueError):
    """Preprocessing cannot start (no dataset folder, no files, bad settings); the message says what to do."""


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
            name for name in subfolders if not name.startswith(".") and (folder_path / name).resolve() != excluded
        ]
        found += [folder_path / name for name in names if not name.startswith(".") and (folder_path / name).is_file()]
    found.sort(key=lambda path: path.relative_to(dataset_dir).parts)
    audio = [path for path in found if path.suffix.lower() not in NOT_AUDIO_SUFFIXES]
    return audio, [path for path in found if path.suffix.lower() in NOT_AUDIO_SUFFIXES]


def _derived_folders(paths: ExperimentPaths) -> list[Path]:
    """The folders a run replaces: its pieces, and the f0 and features later steps made from old pieces."""
    return [paths.gt_wavs, paths.wavs16k, paths.f0_coarse, paths.f0_hz, *sorted(paths.root.glob("3_feature*"))]


def _clear_outputs(paths: ExperimentPaths) -> list[str]:
    """Empty the piece folders and remove stale derived folders; returns the names removed."""
    removed = []
    for folder in _derived_folders(paths):
        if folder.is_dir():
            shutil.rmtree(folder)
            removed.append(folder.name)
    paths.preprocess_report.unlink(missing_ok=True)
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
        sources=len(files),
        ignored=[p.relative_to(dataset).as_posix() for p in ignored],
        sample_rate=sample_rate,
        piece_seconds=piece_seconds,
        overlap_seconds=overlap_seconds,
        dataset_dir=str(dataset),
    )
    jobs = [
        SourceJob(
            index,
            path.relative_to(dataset).as_posix(),
            str(path),
            str(paths.gt_wavs),
            str(paths.wavs16k),
            sample_rate,
            piece_seconds,
            overlap_seconds,
            min_piece_seconds,
        )
        for index, path in enumerate(files)
    ]
    if workers is None:
        many = min(resources.usable_cores(), len(files)) > 1
        if many:
            workers = resources.plan_workers(len(files), resources.largest_source_bytes(files, sample_rate))
        else:
            workers = 1
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
        report.save(paths.preprocess_report)
        emit(f"{report.pieces} pieces, {report.unique_seconds / 60:.1f} min of audio, {len(report.dropped)} dropped")
        emit("end preprocess")
    return report
