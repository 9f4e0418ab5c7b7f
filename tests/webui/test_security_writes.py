"""Issue 11, findings 4 and 5: the web UI writes only into the studio's folders and fetches only public URLs.

Through the adapters (the tabs' handlers), through the library (save names
cannot leave their folder), and through a running server's API.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import gradio as gr
import pytest

from infer import ckpt
from infer.checkpoints import read_small_model
from infer.testing.voice import save_tiny_voice
from tests.ckpt.helpers import TINY_DIM, save_tiny_generator
from tests.infer.test_url_policy import body, serve
from webui import ckpt_actions
from webui.paths import OutsideStudioError
from webui.tabs.ckpt import guarded
from webui.train_requests import TrainForm, experiment_paths, fit_request, preprocess_request

ESCAPE = "../../../evil_merge"


def handler(ctx, action):
    run = guarded(ctx, action)
    return lambda *values: run(None, *values)


@pytest.fixture
def alice(settings) -> Path:
    return save_tiny_voice(settings.weights_dir / "alice.pth", "v2", 40000, True, 0, feature_dim=TINY_DIM, info="A")


@pytest.fixture
def escaped(settings) -> Path:
    """Where ``weights/../../../evil_merge.pth`` lands; removed afterwards if an old build wrote it."""
    path = (settings.weights_dir / f"{ESCAPE}.pth").resolve()
    yield path
    path.unlink(missing_ok=True)


# ---- finding 4 through the adapters ----


@pytest.mark.parametrize("name", [ESCAPE, "/tmp/evil_merge", "sub/mix", "..", ".hidden"])
def test_merge_save_names_are_names(ctx, settings, alice, escaped, name):
    with pytest.raises(gr.Error, match="must be a name, not a path"):
        handler(ctx, ckpt_actions.merge)("alice.pth", "alice.pth", 0.5, "", name, False)
    assert not escaped.exists() and not Path("/tmp/evil_merge.pth").exists()
    assert sorted(p.name for p in settings.weights_dir.iterdir()) == ["alice.pth"]


def test_typed_model_paths_must_be_readable(ctx, settings, alice, tmp_path_factory):
    outside = save_tiny_voice(
        tmp_path_factory.mktemp("elsewhere") / "x.pth", "v2", 40000, True, 1, feature_dim=TINY_DIM
    )
    with pytest.raises(gr.Error, match="outside the folders this server reads"):
        handler(ctx, ckpt_actions.merge)(str(outside), "alice.pth", 0.5, "", "mix", False)
    with pytest.raises(gr.Error, match="outside the folders this server reads"):
        handler(ctx, lambda s, _say, voice: ckpt_actions.show_info(s, voice))(str(outside))
    generator = save_tiny_generator(tmp_path_factory.mktemp("other_logs") / "exp", iteration=3)
    with pytest.raises(gr.Error, match="outside the folders this server reads"):
        handler(ctx, ckpt_actions.extract)(str(generator), "", "40k", "v2", "", False)
    assert ckpt_actions.checkpoint_settings(str(generator), settings).sample_rate is None
    assert not (settings.weights_dir / "mix.pth").exists()


def test_info_edits_stay_in_writable_folders(ctx, settings, alice):
    readable_only = settings.root / "input" / "shared.pth"
    readable_only.parent.mkdir(parents=True)
    shutil.copy(alice, readable_only)
    modify = handler(ctx, ckpt_actions.modify_info)
    with pytest.raises(gr.Error, match="outside the folders this server writes"):
        modify(str(readable_only), "changed", "", False)  # in place, in input/ (read-only for the UI)
    with pytest.raises(gr.Error, match="outside the folders this server writes"):
        modify(str(readable_only), "changed", "copy", False)  # a new file beside it: also input/
    assert read_small_model(readable_only).info == "A" and not (readable_only.parent / "copy.pth").exists()
    with pytest.raises(gr.Error, match="must be a name"):
        modify("alice.pth", "changed", "../escaped", False)
    assert not (settings.root / "escaped.pth").exists()
    assert "alice2.pth" in modify("alice.pth", "changed", "alice2", False)  # a name: beside the voice


def test_extract_onnx_and_bundle_outputs_stay_in_weights(ctx, settings, alice):
    generator = save_tiny_generator(settings.logs_dir / "exp", iteration=3)
    with pytest.raises(gr.Error, match="must be a name"):
        handler(ctx, ckpt_actions.extract)(str(generator), "../../x", "40k", "v2", "", False)
    export = guarded(ctx, ckpt_actions.export_onnx)
    for output in (str(settings.root / "out.onnx"), "../out"):
        with pytest.raises(gr.Error, match="must be a name"):
            export(None, "alice.pth", output, False)
    assert not (settings.root / "out.onnx").exists()
    secret = settings.root / "secret.index"
    secret.write_bytes(b"not for download")
    with pytest.raises(gr.Error, match="outside the folders this server reads"):
        guarded(ctx, ckpt_actions.make_bundle)(None, "alice.pth", str(secret), False)
    assert not list(settings.weights_dir.glob("*.zip"))


def test_the_import_url_box_takes_public_http_urls_only(ctx, settings, alice, tmp_path):
    zip_path = ckpt.make_bundle(alice, index=None, weights_dir=tmp_path / "bundles").path
    imported = handler(ctx, ckpt_actions.import_bundle)
    for text in (str(zip_path), zip_path.as_uri()):
        with pytest.raises(gr.Error, match="not an http.*use the upload box"):
            imported(None, text, "copy", False)
    with serve({"/alice.zip": body(zip_path.read_bytes())}) as server:
        with pytest.raises(gr.Error, match="local or private network address"):
            imported(None, server.url("/alice.zip"), "copy", False)
        assert server.seen == []
    assert not (settings.weights_dir / "copy.pth").exists()


def test_train_paths_are_readable_and_the_name_is_a_name(settings, tmp_path_factory):
    outside = tmp_path_factory.mktemp("recordings")
    inside = settings.root / "input" / "recordings"
    with pytest.raises(OutsideStudioError, match="Training folder"):
        preprocess_request(TrainForm(name="alice", dataset=str(outside)), settings)
    assert preprocess_request(TrainForm(name="alice", dataset=str(inside)), settings).dataset == inside
    with pytest.raises(OutsideStudioError, match="Pretrained G"):
        fit_request(TrainForm(name="alice", pretrained_g=str(outside / "G.pth")), settings)
    assert fit_request(TrainForm(name="alice", pretrained_g="none"), settings).pretrained_g == "none"
    for name in ("a:b", ".hidden", "con", "x" * 200):
        with pytest.raises(ValueError, match="Experiment name"):
            experiment_paths(TrainForm(name=name), settings)


# ---- the library's own check (defence in depth) ----


def test_library_save_names_cannot_leave_their_folder(settings, alice):
    generator = save_tiny_generator(settings.logs_dir / "exp", iteration=3)
    calls = [
        lambda name: ckpt.merge_voices(alice, alice, name=name, weights_dir=settings.weights_dir),
        lambda name: ckpt.set_voice_info(alice, "x", name=name),
        lambda name: ckpt.extract_voice(generator, name=name, weights_dir=settings.weights_dir),
        lambda name: ckpt.export_onnx(alice, name=name, weights_dir=settings.weights_dir),
    ]
    for call in calls:
        for name in ("../evil", "sub/evil", "/tmp/evil"):
            with pytest.raises(ckpt.CkptError, match="cannot be used as a file name|needs the 'onnx'"):
                call(name)
    assert sorted(p.name for p in settings.weights_dir.iterdir()) == ["alice.pth"]
    assert not (settings.root / "evil.pth").exists()


# ---- through a running server ----


@pytest.fixture(scope="module")
def api(start_server, installation):
    gradio_client = pytest.importorskip("gradio_client")
    server = start_server(env={"RVC_OUTPUT_DIR": str(installation.root / "opt")})
    return gradio_client.Client(server.url, verbose=False)


def test_the_api_refuses_writes_outside_and_server_side_fetches(api, installation, tmp_path):
    escaped = (installation.weights_dir / f"{ESCAPE}.pth").resolve()
    with pytest.raises(Exception, match="must be a name, not a path"):
        api.predict("alice.pth", "alice.pth", 0.5, "", ESCAPE, False, api_name="/ckpt_merge")
    assert not escaped.exists()
    shared = installation.assets_dir / "shared.pth"  # readable by the server, not writable
    shutil.copy(installation.voices["alice"], shared)
    with pytest.raises(Exception, match="outside the folders this server writes"):
        api.predict(str(shared), "changed", "", False, api_name="/ckpt_modify")
    assert read_small_model(shared).info == read_small_model(installation.voices["alice"]).info
    target = installation.root / "escaped.onnx"
    with pytest.raises(Exception, match="must be a name"):
        api.predict("alice.pth", str(target), False, api_name="/export_onnx")
    assert not target.exists()
    zip_path = ckpt.make_bundle(installation.voices["alice"], index=None, weights_dir=tmp_path).path
    with pytest.raises(Exception, match="use the upload box"):
        api.predict(None, str(zip_path), "copy", False, api_name="/import_bundle")
    with serve({"/alice.zip": body(zip_path.read_bytes())}) as server:
        with pytest.raises(Exception, match="local or private network address"):
            api.predict(None, server.url("/alice.zip"), "copy", False, api_name="/import_bundle")
        assert server.seen == []
    assert not (installation.weights_dir / "copy.pth").exists()
