"""``logs/<exp>/filelist.txt``: the training list (spec §1.5), always written as UTF-8.

One sample per line, fields joined by ``|``, absolute paths::

    <gt wav>|<features .npy>|<2a_f0 .wav.npy>|<2b-f0nsf .wav.npy>|<speaker id>   (with pitch)
    <gt wav>|<features .npy>|<speaker id>                                         (without pitch)

A slice is listed when all its files exist: ``0_gt_wavs/<name>.wav``,
``3_feature{256|768}/<name>.npy`` and, with pitch, ``2a_f0/<name>.wav.npy`` and
``2b-f0nsf/<name>.wav.npy``.  Two lines pointing at the mute sample are added,
the lines are shuffled and joined with ``\\n`` without a trailing newline.

Differences from RVC, on purpose: the file is UTF-8 on every platform (RVC used
the platform encoding, so non-ASCII paths broke on Windows: FAQ Q1), backslashes
are not doubled, and slices left out are reported instead of dropped silently.
"""

from __future__ import annotations

import codecs
import locale
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from infer.atomic import atomic_write_text
from infer.models.config import FEATURE_DIMS
from train.experiment import ExperimentPaths
from train.mute import MuteSample

# Tried in order when a list is not UTF-8: the platform's own, then what RVC users' Windows machines use.
_FALLBACK_ENCODINGS = ("gbk", "big5", "shift_jis", "cp1252", "latin-1")


class FilelistError(ValueError):
    """The filelist cannot be written or read; the message says what to do."""


@dataclass(frozen=True)
class FilelistEntry:
    """One training sample: ground-truth audio, content features, optional pitch files, speaker id."""

    gt_wav: Path
    features: Path
    f0_coarse: Path | None
    f0_hz: Path | None
    speaker_id: int

    @property
    def has_f0(self) -> bool:
        return self.f0_coarse is not None and self.f0_hz is not None

    def line(self) -> str:
        """The entry as one filelist line (5 fields with pitch, 3 without)."""
        pitch = [str(self.f0_coarse), str(self.f0_hz)] if self.has_f0 else []
        return "|".join([str(self.gt_wav), str(self.features), *pitch, str(self.speaker_id)])


def _names(folder: Path, suffix: str) -> set[str]:
    """Names of the files ``<name><suffix>`` in ``folder`` (hidden and temporary files ignored)."""
    if not folder.is_dir():
        return set()
    return {
        p.name[: -len(suffix)]
        for p in folder.iterdir()
        if p.name.endswith(suffix) and not p.name.startswith(".") and len(p.name) > len(suffix)
    }


def _sources(paths: ExperimentPaths, version: str, use_f0: bool) -> list[tuple[Path, str, str]]:
    """(folder, file suffix, what makes these files) for every folder a sample needs."""
    sources = [
        (paths.gt_wavs, ".wav", "preprocessing"),
        (paths.features(version), ".npy", "feature extraction"),
    ]
    if use_f0:
        sources += [(paths.f0_coarse, ".wav.npy", "pitch extraction"), (paths.f0_hz, ".wav.npy", "pitch extraction")]
    return sources


def experiment_entries(
    exp_dir: str | Path, version: str, use_f0: bool, speaker_id: int
) -> tuple[list[FilelistEntry], list[str]]:
    """The complete samples of an experiment (sorted by name), and one line per incomplete one saying why."""
    if version not in FEATURE_DIMS:
        raise ValueError(f"Unknown model version {version!r}; use v1 or v2.")
    paths = ExperimentPaths(Path(exp_dir).absolute())
    sources = _sources(paths, version, use_f0)
    found = [_names(folder, suffix) for folder, suffix, _ in sources]
    complete = set.intersection(*found)
    dropped = []
    for name in sorted(set.union(*found) - complete):
        missing = [
            f"{folder.name} ({step} failed or was not run)"
            for (folder, _, step), names in zip(sources, found)
            if name not in names
        ]
        dropped.append(f"{name}: not in {', '.join(missing)}")
    entries = [
        FilelistEntry(
            gt_wav=paths.gt_wavs / f"{name}.wav",
            features=paths.features(version) / f"{name}.npy",
            f0_coarse=paths.f0_coarse / f"{name}.wav.npy" if use_f0 else None,
            f0_hz=paths.f0_hz / f"{name}.wav.npy" if use_f0 else None,
            speaker_id=speaker_id,
        )
        for name in sorted(complete)
    ]
    return entries, dropped


def write_filelist(
    exp_dir: str | Path,
    version: str,
    use_f0: bool,
    speaker_id: int,
    mute: MuteSample,
    *,
    mute_copies: int = 2,
    seed: int | None = None,
) -> tuple[int, list[str]]:
    """Write ``<exp_dir>/filelist.txt`` (UTF-8, atomically); returns (lines written, slices left out + why).

    The line count includes the ``mute_copies`` mute lines.  ``seed`` makes the
    shuffle repeatable (None: a fresh random order, as RVC).  Raises
    :class:`FilelistError` when no slice is complete, when a mute file is
    missing, or when the mute features' width differs from the experiment's.
    """
    if mute_copies < 0:
        raise ValueError(f"mute_copies must be >= 0, got {mute_copies}")
    paths = ExperimentPaths(Path(exp_dir).absolute())
    entries, dropped = experiment_entries(paths.root, version, use_f0, speaker_id)
    if not entries:
        folders = ", ".join(folder.name for folder, _, _ in _sources(paths, version, use_f0))
        raise FilelistError(
            f"No slice of '{paths.root}' has all of its files ({folders}); run preprocessing and extraction first."
        )
    mute_entry = FilelistEntry(
        mute.gt_wav, mute.features, mute.f0_coarse if use_f0 else None, mute.f0_hz if use_f0 else None, speaker_id
    )
    if mute_copies:
        _check_mute(mute_entry, entries[0])
    lines = [entry.line() for entry in entries] + [mute_entry.line()] * mute_copies
    random.Random(seed).shuffle(lines)
    atomic_write_text("\n".join(lines), paths.filelist)
    return len(lines), dropped


def _check_mute(mute: FilelistEntry, sample: FilelistEntry) -> None:
    needed = [mute.gt_wav, mute.features] + ([mute.f0_coarse, mute.f0_hz] if mute.has_f0 else [])
    missing = [str(p) for p in needed if p is None or not Path(p).is_file()]
    if missing:
        raise FilelistError(f"The mute sample is incomplete (missing {', '.join(missing)}); call ensure_mute first.")
    mute_width = np.load(mute.features, mmap_mode="r", allow_pickle=False).shape[-1]
    width = np.load(sample.features, mmap_mode="r", allow_pickle=False).shape[-1]
    if mute_width != width:
        raise FilelistError(
            f"The mute features '{mute.features}' are {mute_width} wide but this experiment's are {width}: "
            "make the mute sample with the content encoder used for extraction (ensure_mute)."
        )


def _parse(text: str, source: Path) -> list[FilelistEntry]:
    entries = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.rstrip("\r")
        if not line.strip():
            continue
        fields = line.split("|")
        if len(fields) not in (3, 5):
            raise FilelistError(
                f"{source}, line {number}: expected 5 fields (with pitch) or 3 (without), got {len(fields)}."
            )
        try:
            speaker = int(fields[-1])
        except ValueError:
            raise FilelistError(f"{source}, line {number}: the speaker id {fields[-1]!r} is not an integer.") from None
        f0 = (Path(fields[2]), Path(fields[3])) if len(fields) == 5 else (None, None)
        entries.append(FilelistEntry(Path(fields[0]), Path(fields[1]), *f0, speaker))
    return entries


def _candidate_encodings() -> list[str]:
    names = ["utf-8-sig", locale.getpreferredencoding(False), *_FALLBACK_ENCODINGS]
    unique: dict[str, str] = {}
    for name in names:
        try:
            unique.setdefault(codecs.lookup(name).name, name)
        except LookupError:
            continue
    return list(unique.values())


def read_filelist(path: str | Path, *, encoding: str | None = None) -> list[FilelistEntry]:
    """Parse a filelist, in file order.

    Without ``encoding``: UTF-8 (ours, BOM allowed), else the platform encoding,
    then GBK, Big5, Shift-JIS, cp1252 (lists RVC wrote on Windows).  When several
    of these decode the bytes, the first whose paths all exist on this machine is
    taken, else the first that decodes.
    """
    path = Path(path)
    data = path.read_bytes()
    if encoding is not None:
        return _parse(data.decode(encoding), path)
    parsed, errors = [], []
    for candidate in _candidate_encodings():
        try:
            entries = _parse(data.decode(candidate), path)
        except UnicodeDecodeError:
            continue
        except FilelistError as exc:
            errors.append(exc)
            continue
        if all(entry.gt_wav.exists() and entry.features.exists() for entry in entries):
            return entries
        parsed.append(entries)
    if parsed:
        return parsed[0]
    raise errors[0]  # latin-1 decodes any bytes, so a parse error is what stopped every candidate
