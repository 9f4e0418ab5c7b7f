"""Atomic file writes: a kill at any moment leaves either the old file or the new one."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _default_file_mode() -> int:
    """Mode a plain ``open(..., "w")`` would give: 0o666 minus the umask."""
    try:  # Linux exposes the umask without changing it
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return 0o666 & ~int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere read it by setting it (briefly)
    os.umask(mask)
    return 0o666 & ~mask


class NotARegularFileError(IsADirectoryError):
    """An output path that names a device, pipe, socket or folder: renaming over it would destroy it."""


def check_replaceable(path: str | Path) -> None:
    """Refuse ``path`` as an output unless it is missing or a regular file (a link is judged by its target).

    Raises :class:`NotARegularFileError` naming the path.
    """
    try:
        mode = os.stat(path).st_mode  # follows a symlink: a link to /dev/full is as bad as /dev/full
    except FileNotFoundError:
        return  # a new file, or a dangling link (replaced by the new file)
    except OSError as error:
        raise NotARegularFileError(f"Cannot use '{path}' as an output: {error.strerror}.") from error
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a device, pipe or socket"
        raise NotARegularFileError(
            f"'{path}' is {kind}, not a regular file; choose a file name for the output (nothing was written)."
        )


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    On any exception the temporary file is removed and ``path`` is untouched.
    The folder is created if needed.  Only a missing or regular file is ever
    replaced (:func:`check_replaceable`), before and again after writing.
    """
    path = Path(path)
    check_replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, _default_file_mode())  # mkstemp creates 0600 files
        check_replaceable(path)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through :func:`atomic_path`; returns ``path``."""
    import torch  # imported here so that importing this module stays cheap (worker processes)

    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        torch.save(obj, handle)  # a file object: the archive's inner folder is "archive", not the temp name
    return Path(path)


def atomic_write_text(text: str, path: str | Path) -> Path:
    """Write UTF-8 text atomically; returns ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)
