"""RMVPE against outputs of RVC's own code (fixture README §D)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infer.f0.rmvpe import RmvpePredictor, bin_cents, cents_to_hz, salience_to_cents
from infer.mel import mel_filterbank
from infer.models.rmvpe import E2E, RmvpeConfig
from infer.safe_load import load_torch_file
from infer.testing.rmvpe import tiny_rmvpe_state_dict
from tests.conftest import fixture_path

pytestmark = pytest.mark.compat

MARGIN = 1e-5  # compare f0 only where the argmax is clear (README §D)


@pytest.fixture(scope="module")
def reduced():
    folder = fixture_path("rvc-reference", "rmvpe", "rmvpe_reduced")
    io = np.load(folder / "io.npz")
    return RmvpePredictor(folder / "rmvpe.pt"), {key: io[key] for key in io.files}, folder


def _max_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), initial=0.0))


def test_constants_match_reference(reduced) -> None:
    _, io, _ = reduced
    assert _max_abs(mel_filterbank(16000, 1024, 128, 30.0, 8000.0, htk=True), io["mel_basis"]) < 1e-7
    np.testing.assert_array_equal(np.pad(bin_cents(), 4), io["cents_mapping"])
    np.testing.assert_array_equal(torch.hann_window(1024).numpy(), io["hann_window_1024"])


@pytest.mark.parametrize("wave", ["wave", "wave2"])
def test_reduced_rmvpe_matches_reference(reduced, wave: str) -> None:
    predictor, io, _ = reduced
    audio = io[wave]
    clear = io[f"{wave}/top2_margin"] > MARGIN

    mel = predictor.mel(audio)
    assert mel.shape == io[f"{wave}/mel"].shape[1:]
    assert _max_abs(mel, io[f"{wave}/mel"][0]) < 1e-4

    hidden = predictor.salience(audio)
    assert hidden.shape == io[f"{wave}/hidden"].shape
    assert _max_abs(hidden, io[f"{wave}/hidden"]) < 1e-5

    cents = salience_to_cents(hidden, 0.03)
    assert _max_abs(cents[clear], io[f"{wave}/cents"][clear]) < 0.05
    for key, threshold in ((f"{wave}/f0", 0.03), (f"{wave}/f0_thred0.05", 0.05)):
        f0 = predictor.predict(audio, threshold=threshold)
        assert f0.shape == io[key].shape and f0.dtype == np.float32
        np.testing.assert_array_equal(f0[clear] == 0, io[key][clear] == 0)
        assert _max_abs(f0[clear], io[key][clear]) < 1e-2


@pytest.mark.parametrize("wave", ["wave", "wave2"])
def test_decoding_reference_salience_is_exact(reduced, wave: str) -> None:
    _, io, _ = reduced
    cents = salience_to_cents(io[f"{wave}/hidden"], 0.03)
    assert _max_abs(cents, io[f"{wave}/cents"]) < 1e-9
    assert _max_abs(cents_to_hz(cents), io[f"{wave}/f0"]) < 1e-9


def test_tiny_file_has_the_reduced_fixture_format(reduced) -> None:
    _, _, folder = reduced
    meta = json.loads((folder / "meta.json").read_text())
    expected = [(name, list(shape), dtype) for name, shape, dtype in meta["state_dict_keys"]]
    state = tiny_rmvpe_state_dict(en_out_channels=meta["e2e_args"]["en_out_channels"])
    actual = [(name, list(value.shape), str(value.dtype).removeprefix("torch.")) for name, value in state.items()]
    assert actual == expected
    reference = load_torch_file(folder / "rmvpe.pt")
    assert type(state) is type(reference)


def test_full_size_model_matches_manifest() -> None:
    manifest = json.loads(fixture_path("rvc-reference", "rmvpe", "full_size_manifest.json").read_text())
    shapes = {name: torch.empty(shape, device="meta") for name, shape, _ in manifest["state_dict_keys"]}
    config = RmvpeConfig.from_state_dict(shapes)
    assert config == RmvpeConfig()  # RVC's E2E(4, 1, (2, 2)) is our default
    assert config.en_out_channels == manifest["e2e_args"]["en_out_channels"]
    with torch.device("meta"):
        model = E2E(config)
    actual = [(name, list(value.shape)) for name, value in model.state_dict().items()]
    assert actual == [(name, list(shape)) for name, shape, _ in manifest["state_dict_keys"]]
