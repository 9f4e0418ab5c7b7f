"""Which server paths the web UI may read and write: the studio's own folders, never the rest of the disk.

Anyone who can reach the server's port can type a path into a box or send one
through the API, so every path that comes from a browser goes through a
:class:`PathPolicy` before it is opened:

- *read*: typed input files and folders (batch input, training data, a voice
  or checkpoint given by path) must lie inside a readable root: the weights,
  logs, assets and output folders, the studio's ``input/`` folder, and any
  folder the owner adds with ``--allow-path`` / ``RVC_INPUT_DIRS``;
- *write*: outputs go under the output folder (``opt/``), weights or logs;
- *names*: a save name is a file name, never a path.

Containment is checked on the resolved path (symlinks followed) before the
file system is asked whether the path exists, so a refusal says the same
thing for a file that exists and one that does not.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from config import Settings
from infer.audio import clean_path

INPUT_FOLDER = "input"
_BAD_NAME = re.compile(r'[\x00-\x1f<>:"/\\|?*]')
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(1, 10)), *(f"lpt{i}" for i in range(1, 10))}
MAX_NAME_LENGTH = 120


class OutsideStudioError(PermissionError):
    """A browser-given path outside the folders this server may use; the message says where files may go."""


def _inside(path: Path, roots: Iterable[Path]) -> bool:
    resolved = path.resolve()
    return any(resolved == root or resolved.is_relative_to(root) for root in roots)


@dataclass(frozen=True)
class PathPolicy:
    """The readable and writable roots of one server (from its :class:`Settings`, ``input_dirs`` included)."""

    settings: Settings

    @property
    def write_roots(self) -> tuple[Path, ...]:
        s = self.settings
        return tuple(p.resolve() for p in (s.output_dir, s.weights_dir, s.logs_dir))

    @property
    def read_roots(self) -> tuple[Path, ...]:
        s = self.settings
        folders = (*self.write_roots, s.assets_dir, s.root / INPUT_FOLDER, *s.input_dirs)
        return tuple(Path(p).resolve() for p in folders)

    def _where(self, roots: tuple[Path, ...]) -> str:
        return ", ".join(f"'{root}'" for root in roots)

    def readable(self, text: str | os.PathLike | None, what: str) -> Path:
        """The typed path ``text`` if it lies inside a readable root; relative paths start at the studio folder.

        Raises ``ValueError`` when empty and :class:`OutsideStudioError` (naming ``what`` and the
        allowed folders) when outside; existence is the caller's check.
        """
        cleaned = clean_path(str(text or ""))
        if not cleaned:
            raise ValueError(f"{what}: type a path or choose a file.")
        path = Path(cleaned).expanduser()
        if not path.is_absolute():
            path = self.settings.root / path
        if not _inside(path, self.read_roots):
            raise OutsideStudioError(
                f"{what}: '{cleaned}' is outside the folders this server reads ({self._where(self.read_roots)}). "
                f"Put the files in '{self.settings.root / INPUT_FOLDER}', upload them, or start the server "
                "with --allow-path FOLDER."
            )
        return path

    def writable_dir(self, text: str | os.PathLike | None, what: str) -> Path:
        """An output folder: relative paths start at the output folder; it must lie inside a writable root."""
        cleaned = clean_path(str(text or ""))
        base = self.settings.output_dir
        if cleaned in ("", "opt", "./opt"):
            return base
        path = Path(cleaned).expanduser()
        if not path.is_absolute():
            path = base / path
        if not _inside(path, self.write_roots):
            raise OutsideStudioError(
                f"{what}: '{cleaned}' is outside the folders this server writes ({self._where(self.write_roots)}). "
                f"Give a folder name (it goes under '{base}')."
            )
        return path

    def writable_file(self, path: Path, what: str) -> Path:
        """``path`` itself when it lies inside a writable root (for in-place edits of an existing file)."""
        if not _inside(path, self.write_roots):
            raise OutsideStudioError(
                f"{what}: '{path}' is outside the folders this server writes ({self._where(self.write_roots)})."
            )
        return path


def file_name(text: str | None, what: str, *, suffix: str = "") -> str:
    """A save name typed by the user, checked to be a plain file name (no folders, no ``..``).

    ``suffix`` (e.g. ``".pth"``) is removed when typed, so ``alice`` and ``alice.pth`` give ``alice``.
    Raises ``ValueError`` naming ``what`` and the rule.
    """
    name = clean_path(text or "").strip()
    if suffix and name.lower().endswith(suffix.lower()):
        name = name[: -len(suffix)]
    if not name:
        raise ValueError(f"{what}: type a name.")
    problem = None
    if name in (".", "..") or name.startswith(".") or _BAD_NAME.search(name):
        problem = "a name, not a path: no / \\ : * ? \" < > | and not starting with '.'"
    elif len(name) > MAX_NAME_LENGTH:
        problem = f"at most {MAX_NAME_LENGTH} characters"
    elif name.split(".")[0].lower() in _WINDOWS_RESERVED or name.endswith((" ", ".")):
        problem = "a name Windows accepts (not CON, NUL, COM1 ..., not ending in a space or dot)"
    if problem:
        raise ValueError(f"{what}: '{name}' must be {problem}.")
    return name
