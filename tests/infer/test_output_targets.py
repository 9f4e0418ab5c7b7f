"""Issue 11, finding 2: outputs only ever replace regular files (never a device, pipe or folder)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest

from infer.atomic import NotARegularFileError, atomic_path, atomic_write_text, check_replaceable
from infer.audio import AudioWriter, save_audio


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "pipe.wav"
    os.mkfifo(path)
    return path


def _still_a_fifo(path: Path) -> bool:
    return stat.S_ISFIFO(os.lstat(path).st_mode)


def test_a_missing_or_regular_file_may_be_replaced(tmp_path: Path) -> None:
    check_replaceable(tmp_path / "new.wav")
    (tmp_path / "old.wav").write_bytes(b"x")
    check_replaceable(tmp_path / "old.wav")


@pytest.mark.parametrize("target", ["/dev/full", "/dev/null"])
def test_devices_are_refused(target: str) -> None:
    if not Path(target).exists():
        pytest.skip(f"{target} is not on this system")
    with pytest.raises(NotARegularFileError, match=f"'{target}' is a device, pipe or socket"):
        check_replaceable(target)


def test_atomic_writes_refuse_a_fifo_and_leave_it(fifo: Path) -> None:
    with pytest.raises(NotARegularFileError, match="pipe.wav"):
        atomic_write_text("data", fifo)
    assert _still_a_fifo(fifo)
    assert [p.name for p in fifo.parent.iterdir()] == ["pipe.wav"], "a temporary file was left behind"


def test_a_link_to_a_device_is_refused(tmp_path: Path) -> None:
    link = tmp_path / "out.wav"
    os.symlink("/dev/full", link)
    with pytest.raises(NotARegularFileError):
        with atomic_path(link) as tmp:
            tmp.write_bytes(b"never")
    assert os.path.islink(link)


def test_audio_writer_refuses_a_fifo_even_with_overwrite(fifo: Path) -> None:
    with pytest.raises(NotARegularFileError, match="not a regular file"):
        AudioWriter(fifo, 16000, overwrite=True)
    with pytest.raises(NotARegularFileError):
        save_audio(fifo, np.zeros(160, np.float32), 16000, overwrite=True)
    assert _still_a_fifo(fifo)
    assert [p.name for p in fifo.parent.iterdir()] == ["pipe.wav"]


def test_a_target_that_turns_into_a_fifo_while_writing_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "late.wav"
    writer = AudioWriter(target, 16000, overwrite=True)
    writer.write(np.zeros(1600, np.float32))
    os.mkfifo(target)
    with pytest.raises(NotARegularFileError):
        writer.close()
    assert _still_a_fifo(target)
    assert [p.name for p in tmp_path.iterdir()] == ["late.wav"]
