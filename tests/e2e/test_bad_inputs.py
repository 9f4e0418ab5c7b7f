"""Bad inputs get one clear error that names the file and says what to do, and leave no output behind.

Each case runs through the Python API (the exception and its message) and
through ``python -m infer convert`` in-process (exit code 1, one ``error:``
line on stderr, no traceback).  The output goes to a fresh folder that must
stay empty: no result, no half-written or hidden temporary file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import infer
from infer.__main__ import main
from infer.audio import save_audio
from tests import helpers
from tests.helpers import Installation

installation = helpers.installation  # module-scoped fixture from tests/helpers.py


def _tone(path: Path, seconds: float) -> Path:
    t = np.arange(int(seconds * 16000)) / 16000
    return save_audio(path, (0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32), 16000)


def _corrupt_header(path: Path) -> Path:
    _tone(path, 1.0)
    data = path.read_bytes()
    path.write_bytes(data[:12] + b"\xff" * 32 + data[44:])  # the fmt chunk is garbage
    return path


def _empty(path: Path) -> Path:
    path.write_bytes(b"")
    return path


def _text_as_wav(path: Path) -> Path:
    path.write_text("These are lyrics, not audio.\n" * 20, encoding="utf-8")
    return path


# name -> (make the input in a folder, words the message must contain besides the file name)
AUDIO_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "missing": (lambda d: d / "missing.wav", ("not found", "Check the path")),
    "empty": (lambda d: _empty(d / "empty.wav"), ("empty (0 bytes)", "Copy it again")),
    "too_short": (lambda d: _tone(d / "short.wav", 0.1), ("too short", "at least 0.5 s")),
    "silence": (
        lambda d: save_audio(d / "silence.wav", np.zeros(16000, np.float32), 16000),
        ("is silent", "no voice to convert"),
    ),
    "corrupt_header": (lambda d: _corrupt_header(d / "corrupt.wav"), ("Cannot decode", "convert it to WAV/FLAC")),
    "text_as_wav": (lambda d: _text_as_wav(d / "lyrics.wav"), ("Cannot decode", "not audio")),
}


@pytest.fixture(scope="module")
def cache(installation: Installation):
    return installation.cache()


@pytest.fixture
def env(installation: Installation, monkeypatch: pytest.MonkeyPatch) -> Installation:
    installation.set_env(monkeypatch)
    return installation


def _assert_clear(message: str, source: Path, words: tuple[str, ...]) -> None:
    assert str(source) in message or source.name in message, message
    for word in words:
        assert word in message, message


def _assert_one_error_line(stderr: str) -> None:
    """The error is the last line and the only one (an "index: ..." note may come first)."""
    lines = stderr.splitlines()
    assert [line for line in lines if line.startswith("error: ")] == lines[-1:], stderr


@pytest.mark.parametrize("case", list(AUDIO_CASES))
def test_bad_audio_through_the_api(installation, cache, tmp_path, case):
    make, words = AUDIO_CASES[case]
    source = make(tmp_path)
    out_dir = tmp_path / "out"
    job = infer.prepare(installation.voices["alice"], cache, infer.ConvertParams(f0_method="pm"))
    with pytest.raises(ValueError) as caught:  # AudioFileError and ConversionError are ValueErrors
        infer.convert_file(job, source, out_dir / "result.wav")
    assert type(caught.value).__name__ in ("AudioFileError", "ConversionError")
    _assert_clear(str(caught.value), source, words)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.mark.parametrize("case", list(AUDIO_CASES))
def test_bad_audio_through_the_cli(env, tmp_path, capsys, case):
    make, words = AUDIO_CASES[case]
    source = make(tmp_path)
    out_dir = tmp_path / "out"
    code = main(
        ["convert", "--voice", "alice", "--input", str(source), "--output", str(out_dir / "r.wav"), "--f0-method", "pm"]
    )
    captured = capsys.readouterr()
    assert code == 1 and captured.out == "" and "Traceback" not in captured.err
    _assert_one_error_line(captured.err)
    _assert_clear(captured.err, source, words)
    assert not out_dir.exists() or list(out_dir.iterdir()) == []


@pytest.fixture
def g_checkpoint(tmp_path: Path) -> Path:
    from infer.checkpoints import TrainCheckpoint, write_checkpoint
    from infer.testing.synth import tiny_synthesizer

    return write_checkpoint(TrainCheckpoint(model=tiny_synthesizer().state_dict(), iteration=3), tmp_path / "G_3.pth")


def test_index_of_the_wrong_size_through_the_api(installation, cache):
    wrong = installation.indexes["wrong_dim"]
    with pytest.raises(ValueError) as caught:
        infer.prepare(installation.voices["alice"], cache, infer.ConvertParams(), index=wrong)
    _assert_clear(str(caught.value), wrong, ("16-d", "32-d", "pick the index trained for this voice"))


def test_training_checkpoint_as_voice_through_the_api(cache, g_checkpoint):
    with pytest.raises(infer.ModelFileError) as caught:
        infer.prepare(g_checkpoint, cache, infer.ConvertParams())
    _assert_clear(str(caught.value), g_checkpoint, ("training checkpoint", "Extract a small model"))


@pytest.mark.parametrize("problem", ["wrong_index", "checkpoint"])
def test_bad_models_through_the_cli(env, tmp_path, capsys, g_checkpoint, problem):
    source = _tone(tmp_path / "ok.wav", 1.0)
    out_dir = tmp_path / "out"
    argv = ["convert", "--input", str(source), "--output", str(out_dir / "r.wav"), "--f0-method", "pm"]
    if problem == "wrong_index":
        bad, words = env.indexes["wrong_dim"], ("16-d", "pick the index trained for this voice")
        argv += ["--voice", "alice", "--index", str(bad)]
    else:
        bad, words = g_checkpoint, ("training checkpoint", "Extract a small model")
        argv += ["--voice", str(bad)]
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 1 and captured.out == "" and "Traceback" not in captured.err
    _assert_one_error_line(captured.err)
    _assert_clear(captured.err, bad, words)
    assert not out_dir.exists()
