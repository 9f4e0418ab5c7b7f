"""Content encoder (HuBERT/ContentVec) on tiny random models written by the tests."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import infer.content as content
import infer.testing.hubert as tiny
from infer.content import ContentEncoder, load_content_encoder
from infer.content_formats import parse_conv_feature_layers
from infer.models.hubert import Hubert, HubertConfig
from infer.models.weight_norm import remove_all_weight_norm
from infer.safe_load import FairseqDictionary, ModelFileError, load_torch_file

EMBED_DIM, FINAL_DIM = 32, 16


def frames(num_samples: int) -> int:
    return (num_samples - 400) // 320 + 1


def wave(num_samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(num_samples) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(num_samples)).astype(np.float32)


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("tiny_hubert")


@pytest.fixture(scope="module")
def fairseq_path(tiny_dir):
    return tiny.save_tiny_hubert(tiny_dir / "hubert_base.pt", seed=3)


@pytest.fixture(scope="module")
def hf_folder(tiny_dir):
    return tiny.save_tiny_hubert(tiny_dir / "hf", seed=3, fmt="hf")


@pytest.fixture(scope="module")
def encoder(fairseq_path):
    return load_content_encoder(fairseq_path)


# ---- file format -----------------------------------------------------------------------------


def test_tiny_fairseq_file_has_the_real_structure(fairseq_path):
    assert fairseq_path.stat().st_size < 1_000_000
    assert "fairseq" not in sys.modules  # the Dictionary name was written without registering a module
    assert torch.serialization.get_unsafe_globals_in_checkpoint(fairseq_path) == ["fairseq.data.dictionary.Dictionary"]
    checkpoint = load_torch_file(fairseq_path)
    assert checkpoint["args"] is None
    assert checkpoint["cfg"]["model"]["_name"] == "hubert"
    assert checkpoint["cfg"]["model"]["encoder_layers"] == 12
    assert checkpoint["cfg"]["task"]["normalize"] is False
    dictionary = checkpoint["task_state"]["dictionaries"][0]
    assert isinstance(dictionary, FairseqDictionary)
    assert len(dictionary.symbols) == 504 and dictionary.symbols[:5] == ["<s>", "<pad>", "</s>", "<unk>", "0"]
    state = checkpoint["model"]
    assert all(value.dtype == torch.float16 for value in state.values())
    assert state["encoder.pos_conv.0.weight_g"].shape == (1, 1, 128)
    assert state["feature_extractor.conv_layers.0.2.weight"].shape == (16,)
    assert state["label_embs_concat"].shape == (504, FINAL_DIM)
    assert "encoder.layers.11.final_layer_norm.bias" in state


def test_tiny_hf_folder_uses_transformers_names(hf_folder):
    state = load_torch_file(hf_folder / "pytorch_model.bin")
    # Names as transformers' HubertModel (modeling_hubert.py) spells them, plus ContentVec's final_proj.
    expected_layer0 = {
        f"encoder.layers.0.{name}.{p}"
        for name in (
            "attention.k_proj",
            "attention.v_proj",
            "attention.q_proj",
            "attention.out_proj",
            "layer_norm",
            "feed_forward.intermediate_dense",
            "feed_forward.output_dense",
            "final_layer_norm",
        )
        for p in ("weight", "bias")
    }
    others = {
        "masked_spec_embed",
        "feature_extractor.conv_layers.0.conv.weight",
        "feature_extractor.conv_layers.0.layer_norm.weight",
        "feature_extractor.conv_layers.0.layer_norm.bias",
        "feature_extractor.conv_layers.6.conv.weight",
        "feature_projection.layer_norm.weight",
        "feature_projection.layer_norm.bias",
        "feature_projection.projection.weight",
        "feature_projection.projection.bias",
        "encoder.pos_conv_embed.conv.weight_g",
        "encoder.pos_conv_embed.conv.weight_v",
        "encoder.pos_conv_embed.conv.bias",
        "encoder.layer_norm.weight",
        "encoder.layer_norm.bias",
        "final_proj.weight",
        "final_proj.bias",
    }
    assert expected_layer0 | others <= set(state)
    assert {key for key in state if key.startswith("encoder.layers.0.")} == expected_layer0
    assert len(state) == len(others) + 12 * len(expected_layer0) + 5  # conv_layers.1..5 weights


# ---- shapes and layer selection -------------------------------------------------------------


def test_attributes_and_shapes(encoder):
    assert (encoder.embed_dim, encoder.final_dim, encoder.num_layers) == (EMBED_DIM, FINAL_DIM, 12)
    assert encoder.device == torch.device("cpu") and encoder.dtype == torch.float32
    assert encoder.normalize is False
    v1, v2 = encoder.extract(wave(16000), "v1"), encoder.extract(wave(16000), "v2")
    assert v1.shape == (49, FINAL_DIM) and v2.shape == (49, EMBED_DIM)
    assert v1.dtype == np.float32 and v2.dtype == np.float32
    assert encoder.feature_dim("v1") == FINAL_DIM and encoder.feature_dim("v2") == EMBED_DIM
    tensor = encoder.extract_tensor(wave(16000), "v2")
    assert tensor.shape == (1, 49, EMBED_DIM) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor[0].numpy(), v2)
    tensor[0, 0] = 0.0  # callers may edit it in place (not an inference-mode tensor)


@pytest.mark.parametrize("num_samples", [400, 719, 720, 1039, 1040, 16000, 16320, 16321, 24000, 33599])
def test_frame_count_formula(encoder, num_samples):
    expected = frames(num_samples)
    assert encoder.num_frames(num_samples) == expected
    assert encoder.extract(wave(num_samples), "v2").shape == (expected, EMBED_DIM)
    assert encoder.extract(wave(num_samples), "v1").shape == (expected, FINAL_DIM)


def test_odd_frame_counts_are_padded_to_even_and_the_pad_is_invisible(encoder):
    source = torch.from_numpy(wave(16320)).unsqueeze(0)  # 50 frames; its first 16000 samples give 49
    seen = []
    hook = encoder.network.encoder.layers[0].register_forward_pre_hook(lambda _m, args: seen.append(args[0].shape[1]))
    try:
        with torch.inference_mode():
            odd = encoder.network.extract_features(source[:, :16000], 12)
            encoder.network.extract_features(source, 12)
    finally:
        hook.remove()
    assert seen == [50, 50]  # 49 frames were padded to 50 inside the transformer
    assert odd.shape[1] == 49
    unpadded = Hubert(dataclasses.replace(encoder.network.config, required_seq_len_multiple=1))
    remove_all_weight_norm(unpadded)  # the encoder's network has its weight norm folded
    unpadded.load_state_dict(encoder.network.state_dict())
    with torch.inference_mode():
        reference = unpadded.eval().extract_features(source[:, :16000], 12)
    torch.testing.assert_close(odd, reference, atol=1e-5, rtol=0)


def test_v1_is_final_proj_of_layer_9_and_v2_is_layer_12(encoder):
    audio = wave(12345)
    source = torch.from_numpy(audio).unsqueeze(0)
    with torch.inference_mode():
        layer9 = encoder.network.extract_features(source, 9)
        layer12 = encoder.network.extract_features(source, 12)
        expected_v1 = encoder.network.final_proj(layer9)[0].numpy()
        wrong_v1 = encoder.network.final_proj(layer12)[0].numpy()
    np.testing.assert_allclose(encoder.extract(audio, "v1"), expected_v1, atol=1e-6)
    np.testing.assert_allclose(encoder.extract(audio, "v2"), layer12[0].numpy(), atol=1e-6)
    assert np.abs(expected_v1 - wrong_v1).max() > 0.1  # layer choice matters
    assert (layer9 - layer12).abs().max() > 0.1


def test_all_false_padding_mask_equals_no_mask(encoder):
    source = torch.from_numpy(np.stack([wave(8000, 1), wave(8000, 2)]))
    with torch.inference_mode():
        plain = encoder.network.extract_features(source, 12)
        masked = encoder.network.extract_features(source, 12, torch.zeros_like(source, dtype=torch.bool))
    torch.testing.assert_close(plain, masked, atol=0, rtol=0)


@pytest.mark.parametrize(
    "convert",
    [
        lambda a: a.astype(np.float64),
        lambda a: torch.from_numpy(a),
        lambda a: torch.from_numpy(a).double(),
        lambda a: torch.from_numpy(a).unsqueeze(0),
        lambda a: a[None, :],
        lambda a: np.repeat(a, 2)[::2],  # non-contiguous view
    ],
    ids=["np64", "torch32", "torch64", "torch_1xN", "np_1xN", "np_strided"],
)
def test_input_types_agree(encoder, convert):
    audio = wave(9000)
    np.testing.assert_allclose(encoder.extract(convert(audio), "v2"), encoder.extract(audio, "v2"), atol=1e-6)


def test_float16_close_to_float32(fairseq_path, encoder):
    half = load_content_encoder(fairseq_path, dtype=torch.float16)
    assert half.dtype == torch.float16
    assert half.extract_tensor(wave(4000), "v2").dtype == torch.float16
    audio = wave(16000)
    for version, atol in (("v1", 0.02), ("v2", 0.02)):  # measured 2e-3 and 3e-3
        result = half.extract(audio, version)
        assert result.dtype == np.float32
        np.testing.assert_allclose(result, encoder.extract(audio, version), atol=atol, rtol=0)


def test_threads_share_one_encoder(encoder):
    audios = [wave(8000 + 700 * i, seed=i) for i in range(8)]
    sequential = [encoder.extract(audio, "v1" if i % 2 else "v2") for i, audio in enumerate(audios)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(
            pool.map(lambda item: encoder.extract(item[1], "v1" if item[0] % 2 else "v2"), enumerate(audios))
        )
    for a, b in zip(sequential, parallel):
        np.testing.assert_allclose(a, b, atol=1e-5)


def test_normalize_applies_utterance_layer_norm(encoder):
    # The GroupNorm front end hides any affine change of the waveform, so look at what the network receives.
    config = encoder.network.config
    audio = 3.0 * wave(8000) + 0.5
    fed = {}
    for normalize in (False, True):
        content_encoder = ContentEncoder(tiny.random_hubert(config, seed=5), normalize=normalize)
        content_encoder.network.feature_extractor.register_forward_pre_hook(
            lambda _module, args, key=normalize: fed.__setitem__(key, args[0][0].numpy().copy())
        )
        content_encoder.extract(audio, "v2")
    np.testing.assert_allclose(fed[False], audio, atol=0)
    expected = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-5)
    np.testing.assert_allclose(fed[True], expected, atol=1e-5)


def test_loader_reads_task_normalize(tiny_dir, monkeypatch):
    monkeypatch.setitem(tiny.FAIRSEQ_TASK_CFG, "normalize", True)
    path = tiny.save_tiny_hubert(tiny_dir / "normalizing.pt")
    assert load_content_encoder(path).normalize is True


# ---- other layouts of the same weights ------------------------------------------------------


def test_hf_folder_gives_the_same_features(encoder, hf_folder):
    hf = load_content_encoder(hf_folder)
    via_config = load_content_encoder(hf_folder / "config.json")
    assert (hf.embed_dim, hf.final_dim, hf.num_layers) == (EMBED_DIM, FINAL_DIM, 12)
    audio = wave(20000)
    for version in ("v1", "v2"):
        np.testing.assert_allclose(hf.extract(audio, version), encoder.extract(audio, version), atol=1e-6)
        np.testing.assert_allclose(via_config.extract(audio, version), encoder.extract(audio, version), atol=1e-6)


def test_hf_parametrization_names_prefix_and_heads(encoder, hf_folder, tmp_path):
    state = load_torch_file(hf_folder / "pytorch_model.bin")
    renamed = {}
    for key, value in state.items():
        key = key.replace(".weight_g", ".parametrizations.weight.original0")
        key = key.replace(".weight_v", ".parametrizations.weight.original1")
        renamed["hubert." + key] = value
    renamed["lm_head.weight"] = torch.zeros(10, EMBED_DIM)  # a HubertForCTC head: ignored
    (tmp_path / "config.json").write_text((hf_folder / "config.json").read_text())
    torch.save(renamed, tmp_path / "pytorch_model.bin")
    audio = wave(7000)
    np.testing.assert_allclose(
        load_content_encoder(tmp_path).extract(audio, "v2"), encoder.extract(audio, "v2"), atol=1e-6
    )


def test_old_fairseq_args_checkpoint(encoder, fairseq_path, tmp_path):
    checkpoint = load_torch_file(fairseq_path)
    flat = {**checkpoint["cfg"]["task"], **checkpoint["cfg"]["model"]}
    old = {"args": argparse.Namespace(**flat), "model": checkpoint["model"]}
    torch.save(old, tmp_path / "old.pt")
    audio = wave(6000)
    np.testing.assert_array_equal(
        load_content_encoder(tmp_path / "old.pt").extract(audio, "v1"), encoder.extract(audio, "v1")
    )


# ---- errors ---------------------------------------------------------------------------------


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found.*nope.pt"):
        load_content_encoder(tmp_path / "nope.pt")


@pytest.mark.parametrize(
    ("payload", "kind"),
    [
        ({"weight": {"emb_g.weight": torch.zeros(1, 4)}, "config": [1], "version": "v2"}, "voice model"),
        ({"unet.encoder.bn.weight": torch.zeros(1), "fc.1.weight": torch.zeros(2, 2)}, "RMVPE"),
        ({"model": {"dec.conv_pre.weight": torch.zeros(1)}, "optimizer": {}, "iteration": 1}, "training checkpoint"),
    ],
    ids=["voice", "rmvpe", "G_checkpoint"],
)
def test_not_a_hubert_file(tmp_path, payload, kind):
    path = tmp_path / "model.pth"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match=f"not a HuBERT.*{kind}"):
        load_content_encoder(path)


def test_damaged_state_dict(tmp_path, encoder):
    state = dict(encoder.network.state_dict())
    state.pop("encoder.layers.3.fc2.bias")
    state["encoder.pos_conv.0.weight_g"] = torch.ones(1, 1, 128)
    state["encoder.pos_conv.0.weight_v"] = state.pop("encoder.pos_conv.0.weight")
    path = tiny.save_fairseq_hubert(tmp_path / "damaged.pt", encoder.network.config, state)
    with pytest.raises(ModelFileError, match="missing: encoder.layers.3.fc2.bias"):
        load_content_encoder(path)


def test_unsupported_variant(tmp_path, monkeypatch):
    original = tiny.fairseq_model_cfg
    monkeypatch.setattr(tiny, "fairseq_model_cfg", lambda config: {**original(config), "layer_norm_first": True})
    path = tiny.save_tiny_hubert(tmp_path / "large.pt")
    with pytest.raises(ModelFileError, match="layer_norm_first"):
        load_content_encoder(path)


def test_folder_without_config(tmp_path):
    with pytest.raises(ModelFileError, match="without config.json"):
        load_content_encoder(tmp_path)


def test_hf_folder_of_another_model_type(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "wav2vec2"}')
    with pytest.raises(ModelFileError, match="'wav2vec2' model"):
        load_content_encoder(tmp_path)


def test_safetensors_without_the_package(tmp_path, hf_folder, monkeypatch):
    (tmp_path / "config.json").write_text((hf_folder / "config.json").read_text())
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 16)
    monkeypatch.setattr(content, "_safetensors_loader", lambda: None)
    with pytest.raises(ModelFileError, match="safetensors"):
        load_content_encoder(tmp_path)


def test_v1_needs_final_proj(tmp_path):
    encoder = load_content_encoder(tiny.save_tiny_hubert(tmp_path / "hf", fmt="hf", final_dim=0))
    assert encoder.final_dim is None
    assert encoder.extract(wave(1000), "v2").shape == (2, EMBED_DIM)
    with pytest.raises(ValueError, match="no final_proj"):
        encoder.extract(wave(1000), "v1")


@pytest.mark.parametrize(
    ("audio", "error", "match"),
    [
        (np.zeros(399, np.float32), ValueError, "399 samples"),
        (np.zeros(1000, np.int16), ValueError, "float waveform"),
        (torch.zeros(1000, dtype=torch.int32), ValueError, "float waveform"),
        (np.zeros((2, 1000), np.float32), ValueError, "mono"),
        ([0.0] * 1000, TypeError, "numpy array or torch tensor"),
    ],
    ids=["too_short", "int16", "torch_int", "stereo", "list"],
)
def test_bad_input(encoder, audio, error, match):
    with pytest.raises(error, match=match):
        encoder.extract(audio, "v2")


def test_unknown_version(encoder):
    with pytest.raises(ValueError, match="Unknown model version 'v3'"):
        encoder.extract(wave(1000), "v3")


# ---- config helpers -------------------------------------------------------------------------


def test_parse_conv_feature_layers():
    layers = parse_conv_feature_layers("[(512,10,5)] + [(512,3,2)] * 4 + [(512,2,2)] * 2")
    assert layers == ((512, 10, 5),) + ((512, 3, 2),) * 4 + ((512, 2, 2),) * 2
    assert HubertConfig(conv_layers=layers).min_samples == 400
    bad_specs = ("__import__('os').system('true')", "[(512, 10)]", "[(1,2,3)] * 10**9", "[]", "[1] * [2]", "[(1,2")
    for bad in bad_specs:
        with pytest.raises(ValueError):
            parse_conv_feature_layers(bad)


def test_config_validation():
    with pytest.raises(ValueError, match="not divisible by num_heads"):
        HubertConfig(embed_dim=30, num_heads=4, conv_pos_groups=1)
