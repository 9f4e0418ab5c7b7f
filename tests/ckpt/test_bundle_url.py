"""Importing a voice bundle from a URL: the address policy, the size cap, and nothing left behind when refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infer.__main__ import main
from infer.ckpt import CkptError, FetchOptions, import_bundle, make_bundle
from tests.infer.test_url_policy import body, public_127_0_0_2, serve  # noqa: F401  (a fixture)


@pytest.fixture
def bundle_bytes(voice_a: Path, tmp_path: Path) -> bytes:
    return make_bundle(voice_a, index=None, weights_dir=tmp_path / "bundles").path.read_bytes()


@pytest.fixture
def target(tmp_path: Path) -> dict[str, Path]:
    return {"weights_dir": tmp_path / "target" / "weights", "indices_dir": tmp_path / "target" / "indices"}


def left_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_a_loopback_url_is_refused_by_default_and_taken_when_allowed(bundle_bytes, target):
    with serve({"/alice.zip": body(bundle_bytes)}) as server:
        with pytest.raises(CkptError, match="local or private network address.*Nothing was imported"):
            import_bundle(server.url("/alice.zip"), **target)
        assert server.seen == [] and left_in(target["weights_dir"]) == []  # no staging folder either
        imported = import_bundle(server.url("/alice.zip"), fetch=FetchOptions(allow_private_urls=True), **target)
    assert imported.voice_path == target["weights_dir"] / "alice.pth" and imported.voice_path.is_file()


@pytest.mark.parametrize("scheme", ["file", "ftp"])
def test_other_schemes_are_refused_even_for_an_existing_file(bundle_bytes, tmp_path, target, scheme):
    zip_path = tmp_path / "alice.zip"
    zip_path.write_bytes(bundle_bytes)
    url = zip_path.as_uri() if scheme == "file" else f"ftp://127.0.0.1{zip_path}"
    with pytest.raises(CkptError, match="not an http"):
        import_bundle(url, fetch=FetchOptions(allow_private_urls=True), **target)
    assert left_in(target["weights_dir"]) == []


def test_the_size_cap_stops_the_download(bundle_bytes, target):
    with serve({"/alice.zip": body(bundle_bytes)}) as server:
        small = FetchOptions(allow_private_urls=True, max_bytes=len(bundle_bytes) - 1)
        with pytest.raises(CkptError, match="larger than"):
            import_bundle(server.url("/alice.zip"), fetch=small, **target)
    assert left_in(target["weights_dir"]) == []


def test_a_redirect_into_the_local_network_is_refused(bundle_bytes, target, public_127_0_0_2):  # noqa: F811
    with serve({"/alice.zip": body(bundle_bytes)}) as inner:
        hop = {"/go": (302, {"Location": inner.url("/alice.zip"), "Content-Length": "0"}, b"")}
        with serve(hop, host="127.0.0.2") as public:
            with pytest.raises(CkptError, match="127.0.0.1"):
                import_bundle(public.url("/go"), **target)
    assert inner.seen == [] and left_in(target["weights_dir"]) == []


def test_the_cli_may_import_from_the_local_network(bundle_bytes, weights, capsys):
    with serve({"/alice.zip": body(bundle_bytes)}) as server:
        code = main(["ckpt", "import", server.url("/alice.zip"), "--name", "from_lan", "--json", "--quiet"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["voice"] == str(weights / "from_lan.pth")
