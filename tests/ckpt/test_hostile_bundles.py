"""Hostile bundles are refused before anything lands outside (or inside) the target folders.

Each test snapshots every file under the test's tmp folder, runs the import,
and checks that the refusal changed nothing but, at most, an empty weights folder.
"""

from __future__ import annotations

import os
import stat
import zipfile
import zlib
from pathlib import Path

import pytest
import torch

from infer.ckpt import CkptError, UnsafeZipError, import_bundle
from infer.ckpt.zipsafe import MAX_RATIO
from tests.ckpt.helpers import patch_sizes, raw_zip, zeros_bomb, zip_files

GiB = 1 << 30


def _snapshot(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "outside.txt").write_text("keep me")
    return {"weights_dir": tmp_path / "install" / "weights", "indices_dir": tmp_path / "install" / "indices"}


def _refused(archive: Path, setup: dict[str, Path], error: type[Exception], match: str) -> None:
    root = archive.parent
    before = _snapshot(root)
    with pytest.raises(error, match=match):
        import_bundle(archive, **setup)
    assert _snapshot(root) == before, "the refused import changed files"
    weights = setup["weights_dir"]
    assert not weights.exists() or list(weights.iterdir()) == [], list(weights.iterdir())
    assert not setup["indices_dir"].exists()


@pytest.mark.parametrize(
    "name", ["../../evil.pth", "/tmp/evil.pth", "C:/evil.pth", "voice/..\\..\\evil.pth", "ok/../../evil.index"]
)
def test_path_traversal(tmp_path, setup, voice_a, name):
    archive = zip_files(tmp_path / "escape.zip", {"voice/voice.pth": voice_a, name: b"x"})
    _refused(archive, setup, UnsafeZipError, "outside the folder")
    assert not (tmp_path / "evil.pth").exists()


def test_symbolic_link_entry(tmp_path, setup, voice_a):
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(voice_a, "voice/voice.pth")
        link = zipfile.ZipInfo("voice/voice.index")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    _refused(archive, setup, UnsafeZipError, "symbolic link")


class _RunsCode:
    """Pickles as a call to os.system: loading this file with plain torch.load would run the command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch '{self.marker}'",))


def test_pickle_with_code(tmp_path, setup, voice_a):
    marker = tmp_path / "code_ran"
    evil = tmp_path / "build" / "voice.pth"
    evil.parent.mkdir()
    payload = torch.load(voice_a, weights_only=True)
    payload["info"] = _RunsCode(marker)
    torch.save(payload, evil)
    archive = zip_files(tmp_path / "pickle.zip", {"voice/voice.pth": evil})
    _refused(archive, setup, CkptError, r"references to Python code \(posix.system|nt.system")
    assert not marker.exists()


def test_zip_bomb_of_2_gib(tmp_path, setup):
    """A real deflate stream of 2 GiB of zeros (about 2 MB on disk) is refused before inflating a byte."""
    archive = zeros_bomb(tmp_path / "bomb.zip", "voice/voice.index", 2 * GiB)
    assert archive.stat().st_size < 4 << 20
    info = zipfile.ZipFile(archive).getinfo("voice/voice.index")
    assert info.file_size == 2 * GiB and info.file_size / info.compress_size > MAX_RATIO
    _refused(archive, setup, UnsafeZipError, "zip bomb")


def test_bomb_builder_makes_valid_zips(tmp_path):
    """The builder above writes a genuine archive: a smaller one inflates to the promised zeros with a good CRC."""
    small = zeros_bomb(tmp_path / "small.zip", "z.bin", 64 << 20)
    with zipfile.ZipFile(small) as zf, zf.open("z.bin") as handle:
        total = 0
        while chunk := handle.read(8 << 20):
            assert not any(chunk)
            total += len(chunk)
    assert total == 64 << 20


def test_forged_huge_size(tmp_path, setup, voice_a):
    """Headers claiming a 3 GiB model (stored, so no compression ratio to notice) are refused by the size limit."""
    archive = zip_files(tmp_path / "huge.zip", {"voice/voice.pth": voice_a})
    patch_sizes(archive, "voice/voice.pth", size=3 * GiB, compressed=3 * GiB)
    _refused(archive, setup, UnsafeZipError, "claims 3.00 GiB")


def test_header_that_understates_the_size(tmp_path, setup):
    """An entry that inflates to far more than its header says is stopped while unpacking; nothing is kept."""
    data = bytes(8 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    payload = compressor.compress(data) + compressor.flush()
    archive = raw_zip(
        tmp_path / "liar.zip",
        "voice.pth",
        payload,
        method=8,
        crc=zlib.crc32(data),
        compressed=len(payload),
        size=len(payload),
    )  # claims ratio 1
    _refused(archive, setup, CkptError, "damaged|more bytes than its header")


@pytest.mark.parametrize("field", [{"name": "../../evil"}, {"name": "/tmp/evil"}, {"model": "../voice.pth"}])
def test_manifest_cannot_steer_files_outside(tmp_path, setup, voice_a, field):
    """A voice.json naming a path (not a plain name) for the voice or its model is refused; nothing moves."""
    import json

    manifest = {"format": "rvc-studio-voice", "format_version": 1, "name": "voice", "model": "voice.pth", **field}
    archive = zip_files(
        tmp_path / "steer.zip",
        {"x/voice.json": json.dumps(manifest).encode(), "x/voice.pth": voice_a, "voice.pth": voice_a},
    )
    _refused(archive, setup, CkptError, "cannot be used as a file name|not in the zip")
    assert not (tmp_path / "evil.pth").exists() and not list(tmp_path.rglob("evil*"))
