"""The command lines in-process: flags and defaults, exit codes, messages, JSON, progress, info, RVC's scripts."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from infer.__main__ import build_parser, main
from infer.audio import save_audio
from infer.cli.common import ProgressReporter, params_from_args, rvc_bool
from infer.params import ConvertParams
from tests.helpers import Installation, make_installation
from tools import infer_batch_rvc, infer_cli


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    return make_installation(tmp_path_factory.mktemp("cli"))


@pytest.fixture
def env(setup: Installation, monkeypatch: pytest.MonkeyPatch) -> Installation:
    setup.set_env(monkeypatch)
    return setup


@pytest.fixture(scope="module")
def tone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """1 s of a voiced-sounding harmonic tone at 22.05 kHz (no espeak-ng needed)."""
    rate = 22050
    t = np.arange(rate) / rate
    f0 = 140 + 20 * np.sin(2 * np.pi * 2 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.2 * np.hanning(rate) ** 0.3
    return save_audio(tmp_path_factory.mktemp("tone") / "tone.wav", wave.astype(np.float32), rate)


def run_cli(capsys, argv: list[str], entry=main) -> tuple[int, str, str]:
    code = entry(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# ---- flags ---------------------------------------------------------------------------------------


def test_conversion_flag_defaults_are_the_params_defaults():
    args = build_parser().parse_args(["convert", "--voice", "v", "--input", "a.wav", "--output", "b.wav"])
    assert params_from_args(args) == ConvertParams()
    assert args.index == "auto" and args.format is None and args.half is None and not args.force


def test_flags_reach_the_params():
    argv = [
        "batch",
        "--voice",
        "v",
        "--inputs",
        "a",
        "b",
        "--output-dir",
        "o",
        "--key",
        "-5",
        "--f0-method",
        "pm",
        "--index-rate",
        "0.3",
        "--filter-radius",
        "2",
        "--resample-sr",
        "48000",
        "--rms-mix-rate",
        "1",
        "--protect",
        "0.5",
        "--speaker-id",
        "1",
        "--noise-scale",
        "0",
        "--seed",
        "9",
        "--auto-key",
    ]
    params = params_from_args(build_parser().parse_args(argv))
    assert params == ConvertParams(
        key=-5,
        f0_method="pm",
        index_rate=0.3,
        filter_radius=2,
        resample_sr=48000,
        rms_mix_rate=1,
        protect=0.5,
        speaker_id=1,
        noise_scale=0,
        seed=9,
        auto_key=True,
    )


@pytest.mark.parametrize(
    "argv, message",
    [
        (["convert", "--input", "a.wav", "--output", "b.wav"], "--voice"),
        (["convert", "--voice", "v", "--input", "a", "--output", "b.wav", "--device", "gpu"], "not a device"),
        (["convert", "--voice", "v", "--input", "a", "--output", "b.wav", "--f0-method", "yin"], "invalid choice"),
        (["batch", "--voice", "v", "--output-dir", "o"], "--input-dir"),
        (["info"], "PATH"),
    ],
)
def test_usage_errors_exit_2(capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize(
    "output, extra, message",
    [
        ("o.wav", ["--key", "60"], "key must be between -48 and 48"),
        ("o.wav", ["--protect", "0.9"], "protect must be between 0 and 0.5"),
        ("x.mp3", ["--format", "flac"], "make them agree"),
        ("x.aiff", [], "cannot tell the output format"),
    ],
)
def test_bad_values_are_usage_errors_without_traceback(env, tone, tmp_path, capsys, output, extra, message):
    argv = ["convert", "--voice", "alice", "--input", str(tone), "--output", str(tmp_path / output), *extra]
    code, out, err = run_cli(capsys, argv)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--help"])
    out = capsys.readouterr().out
    assert stop.value.code == 0 and all(name in out for name in ("convert", "batch", "info"))


# ---- convert -------------------------------------------------------------------------------------


def test_convert_json_names_the_index_and_keeps_stdout_clean(env, tone, tmp_path, capsys):
    output = tmp_path / "out" / "a.flac"
    argv = [
        "convert",
        "--voice",
        "alice",
        "--input",
        str(tone),
        "--output",
        str(output),
        "--f0-method",
        "pm",
        "--seed",
        "1",
        "--json",
    ]
    code, out, err = run_cli(capsys, argv)
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout is one JSON document
    assert data["output"] == str(output) and data["sample_rate"] == 40000 and data["format"] == "flac"
    assert data["index"] == str(env.indexes["alice"]) and data["key"] == 0 and data["f0_method"] == "pm"
    assert abs(data["duration"] - 1.0) < 0.05 and set(data["timings"]) >= {"f0", "features", "synthesis"}
    assert f"index: {env.indexes['alice']}" in err
    audio, rate = sf.read(output, dtype="int16")
    assert rate == 40000 and np.abs(audio).max() > 100


def test_convert_refuses_to_overwrite_without_force(env, tone, tmp_path, capsys):
    output = tmp_path / "keep.wav"
    output.write_bytes(b"precious")
    argv = ["convert", "--voice", "alice.pth", "--input", str(tone), "--output", str(output), "--f0-method", "pm"]
    code, out, err = run_cli(capsys, argv)
    assert code == 1 and "already exists" in err and "--force" in err and out == ""
    assert output.read_bytes() == b"precious"
    code, out, err = run_cli(capsys, [*argv, "--force", "--index", "none", "--quiet"])
    assert code == 0 and err == "" and out.startswith(f"wrote {output} (40000 Hz")
    assert sf.info(str(output)).samplerate == 40000


def test_progress_without_a_terminal_prints_one_line_per_stage(env, tone, tmp_path, capsys):
    argv = [
        "convert",
        "--voice",
        str(env.voices["carol"]),
        "--input",
        str(tone),
        "--output",
        str(tmp_path / "c.ogg"),
        "--index",
        "none",
    ]
    code, out, err = run_cli(capsys, argv)
    lines = err.splitlines()
    assert code == 0 and "\r" not in err
    assert lines[0] == "index: none" and "filtering" in lines and "converting" in lines
    assert len(lines) == len(set(lines))  # a stage is announced once, not per segment


def test_unknown_voice_lists_the_available_ones(env, tone, tmp_path, capsys):
    code, _, err = run_cli(
        capsys, ["convert", "--voice", "dave", "--input", str(tone), "--output", str(tmp_path / "x.wav")]
    )
    assert code == 1 and "voice 'dave' not found" in err and "alice, bob, carol" in err and "RVC_WEIGHTS_DIR" in err


def test_missing_index_file_is_an_input_error(env, tone, tmp_path, capsys):
    argv = [
        "convert",
        "--voice",
        "alice",
        "--input",
        str(tone),
        "--output",
        str(tmp_path / "x.wav"),
        "--index",
        str(tmp_path / "gone.index"),
    ]
    code, _, err = run_cli(capsys, argv)
    assert code == 1 and "gone.index' does not exist" in err and not (tmp_path / "x.wav").exists()


def test_debug_shows_the_traceback(env, tmp_path, capsys):
    argv = ["convert", "--voice", "alice", "--input", str(tmp_path / "none.wav"), "--output", str(tmp_path / "x.wav")]
    code, _, err = run_cli(capsys, argv)
    assert code == 1 and "Traceback" not in err and "none.wav" in err
    code, _, err = run_cli(capsys, [*argv, "--debug"])
    assert code == 1 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("error: ")


# ---- batch ---------------------------------------------------------------------------------------


def test_batch_reports_each_file_and_fails_when_one_fails(env, tone, tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    silent = save_audio(tmp_path / "silent.wav", np.zeros(16000, np.float32), 16000)
    argv = [
        "batch",
        "--voice",
        "bob",
        "--inputs",
        str(tone),
        str(notes),
        str(silent),
        "--output-dir",
        str(tmp_path / "out"),
        "--format",
        "mp3",
        "--f0-method",
        "pm",
        "--json",
    ]
    code, out, err = run_cli(capsys, argv)
    items = json.loads(out)
    assert code == 1 and [item["status"] for item in items] == ["converted", "skipped", "failed"]
    assert items[0]["output"] == str(tmp_path / "out" / "tone.mp3") and "silent" in items[2]["message"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["tone.mp3"]
    argv[argv.index("--json")] = "--quiet"
    code, out, _ = run_cli(capsys, argv[:5] + argv[6:])  # without notes.txt, and tone.mp3 already exists
    assert code == 1 and "already exists" in out and "0 converted, 0 skipped, 2 failed" in out


# ---- info ----------------------------------------------------------------------------------------


def test_info_describes_each_kind_of_file(env, tone, tmp_path, capsys):
    from infer.checkpoints import TrainCheckpoint, write_checkpoint
    from infer.testing.synth import tiny_synthesizer

    g_file = write_checkpoint(TrainCheckpoint(model=tiny_synthesizer().state_dict(), iteration=7), tmp_path / "G_7.pth")
    expected = {
        env.voices["bob"]: {"kind": "voice model", "version": "v1", "sample_rate": 32000, "feature_dim": 16},
        env.indexes["alice"]: {"kind": "feature index", "dim": 32, "vectors": 256, "nprobe": 1, "experiment": "alice"},
        g_file: {"kind": "generator training checkpoint (G_*.pth)", "epoch": 7},
        tone: {"kind": "audio", "sample_rate": 22050, "channels": 1, "codec": "pcm_s16le"},
        env.rmvpe: {"kind": "RMVPE pitch model"},
    }
    for path, fields in expected.items():
        code, out, err = run_cli(capsys, ["info", str(path), "--json"])
        assert code == 0, err
        data = json.loads(out)
        assert {key: data[key] for key in fields} == fields and data["size_bytes"] == path.stat().st_size
    code, out, _ = run_cli(capsys, ["info", str(env.voices["carol"])])
    assert code == 0 and "pitch guidance: False" in out and "speakers: 4" in out


def test_info_on_a_text_file_is_an_error(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("hello", encoding="utf-8")
    code, out, err = run_cli(capsys, ["info", str(notes)])
    assert code == 1 and out == "" and "is not a voice model, checkpoint, feature index or audio file" in err


# ---- progress ------------------------------------------------------------------------------------


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_terminal_redraws_one_line():
    stream = FakeTerminal()
    bar = ProgressReporter(stream, interval=0.0, width=10)
    bar(0.5, "converting segment 1/2")
    bar(1.0, "done")
    bar.end_line()
    first = "[#####.....]  50%  converting segment 1/2"
    second = "[##########] 100%  done".ljust(len(first))  # padded to wipe the longer line
    assert stream.getvalue() == f"\r{first}\r{second}\n"


def test_disabled_progress_prints_nothing():
    stream = FakeTerminal()
    ProgressReporter(stream, enabled=False)(0.5, "converting")
    assert stream.getvalue() == ""


# ---- RVC's scripts -------------------------------------------------------------------------------


@pytest.mark.parametrize("text, value", [("True", True), ("true", True), ("1", True), ("False", False), ("0", False)])
def test_is_half_reads_booleans_properly(text, value):
    assert rvc_bool(text) is value


def test_rvc_scripts_keep_rvcs_flags_and_defaults(capsys):
    args = infer_cli.build_parser().parse_args(["--input_path", "a.wav", "--opt_path", "o.wav", "--model_name", "m"])
    assert (args.f0up_key, args.f0method, args.index_rate, args.filter_radius) == (0, "harvest", 0.66, 3)
    assert (args.resample_sr, args.rms_mix_rate, args.protect, args.is_half, args.index_path) == (
        0,
        1.0,
        0.33,
        None,
        "",
    )
    batch_args = infer_batch_rvc.build_parser().parse_args(
        ["--input_path", "d", "--opt_path", "o", "--model_name", "m"]
    )
    assert batch_args.filter_radius == 1 and batch_args.f0method == "harvest"
    with pytest.raises(SystemExit) as stop:
        infer_cli.main(["--input_path", "a", "--opt_path", "o", "--model_name", "m", "--is_half", "maybe"])
    assert stop.value.code == 2 and "not a boolean" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        infer_cli.main(["--help"])
    assert "3-frame median" in capsys.readouterr().out


def test_rvc_cli_writes_int16_wav_over_the_output(env, tone, tmp_path, capsys):
    output = tmp_path / "rvc_out.wav"
    output.write_bytes(b"old")
    argv = [
        "--model_name",
        "alice.pth",
        "--input_path",
        str(tone),
        "--opt_path",
        str(output),
        "--f0method",
        "pm",
        "--index_path",
        str(env.indexes["alice"]),
        "--f0up_key",
        "2",
        "--is_half",
        "False",
    ]
    code, out, err = run_cli(capsys, argv, infer_cli.main)
    assert code == 0, err
    assert out.startswith("Success.\nIndex:\n" + str(env.indexes["alice"])) and "Key: +2 semitones." in out
    info = sf.info(str(output))
    assert info.format == "WAV" and info.subtype == "PCM_16" and info.samplerate == 40000


@pytest.mark.parametrize("rvc_value, ours", [(3, 1), (7, 1), (2, 0), (0, 0)])
def test_rvc_filter_radius_maps_to_our_radius(rvc_value, ours):
    from infer.cli.convert import rvc_params

    argv = ["--input_path", "a", "--opt_path", "o", "--model_name", "m", "--filter_radius", str(rvc_value)]
    params = rvc_params(infer_cli.build_parser().parse_args(argv))
    assert params.filter_radius == ours
    assert (params.f0_method, params.index_rate, params.rms_mix_rate, params.speaker_id) == ("harvest", 0.66, 1.0, 0)


def test_rvc_missing_index_warns_and_converts_without(env):
    from infer.cli.common import Console
    from infer.cli.convert import rvc_prepare

    console = Console(io.StringIO(), io.StringIO())
    argv = ["--input_path", "a", "--opt_path", "o", "--model_name", "bob", "--index_path", '"missing.index"']
    job = rvc_prepare(infer_cli.build_parser().parse_args(argv), console)
    assert job.index is None and job.voice.version == "v1"
    assert "'missing.index' not found; converting without an index" in console.stderr.getvalue()
