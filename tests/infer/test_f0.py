"""f0 entry point, helpers, classic trackers and RMVPE with a tiny random model."""

from __future__ import annotations

import threading
import types
from collections import OrderedDict

import numpy as np
import pytest
import scipy.signal
import torch

import infer.f0.rmvpe as rmvpe_module
from infer.f0 import (
    F0_METHODS,
    PitchModels,
    coarse_f0,
    compute_f0,
    fit_length,
    median_filter_f0,
    shift_f0,
)
from infer.f0.classic import pad_centered
from infer.f0.rmvpe import RmvpePredictor, bin_cents, cents_to_hz, salience_to_cents
from infer.safe_load import ModelFileError, load_torch_file
from infer.testing.rmvpe import save_tiny_rmvpe

SR = 16000
CLASSIC = ("pm", "harvest", "dio")


def harmonic(phase: np.ndarray) -> np.ndarray:
    """Five harmonics with 1/k amplitudes, peak about 0.3 (a voice-like source)."""
    return sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2


def tone_then_silence() -> np.ndarray:
    """0.5 s of a 220 Hz harmonic tone, then 0.5 s of digital silence (float64, 16000 samples)."""
    t = np.arange(SR) / SR
    wav = harmonic(2 * np.pi * 220 * t)
    wav[SR // 2 :] = 0.0
    return wav


def glide() -> tuple[np.ndarray, np.ndarray]:
    """1 s glide 150 → 300 Hz and its true f0 at each 10 ms frame (100 frames)."""
    f = np.linspace(150.0, 300.0, SR)
    return harmonic(2 * np.pi * np.cumsum(f) / SR), f[::160]


@pytest.fixture(scope="module")
def tiny_rmvpe(tmp_path_factory: pytest.TempPathFactory):
    return save_tiny_rmvpe(tmp_path_factory.mktemp("rmvpe") / "rmvpe.pt", seed=0)


@pytest.fixture(scope="module")
def predictor(tiny_rmvpe) -> RmvpePredictor:
    return RmvpePredictor(tiny_rmvpe)


# --- classic methods -------------------------------------------------------------------------


@pytest.mark.parametrize("method", CLASSIC)
def test_classic_tone_is_220_hz_then_unvoiced(method: str) -> None:
    f0 = compute_f0(tone_then_silence(), method)
    assert f0.dtype == np.float32 and f0.shape == (100,)
    steady = f0[5:45]
    assert (steady > 0).all()
    np.testing.assert_allclose(steady, 220.0, rtol=0.02)
    assert (f0[55:] == 0).all()


@pytest.mark.parametrize("method", CLASSIC)
def test_classic_glide_follows_truth(method: str) -> None:
    wav, truth = glide()
    f0 = compute_f0(wav, method)
    inner, inner_truth = f0[3:97], truth[3:97]
    voiced = inner > 0
    assert voiced.mean() > 0.9
    np.testing.assert_allclose(inner[voiced], inner_truth[voiced], rtol=0.03)


@pytest.mark.parametrize("method", CLASSIC)
@pytest.mark.parametrize("n_samples", [0, 1, 159, 160, 161, 959, 960, 1601, 4000, 4079])
def test_classic_output_length_is_p_len(method: str, n_samples: int) -> None:
    wav = harmonic(2 * np.pi * 220 * np.arange(n_samples) / SR)
    f0 = compute_f0(wav, method)
    assert f0.shape == (n_samples // 160,) and f0.dtype == np.float32


@pytest.mark.parametrize("method", CLASSIC)
def test_explicit_p_len_cuts_or_pads_at_the_end(method: str) -> None:
    wav = tone_then_silence()[:8000]
    natural = compute_f0(wav, method)
    longer = compute_f0(wav, method, p_len=60)
    shorter = compute_f0(wav, method, p_len=30)
    assert longer.shape == (60,) and shorter.shape == (30,)
    if method == "pm":  # pm re-centres its frames in each p_len, as RVC does
        assert (longer[:5] == 0).all() and (longer[-5:] == 0).all()
        np.testing.assert_array_equal(np.trim_zeros(longer), np.trim_zeros(natural))
    else:
        assert (longer[51:] == 0).all()  # harvest and dio give N // 160 + 1 frames
        np.testing.assert_array_equal(longer[:50], natural)
        np.testing.assert_array_equal(shorter, natural[:30])


def test_pm_is_centred_in_p_len() -> None:
    import parselmouth

    wav = tone_then_silence()
    raw = (
        parselmouth.Sound(wav, SR)
        .to_pitch_ac(time_step=0.01, voicing_threshold=0.6, pitch_floor=50.0, pitch_ceiling=1100.0)
        .selected_array["frequency"]
    )
    missing = 100 - len(raw)
    assert missing > 0
    left = (missing + 1) // 2
    f0 = compute_f0(wav, "pm")
    np.testing.assert_array_equal(f0[left : left + len(raw)], raw.astype(np.float32))
    assert (f0[:left] == 0).all() and (f0[left + len(raw) :] == 0).all()


def test_pad_centered_and_fit_length() -> None:
    np.testing.assert_array_equal(pad_centered(np.ones(5), 8), [0, 0, 1, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(pad_centered(np.ones(5), 3), np.ones(5))  # never truncated
    np.testing.assert_array_equal(fit_length(np.arange(5.0), 3), [0, 1, 2])
    np.testing.assert_array_equal(fit_length(np.arange(3.0), 5), [0, 1, 2, 0, 0])
    assert fit_length(np.arange(3.0), 5).dtype == np.float32


def test_torch_and_float32_inputs_match_float64() -> None:
    wav = tone_then_silence().astype(np.float32)
    expected = compute_f0(wav.astype(np.float64), "dio")
    np.testing.assert_array_equal(compute_f0(wav, "dio"), expected)
    np.testing.assert_array_equal(compute_f0(torch.from_numpy(wav), "dio"), expected)
    half = torch.from_numpy(wav).to(torch.bfloat16)
    np.testing.assert_array_equal(compute_f0(half, "dio"), compute_f0(half.double().numpy(), "dio"))


# --- helpers -----------------------------------------------------------------------------------


def test_coarse_f0_table() -> None:
    f0 = np.array([0.0, 10.0, 50.0, 100.0, 220.0, 440.0, 1000.0, 1100.0, 5000.0])
    coarse = coarse_f0(f0)
    assert coarse.dtype == np.int64
    np.testing.assert_array_equal(coarse, [1, 1, 1, 20, 60, 122, 238, 255, 255])
    assert coarse_f0(np.zeros((2, 3), dtype=np.float32)).shape == (2, 3)


def test_coarse_f0_rounds_half_to_even() -> None:
    mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)  # noqa: E731 - spec §3.1 written out
    mel_min, mel_max = mel(50.0), mel(1100.0)
    # f0 values whose coarse value is exactly k + 0.5 in float64 (found by search): tie → expected.
    exact_ties = {
        "0x1.216807256680fp+7": (35.5, 36),
        "0x1.4aa99a8d4a2bep+7": (42.5, 42),
        "0x1.c62c516aa84afp+7": (62.5, 62),
    }
    for hex_f0, (tie, expected) in exact_ties.items():
        f0 = float.fromhex(hex_f0)
        assert (mel(f0) - mel_min) * 254 / (mel_max - mel_min) + 1 == tie
        assert coarse_f0(np.array([f0]))[0] == expected
        assert coarse_f0(np.array([f0 * (1 + 1e-12)]))[0] == tie + 0.5  # just above a tie rounds up


def test_shift_f0() -> None:
    f0 = np.array([0.0, 110.0, 220.0], dtype=np.float32)
    up = shift_f0(f0, 12)
    assert up.dtype == np.float32
    np.testing.assert_allclose(up, [0.0, 220.0, 440.0], rtol=1e-6)
    np.testing.assert_allclose(shift_f0(f0, -12), [0.0, 55.0, 110.0], rtol=1e-6)
    np.testing.assert_allclose(shift_f0(f0, 7)[2], 220.0 * 2 ** (7 / 12), rtol=1e-6)
    np.testing.assert_array_equal(f0, [0.0, 110.0, 220.0])  # input untouched


def test_median_filter_f0() -> None:
    x = np.array([1.0, 9.0, 2.0, 8.0, 3.0, 7.0, 4.0])
    np.testing.assert_array_equal(median_filter_f0(x, 0), x)
    np.testing.assert_array_equal(median_filter_f0(x, 1), scipy.signal.medfilt(x, 3))
    # radius 2: windows of 5, zero beyond the ends
    np.testing.assert_array_equal(median_filter_f0(x, 2), [1.0, 2.0, 3.0, 7.0, 4.0, 4.0, 3.0])
    spike = np.array([200.0, 200.0, 900.0, 200.0, 200.0])
    np.testing.assert_array_equal(median_filter_f0(spike, 1)[1:4], [200.0, 200.0, 200.0])
    with pytest.raises(ValueError, match="radius"):
        median_filter_f0(x, -1)


# --- errors ------------------------------------------------------------------------------------


def test_unknown_method_lists_all_methods() -> None:
    with pytest.raises(ValueError) as info:
        compute_f0(np.zeros(1600), "yin")
    assert all(method in str(info.value) for method in F0_METHODS)


@pytest.mark.parametrize(
    ("wav", "message"),
    [
        (np.zeros((2, 1600)), "1-D"),
        (np.zeros(1600, dtype=np.int16), "float"),
        (np.full(1600, np.nan), "NaN"),
        (torch.zeros(1600, dtype=torch.int16), "float"),
    ],
)
def test_bad_waveforms(wav: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_f0(wav, "dio")


def test_bad_arguments() -> None:
    wav = np.zeros(1600)
    with pytest.raises(TypeError, match="threshold"):
        compute_f0(wav, "dio", threshold=0.1)
    with pytest.raises(ValueError, match="f0_min"):
        compute_f0(wav, "dio", f0_min=500.0, f0_max=100.0)
    with pytest.raises(ValueError, match="p_len"):
        compute_f0(wav, "dio", p_len=-1)


def test_rmvpe_without_weights_says_where_and_how(tmp_path) -> None:
    with pytest.raises(ModelFileError) as info:
        compute_f0(np.zeros(1600), "rmvpe")
    assert "assets/rmvpe/rmvpe.pt" in str(info.value)
    assert "python tools/download_models.py --only rmvpe" in str(info.value)
    with pytest.raises(ModelFileError, match="download_models.py --only rmvpe"):
        compute_f0(np.zeros(1600), "rmvpe", rmvpe_path=tmp_path / "missing.pt")


def test_rmvpe_rejects_other_state_dicts(tmp_path) -> None:
    path = tmp_path / "not_rmvpe.pt"
    torch.save(OrderedDict(weight=torch.zeros(3)), path)
    with pytest.raises(ModelFileError, match="not an RMVPE model file"):
        RmvpePredictor(path)


def test_conflicting_models_and_paths(tiny_rmvpe, tmp_path) -> None:
    models = PitchModels(rmvpe_path=tiny_rmvpe)
    with pytest.raises(ValueError, match="rmvpe_path"):
        compute_f0(np.zeros(1600), "rmvpe", models=models, rmvpe_path=tmp_path / "other.pt")
    with pytest.raises(ValueError, match="device"):
        compute_f0(np.zeros(1600), "rmvpe", models=models, device="cuda")


# --- RMVPE decoding ----------------------------------------------------------------------------


def test_salience_to_cents_local_average_and_threshold() -> None:
    salience = np.zeros((4, 360), dtype=np.float32)
    salience[0, 100] = 0.9  # single peak: exactly the bin's cents
    salience[1, 100], salience[1, 101] = 0.5, 0.5  # two equal bins: midway
    salience[1, 300] = 0.2  # outside the ±4 window of the peak: ignored
    salience[2, 0], salience[2, 1] = 0.6, 0.2  # peak at the lowest bin: the window reaches into zero padding
    salience[3, 50] = 0.03  # at the threshold: unvoiced
    cents = salience_to_cents(salience, threshold=0.03)
    table = bin_cents()
    np.testing.assert_allclose(
        cents[:3], [table[100], (table[100] + table[101]) / 2, (0.6 * table[0] + 0.2 * table[1]) / 0.8]
    )
    assert cents[3] == 0.0
    np.testing.assert_allclose(cents_to_hz(np.array([0.0, 1200.0, 2400.0])), [0.0, 20.0, 40.0])


# --- RMVPE with a tiny random model ------------------------------------------------------------


def test_tiny_rmvpe_file_format(tiny_rmvpe) -> None:
    state = load_torch_file(tiny_rmvpe)
    assert isinstance(state, OrderedDict)
    assert state["unet.encoder.layers.0.conv.0.conv.0.weight"].shape == (2, 1, 3, 3)
    for name, value in state.items():
        if name.endswith("num_batches_tracked"):
            assert value.dtype == torch.int64 and value.item() == 0
        else:
            assert value.dtype == torch.float16, name
    assert not torch.all(state["unet.encoder.bn.running_var"] == 1)
    assert not torch.all(state["unet.encoder.layers.0.conv.0.conv.1.running_mean"] == 0)


def test_tiny_rmvpe_is_deterministic_per_seed(tmp_path, tiny_rmvpe) -> None:
    same = load_torch_file(save_tiny_rmvpe(tmp_path / "a.pt", seed=0))
    other = load_torch_file(save_tiny_rmvpe(tmp_path / "b.pt", seed=1))
    reference = load_torch_file(tiny_rmvpe)
    assert all(torch.equal(same[k], reference[k]) for k in reference)
    assert not torch.equal(other["fc.1.weight"], reference["fc.1.weight"])


def test_rmvpe_shapes(predictor: RmvpePredictor) -> None:
    wav = tone_then_silence()[:4321].astype(np.float32)
    frames = 4321 // 160 + 1
    assert predictor.mel(wav).shape == (128, frames)
    salience = predictor.salience(wav)
    assert salience.shape == (frames, 360) and salience.dtype == np.float32
    assert salience.min() >= 0 and salience.max() <= 1
    f0 = predictor.predict(wav)
    assert f0.shape == (frames,) and f0.dtype == np.float32
    assert (f0 > 0).any() and (f0 >= 0).all()
    assert (predictor.predict(wav, threshold=1.0) == 0).all()


@pytest.mark.parametrize("n_samples", [1, 100, 512, 513, 1601, 16000])
def test_rmvpe_lengths(predictor: RmvpePredictor, tiny_rmvpe, n_samples: int) -> None:
    wav = harmonic(2 * np.pi * 220 * np.arange(n_samples) / SR)
    assert predictor.predict(wav).shape == (n_samples // 160 + 1,)
    f0 = compute_f0(wav, "rmvpe", rmvpe_path=tiny_rmvpe)
    assert f0.shape == (n_samples // 160,)


def test_rmvpe_deterministic_and_input_types(predictor: RmvpePredictor, tiny_rmvpe) -> None:
    wav = tone_then_silence()
    first = predictor.predict(wav)
    np.testing.assert_array_equal(predictor.predict(wav), first)
    np.testing.assert_array_equal(RmvpePredictor(tiny_rmvpe).predict(wav), first)
    np.testing.assert_array_equal(predictor.predict(torch.from_numpy(wav.astype(np.float32))), first)
    np.testing.assert_array_equal(compute_f0(wav, "rmvpe", rmvpe_path=tiny_rmvpe), first[:100])


def test_rmvpe_half_is_ignored_on_cpu(tiny_rmvpe) -> None:
    predictor = RmvpePredictor(tiny_rmvpe, half=True)
    assert predictor.half is False
    assert all(p.dtype == torch.float32 for p in predictor.model.parameters())


def test_rmvpe_chunking(predictor: RmvpePredictor, tiny_rmvpe) -> None:
    wav = tone_then_silence()[:11200]  # 71 frames: three 32-frame chunks
    whole = predictor.salience(wav)
    # Context covering the whole input: every window is the whole input, so nothing changes.
    covered = RmvpePredictor(tiny_rmvpe, chunk_frames=32, context_frames=128).salience(wav)
    np.testing.assert_array_equal(covered, whole)
    # Without context each 32-frame chunk is processed alone: its output ignores audio after it,
    # which a single pass (bidirectional GRU, wide U-Net) does not.
    alone = RmvpePredictor(tiny_rmvpe, chunk_frames=32, context_frames=0)
    changed = wav.copy()
    changed[6000:] = harmonic(2 * np.pi * 330 * np.arange(len(wav) - 6000) / SR)  # frame 31 ends at sample 5472
    chunked, chunked_changed = alone.salience(wav), alone.salience(changed)
    assert chunked.shape == whole.shape
    np.testing.assert_array_equal(chunked_changed[:32], chunked[:32])
    assert not np.array_equal(chunked_changed[32:], chunked[32:])
    assert not np.array_equal(predictor.salience(changed)[:32], whole[:32])
    with pytest.raises(ValueError, match="multiples of 32"):
        RmvpePredictor(tiny_rmvpe, chunk_frames=100)


def test_pitch_models_loads_once_across_threads(tiny_rmvpe, monkeypatch) -> None:
    loads = []
    original = rmvpe_module.RmvpePredictor

    def counting_predictor(*args, **kwargs):
        loads.append(threading.get_ident())
        threading.Event().wait(0.2)  # widen the race window
        return original(*args, **kwargs)

    monkeypatch.setattr(rmvpe_module, "RmvpePredictor", counting_predictor)
    models = PitchModels("cpu", rmvpe_path=tiny_rmvpe)
    wavs = [tone_then_silence()[:8000], glide()[0][:8000]]
    results: dict[int, np.ndarray] = {}

    def work(index: int) -> None:
        results[index] = compute_f0(wavs[index], "rmvpe", models=models)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    assert models.rmvpe() is models.rmvpe()
    for index, wav in enumerate(wavs):
        np.testing.assert_array_equal(results[index], compute_f0(wav, "rmvpe", rmvpe_path=tiny_rmvpe))


# --- CREPE / FCPE dispatch ---------------------------------------------------------------------


def _fake_predictor_module(name: str, calls: list) -> types.ModuleType:
    class FakePredictor:
        def __init__(self, *args, **kwargs) -> None:
            calls.append(("init", args, kwargs))

        def rvc_f0(self, wav16k, **kwargs):
            calls.append(("rvc_f0", wav16k.dtype, kwargs))
            frames = kwargs.get("p_len", len(wav16k) // 160 + 1)
            return np.full(frames, 123.0)

    module = types.ModuleType(name)
    setattr(module, "CrepePredictor" if name.endswith("crepe") else "FcpePredictor", FakePredictor)
    return module


def test_crepe_and_fcpe_dispatch_with_stand_ins(monkeypatch, tmp_path) -> None:
    calls: list = []
    monkeypatch.setitem(__import__("sys").modules, "infer.f0.crepe", _fake_predictor_module("infer.f0.crepe", calls))
    monkeypatch.setitem(__import__("sys").modules, "infer.f0.fcpe", _fake_predictor_module("infer.f0.fcpe", calls))
    wav = np.zeros(1650)
    f0 = compute_f0(wav, "crepe-tiny", crepe_path=tmp_path / "tiny.pth", batch_size=64)
    assert f0.shape == (10,) and f0.dtype == np.float32 and (f0 == 123.0).all()
    assert calls[0] == ("init", ("tiny",), {"weights_path": tmp_path / "tiny.pth", "device": torch.device("cpu")})
    assert calls[1] == ("rvc_f0", np.float32, {"f0_min": 50.0, "f0_max": 1100.0, "batch_size": 64})
    calls.clear()
    compute_f0(wav, "crepe", models=PitchModels())
    assert calls[0][1] == ("full",)
    calls.clear()
    f0 = compute_f0(wav, "fcpe", p_len=12, threshold=0.01)
    assert f0.shape == (12,)
    assert calls[1] == ("rvc_f0", np.float32, {"p_len": 12, "f0_min": 50.0, "f0_max": 1100.0, "threshold": 0.01})


@pytest.mark.parametrize("method", ["crepe-tiny", "fcpe"])
def test_real_crepe_and_fcpe_dispatch(method: str) -> None:
    pytest.importorskip("infer.f0.crepe" if method.startswith("crepe") else "infer.f0.fcpe")
    f0 = compute_f0(tone_then_silence(), method)
    assert f0.shape == (100,) and f0.dtype == np.float32
    np.testing.assert_allclose(np.median(f0[10:40]), 220.0, rtol=0.03)
