"""Issue 11, finding 3: sample rates outside 8-384 kHz are refused at once; a maximum duration holds.

The duration limit is checked on the header and on the decoded count, so a
header that understates the length cannot get past it.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

import infer
from infer.audio import AudioFileError, audio_info, iter_audio, load_audio, save_audio
from tests import helpers
from tests.helpers import Installation

installation = helpers.installation  # module-scoped fixture from tests/helpers.py
pytestmark = pytest.mark.timeout(60)  # before the fix, a 1 Hz header hung the decoder


def _wav(path: Path, rate: int, payload: bytes) -> Path:
    fmt = struct.pack("<HHIIHH", 1, 1, rate, rate * 2, 2, 16)
    header = b"RIFF" + struct.pack("<I", 36 + len(payload)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt
    path.write_bytes(header + b"data" + struct.pack("<I", len(payload)) + payload)
    return path


@pytest.mark.parametrize(("rate", "name"), [(1, "one_hz.wav"), (4000, "low.wav"), (1_000_000, "high.wav")])
def test_rates_outside_the_range_are_refused_by_every_reader(tmp_path: Path, rate: int, name: str) -> None:
    path = _wav(tmp_path / name, rate, np.zeros(96_000, "<i2").tobytes())
    for read in (audio_info, load_audio, lambda p: next(iter_audio(p))):
        with pytest.raises(AudioFileError, match=rf"{name}' says its sample rate is {rate} Hz; .*8000 to 384000"):
            read(path)


def test_the_range_ends_are_accepted(tmp_path: Path) -> None:
    for rate in (8000, 384000):
        path = save_audio(tmp_path / f"r{rate}.wav", np.zeros(rate // 10, np.float32), rate)
        assert audio_info(path).sample_rate == rate


@pytest.fixture(scope="module")
def job(installation: Installation):
    return infer.prepare(installation.voices["alice"], installation.cache(), infer.ConvertParams(f0_method="pm"))


def _tone(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    return save_audio(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)


def test_a_long_input_is_refused_by_its_header(job, tmp_path: Path) -> None:
    source = _tone(tmp_path / "long.wav", 3.0)
    with pytest.raises(infer.ConversionError, match=r"long.wav' is 3 s long; this server converts at most 2 s"):
        infer.convert_file(job, source, tmp_path / "out" / "r.wav", max_seconds=2)
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_header_that_understates_the_length_is_caught_while_decoding(job, tmp_path: Path) -> None:
    source = _tone(tmp_path / "liar.wav", 3.0)
    data = bytearray(source.read_bytes())
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)  # data size unknown: the header no longer gives the length
    source.write_bytes(bytes(data))
    for block_seconds in (300.0, 1.0):  # the whole-input path and the block-by-block path
        with pytest.raises(infer.ConversionError, match="this server converts at most 2 s"):
            infer.convert_file(job, source, tmp_path / "r.wav", max_seconds=2, max_block_seconds=block_seconds)
        assert not (tmp_path / "r.wav").exists()


def test_inputs_within_the_limit_convert(job, tmp_path: Path) -> None:
    source = _tone(tmp_path / "ok.wav", 1.0)
    result = infer.convert_file(job, source, tmp_path / "r.wav", max_seconds=2)
    assert result.output_path == tmp_path / "r.wav" and (tmp_path / "r.wav").stat().st_size > 0


def test_the_output_may_not_be_the_input(job, tmp_path: Path) -> None:
    source = _tone(tmp_path / "song.wav", 1.0)
    before = source.read_bytes()
    with pytest.raises(FileExistsError, match="is the input file itself"):
        infer.convert_file(job, source, source, overwrite=True)
    assert source.read_bytes() == before
