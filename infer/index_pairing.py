"""Finding index files and pairing them with voices by exact name (RVC used a substring match)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path

_RVC_NAME = re.compile(r"^(?P<prefix>.+?)_IVF\d+_Flat_nprobe_\d+_(?P<exp>.+)_v[12]$")
_TRAINER_SUFFIX = re.compile(r"_e\d+(?:_s\d+)?$")


def is_index_file(path: str | os.PathLike[str]) -> bool:
    """True for an existing file whose name ends in ``.index`` (any case); the content is not read."""
    path = Path(path)
    return path.suffix.lower() == ".index" and path.is_file()


def list_indexes(*dirs: str | os.PathLike[str]) -> list[Path]:
    """Usable ``.index`` files under ``dirs`` (recursive), sorted.

    ``trained_*`` files and dangling links are left out.  A file reached twice
    (overlapping folders, or RVC's link in ``assets/indices`` to a file in
    ``logs``) is listed once, under the first path met in ``dirs`` order.
    """
    return sorted(_unique_files(_walk_index_files(dirs)))


def _unique_files(paths: Iterable[Path]) -> list[Path]:
    """Drop ``trained_*``, dangling links and second paths to an already seen file, keeping order."""
    seen: set[object] = set()
    found: list[Path] = []
    for path in paths:
        if path.name.startswith("trained_"):
            continue
        try:
            stat = path.stat()
        except OSError:
            continue
        key = (stat.st_dev, stat.st_ino) if stat.st_ino else os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            found.append(path)
    return found


def _walk_index_files(dirs: Iterable[str | os.PathLike[str]]) -> Iterable[Path]:
    for root in map(Path, dirs):
        if root.is_file():
            if is_index_file(root):
                yield root
            continue
        for folder, subdirs, files in os.walk(root):
            subdirs.sort()
            for name in sorted(files):
                candidate = Path(folder, name)
                if is_index_file(candidate):
                    yield candidate


def index_experiment_name(path: str | os.PathLike[str]) -> str | None:
    """The experiment an index was built for, from its file name.

    ``added_IVF256_Flat_nprobe_1_<exp>_v2.index`` (also ``trained_…``) and RVC's
    ``assets/indices`` link name ``<exp>_IVF256_Flat_nprobe_1_<exp>_v2.index``
    give ``<exp>``; any other name gives its stem (``alice.index`` -> ``alice``).
    """
    stem = Path(path).stem
    match = _RVC_NAME.match(stem)
    if match:
        return match.group("exp")
    return stem or None


def _strip_trainer_suffix(name: str) -> str:
    """``alice_e20_s400`` / ``alice_e20`` -> ``alice`` (names of RVC's per-epoch small models)."""
    return _TRAINER_SUFFIX.sub("", name)


def find_index_for_voice(
    voice_path: str | os.PathLike[str], search_dirs: Iterable[str | os.PathLike[str]]
) -> Path | None:
    """The index that belongs to the voice ``<dir>/<name>.pth``, or ``None``.

    Exact pairing only, never a substring match.  An index qualifies when its
    experiment name (:func:`index_experiment_name`) equals ``<name>`` or ``<name>``
    without a trainer suffix ``_e<epoch>[_s<step>]``, or when it lies in a folder
    (below a search dir) named like that.  Indexes directly in the voice's folder
    are always considered.  Preference: same folder as the voice, then ``added_``
    files, then the newest file, then the path.
    """
    voice_path = Path(voice_path)
    names = {voice_path.stem, _strip_trainer_suffix(voice_path.stem)} - {""}
    voice_dir = voice_path.parent
    if isinstance(search_dirs, (str, os.PathLike)):
        search_dirs = [search_dirs]
    roots = [Path(d) for d in search_dirs]
    siblings = sorted(p for p in voice_dir.glob("*") if is_index_file(p)) if voice_dir.is_dir() else []
    candidates = []
    for index_path in _unique_files([*siblings, *_walk_index_files(roots)]):
        if index_experiment_name(index_path) in names or _in_named_folder(index_path, roots, names):
            candidates.append(index_path)
    if not candidates:
        return None

    def preference(index_path: Path) -> tuple[bool, bool, float, str]:
        try:
            mtime = index_path.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (
            not _same_dir(index_path.parent, voice_dir),
            not index_path.name.startswith("added_"),
            -mtime,
            str(index_path),
        )

    return min(candidates, key=preference)


def _in_named_folder(index_path: Path, roots: list[Path], names: set[str]) -> bool:
    """True when a folder between a search root and the index is named exactly one of ``names``."""
    for root in roots:
        try:
            relative = index_path.relative_to(root)
        except ValueError:
            continue
        if any(part in names for part in relative.parts[:-1]):
            return True
    return False


def _same_dir(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve()
    except OSError:
        return a == b
