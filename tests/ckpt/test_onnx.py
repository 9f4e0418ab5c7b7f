"""ONNX export: RVC's input names, onnxruntime output equal to PyTorch's, and the noise input it expects.

Tolerance: float32 graphs of the same operations differ only by rounding; we
allow 1e-4 absolute on audio in [-1, 1] (measured: about 1e-6).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from infer.ckpt import OutputExistsError, export_onnx
from infer.ckpt.onnx_export import NOISE_SCALE
from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.ckpt.helpers import TINY_DIM

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
ATOL = 1e-4


def _session(path: Path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> dict[str, object]:
    """One tiny v2 40k pitch voice exported twice: deterministic pitch source, and RVC's noisy one."""
    folder = tmp_path_factory.mktemp("onnx")
    voice = save_tiny_voice(folder / "tiny.pth", "v2", 40000, True, 0, feature_dim=TINY_DIM)
    plain = export_onnx(voice, folder / "plain.onnx", nsf_noise=False)
    return {
        "voice": voice,
        "plain": plain,
        "noisy": export_onnx(voice, nsf_noise=True),
        "session": _session(plain.path),
        "synthesizer": load_voice(voice).synthesizer,
    }


def _torch_audio(voice_path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """PyTorch reference: the loaded voice's own submodules with the same pre-scaled noise and no NSF noise."""
    s = load_voice(voice_path).synthesizer
    t = {k: torch.from_numpy(v) for k, v in feeds.items()}
    with torch.no_grad():
        g = s.emb_g(t["ds"]).unsqueeze(-1)
        m_p, logs_p, mask = s.enc_p(t["phone"], t.get("pitch"), t["phone_lengths"])
        z = s.flow((m_p + torch.exp(logs_p) * t["rnd"]) * mask, mask, g=g, reverse=True)
        return s.dec(z * mask, t.get("pitchf"), g=g, add_noise=False).numpy()


def test_inputs_keep_rvcs_names_and_shapes(exported):
    result = exported["plain"]
    session = _session(result.path)
    names = [i.name for i in session.get_inputs()]
    assert names == ["phone", "phone_lengths", "pitch", "pitchf", "ds", "rnd"]
    assert [t.name for t in result.inputs] == names
    shapes = {i.name: i.shape for i in session.get_inputs()}
    assert shapes["phone"][0] == 1 and shapes["phone"][2] == TINY_DIM and isinstance(shapes["phone"][1], str)
    assert shapes["rnd"][:2] == [1, 8] and isinstance(shapes["rnd"][2], str)
    assert [o.name for o in session.get_outputs()] == ["audio"]
    assert result.path.name == "plain.onnx" and exported["noisy"].path.name == "tiny.onnx"


@pytest.mark.parametrize("frames", [1, 7, 64, 333, 1000])
def test_matches_pytorch_inference_at_any_length(exported, frames):
    """With rnd = 0 the graph must equal the voice's real inference path (noise_scale=0).

    1000 frames (10 s) would show a drift of the sine phase if onnxruntime summed it in float32.
    """
    result = exported["plain"]
    feeds = result.example_inputs(frames, seed=frames)
    feeds["rnd"][:] = 0
    out = exported["session"].run(None, feeds)[0]
    with torch.no_grad():
        expected = exported["synthesizer"].infer(
            *(torch.from_numpy(feeds[k]) for k in ("phone", "phone_lengths", "pitch", "pitchf", "ds")), noise_scale=0
        )[0]
    assert out.shape == (1, 1, frames * 400)
    np.testing.assert_allclose(out, expected.numpy(), atol=ATOL, rtol=0)


def test_noise_input_is_pre_scaled(exported):
    result = exported["plain"]
    feeds = result.example_inputs(50, seed=3)
    assert abs(float(feeds["rnd"].std()) - NOISE_SCALE) < 0.05
    out = _session(result.path).run(None, feeds)[0]
    np.testing.assert_allclose(out, _torch_audio(exported["voice"], feeds), atol=ATOL, rtol=0)
    assert "0.66666" in result.noise_input and "Do not feed unscaled" in result.text()
    props = {p.key: p.value for p in onnx.load(str(result.path)).metadata_props}
    assert props["noise_scale"] == "0.66666" and "already multiplied by 0.66666" in props["noise_input"]
    assert props["sample_rate"] == "40000" and props["nsf_noise_in_graph"] == "0"


def test_nsf_noise_stays_in_the_graph_by_default(exported):
    result = exported["noisy"]
    graph = onnx.load(str(result.path)).graph
    assert any(node.op_type.startswith("RandomNormal") for node in graph.node)
    feeds = result.example_inputs(40, seed=1)
    session = _session(result.path)
    first, second = session.run(None, feeds)[0], session.run(None, feeds)[0]
    deterministic = _session(exported["plain"].path).run(None, feeds)[0]
    assert np.isfinite(first).all() and not np.array_equal(first, second)
    assert 0 < np.abs(first - deterministic).max() < 0.5


def test_no_pitch_voice(tmp_path):
    voice = save_tiny_voice(tmp_path / "nono.pth", "v1", 48000, False, 2, feature_dim=16)
    result = export_onnx(voice, nsf_noise=False)
    session = _session(result.path)
    assert [i.name for i in session.get_inputs()] == ["phone", "phone_lengths", "ds", "rnd"]
    feeds = result.example_inputs(30, seed=2)
    np.testing.assert_allclose(session.run(None, feeds)[0], _torch_audio(voice, feeds), atol=ATOL, rtol=0)
    with pytest.raises(OutputExistsError):
        export_onnx(voice)


@pytest.mark.compat
@pytest.mark.parametrize("name", ["rvc_v2_f0_40k", "rvc_v1_nof0_48k"])
def test_matches_rvc_reference_outputs(rvc_reference, tmp_path, name):
    """onnxruntime on our export reproduces the reference's own PyTorch audio (zero-noise run).

    For the no-pitch model the seeded run has no NSF noise, so feeding rnd = 0.66666 · (the reference's
    stored ε) must reproduce RVC's seeded audio: this pins down the noise convention.
    """
    folder = rvc_reference / "synth" / name
    io = np.load(folder / "io.npz")
    result = export_onnx(folder / f"{name}.pth", tmp_path / f"{name}.onnx", nsf_noise=False)
    session = _session(result.path)
    frames = io["phone"].shape[1]
    feeds = {
        "phone": io["phone"],
        "phone_lengths": io["phone_lengths"],
        "ds": io["sid"],
        "rnd": np.zeros((1, result.inter_channels, frames), np.float32),
    }
    if result.use_f0:
        feeds.update(pitch=io["pitch"], pitchf=io["pitchf"])
    np.testing.assert_allclose(session.run(None, feeds)[0], io["zero_noise/audio"], atol=ATOL, rtol=0)
    if not result.use_f0:
        feeds["rnd"] = (NOISE_SCALE * io["seeded/noise_zp"]).astype(np.float32)
        np.testing.assert_allclose(session.run(None, feeds)[0], io["seeded/audio"], atol=ATOL, rtol=0)
