"""The dataset check before training: how much usable audio there is, and what went wrong.

It reads what preprocessing wrote (``0_gt_wavs``, ``1_16k_wavs``) and its report
(passed in, or ``preprocess_report.json``), and warns about datasets that will
train badly: under 5 minutes of speech (FAQ Q10), everything dropped, clipping,
unreadable files, and pieces that would break training (NaN samples, as RVC writes
for silent pieces; a sample rate other than the experiment's; a missing 16 kHz copy).
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from train.experiment import ExperimentPaths
from train.preprocess import (
    OVERLAP_SECONDS,
    PIECE_SECONDS,
    PreprocessReport,
)

LOW_SECONDS = 5 * 60  # FAQ Q10: below 5 minutes the model is weak; 10-50 minutes are recommended
LOW_WARNING = "less than 5 minutes of usable speech: expect a weak model; 10-50 minutes are recommended (FAQ Q10)"


def drop_kind(reason: str) -> str:
    """The kind of a dropped-piece reason: the text before its first colon ("too short", "silent", ...)."""
    return reason.split(":", 1)[0].strip()


@dataclass
class DatasetCheck:
    """The check's numbers and warnings.

    ``usable_seconds`` is the source time covered by the pieces, counting the 0.3 s
    overlaps between neighbouring pieces once (what a person would call the length of
    the dataset); ``training_seconds`` is the plain sum of the pieces' lengths.
    ``dropped`` counts dropped pieces by kind; ``clipped_sources`` holds
    (source file, clipped runs, clipped seconds).  ``warnings`` are sentences for the user.
    """

    usable_seconds: float
    pieces: int
    dropped: dict[str, int]
    clipped_sources: list[tuple[str, int, float]]
    warnings: list[str]
    training_seconds: float = 0.0
    failed_sources: list[tuple[str, str]] = field(default_factory=list)

    @property
    def usable_minutes(self) -> float:
        return self.usable_seconds / 60

    @property
    def trainable(self) -> bool:
        """Whether there is anything to train on."""
        return self.pieces > 0

    def text(self) -> str:
        """A human-readable summary: numbers, then one line per warning."""
        lines = [f"{self.usable_minutes:.1f} min of usable audio in {self.pieces} pieces"]
        if self.dropped:
            kinds = ", ".join(f"{count} {kind}" for kind, count in sorted(self.dropped.items()))
            lines.append(f"Dropped pieces: {kinds}")
        for name, runs, seconds in self.clipped_sources:
            lines.append(f"Clipping in {name}: {runs} run(s), {seconds:.3f} s")
        lines += [f"Warning: {warning}" for warning in self.warnings]
        return "\n".join(lines)


@dataclass
class _Pieces:
    names: list[str] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)  # samples at the experiment's rate
    wrong_rate: dict[int, int] = field(default_factory=dict)  # rate -> count
    not_finite: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)


def _wav_names(folder: Path) -> list[str]:
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.suffix.lower() == ".wav" and not p.name.startswith("."))


def _scan_pieces(folder: Path, sample_rate: int) -> _Pieces:
    found = _Pieces()
    for name in _wav_names(folder):
        try:
            audio, rate = sf.read(folder / name, dtype="float32", always_2d=True)
        except (RuntimeError, OSError, ValueError):  # libsndfile errors are RuntimeErrors
            found.unreadable.append(name)
            continue
        found.names.append(name)
        if rate != sample_rate:
            found.wrong_rate[rate] = found.wrong_rate.get(rate, 0) + 1
        if not np.isfinite(audio).all():
            found.not_finite.append(name)
        found.lengths.append(audio.shape[0] if rate == sample_rate else round(audio.shape[0] * sample_rate / rate))
    return found


def _estimated_unique_seconds(found: _Pieces, sample_rate: int, report: PreprocessReport | None) -> float:
    """Without a matching report: a full-length piece ``<i>_<j>`` overlaps the next one, ``<i>_<j+1>``, if present."""
    piece = report.piece_seconds if report else PIECE_SECONDS
    overlap = report.overlap_seconds if report else OVERLAP_SECONDS
    full = int(piece * sample_rate)
    overlap_samples = full - int((piece - overlap) * sample_rate)
    names = set(found.names)
    overlapped = 0
    for name, length in zip(found.names, found.lengths):
        source, _, number = Path(name).stem.partition("_")
        if length == full and number.isdigit() and f"{source}_{int(number) + 1}.wav" in names:
            overlapped += 1
    return (sum(found.lengths) - overlap_samples * overlapped) / sample_rate


def _list(names: list[str], limit: int = 5) -> str:
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def check_dataset(exp_dir: str | os.PathLike, sample_rate: int, report: PreprocessReport | None = None) -> DatasetCheck:
    """Check the preprocessed pieces of the experiment ``exp_dir`` (model rate ``sample_rate`` Hz).

    Every ``0_gt_wavs/*.wav`` is read once (to find NaN samples and wrong rates).
    ``report`` defaults to the ``preprocess_report.json`` that preprocessing saved;
    without one, dropped pieces and clipping are unknown and the usable time is
    estimated from the piece lengths.
    """

    paths = ExperimentPaths(Path(exp_dir))
    warnings: list[str] = []
    if report is None and paths.preprocess_report.is_file():
        try:
            report = PreprocessReport.load(paths.preprocess_report)
        except ValueError as exc:
            warnings.append(str(exc))
    found = _scan_pieces(paths.gt_wavs, sample_rate)
    count = len(found.names)
    training_seconds = sum(found.lengths) / sample_rate
    matches = report is not None and report.pieces == count and report.sample_rate == sample_rate
    usable = report.unique_seconds if matches else _estimated_unique_seconds(found, sample_rate, report)
    dropped = dict(Counter(drop_kind(reason) for _, reason in report.dropped)) if report else {}

    if count == 0:
        if report is not None and report.sources:
            warnings.append(
                f"All audio was dropped: none of the {report.sources} file(s) gave a usable piece "
                "(the preprocessing report lists why); check that the recordings contain speech and are not silent."
            )
        else:
            warnings.append(f"No preprocessed pieces in '{paths.gt_wavs}': run preprocessing first.")
    elif usable < LOW_SECONDS:
        warnings.append(f"Only {usable / 60:.1f} min of audio, {LOW_WARNING}.")
    if report is None:
        warnings.append("No preprocessing report found: dropped pieces and clipping are unknown.")
    else:
        if report.cancelled:
            warnings.append("Preprocessing was cancelled, so some files are missing: run it again before training.")
        if report.sample_rate != sample_rate:
            warnings.append(
                f"Preprocessing ran at {report.sample_rate} Hz but the experiment is at {sample_rate} Hz: "
                f"run it again at {sample_rate} Hz."
            )
        elif report.pieces != count:
            warnings.append(
                f"The preprocessing report lists {report.pieces} pieces but {paths.gt_wavs.name} holds {count}: "
                "run preprocessing again."
            )
        if report.failed:
            names = [name for name, _ in report.failed]
            warnings.append(f"{len(names)} file(s) could not be read and were left out: {_list(names)}.")
        if report.clipped:
            seconds = sum(secs for _, _, secs in report.clipped)
            warnings.append(
                f"{len(report.clipped)} file(s) have clipping ({seconds:.3f} s in total): clipped recordings "
                "train a distorted voice; use cleaner takes or lower the recording level."
            )
    rate_known_wrong = report is not None and report.sample_rate != sample_rate
    for rate, n in sorted(found.wrong_rate.items()) if not rate_known_wrong else []:
        warnings.append(
            f"{n} piece(s) are at {rate} Hz, not {sample_rate} Hz: run preprocessing again at {sample_rate} Hz."
        )
    if found.not_finite:
        warnings.append(
            f"{len(found.not_finite)} piece(s) contain NaN or infinite samples ({_list(found.not_finite)}; "
            "RVC writes such pieces for silence) and would break training: run preprocessing again."
        )
    if found.unreadable:
        warnings.append(f"{len(found.unreadable)} piece(s) cannot be read: {_list(found.unreadable)}.")
    missing16k = sorted(set(found.names) - set(_wav_names(paths.wavs16k)))
    if missing16k:
        warnings.append(
            f"{len(missing16k)} piece(s) have no 16 kHz copy in {paths.wavs16k.name} ({_list(missing16k)}): "
            "run preprocessing again."
        )
    return DatasetCheck(
        usable_seconds=usable,
        pieces=count,
        dropped=dropped,
        clipped_sources=list(report.clipped) if report else [],
        warnings=warnings,
        training_seconds=training_seconds,
        failed_sources=list(report.failed) if report else [],
    )
