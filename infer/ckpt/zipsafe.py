"""Reading untrusted zip files: entry names that stay in their folder, bounded sizes, no zip bombs.

A voice bundle comes from strangers.  Before anything is extracted every
entry is checked: its name must stay inside the target folder (no absolute
paths, drive letters, ``..`` or links), it must not be encrypted, its declared
size must be within the limit for its kind, and it must not be compressed
beyond what real model data allows.  While extracting, the bytes written are
counted too, so an entry whose header lies about its size is stopped.
"""

from __future__ import annotations

import stat
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from infer.ckpt.common import CkptError

MiB = 1 << 20
GiB = 1 << 30
# Real model data barely compresses (fp16/fp32 weights and features: ratio ≈ 1.1).
MAX_RATIO = 100
RATIO_CHECK_FROM = 1 * MiB  # tiny text files may compress well
_CHUNK = 1 * MiB


class UnsafeZipError(CkptError):
    """The zip tries to write outside its folder, hides its size, or is a zip bomb; nothing was written."""


@dataclass(frozen=True)
class ZipMember:
    """One checked entry: its normalised path inside the zip and its sizes."""

    info: zipfile.ZipInfo
    path: PurePosixPath
    size: int
    compressed: int

    @property
    def name(self) -> str:
        return self.path.name


def _is_link(info: zipfile.ZipInfo) -> bool:
    mode = info.external_attr >> 16
    return info.create_system == 3 and stat.S_ISLNK(mode)


def safe_member_path(raw: str, zip_path: Path) -> PurePosixPath:
    """``raw`` as a relative path that stays inside the extraction folder, or :class:`UnsafeZipError`."""
    text = raw.replace("\\", "/")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    bad = (
        "\x00" in text
        or text.startswith("/")
        or (len(text) > 1 and text[1] == ":")  # C:... (a drive letter)
        or any(p == ".." for p in parts)
        or not parts
    )
    if bad:
        raise UnsafeZipError(
            f"Refused '{zip_path}': its entry {raw!r} would be written outside the folder it is unpacked into. "
            "Nothing was written. The file is damaged or hostile; do not use it."
        )
    return PurePosixPath(*parts)


def check_members(zf: zipfile.ZipFile, zip_path: Path) -> list[ZipMember]:
    """Every file entry of ``zf`` checked for names, links, encryption and compression ratio (folders skipped)."""
    members = []
    for info in zf.infolist():
        path = safe_member_path(info.filename, zip_path)
        if info.is_dir():
            continue
        if _is_link(info):
            raise UnsafeZipError(
                f"Refused '{zip_path}': its entry '{info.filename}' is a symbolic link, which could point outside "
                "the folder. Nothing was written."
            )
        if info.flag_bits & 0x1:
            raise CkptError(f"'{zip_path}' is password-protected ('{info.filename}'); unpack it yourself first.")
        if info.file_size > RATIO_CHECK_FROM and info.file_size > MAX_RATIO * max(info.compress_size, 1):
            raise UnsafeZipError(
                f"Refused '{zip_path}': its entry '{info.filename}' claims {info.file_size / MiB:.0f} MiB from "
                f"{info.compress_size / MiB:.2f} MiB of data, a compression no model file has (a zip bomb). "
                "Nothing was written."
            )
        members.append(ZipMember(info, path, int(info.file_size), int(info.compress_size)))
    return members


def check_size(member: ZipMember, limit: int, what: str, zip_path: Path) -> None:
    """Refuse ``member`` when it declares more than ``limit`` bytes."""
    if member.size > limit:
        raise UnsafeZipError(
            f"Refused '{zip_path}': '{member.info.filename}' claims {member.size / GiB:.2f} GiB, more than any "
            f"{what} needs ({limit / GiB:.2f} GiB at most). Nothing was written."
        )


def extract_member(
    zf: zipfile.ZipFile,
    member: ZipMember,
    dest: Path,
    zip_path: Path,
    on_bytes: Callable[[int], None] | None = None,
) -> Path:
    """Copy ``member`` to the file ``dest``, never writing more bytes than it declares.

    A mismatch of size or CRC raises :class:`UnsafeZipError` or :class:`CkptError`;
    the caller removes ``dest``'s folder on failure.
    """
    written = 0
    try:
        with zf.open(member.info) as source, open(dest, "wb") as target:
            while chunk := source.read(_CHUNK):
                written += len(chunk)
                if written > member.size:
                    raise UnsafeZipError(
                        f"Refused '{zip_path}': '{member.info.filename}' unpacks to more bytes than its header "
                        "says (a zip bomb or a damaged file). Nothing was kept."
                    )
                target.write(chunk)
                if on_bytes is not None:
                    on_bytes(len(chunk))
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        raise CkptError(
            f"'{zip_path}' is damaged: '{member.info.filename}' does not unpack ({exc}). Download it again."
        ) from exc
    if written != member.size:
        raise CkptError(f"'{zip_path}' is damaged: '{member.info.filename}' is shorter than its header says.")
    return dest
