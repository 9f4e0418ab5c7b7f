"""Voice bundles: making them, importing ours and other apps' zips, from a path or a URL."""

from __future__ import annotations

import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infer.checkpoints import read_small_model
from infer.ckpt import CkptError, FetchOptions, VoiceExistsError, import_bundle, make_bundle, read_voice_manifest
from infer.index_pairing import find_index_for_voice
from infer.retrieval import FeatureIndex
from infer.testing.voice import save_tiny_voice
from infer.voice import load_voice
from tests.ckpt.helpers import TINY_DIM, zip_files
from tests.helpers import write_index


@pytest.fixture
def alice_index(tmp_path: Path) -> Path:
    return write_index(tmp_path / "logs" / "alice" / "added_IVF4_Flat_nprobe_1_alice_v2.index", TINY_DIM)


@pytest.fixture
def target(tmp_path: Path) -> dict[str, Path]:
    """A fresh installation to import into."""
    return {"weights_dir": tmp_path / "new" / "weights", "indices_dir": tmp_path / "new" / "assets" / "indices"}


def test_make_bundle_holds_model_index_and_manifest(voice_a, alice_index, tmp_path):
    result = make_bundle(voice_a, search_dirs=[tmp_path / "logs"], key=-3, protect=0.4)
    assert result.path == voice_a.with_suffix(".zip")
    with zipfile.ZipFile(result.path) as zf:
        assert sorted(zf.namelist()) == ["alice/alice.index", "alice/alice.pth", "alice/voice.json"]
        manifest = json.loads(zf.read("alice/voice.json"))
        assert zf.read("alice/alice.pth") == voice_a.read_bytes()
        assert zf.read("alice/alice.index") == alice_index.read_bytes()
    assert manifest == result.manifest
    expected = {
        "name": "alice",
        "sample_rate": 40000,
        "version": "v2",
        "pitch_guidance": True,
        "feature_dim": 32,
        "content_encoder": "hubert_base",
        "f0_method": "rmvpe",
        "epochs": 20,
        "info": "tiny-random",
        "model": "alice.pth",
        "index": "alice.index",
    }
    assert {k: manifest[k] for k in expected} == expected
    assert manifest["pitch_range_hz"] == {"median": 200.0, "p5": 150.0, "p95": 300.0}
    assert manifest["suggested"] == {"key": -3.0, "index_rate": 0.75, "protect": 0.4}
    assert manifest["files"]["alice.pth"]["size"] == voice_a.stat().st_size


def test_bundle_without_index_and_bad_index(voice_a, weights, tmp_path):
    result = make_bundle(voice_a, "solo", index="auto", search_dirs=[tmp_path / "nowhere"], weights_dir=weights)
    assert result.path == weights / "solo.zip" and result.manifest["index"] is None
    assert result.manifest["suggested"]["index_rate"] == 0.0 and any("No index" in w for w in result.warnings)
    wrong = write_index(tmp_path / "wrong.index", 16)
    with pytest.raises(CkptError, match="16-dim features"):
        make_bundle(voice_a, "bad", index=wrong, weights_dir=weights)
    assert not (weights / "bad.zip").exists()


def test_import_puts_files_where_the_ui_finds_them(voice_a, alice_index, tmp_path, target):
    bundle = make_bundle(voice_a, search_dirs=[tmp_path / "logs"]).path
    imported = import_bundle(bundle, **target)
    assert imported.voice_path == target["weights_dir"] / "alice.pth"
    assert imported.index_path == target["indices_dir"] / "alice.index"
    assert imported.voice_path.read_bytes() == voice_a.read_bytes()
    assert imported.from_bundle and imported.warnings == []
    assert find_index_for_voice(imported.voice_path, [target["indices_dir"]]) == imported.index_path
    assert FeatureIndex.load(imported.index_path).dim == TINY_DIM
    manifest = read_voice_manifest(imported.voice_path)
    assert manifest["suggested"]["index_rate"] == 0.75 and manifest["pitch_range_hz"]["median"] == 200.0
    assert load_voice(imported.voice_path).sample_rate == 40000
    assert not list(target["weights_dir"].glob(".import-*"))


def test_existing_voice_is_never_replaced_without_asking(voice_a, voice_b, tmp_path, target):
    bundle = make_bundle(voice_a, index=None).path
    first = import_bundle(bundle, **target)
    other = make_bundle(voice_b, index=None, name="alice", weights_dir=tmp_path / "b").path
    with pytest.raises(VoiceExistsError) as info:
        import_bundle(other, **target)
    assert info.value.name == "alice" and first.voice_path in info.value.existing
    assert first.voice_path.read_bytes() == voice_a.read_bytes()
    renamed = import_bundle(other, name="alice (bob)", **target)
    assert renamed.voice_path.name == "alice (bob).pth" and renamed.voice_path.read_bytes() == voice_b.read_bytes()
    replaced = import_bundle(other, overwrite=True, **target)
    assert replaced.voice_path.read_bytes() == voice_b.read_bytes()


def test_imports_other_apps_zip(voice_a, alice_index, tmp_path, target):
    """A .pth and an .index somewhere in the zip, with training files and macOS junk beside them."""
    archive = zip_files(
        tmp_path / "download.zip",
        {
            "Some Voice/model/Some Voice.pth": voice_a,
            "Some Voice/model/trained_IVF4_Flat_nprobe_1_x_v2.index": b"not an index",
            "Some Voice/model/added_IVF4_Flat_nprobe_1_x_v2.index": alice_index,
            "Some Voice/G_100.pth": b"training file",
            "Some Voice/readme.txt": b"hello",
            "__MACOSX/Some Voice/model/._Some Voice.pth": b"junk",
        },
    )
    imported = import_bundle(archive, **target)
    assert imported.name == "Some Voice" and not imported.from_bundle
    assert imported.index_path == target["indices_dir"] / "Some Voice.index"
    assert imported.index_path.read_bytes() == alice_index.read_bytes()
    manifest = read_voice_manifest(imported.voice_path)
    assert manifest["sample_rate"] == 40000 and manifest["index"] == "Some Voice.index"
    assert sorted(p.name for p in target["weights_dir"].iterdir()) == ["Some Voice.pth", "Some Voice.voice.json"]


def test_zip_with_several_voices_needs_a_choice(voice_a, voice_b, tmp_path, target):
    archive = zip_files(tmp_path / "two.zip", {"a/alice.pth": voice_a, "b/bob.pth": voice_b})
    with pytest.raises(CkptError, match="several models"):
        import_bundle(archive, **target)
    imported = import_bundle(archive, member="bob", **target)
    assert imported.voice_path.read_bytes() == voice_b.read_bytes()


def test_training_files_only(tmp_path, target, generator_ckpt):
    archive = zip_files(tmp_path / "train.zip", {"G_7.pth": generator_ckpt})
    with pytest.raises(CkptError, match="extract a voice from the G_ file"):
        import_bundle(archive, **target)


def _assert_nothing_imported(target: dict[str, Path]) -> None:
    weights = target["weights_dir"]
    assert not weights.exists() or list(weights.iterdir()) == []
    assert not target["indices_dir"].exists()


def test_mismatched_index_dimension_is_refused(voice_a, tmp_path, target):
    wrong = write_index(tmp_path / "wrong.index", 16)
    archive = zip_files(tmp_path / "bad.zip", {"alice.pth": voice_a, "alice.index": wrong})
    with pytest.raises(CkptError, match="16-dim features but the model uses 32-dim"):
        import_bundle(archive, **target)
    _assert_nothing_imported(target)


def test_unknown_version_is_refused(voice_a, tmp_path, target, weights):
    manifest = {"format": "rvc-studio-voice", "format_version": 1, "name": "x", "model": "x.pth", "version": "v3"}
    archive = zip_files(tmp_path / "v3.zip", {"x/voice.json": json.dumps(manifest).encode(), "x/x.pth": voice_a})
    with pytest.raises(CkptError, match="'v3'"):
        import_bundle(archive, **target)
    _assert_nothing_imported(target)
    import torch

    odd = torch.load(voice_a, weights_only=True)
    odd["version"] = "v3"
    torch.save(odd, weights / "odd.pth")
    archive = zip_files(tmp_path / "odd.zip", {"odd.pth": weights / "odd.pth"})
    with pytest.raises(CkptError, match="unknown model version 'v3'"):
        import_bundle(archive, **target)
    _assert_nothing_imported(target)


def test_manifest_must_match_the_files(voice_a, tmp_path, target):
    bundle = make_bundle(voice_a, index=None).path
    with zipfile.ZipFile(bundle) as zf:
        manifest, model = json.loads(zf.read("alice/voice.json")), zf.read("alice/alice.pth")
    lying = dict(manifest, sample_rate=48000)
    archive = zip_files(
        tmp_path / "lie.zip", {"alice/voice.json": json.dumps(lying).encode(), "alice/alice.pth": model}
    )
    with pytest.raises(CkptError, match="sample_rate = 48000"):
        import_bundle(archive, **target)
    other = save_tiny_voice(tmp_path / "other.pth", seed=9, feature_dim=TINY_DIM)
    swapped = zip_files(
        tmp_path / "swap.zip", {"alice/voice.json": json.dumps(manifest).encode(), "alice/alice.pth": other}
    )
    with pytest.raises(CkptError, match="checksum"):
        import_bundle(swapped, **target)
    _assert_nothing_imported(target)


def test_not_a_zip(tmp_path, target):
    path = tmp_path / "voice.zip"
    path.write_bytes(b"this is not a zip")
    with pytest.raises(CkptError, match="not a readable zip"):
        import_bundle(path, **target)
    with pytest.raises(CkptError, match="does not exist"):
        import_bundle(tmp_path / "missing.zip", **target)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, bytes] = {}


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        data = self.server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_import_from_url(voice_a, alice_index, tmp_path, target):
    bundle = make_bundle(voice_a, search_dirs=[tmp_path / "logs"]).path
    server = _Server(("127.0.0.1", 0), _Handler)
    server.files = {"/voices/alice.zip": bundle.read_bytes()}
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        seen: list[float] = []
        local = FetchOptions(allow_private_urls=True)  # a 127.0.0.1 server: allowed as the CLI allows it
        imported = import_bundle(f"{url}/voices/alice.zip", progress=lambda f, m: seen.append(f), fetch=local, **target)
        assert imported.voice_path.read_bytes() == voice_a.read_bytes() and imported.index_path.is_file()
        assert seen[-1] == 1.0 and seen == sorted(seen)
        assert sorted(p.name for p in target["weights_dir"].iterdir()) == ["alice.pth", "alice.voice.json"]
        with pytest.raises(CkptError, match="Could not download"):
            import_bundle(f"{url}/voices/missing.zip", name="other", fetch=local, **target)
    finally:
        server.shutdown()


@pytest.mark.compat
def test_reference_voice_round_trip(rvc_reference, tmp_path, target):
    voice = rvc_reference / "synth" / "rvc_v2_f0_40k" / "rvc_v2_f0_40k.pth"
    bundle = make_bundle(voice, index=None, weights_dir=tmp_path).path
    imported = import_bundle(bundle, **target)
    assert imported.voice_path.read_bytes() == voice.read_bytes()
    assert imported.manifest["epochs"] == 20 and imported.manifest["content_encoder"] == "hubert_base"
    assert read_small_model(imported.voice_path).version == "v2"
