"""Preprocessing a folder of recordings into training pieces (spec §2, with RVC's bugs fixed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
from scipy import signal

from infer.audio import load_audio, save_audio
from infer.audio_read import RESAMPLE_QUALITY
from tests.train.conftest import tone
from tests.train.conftest import write_audio as write
from train import resources
from train.preprocess import (
    REPORT_NAME,
    PreprocessError,
    find_clipping,
    highpass,
    list_sources,
    normalize_piece,
    piece_problem,
    preprocess_dataset,
    split_pieces,
)
from train.resources import plan_workers, worker_bytes

SR = 40000


def pieces(exp: Path, folder="0_gt_wavs"):
    return sorted(p.name for p in (exp / folder).iterdir())


def read(path: Path):
    audio, rate = sf.read(path, dtype="float32")
    return audio, rate


def assert_all_finite(exp: Path):
    for folder in ("0_gt_wavs", "1_16k_wavs"):
        for path in (exp / folder).iterdir():
            assert path.suffix == ".wav" and not path.name.startswith(".")
            assert np.isfinite(read(path)[0]).all(), path


def expected_piece(source, begin, end, sr=SR):
    """What preprocessing should write for samples [begin, end) of a source that the slicer keeps whole."""
    return normalize_piece(highpass(source, sr)[begin:end])


# ---------------------------------------------------------------- pure steps


def test_split_pieces_known_durations():
    assert split_pieces(10 * SR, SR) == [(0, 148000), (136000, 284000), (272000, 400000)]
    assert split_pieces(4 * SR, SR) == [(0, 4 * SR)]  # up to 4.0 s is one piece
    assert split_pieces(4 * SR + 1, SR) == [(0, 148000), (136000, 4 * SR + 1)]
    assert split_pieces(0, SR) == []
    assert split_pieces(10 * 48000, 48000, 3.0, 0.3)[1] == (129600, 273600)


def test_normalisation_formula():
    x = np.array([0.5, -0.25, 0.1, 0.0])
    np.testing.assert_allclose(normalize_piece(x), x / 0.5 * 0.675 + 0.25 * x, rtol=1e-15)
    loud = np.array([2.0, -1.0])
    np.testing.assert_allclose(normalize_piece(loud), [0.675 + 0.5, -0.3375 - 0.25])


def test_piece_problems():
    assert piece_problem(tone(1.5), SR) is None
    assert piece_problem(np.zeros(2 * SR), SR).startswith("silent: peak no signal")
    assert piece_problem(np.full(2 * SR, 5e-4), SR).startswith("silent: peak -66 dBFS")
    assert piece_problem(np.full(2 * SR, 2.6), SR).startswith("too loud after filtering")
    assert piece_problem(tone(0.9), SR) == "too short: 0.90 s < 1.00 s"
    assert piece_problem(tone(0.9), SR, min_piece_seconds=0.5) is None
    assert piece_problem(np.array([np.nan, 1.0]), SR).startswith("invalid")
    assert piece_problem(np.array([np.inf, 1.0]), SR).startswith("invalid")


def test_highpass_is_causal_butterworth():
    impulse = np.zeros(4000)
    impulse[3000] = 1.0
    out = highpass(impulse, SR)
    assert out.dtype == np.float64
    assert np.all(out[:3000] == 0) and out[3000] != 0  # nothing before the impulse: no pre-ringing
    b, a = signal.butter(5, 48, btype="high", fs=SR)
    np.testing.assert_allclose(out, signal.lfilter(b, a, impulse), rtol=0, atol=1e-15)
    w, h = signal.freqz(b, a, worN=[10, 48, 1000], fs=SR)
    assert abs(h[1]) == pytest.approx(2**-0.5, rel=1e-3) and abs(h[2]) > 0.999 and abs(h[0]) < 1e-3


def test_find_clipping():
    audio = np.zeros((2, 1000), np.float32)
    audio[0, 100:110] = 1.0
    audio[1, 105:120] = -0.9995
    audio[0, 500:502] = 1.0  # two samples: a peak, not clipping
    audio[1, 700:705] = 1.0
    assert find_clipping(audio) == (2, 25)
    assert find_clipping(np.zeros(10)) == (0, 0)


def test_default_workers_are_planned_from_the_longest_file(tmp_path, monkeypatch):
    write(tmp_path / "data" / "a.wav", tone(2))
    write(tmp_path / "data" / "b.wav", np.stack([tone(5, 44100), tone(5, 44100)]), 44100)
    (tmp_path / "data" / "c.wav").write_text("not audio", encoding="utf-8")
    seen = []
    monkeypatch.setattr(resources, "usable_cores", lambda: 4)
    monkeypatch.setattr(resources, "plan_workers", lambda n, largest: seen.append((n, largest)) or 1)
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR)
    assert seen == [(3, worker_bytes(5.0, SR, 44100, 2))] and report.sources_ok == 2


def test_plan_workers_bounded_by_cores_files_and_memory():
    gib = 2**30
    assert plan_workers(8, gib, cpus=4, available_bytes=100 * gib) == 4
    assert plan_workers(2, gib, cpus=4, available_bytes=100 * gib) == 2
    assert plan_workers(8, gib, cpus=4, available_bytes=5 * gib) == 2  # half of 5 GiB holds two workers
    assert plan_workers(8, 10 * gib, cpus=4, available_bytes=5 * gib) == 1  # never zero
    assert worker_bytes(600, 48000) > worker_bytes(60, 48000) > worker_bytes(60, 32000)


# ---------------------------------------------------------------- whole runs


def test_ten_second_tone_gives_three_pieces(tmp_path):
    source = tone(10)
    write(tmp_path / "data" / "tone.wav", source)
    exp = tmp_path / "exp"
    report = preprocess_dataset(tmp_path / "data", exp, SR, workers=1)
    assert pieces(exp) == pieces(exp, "1_16k_wavs") == ["0_0.wav", "0_1.wav", "0_2.wav"]
    for name, (begin, end) in zip(pieces(exp), [(0, 148000), (136000, 284000), (272000, 400000)]):
        audio, rate = read(exp / "0_gt_wavs" / name)
        assert rate == SR and sf.info(exp / "0_gt_wavs" / name).subtype == "FLOAT"
        want = expected_piece(source, begin, end)
        np.testing.assert_allclose(audio, want, rtol=0, atol=1e-7)
        b, a = signal.butter(5, 48, btype="high", fs=SR)
        zero_phase = normalize_piece(signal.filtfilt(b, a, source)[begin:end])
        assert np.abs(audio - zero_phase).max() > 0.05  # the filter is causal, not filtfilt
        audio16k, rate16k = read(exp / "1_16k_wavs" / name)
        assert rate16k == 16000 and len(audio16k) == (end - begin) * 2 // 5
        np.testing.assert_allclose(audio16k, soxr.resample(want, SR, 16000, quality=RESAMPLE_QUALITY), atol=1e-6)
    assert (report.sources, report.sources_ok, report.pieces, report.failed, report.dropped) == (1, 1, 3, [], [])
    assert report.audio_seconds == pytest.approx(10.6) and report.unique_seconds == pytest.approx(10.0)
    assert not report.cancelled and report.seconds > 0


def test_stereo_source_decoded_like_load_audio_and_clipping_reported(tmp_path):
    rate = 44100
    left = tone(5, rate, amp=0.6)
    stereo = np.stack([left, tone(5, rate, 330, 0.3)])
    stereo[0, 20000:20050] = 1.0  # 50 clipped samples in one channel
    path = write(tmp_path / "data" / "stereo.flac", stereo, rate, subtype="PCM_16")
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1)
    decoded = load_audio(path, SR)
    first, _ = read(tmp_path / "exp" / "0_gt_wavs" / "0_0.wav")
    np.testing.assert_allclose(first, expected_piece(decoded, 0, 148000), atol=1e-7)
    assert report.clipped == [("stereo.flac", 1, pytest.approx(50 / rate))]


def test_silent_file_gives_no_pieces_and_is_reported(tmp_path):
    write(tmp_path / "data" / "silence.wav", np.zeros(5 * SR))
    write(tmp_path / "data" / "hum.wav", tone(5, amp=1e-4))  # -80 dB: below the slicer's threshold
    lines = []
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1, log=lines.append)
    assert pieces(tmp_path / "exp") == [] and report.pieces == 0 and report.sources_ok == 2
    assert report.dropped == [
        ("hum.wav", "silent file: nothing above -42 dB"),
        ("silence.wav", "silent file: nothing above -42 dB"),
    ]
    assert any("silence.wav" in line and "no pieces" in line for line in lines)


def test_too_short_tail_is_dropped_naming_its_source(tmp_path):
    write(tmp_path / "data" / "sub" / "short tail.wav", tone(4.3))
    lines = []
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1, log=lines.append)
    assert pieces(tmp_path / "exp") == ["0_0.wav"]
    assert report.dropped == [("sub/short tail.wav [3.40-4.30 s]", "too short: 0.90 s < 1.00 s")]
    assert any("short tail.wav [3.40-4.30 s]: too short" in line for line in lines)
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1, min_piece_seconds=0.5)
    assert pieces(tmp_path / "exp") == ["0_0.wav", "0_1.wav"] and report.dropped == []


def test_unreadable_file_is_reported_and_the_rest_goes_on(tmp_path):
    data = tmp_path / "data"
    write(data / "a.wav", tone(2))
    (data / "b notes.wav").write_text("this is not audio", encoding="utf-8")
    write(data / "c.wav", tone(2))
    broken = tone(5)
    broken[SR * 4] = np.nan  # a float WAV with a NaN: refused rather than spreading NaN through the filter
    write(data / "d nan.wav", broken)
    lines = []
    report = preprocess_dataset(data, tmp_path / "exp", SR, workers=1, log=lines.append)
    assert pieces(tmp_path / "exp") == ["0_0.wav", "2_0.wav"]
    assert report.sources_ok == 2 and [name for name, _ in report.failed] == ["b notes.wav", "d nan.wav"]
    assert "NaN or infinite" in report.failed[1][1]
    assert "b notes.wav" in report.failed[0][1] and "b notes.wav" in report.text()
    log = (tmp_path / "exp" / "preprocess.log").read_text(encoding="utf-8").splitlines()
    assert log == lines
    assert log[0] == "start preprocess" and log[-1] == "end preprocess"
    assert f"{data / 'a.wav'}\t-> Success" in log
    assert any(line.startswith(f"{data / 'b notes.wav'}\t-> Cannot decode") for line in log)


def test_odd_paths_mp3_flac_and_nested_folders(tmp_path):
    data = tmp_path / 'da\'ta [set] & 100% "é"'
    save_audio(data / "Ö (live) & 'x' %d.mp3", tone(5, 44100), 44100)
    save_audio(data / "sub" / "b; $HOME `ls`.flac", tone(2, 48000), 48000)
    write(data / "sub" / "deeper" / "日本語 声.wav", tone(2))
    write(data / ".hidden.wav", tone(2))
    write(data / ".cache" / "x.wav", tone(2))
    (data / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    exp = tmp_path / "e x p [1] & ü%"
    progress = []
    report = preprocess_dataset(data, exp, SR, workers=1, progress=lambda f, m: progress.append((f, m)))
    assert report.failed == [] and report.ignored == ["cover.jpg"] and report.sources == 3
    assert pieces(exp) == ["0_0.wav", "1_0.wav", "2_0.wav", "2_1.wav"]  # by relative path: "sub/..." < "Ö..."
    assert [f for f, _ in progress] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert progress[0][1].endswith("sub/b; $HOME `ls`.flac") and progress[2][1].endswith("Ö (live) & 'x' %d.mp3")
    assert abs(len(read(exp / "0_gt_wavs" / "2_1.wav")[0]) - 1.6 * SR) < 0.05 * SR  # mp3 padding is small
    log = (exp / "preprocess.log").read_text(encoding="utf-8")
    assert "日本語 声.wav\t-> Success" in log
    assert_all_finite(exp)


def test_list_sources_order_and_exclusions(tmp_path):
    for name in ["b.wav", "a b.wav", "a/z.wav", "a/b/c.wav", ".x.wav", ".d/y.wav", "exp/0_gt_wavs/0_0.wav", "n.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    audio, ignored = list_sources(tmp_path, exclude=tmp_path / "exp")
    assert [p.relative_to(tmp_path).as_posix() for p in audio] == ["a/b/c.wav", "a/z.wav", "a b.wav", "b.wav"]
    assert [p.name for p in ignored] == ["n.txt"]


def test_rerun_clears_old_pieces_and_stale_features(tmp_path):
    data, exp = tmp_path / "data", tmp_path / "data" / "exp"  # the experiment inside the dataset is skipped
    write(data / "a.wav", tone(2))
    write(data / "b.wav", tone(5))
    preprocess_dataset(data, exp, SR, workers=1)
    assert pieces(exp) == ["0_0.wav", "1_0.wav", "1_1.wav"]
    (exp / "2a_f0").mkdir()
    (exp / "2a_f0" / "1_0.wav.npy").write_bytes(b"old")
    (exp / "3_feature768").mkdir()
    (data / "b.wav").unlink()
    report = preprocess_dataset(data, exp, SR, workers=1)
    assert pieces(exp) == pieces(exp, "1_16k_wavs") == ["0_0.wav"] and report.sources == 1
    assert not (exp / "2a_f0").exists() and not (exp / "3_feature768").exists()
    assert "removed the previous run's" in (exp / "preprocess.log").read_text(encoding="utf-8")


def test_two_workers_write_the_same_files_as_one(tmp_path):
    data = tmp_path / "data"
    write(data / "a.wav", tone(6))
    write(data / "b.wav", np.concatenate([tone(2.5, freq=300), np.zeros(SR), tone(3, freq=150)]))
    (data / "c.wav").write_text("broken", encoding="utf-8")
    write(data / "d.wav", tone(4.3, freq=500))
    one = preprocess_dataset(data, tmp_path / "one", SR, workers=1)
    two = preprocess_dataset(data, tmp_path / "two", SR, workers=2)
    for folder in ("0_gt_wavs", "1_16k_wavs"):
        names = pieces(tmp_path / "one", folder)
        assert names == pieces(tmp_path / "two", folder) and len(names) == 5
        for name in names:
            assert (tmp_path / "one" / folder / name).read_bytes() == (tmp_path / "two" / folder / name).read_bytes()
    two.seconds = one.seconds
    assert two == one


def test_cancel_stops_between_files(tmp_path):
    data = tmp_path / "data"
    for name in "abcd":
        write(data / f"{name}.wav", tone(1.5))
    done = []
    report = preprocess_dataset(
        data, tmp_path / "exp", SR, workers=1, progress=lambda f, m: done.append(m), cancel=lambda: len(done) >= 2
    )
    assert report.cancelled and report.sources_ok == 2 and pieces(tmp_path / "exp") == ["0_0.wav", "1_0.wav"]
    assert "Cancelled" in report.text()
    assert "cancelled: 2 of 4 file(s) not processed" in (tmp_path / "exp" / "preprocess.log").read_text("utf-8")


def test_cancel_with_a_process_pool(tmp_path):
    data = tmp_path / "data"
    for index in range(8):
        write(data / f"{index}.wav", tone(1.5))
    report = preprocess_dataset(data, tmp_path / "exp", SR, workers=2, cancel=lambda: True)
    assert report.cancelled and report.sources_ok < 8
    assert len(pieces(tmp_path / "exp")) == report.pieces == report.sources_ok


def test_report_round_trips_through_json(tmp_path):
    write(tmp_path / "data" / "a.wav", tone(4.3))
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", SR, workers=1)
    loaded = type(report).load(tmp_path / "exp" / REPORT_NAME)
    assert loaded == report


def test_bad_requests_are_refused_before_touching_anything(tmp_path):
    with pytest.raises(PreprocessError, match="does not exist"):
        preprocess_dataset(tmp_path / "missing", tmp_path / "exp", SR)
    (tmp_path / "empty").mkdir()
    with pytest.raises(PreprocessError, match="contains no audio files"):
        preprocess_dataset(tmp_path / "empty", tmp_path / "exp", SR)
    with pytest.raises(PreprocessError, match="sample_rate"):
        preprocess_dataset(tmp_path / "empty", tmp_path / "exp", "40k")
    assert not (tmp_path / "exp").exists()
    write(tmp_path / "exp" / "0_gt_wavs" / "0_0.wav", tone(2))
    with pytest.raises(PreprocessError, match="which preprocessing empties"):
        preprocess_dataset(tmp_path / "exp" / "0_gt_wavs", tmp_path / "exp", SR)
    assert (tmp_path / "exp" / "0_gt_wavs" / "0_0.wav").exists()


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_speech_from_espeak(tmp_path):
    text = ("The quick brown fox jumps over the lazy dog. " * 3 + "Then it rests for a while.\n\n") * 2
    path = tmp_path / "data" / "speech.wav"
    path.parent.mkdir()
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True, capture_output=True)
    report = preprocess_dataset(tmp_path / "data", tmp_path / "exp", 48000, workers=1)
    assert report.pieces >= 3 and report.failed == []
    for name in pieces(tmp_path / "exp"):
        audio, rate = read(tmp_path / "exp" / "0_gt_wavs" / name)
        assert rate == 48000 and 1.0 * rate <= len(audio) <= 4.0 * rate
        assert np.isfinite(audio).all() and 0.6 < np.abs(audio).max() < 1.0
    assert report.unique_seconds <= sf.info(path).duration
