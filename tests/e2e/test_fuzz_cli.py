"""Fuzz-style: malformed inputs through ``python -m infer convert`` (in-process); with tests/webui/test_fuzz_api.py
well over a hundred cases through the CLI and the API.

Every case must end with exit code 1 or 2, no traceback, one ``error:`` line
that names the file or the field, and nothing written anywhere: not the
output folder, not the working folder, not the temporary folder, and no
marker file from a hostile pickle.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

from infer.__main__ import main
from tests import helpers
from tests.e2e import fuzz_cases
from tests.helpers import Installation

installation = helpers.installation  # module-scoped fixture from tests/helpers.py
GOOD_AUDIO = "good.wav"


pytestmark = pytest.mark.timeout(120)  # a hang is a failure too (finding 3: decoding a lying header)


@pytest.fixture
def sandbox(installation: Installation, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    """Folders of one case: inputs, outputs, the working folder and the temporary folder (all start empty)."""
    installation.set_env(monkeypatch)
    folders = {name: tmp_path / name for name in ("inputs", "out", "cwd", "tmp")}
    for folder in folders.values():
        folder.mkdir()
    monkeypatch.chdir(folders["cwd"])
    monkeypatch.setattr(tempfile, "tempdir", str(folders["tmp"]))
    fuzz_cases._write(GOOD_AUDIO, fuzz_cases._wav(16000, fuzz_cases._tone(1.5)))(folders["inputs"])
    return folders


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        code = exit_.code if isinstance(exit_.code, int) else 2
    captured = capsys.readouterr()
    return code, captured.err


def _convert(sandbox: dict[str, Path], *extra: str, source: Path | None = None, output: Path | None = None):
    source = source if source is not None else sandbox["inputs"] / GOOD_AUDIO
    output = output if output is not None else sandbox["out"] / "result.wav"
    return ["convert", "--voice", "alice", "--input", str(source), "--output", str(output), "--f0-method", "pm", *extra]


def assert_refused(code: int, stderr: str, names: tuple[str, ...], sandbox: dict[str, Path], *, out_files=()) -> None:
    assert code in (1, 2), f"exit {code}: {stderr}"
    assert "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if "error: " in line]
    assert len(errors) == 1, stderr
    message = errors[0].split("error: ", 1)[1]
    assert len(message) >= 25, f"too terse to act on: {message!r}"
    assert any(name.lower() in message.lower() for name in names), f"names none of {names}: {message}"
    assert sorted(p.name for p in sandbox["out"].iterdir()) == sorted(out_files), "something was written"
    for folder in ("cwd", "tmp"):
        left = [p.name for p in sandbox[folder].iterdir() if not p.name.startswith("torchinductor_")]  # torch's cache
        assert left == [], f"left files in the {folder} folder"
    assert not any(p.name == fuzz_cases.MARKER_NAME for p in sandbox["inputs"].parent.rglob("*")), "pickle ran code"


@pytest.mark.parametrize("case", list(fuzz_cases.AUDIO_CASES))
def test_malformed_audio(sandbox, capsys, case: str) -> None:
    source = fuzz_cases.AUDIO_CASES[case](sandbox["inputs"])
    code, err = _run(_convert(sandbox, source=source), capsys)
    assert_refused(code, err, (source.name,), sandbox)


def _model_cases() -> dict[str, Callable[[Path], Path]]:
    return fuzz_cases.model_cases(Path("/placeholder"))  # only the names; makers are rebuilt per test


@pytest.mark.parametrize("case", list(_model_cases()))
def test_malformed_voice_files(sandbox, installation: Installation, capsys, case: str) -> None:
    make = fuzz_cases.model_cases(installation.voices["alice"])[case]
    voice = make(sandbox["inputs"])
    argv = _convert(sandbox)
    argv[argv.index("--voice") + 1] = str(voice)
    code, err = _run(argv, capsys)
    assert_refused(code, err, (voice.name,), sandbox)


@pytest.mark.parametrize("case", list(fuzz_cases.INDEX_CASES))
def test_malformed_index_files(sandbox, capsys, case: str) -> None:
    index = fuzz_cases.INDEX_CASES[case](sandbox["inputs"])
    code, err = _run(_convert(sandbox, "--index", str(index)), capsys)
    assert_refused(code, err, (index.name,), sandbox)


PARAMETERS = [(flag, value) for flag, values in fuzz_cases.PARAMETER_CASES.items() for value in values]


@pytest.mark.parametrize(("flag", "value"), PARAMETERS, ids=[f"{f}={v}" for f, v in PARAMETERS])
def test_malformed_parameters(sandbox, capsys, flag: str, value: str) -> None:
    code, err = _run(_convert(sandbox, flag, value), capsys)
    names = fuzz_cases.field_words(flag)
    if flag == "--speaker-id":
        names += ("speaker",)
    assert_refused(code, err, names, sandbox)


def _fifo(folder: Path) -> Path:
    os.mkfifo(folder / "pipe.wav")
    return folder / "pipe.wav"


def test_output_onto_a_fifo_is_refused_and_the_fifo_stays(sandbox, capsys) -> None:
    fifo = _fifo(sandbox["out"])
    code, err = _run(_convert(sandbox, "--force", output=fifo), capsys)
    assert_refused(code, err, ("pipe.wav",), sandbox, out_files=("pipe.wav",))
    assert stat.S_ISFIFO(fifo.stat().st_mode)


def test_output_onto_a_folder_is_refused(sandbox, capsys) -> None:
    (sandbox["out"] / "taken.wav").mkdir()
    code, err = _run(_convert(sandbox, "--force", output=sandbox["out"] / "taken.wav"), capsys)
    assert_refused(code, err, ("taken.wav",), sandbox, out_files=("taken.wav",))


def test_output_over_the_input_is_refused(sandbox, capsys) -> None:
    source = sandbox["inputs"] / GOOD_AUDIO
    before = source.read_bytes()
    code, err = _run(_convert(sandbox, "--force", output=source), capsys)
    assert_refused(code, err, (GOOD_AUDIO,), sandbox)
    assert source.read_bytes() == before, "the input was overwritten"


def test_existing_output_without_force_is_kept(sandbox, capsys) -> None:
    (sandbox["out"] / "result.wav").write_bytes(b"keep me")
    code, err = _run(_convert(sandbox), capsys)
    assert_refused(code, err, ("result.wav",), sandbox, out_files=("result.wav",))
    assert (sandbox["out"] / "result.wav").read_bytes() == b"keep me"


BAD_PATHS: dict[str, Callable[[dict[str, Path]], tuple[list[str], tuple[str, ...]]]] = {
    "input_nul_byte": lambda s: (_convert(s, source=Path(str(s["inputs"]) + "/a\x00b.wav")), ("input", "a")),
    "input_very_long": lambda s: (_convert(s, source=s["inputs"] / ("x" * 5000 + ".wav")), ("input", "xxxx")),
    "output_nul_byte": lambda s: (_convert(s, output=Path(str(s["out"]) + "/r\x00.wav")), ("output", "r")),
    "output_very_long": lambda s: (_convert(s, output=s["out"] / ("y" * 5000 + ".wav")), ("output", "yyyy")),
    "output_unknown_suffix": lambda s: (_convert(s, output=s["out"] / "result.exe"), ("result.exe", "format")),
    "voice_escaping_weights": lambda s: (_swap(_convert(s), "--voice", "../../../etc/passwd"), ("passwd", "voice")),
    "voice_unknown_name": lambda s: (_swap(_convert(s), "--voice", "nobody"), ("nobody",)),
    "f0_curve_missing": lambda s: (_convert(s, "--f0-curve", str(s["inputs"] / "curve.txt")), ("curve.txt",)),
    "f0_curve_garbage": lambda s: (_convert(s, "--f0-curve", _garbage(s["inputs"] / "garbage.txt")), ("garbage.txt",)),
    "hubert_missing": lambda s: (_convert(s, "--hubert", str(s["inputs"] / "hubert.pt")), ("hubert.pt",)),
    "hubert_noise": lambda s: (_convert(s, "--hubert", _garbage(s["inputs"] / "noise_hubert.pt")), ("noise_hubert",)),
    "rmvpe_noise": lambda s: (
        _swap(_convert(s, "--rmvpe", _garbage(s["inputs"] / "noise_rmvpe.pt")), "--f0-method", "rmvpe"),
        ("noise_rmvpe",),
    ),
}


def _swap(argv: list[str], flag: str, value: str) -> list[str]:
    argv[argv.index(flag) + 1] = value
    return argv


def _garbage(path: Path) -> str:
    path.write_bytes(fuzz_cases._NOISE[:3000])
    return str(path)


@pytest.mark.parametrize("case", list(BAD_PATHS))
def test_malformed_paths(sandbox, capsys, case: str) -> None:
    argv, names = BAD_PATHS[case](sandbox)
    code, err = _run(argv, capsys)
    assert_refused(code, err, names, sandbox)
