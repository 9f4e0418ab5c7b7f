"""CREPE and FCPE against the outputs of the real torchcrepe 0.0.24 / torchfcpe 0.0.4.

Fixtures: ``shared/fixtures/pitch-reference`` (see its README for how each array
was made and the suggested tolerances).  The weights come from the installed
wheels; everything is skipped when either is missing.  The full CREPE network
runs once per input (module-scoped cache), then every decoder check reuses it.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infer.f0.bundled import BundledWeightsError, bundled_weight_path
from infer.f0.crepe import (
    CrepePredictor,
    bins_to_hz,
    decode,
    frame_audio,
    median3,
    pitch_bin_range,
    rvc_postprocess,
    viterbi_bins,
    weighted_argmax,
)
from infer.f0.fcpe import FcpePredictor, local_argmax_f0
from tests.conftest import fixture_path

pytestmark = pytest.mark.compat

INPUTS = ("vibrato", "speech")
VARIANTS = ("full", "tiny")
DECODER_NAMES = {"viterbi": "viterbi", "wargmax": "weighted_argmax"}


def _weights_or_skip(package: str, relative: str) -> None:
    try:
        bundled_weight_path(package, relative)
    except BundledWeightsError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def crepe_ref():
    with np.load(fixture_path("pitch-reference", "crepe.npz")) as data:
        return dict(data)


@pytest.fixture(scope="module")
def fcpe_ref():
    with np.load(fixture_path("pitch-reference", "fcpe.npz")) as data:
        return dict(data)


@pytest.fixture(scope="module")
def crepe_models():
    _weights_or_skip("torchcrepe", "assets/full.pth")
    return {variant: CrepePredictor(variant) for variant in VARIANTS}


@pytest.fixture(scope="module")
def fcpe_model():
    _weights_or_skip("torchfcpe", "assets/fcpe_c_v001.pt")
    return FcpePredictor()


@pytest.fixture(scope="module")
def activations(crepe_ref, crepe_models):
    """Our network output per (input, variant), computed on first use."""
    cache: dict[tuple[str, str], np.ndarray] = {}

    def get(name: str, variant: str) -> np.ndarray:
        if (name, variant) not in cache:
            cache[name, variant] = crepe_models[variant].activations(crepe_ref[f"input_{name}"])
        return cache[name, variant]

    return get


def max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))


# ----------------------------------------------------------------- CREPE


def test_crepe_bin_range(crepe_ref):
    assert pitch_bin_range(50, 1100) == (int(crepe_ref["fmin_bin"]), int(crepe_ref["fmax_bin_exclusive"]))
    np.testing.assert_allclose(
        bins_to_hz(np.arange(360)), 10 * 2 ** (crepe_ref["wargmax_weights_cents_nodither"] / 1200), rtol=1e-6
    )


@pytest.mark.parametrize("name", INPUTS)
def test_crepe_frames(crepe_ref, name):
    frames = frame_audio(crepe_ref[f"input_{name}"])
    assert frames.shape == crepe_ref[f"{name}_frames"].shape
    assert max_abs(frames, crepe_ref[f"{name}_frames"]) < 1e-6


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", INPUTS)
def test_crepe_activations(crepe_ref, activations, name, variant):
    ours = activations(name, variant)
    assert ours.shape == crepe_ref[f"{name}_{variant}_activation"].shape
    assert max_abs(ours, crepe_ref[f"{name}_{variant}_activation"]) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
def test_crepe_layer_outputs(crepe_ref, crepe_models, variant):
    net = crepe_models[variant].net
    frames = torch.from_numpy(crepe_ref["speech_frames"][crepe_ref["speech_layer_frame_index"]])
    with torch.inference_mode():
        blocks = net.block_outputs(frames)
        flat = net.flatten(blocks[-1])
    for index, block in enumerate(blocks, start=1):
        reference = crepe_ref[f"speech_{variant}_layer{index}"]
        assert block.shape == reference.shape
        # Values reach ~18 here, where 1e-5 is only a few float32 steps: bound the error relative to the range.
        assert max_abs(block.numpy(), reference) < 1e-5 * max(1.0, float(np.abs(reference).max())), f"layer {index}"
    assert max_abs(flat.numpy(), crepe_ref[f"speech_{variant}_classifier_input"]) < 1e-5


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", INPUTS)
def test_crepe_decoded_bins(crepe_ref, activations, name, variant):
    key = f"{name}_{variant}"
    for source in (crepe_ref[f"{key}_activation"], activations(name, variant)):
        tensor = torch.from_numpy(source)
        np.testing.assert_array_equal(viterbi_bins(tensor, 39, 308), crepe_ref[f"{key}_viterbi_bins"])
        np.testing.assert_array_equal(weighted_argmax(tensor, 39, 308)[0], crepe_ref[f"{key}_wargmax_bins"])


@pytest.mark.parametrize("decoder", DECODER_NAMES)
@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", INPUTS)
def test_crepe_pitch_periodicity_and_rvc_postprocessing(crepe_ref, activations, name, variant, decoder):
    key = f"{name}_{variant}_{decoder}"
    f0, periodicity = decode(activations(name, variant), f0_min=50, f0_max=1100, decoder=DECODER_NAMES[decoder])
    np.testing.assert_allclose(f0, crepe_ref[f"{key}_f0_nodither"], rtol=1e-5, atol=0)
    assert max_abs(periodicity, crepe_ref[f"{key}_periodicity"]) < 1e-5
    rvc = rvc_postprocess(f0, periodicity)
    reference = crepe_ref[f"{key}_rvc_f0_nodither"]
    np.testing.assert_array_equal(rvc > 0, reference > 0)
    np.testing.assert_allclose(rvc, reference, rtol=1e-5, atol=0)
    assert max_abs(median3(periodicity), crepe_ref[f"{key}_rvc_periodicity"]) < 1e-5


@pytest.mark.parametrize("name", INPUTS)
def test_crepe_tiny_rvc_f0_end_to_end(crepe_ref, crepe_models, name):
    ours = crepe_models["tiny"].rvc_f0(crepe_ref[f"input_{name}"])
    reference = crepe_ref[f"{name}_tiny_viterbi_rvc_f0_nodither"]
    np.testing.assert_array_equal(ours > 0, reference > 0)
    np.testing.assert_allclose(ours, reference, rtol=1e-5, atol=0)


# ----------------------------------------------------------------- FCPE


def test_fcpe_tables(fcpe_ref, fcpe_model):
    assert max_abs(fcpe_model.front_end.basis.numpy(), fcpe_ref["mel_basis"]) < 1e-7
    np.testing.assert_array_equal(fcpe_model.front_end.window.numpy(), fcpe_ref["hann_window"])
    np.testing.assert_array_equal(fcpe_model.net.cent_table.numpy(), fcpe_ref["cent_table"])
    config = json.loads(str(fcpe_ref["config_json"]))
    assert config["model"]["conv_only"] is True and config["mel"]["hop_size"] == 160


@pytest.mark.parametrize("name", INPUTS)
def test_fcpe_mel_latent_and_f0(fcpe_ref, fcpe_model, name):
    wav = fcpe_ref[f"input_{name}"]
    mel = fcpe_model.mel(wav)
    assert mel.shape == fcpe_ref[f"{name}_mel"].shape
    assert max_abs(mel, fcpe_ref[f"{name}_mel"]) < 1e-3
    latent = fcpe_model.latent(wav)
    assert max_abs(latent, fcpe_ref[f"{name}_latent"]) < 1e-4
    assert max_abs(latent.max(axis=1), fcpe_ref[f"{name}_confidence"]) < 1e-4

    table = fcpe_model.net.cent_table
    model_f0 = local_argmax_f0(torch.from_numpy(latent), table, threshold=0.006).numpy()
    reference = fcpe_ref[f"{name}_f0_model_frames"]
    np.testing.assert_array_equal(model_f0 > 0, reference > 0)
    np.testing.assert_allclose(model_f0, reference, rtol=1e-5, atol=0)
    np.testing.assert_array_equal((model_f0 < 50).astype(np.float32), fcpe_ref[f"{name}_uv_model_frames"])

    p_len = len(wav) // 160
    f0 = fcpe_model.rvc_f0(wav, p_len=p_len)
    reference = fcpe_ref[f"{name}_f0"]
    assert f0.shape == reference.shape == (p_len,)
    np.testing.assert_array_equal(f0 > 0, reference > 0)
    np.testing.assert_allclose(f0, reference, rtol=1e-5, atol=0)


@pytest.mark.parametrize("name", INPUTS)
def test_fcpe_decoder_on_reference_latent(fcpe_ref, fcpe_model, name):
    latent = torch.from_numpy(fcpe_ref[f"{name}_latent"])
    f0 = local_argmax_f0(latent, fcpe_model.net.cent_table, threshold=0.006).numpy()
    reference = fcpe_ref[f"{name}_f0_model_frames"]
    np.testing.assert_array_equal(f0 > 0, reference > 0)
    np.testing.assert_allclose(f0, reference, rtol=1e-6, atol=0)
    cents = 1200 * np.log2(local_argmax_f0(latent, fcpe_model.net.cent_table, threshold=-1.0).numpy() / 10)
    np.testing.assert_allclose(cents, fcpe_ref[f"{name}_cents_local_unmasked"], rtol=1e-6)


def test_fcpe_hidden_layers(fcpe_ref, fcpe_model):
    start = int(fcpe_ref["speech_hidden_frame_start"])
    with torch.inference_mode():
        states = fcpe_model.net.hidden_states(torch.from_numpy(fcpe_ref["speech_mel"])[None])
    names = ["input_stack"] + [f"layer{i}" for i in range(6)] + ["final_norm"]
    for state in names:
        ours = states[state][0, start : start + 64].numpy()
        reference = fcpe_ref[f"speech_hidden_{state}"]
        scale = float(np.abs(reference).max())
        assert max_abs(ours, reference) < 1e-5 * scale, state  # float32 rounding relative to the layer's range
    logits = fcpe_ref["speech_logits"]
    assert max_abs(states["logits"][0].numpy(), logits) < 1e-5 * float(np.abs(logits).max())
