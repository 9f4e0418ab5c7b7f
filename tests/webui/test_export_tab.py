"""The Export tab without a browser: ONNX export, bundle export and import, through the tab's handler functions."""

from __future__ import annotations

import zipfile
from dataclasses import replace
from pathlib import Path

import gradio as gr
import numpy as np
import pytest

from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.ckpt.helpers import TINY_DIM
from tests.helpers import write_index
from webui import ckpt_actions
from webui.tabs.ckpt import guarded
from webui.tabs.export import _index_choices, _with_file


@pytest.fixture
def alice(settings) -> Path:
    """A tiny v2 40k voice in the weights folder and its index in ``logs/alice`` (paired by name)."""
    write_index(settings.logs_dir / "alice" / "added_IVF4_Flat_nprobe_1_alice_v2.index", TINY_DIM)
    return save_tiny_voice(settings.weights_dir / "alice.pth", "v2", 40000, True, 0, feature_dim=TINY_DIM)


def with_file(ctx, action):
    run = _with_file(guarded(ctx, action))
    return lambda *values: run(None, *values)


def plain(ctx, action):
    run = guarded(ctx, action)
    return lambda *values: run(None, *values)


def test_onnx_export_writes_a_model_that_onnxruntime_runs(ctx, settings, alice):
    ort = pytest.importorskip("onnxruntime")
    text, file = with_file(ctx, ckpt_actions.export_onnx)("alice.pth", "", False)
    assert file == str(settings.weights_dir / "alice.onnx") and text.startswith(f"ONNX model: {file}")
    session = ort.InferenceSession(file, providers=["CPUExecutionProvider"])
    frames = 20
    channels = {i.name: i.shape for i in session.get_inputs()}["rnd"][1]
    feeds = {
        "phone": np.zeros((1, frames, TINY_DIM), np.float32),
        "phone_lengths": np.array([frames], np.int64),
        "pitch": np.full((1, frames), 60, np.int64),
        "pitchf": np.full((1, frames), 220.0, np.float32),
        "ds": np.array([0], np.int64),
        "rnd": np.zeros((1, channels, frames), np.float32),
    }
    audio = session.run(None, feeds)[0]
    assert audio.size == frames * 400 and np.isfinite(audio).all()
    with pytest.raises(gr.Error, match=r"alice\.onnx' already exists"):
        with_file(ctx, ckpt_actions.export_onnx)("alice.pth", "", False)  # there: not replaced unasked
    text, named = with_file(ctx, ckpt_actions.export_onnx)("alice.pth", "a", True)  # a name: into weights/
    assert named == str(settings.weights_dir / "a.onnx") and Path(named).is_file()


def test_bundle_holds_the_voice_and_its_paired_index(ctx, settings, alice):
    choices = _index_choices(ctx)
    assert choices[0][1] == "auto" and choices[1][1] == "" and len(choices) == 3  # auto, none, the one index
    text, file = with_file(ctx, ckpt_actions.make_bundle)("alice.pth", "auto", False)
    assert text.startswith(f"Saved {file} (") and "alice.index" in text
    with zipfile.ZipFile(file) as zf:
        assert sorted(zf.namelist()) == ["alice/alice.index", "alice/alice.pth", "alice/voice.json"]
    _, model_only = with_file(ctx, ckpt_actions.make_bundle)("alice.pth", "", True)
    with zipfile.ZipFile(model_only) as zf:
        assert sorted(zf.namelist()) == ["alice/alice.pth", "alice/voice.json"]


def test_import_puts_the_voice_where_convert_finds_it_and_never_replaces_unasked(ctx, settings, alice, tmp_path):
    _, bundle = with_file(ctx, ckpt_actions.make_bundle)("alice.pth", "auto", False)
    other = replace(settings, weights_dir=tmp_path / "other" / "weights", assets_dir=tmp_path / "other" / "assets")
    other_ctx = replace(ctx, settings=other)
    imported = plain(other_ctx, ckpt_actions.import_bundle)
    text = imported(bundle, "", "", False)
    assert f"Imported the voice 'alice': {other.weights_dir / 'alice.pth'}" in text
    assert f"Its index: {other.assets_dir / 'indices' / 'alice.index'}" in text
    assert load_voice(other.weights_dir / "alice.pth").sample_rate == 40000
    before = (other.weights_dir / "alice.pth").read_bytes()
    with pytest.raises(gr.Error, match="A voice named 'alice' already exists .* under .Import as"):
        imported(bundle, "", "", False)
    assert (other.weights_dir / "alice.pth").read_bytes() == before
    assert "'alice 2'" in imported(f' "{bundle}" ', "", "alice 2", False)
    assert imported(bundle, "", "", True)
    with pytest.raises(gr.Error, match="Upload a voice zip"):
        imported(None, "  ", "", False)


def test_bad_choices_become_messages(ctx, settings, alice, tmp_path):
    with pytest.raises(gr.Error, match="Choose a voice"):
        with_file(ctx, ckpt_actions.make_bundle)("", "auto", False)
    wrong = write_index(settings.logs_dir / "wrong.index", 16)
    with pytest.raises(gr.Error, match="16"):
        with_file(ctx, ckpt_actions.make_bundle)("alice.pth", str(wrong), False)
    assert not (settings.weights_dir / "alice.zip").exists()
    broken = tmp_path / "broken.zip"
    broken.write_bytes(b"not a zip at all")
    with pytest.raises(gr.Error, match="broken.zip"):
        plain(ctx, ckpt_actions.import_bundle)(str(broken), "", "", False)
    assert sorted(p.name for p in settings.weights_dir.iterdir()) == ["alice.pth"]
