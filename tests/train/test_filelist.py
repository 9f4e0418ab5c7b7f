"""The mute sample and filelist.txt (spec §1.5)."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from infer.content import load_content_encoder
from train.experiment import ExperimentPaths
from train.filelist import FilelistEntry, FilelistError, experiment_entries, read_filelist, write_filelist
from train.mute import MuteSample, ensure_mute, mute_sample


@pytest.fixture(scope="module")
def encoder(tiny_hubert):
    """The tiny content encoder, loaded: v1 features are 16 wide, v2 features 32."""
    return load_content_encoder(tiny_hubert)


def fake_mute(logs, version: str = "v2", width: int = 768) -> MuteSample:
    """Mute files with the right shapes (zeros) for 40k, without running an encoder."""
    sample = mute_sample(logs, 40000, version)
    for path, array in (
        (sample.features, np.zeros((149, width), np.float32)),
        (sample.f0_coarse, np.ones(301, np.int64)),
        (sample.f0_hz, np.zeros(301, np.float32)),
    ):
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, array)
    sample.gt_wav.parent.mkdir(parents=True, exist_ok=True)
    sf.write(sample.gt_wav, np.zeros(120000, np.int16), 40000, subtype="PCM_16")
    return sample


def fake_experiment(root, names, version: str = "v2", use_f0: bool = True, width: int = 768) -> ExperimentPaths:
    """An experiment whose slices ``names`` have all their files (tiny arrays)."""
    paths = ExperimentPaths(root)
    folders = [paths.gt_wavs, paths.features(version)] + ([paths.f0_coarse, paths.f0_hz] if use_f0 else [])
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (paths.gt_wavs / f"{name}.wav").write_bytes(b"RIFF")
        np.save(paths.features(version) / f"{name}.npy", np.zeros((3, width), np.float32))
        if use_f0:
            np.save(paths.f0_coarse / f"{name}.wav.npy", np.ones(6, np.int64))
            np.save(paths.f0_hz / f"{name}.wav.npy", np.zeros(6, np.float32))
    return paths


# ---- the mute sample -----------------------------------------------------------------------------


@pytest.mark.parametrize(("rate", "version", "width"), [(32000, "v1", 16), (40000, "v2", 32), (48000, "v2", 32)])
def test_mute_files(tmp_path, encoder, rate, version, width):
    sample = ensure_mute(tmp_path / "logs", rate, version, encoder)
    root = (tmp_path / "logs" / "mute").absolute()
    assert sample == MuteSample(
        root / "0_gt_wavs" / f"mute{rate // 1000}k.wav",
        root / f"3_feature{ {'v1': 256, 'v2': 768}[version] }" / "mute.npy",
        root / "2a_f0" / "mute.wav.npy",
        root / "2b-f0nsf" / "mute.wav.npy",
    )
    info = sf.info(sample.gt_wav)
    assert (info.samplerate, info.frames, info.channels, info.subtype) == (rate, 3 * rate, 1, "PCM_16")
    assert not sf.read(sample.gt_wav, dtype="int16")[0].any()
    info16k = sf.info(root / "1_16k_wavs" / "mute.wav")
    assert (info16k.samplerate, info16k.frames) == (16000, 48000)
    coarse, hz, features = np.load(sample.f0_coarse), np.load(sample.f0_hz), np.load(sample.features)
    assert coarse.dtype == np.int64 and coarse.tolist() == [1] * 301
    assert hz.dtype == np.float32 and hz.tolist() == [0.0] * 301
    assert features.dtype == np.float32 and features.shape == (149, width)
    np.testing.assert_array_equal(features, encoder.extract(np.zeros(48000, np.float32), version))


def test_mute_files_are_reused_when_they_fit_and_remade_when_not(tmp_path, encoder):
    sample = ensure_mute(tmp_path, 40000, "v2", encoder)
    files = [sample.gt_wav, sample.features, sample.f0_coarse, sample.f0_hz]
    stamps = [os.stat(p).st_mtime_ns for p in files]
    assert ensure_mute(tmp_path, 40000, "v2", encoder) == sample
    assert [os.stat(p).st_mtime_ns for p in files] == stamps

    np.save(sample.f0_hz, np.zeros(300, np.float32))  # wrong length
    np.save(sample.features, np.zeros((149, 768), np.float32))  # not this encoder's width
    sf.write(sample.gt_wav, np.zeros(1000, np.int16), 40000, subtype="PCM_16")  # too short
    ensure_mute(tmp_path, 40000, "v2", encoder)
    assert np.load(sample.f0_hz).shape == (301,)
    assert np.load(sample.features).shape == (149, 32)
    assert sf.info(sample.gt_wav).frames == 120000


def test_mute_without_an_encoder(tmp_path):
    with pytest.raises(ValueError, match="pass the content encoder"):
        ensure_mute(tmp_path, 40000, "v2", None)
    fake_mute(tmp_path)  # standard-width features already there: accepted without an encoder
    assert ensure_mute(tmp_path, 40000, "v2", None).features.is_file()
    with pytest.raises(ValueError, match="No mute sample for 44100 Hz"):
        ensure_mute(tmp_path, 44100, "v2", None)


# ---- writing -------------------------------------------------------------------------------------


def test_lines_with_pitch_are_exactly_rvcs_format(tmp_path):
    paths = fake_experiment(tmp_path / "exp", ["0_0", "1_2"])
    mute = fake_mute(tmp_path)
    assert write_filelist(paths.root, "v2", True, 3, mute, seed=0) == (4, [])
    text = paths.filelist.read_text(encoding="utf-8")
    root, m = paths.root, mute.gt_wav.parent.parent
    expected = [
        f"{root}/0_gt_wavs/{n}.wav|{root}/3_feature768/{n}.npy|{root}/2a_f0/{n}.wav.npy|{root}/2b-f0nsf/{n}.wav.npy|3"
        for n in ("0_0", "1_2")
    ]
    mute_line = (
        f"{m}/0_gt_wavs/mute40k.wav|{m}/3_feature768/mute.npy|{m}/2a_f0/mute.wav.npy|{m}/2b-f0nsf/mute.wav.npy|3"
    )
    assert sorted(text.split("\n")) == sorted(expected + [mute_line, mute_line])
    assert not text.endswith("\n") and "\r" not in text


def test_lines_without_pitch(tmp_path):
    paths = fake_experiment(tmp_path / "exp", ["0_0"], version="v1", use_f0=False, width=256)
    mute = fake_mute(tmp_path, "v1", width=256)
    count, dropped = write_filelist(paths.root, "v1", False, 0, mute, mute_copies=1)
    lines = paths.filelist.read_text(encoding="utf-8").split("\n")
    assert (count, dropped, len(lines)) == (2, [], 2)
    root, m = paths.root, mute.gt_wav.parent.parent
    assert sorted(lines) == [
        f"{root}/0_gt_wavs/0_0.wav|{root}/3_feature256/0_0.npy|0",
        f"{m}/0_gt_wavs/mute40k.wav|{m}/3_feature256/mute.npy|0",
    ]


def test_only_complete_slices_are_listed_and_the_others_are_reported(tmp_path):
    paths = fake_experiment(tmp_path / "exp", ["0_0", "0_1", "0_2", "0_3"])
    (paths.features("v2") / "0_1.npy").unlink()
    (paths.f0_hz / "0_2.wav.npy").unlink()
    (paths.gt_wavs / "0_3.wav").unlink()
    (paths.f0_coarse / ".0_0.wav.npy.abc.tmp").write_bytes(b"")  # a leftover temporary file is no slice
    (paths.gt_wavs / "0_0.spec.pt").write_bytes(b"")  # the trainer's spectrogram cache is no slice either
    count, dropped = write_filelist(paths.root, "v2", True, 0, fake_mute(tmp_path), seed=1)
    assert count == 3
    assert dropped == [
        "0_1: not in 3_feature768 (feature extraction failed or was not run)",
        "0_2: not in 2b-f0nsf (pitch extraction failed or was not run)",
        "0_3: not in 0_gt_wavs (preprocessing failed or was not run)",
    ]
    listed = {entry.gt_wav.name for entry in read_filelist(paths.filelist)}
    assert listed == {"0_0.wav", "mute40k.wav"}
    # without pitch, 0_2 is complete
    assert write_filelist(paths.root, "v2", False, 0, fake_mute(tmp_path), seed=1)[0] == 4


def test_shuffle_is_seedable(tmp_path):
    paths = fake_experiment(tmp_path / "exp", [f"0_{i}" for i in range(12)])
    mute = fake_mute(tmp_path)

    def written(seed):
        write_filelist(paths.root, "v2", True, 0, mute, seed=seed)
        return paths.filelist.read_text(encoding="utf-8").split("\n")

    first, again, other = written(7), written(7), written(8)
    assert first == again and first != other and sorted(first) == sorted(other)
    assert first != sorted(first)


def test_utf8_with_a_non_ascii_experiment_path(tmp_path):
    paths = fake_experiment(tmp_path / "logs" / "声音 café", ["0_0"])
    write_filelist(paths.root, "v2", True, 0, fake_mute(tmp_path / "logs"))
    data = paths.filelist.read_bytes()
    assert "声音 café/0_gt_wavs/0_0.wav".encode() in data
    assert not data.startswith(b"\xef\xbb\xbf")  # no BOM
    assert paths.root.absolute() in {entry.gt_wav.parent.parent for entry in read_filelist(paths.filelist)}


def test_refusals(tmp_path):
    mute = fake_mute(tmp_path)
    with pytest.raises(FilelistError, match="run preprocessing and extraction first"):
        write_filelist(fake_experiment(tmp_path / "empty", []).root, "v2", True, 0, mute)
    paths = fake_experiment(tmp_path / "exp", ["0_0"])
    with pytest.raises(FilelistError, match="call ensure_mute first"):
        write_filelist(paths.root, "v2", True, 0, mute_sample(tmp_path / "elsewhere", 40000, "v2"))
    narrow = fake_mute(tmp_path / "narrow", "v2", width=32)
    with pytest.raises(FilelistError, match="32 wide but this experiment's are 768"):
        write_filelist(paths.root, "v2", True, 0, narrow)
    assert not paths.filelist.exists()


# ---- reading -------------------------------------------------------------------------------------


def test_read_filelist_round_trip(tmp_path):
    paths = fake_experiment(tmp_path / "exp", ["0_0", "0_1", "2_5"])
    mute = fake_mute(tmp_path)
    write_filelist(paths.root, "v2", True, 4, mute)
    entries = read_filelist(paths.filelist)
    samples, _ = experiment_entries(paths.root, "v2", True, 4)
    mute_entry = FilelistEntry(mute.gt_wav, mute.features, mute.f0_coarse, mute.f0_hz, 4)
    assert sorted(entries, key=str) == sorted(samples + [mute_entry, mute_entry], key=str)
    assert all(entry.has_f0 and entry.speaker_id == 4 for entry in entries)
    assert [entry.line() for entry in entries] == paths.filelist.read_text(encoding="utf-8").split("\n")


@pytest.mark.parametrize(("folder", "encoding"), [("训练集 歌声", "gbk"), ("chanté über", "cp1252")])
def test_reads_lists_rvc_wrote_on_windows(tmp_path, folder, encoding):
    paths = fake_experiment(tmp_path / folder, ["0_0"], use_f0=False)
    root = paths.root
    text = f"{root}/0_gt_wavs/0_0.wav|{root}/3_feature768/0_0.npy|0\r\n"  # RVC's lines, as Windows writes them
    paths.filelist.write_bytes(text.encode(encoding))
    with pytest.raises(UnicodeDecodeError):
        paths.filelist.read_bytes().decode("utf-8")
    (entry,) = read_filelist(paths.filelist)
    assert entry == FilelistEntry(root / "0_gt_wavs/0_0.wav", root / "3_feature768/0_0.npy", None, None, 0)
    assert read_filelist(paths.filelist, encoding=encoding) == [entry]


def test_malformed_lines_name_the_line(tmp_path):
    bad = tmp_path / "filelist.txt"
    bad.write_text("a.wav|a.npy|0\na.wav|a.npy|x|0", encoding="utf-8")
    with pytest.raises(FilelistError, match="line 2: expected 5 fields"):
        read_filelist(bad)
    bad.write_text("a.wav|a.npy|zero", encoding="utf-8")
    with pytest.raises(FilelistError, match="line 1: the speaker id 'zero'"):
        read_filelist(bad)
