"""Content encoder against fairseq's outputs on the reduced hubert_base fixture (README section C)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from infer.content import load_content_encoder
from infer.content_formats import hubert_config_from_fairseq
from infer.models.hubert import Hubert
from infer.safe_load import load_torch_file
from infer.testing.hubert import fairseq_state_to_hf, save_hf_hubert
from tests.conftest import fixture_path

pytestmark = pytest.mark.compat

LAYER_ATOL, V1_ATOL = 1e-4, 5e-5  # the README's suggested tolerances
WAVES = {"wave": 49, "wave2": 74}  # input name -> frames


@pytest.fixture(scope="module")
def fixture_dir():
    return fixture_path("rvc-reference", "hubert", "hubert_base_reduced")


@pytest.fixture(scope="module")
def reference(fixture_dir):
    with np.load(fixture_dir / "features.npz") as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def encoder(fixture_dir):
    return load_content_encoder(fixture_dir / "hubert_base.pt")


def assert_close(name: str, actual: torch.Tensor | np.ndarray, expected: np.ndarray, atol: float) -> None:
    actual = actual.detach().float().cpu().numpy() if isinstance(actual, torch.Tensor) else actual
    assert actual.shape == expected.shape, name
    delta = float(np.abs(actual - expected).max())
    print(f"{name}: max |delta| = {delta:.3g}")
    assert delta <= atol, f"{name}: max |delta| {delta:.3g} > {atol}"


def test_loaded_attributes(encoder):
    assert (encoder.embed_dim, encoder.final_dim, encoder.num_layers) == (96, 32, 12)
    assert encoder.normalize is False
    assert encoder.network.config.num_classes == 504


@pytest.mark.parametrize("name", sorted(WAVES))
def test_intermediate_features(encoder, reference, name):
    source = torch.from_numpy(reference[name]).view(1, -1)
    network = encoder.network
    with torch.inference_mode():
        conv = network.forward_features(source)
        assert_close(f"{name}/conv_features", conv, reference[f"{name}/conv_features"], LAYER_ATOL)
        assert_close(
            f"{name}/proj_features", network.project_features(conv), reference[f"{name}/proj_features"], LAYER_ATOL
        )
        for layer in range(1, 13):
            key = f"{name}/layer{layer:02d}"
            assert_close(key, network.extract_features(source, layer), reference[key], LAYER_ATOL)


@pytest.mark.parametrize("name", sorted(WAVES))
def test_v1_v2_features(encoder, reference, name):
    v1, v2 = encoder.extract(reference[name], "v1"), encoder.extract(reference[name], "v2")
    assert v1.shape == (WAVES[name], 32) and v2.shape == (WAVES[name], 96)
    assert_close(f"{name}/v1_feats", v1[None], reference[f"{name}/v1_feats"], V1_ATOL)
    assert_close(f"{name}/v2_feats", v2[None], reference[f"{name}/v2_feats"], LAYER_ATOL)


def test_float16_stays_near_the_reference(fixture_dir, reference):
    half = load_content_encoder(fixture_dir / "hubert_base.pt", dtype=torch.float16)
    for name in WAVES:  # measured on CPU: v1 3.3e-3, v2 1.3e-2 (feature std 0.55 / 1.0)
        assert_close(
            f"{name}/v1_feats fp16", half.extract(reference[name], "v1")[None], reference[f"{name}/v1_feats"], 0.02
        )
        assert_close(
            f"{name}/v2_feats fp16", half.extract(reference[name], "v2")[None], reference[f"{name}/v2_feats"], 0.05
        )


def test_hf_export_of_the_fixture_gives_the_same_features(encoder, reference, tmp_path):
    state = encoder.network.state_dict()  # weight norm is folded here; the HF loader splits it again
    folder = save_hf_hubert(tmp_path / "contentvec_hf", encoder.network.config, state)
    hf_names = set(torch.load(folder / "pytorch_model.bin", weights_only=True))
    assert hf_names == set(fairseq_state_to_hf(state))
    assert "encoder.pos_conv_embed.conv.weight" in hf_names and "final_proj.weight" in hf_names
    hf = load_content_encoder(folder)
    for name in WAVES:
        for version, atol in (("v1", V1_ATOL), ("v2", LAYER_ATOL)):
            features = hf.extract(reference[name], version)
            np.testing.assert_allclose(features, encoder.extract(reference[name], version), atol=1e-5, rtol=0)
            assert_close(f"{name}/{version}_feats via HF", features[None], reference[f"{name}/{version}_feats"], atol)


def test_hf_export_with_weight_norm_gives_the_same_features(fixture_dir, encoder, reference, tmp_path):
    checkpoint = load_torch_file(fixture_dir / "hubert_base.pt")
    state = {key: value.float() for key, value in checkpoint["model"].items()}
    folder = save_hf_hubert(tmp_path / "hf_wn", encoder.network.config, state)
    assert "encoder.pos_conv_embed.conv.weight_g" in torch.load(folder / "pytorch_model.bin", weights_only=True)
    np.testing.assert_allclose(
        load_content_encoder(folder).extract(reference["wave"], "v2"),
        encoder.extract(reference["wave"], "v2"),
        atol=1e-6,
        rtol=0,
    )


def _manifest_keys(path) -> tuple[dict, dict[str, tuple[int, ...]]]:
    manifest = json.loads(path.read_text())
    return manifest, {name: tuple(shape) for name, shape, _dtype in manifest["model_keys"]}


def _network_keys(manifest: dict) -> dict[str, tuple[int, ...]]:
    config = hubert_config_from_fairseq(manifest["cfg_model"], num_classes=manifest["task_state"]["dictionary_len"])
    with torch.device("meta"):
        network = Hubert(config)
    return {name: tuple(value.shape) for name, value in network.state_dict().items()}


def test_full_size_structure_from_manifest():
    manifest, expected = _manifest_keys(fixture_path("rvc-reference", "hubert", "full_size_manifest.json"))
    assert len(expected) > 200
    assert _network_keys(manifest) == expected
    assert expected["encoder.pos_conv.0.weight_v"] == (768, 48, 128)


def test_reduced_structure_from_meta(fixture_dir):
    manifest, expected = _manifest_keys(fixture_dir / "meta.json")
    assert _network_keys(manifest) == expected
