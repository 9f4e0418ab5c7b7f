"""The app shell in-process: flags, language policy, tab order, and the missing-assets banner with its download."""

from __future__ import annotations

import hashlib
import http.server
import logging
import os
import threading
from pathlib import Path

import gradio as gr
import pytest

from config import Settings
from infer.assets import Asset
from infer.download import ChecksumError
from webui import launch
from webui.app import build_ui, load_tab
from webui.localize import UILanguage
from webui.tabs import assets as assets_tab


def empty_settings(root: Path) -> Settings:
    return Settings.from_env(
        root=root, assets_dir=root / "assets", weights_dir=root / "weights", logs_dir=root / "logs", device="cpu"
    )


def test_flags() -> None:
    args = launch.parse_args(["--port", "7900", "--listen", "--auth", "me:pa:ss", "--lang", "ja", "--noautoopen"])
    assert (args.port, args.listen, args.auth, args.lang, args.noautoopen) == (7900, True, "me:pa:ss", "ja", True)
    defaults = launch.parse_args([])
    assert (defaults.port, defaults.listen, defaults.auth, defaults.lang) == (7865, False, None, None)
    for bad in (["--port", "0"], ["--auth", "nopassword"], ["--auth", ":pw"], ["--lang", "fr_FR"]):
        with pytest.raises(SystemExit):
            launch.parse_args(bad)


def test_local_hosts_bypass_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "example.org")
    monkeypatch.delenv("no_proxy", raising=False)
    launch.bypass_proxy_for_local_hosts()
    launch.bypass_proxy_for_local_hosts()  # idempotent
    assert os.environ["NO_PROXY"] == "example.org,localhost,127.0.0.1,::1"
    assert os.environ["no_proxy"] == "localhost,127.0.0.1,::1"


def test_language_policy() -> None:
    auto = UILanguage.create(None)
    assert auto.forced is None and auto.label("tab.convert").startswith("__i18n__")
    tables = auto.gradio_i18n().translations_dict
    assert {"en", "zh-CN", "zh", "ja", "ko"} <= set(tables)
    assert tables["ja"]["tab.convert"] == "変換" and tables["en"]["tab.convert"] == "Convert"

    forced = UILanguage.create("ko_KR")
    assert forced.label("tab.convert") == "변환" and forced.gradio_i18n() is None
    assert UILanguage.create("zh-CN").forced == "zh_CN" and UILanguage.create("auto").forced is None
    with pytest.raises(ValueError, match="unsupported language 'xx'"):
        UILanguage.create("xx")


def test_texts_for_a_request_follow_its_accept_language() -> None:
    class FakeRequest:
        headers = {"accept-language": "ja-JP,ja;q=0.9,en;q=0.8"}

    auto = UILanguage.create(None)
    assert auto.text("batch.status_failed", FakeRequest()) == "失敗"
    assert auto.text("convert.speaker_range", FakeRequest(), last=3) == "このボイスの話者は 0 から 3 です。"
    assert UILanguage.create("en_US").text("batch.status_failed", FakeRequest()) == "failed"  # --lang wins


def test_tabs_come_in_order_and_missing_modules_are_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = build_ui(empty_settings(tmp_path), UILanguage.create("en_US"))
    top_level = [b.id for b in app.blocks.values() if isinstance(b, gr.Tab) and b.id not in ("single", "batch")]
    expected = [name for name in ("convert", "train", "ckpt", "export", "faq") if load_tab(f"webui.tabs.{name}")]
    assert top_level == expected and top_level[0] == "convert" and top_level[-1] == "faq"
    faq = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "faq-text")
    assert "Frequently asked questions" in faq.value
    apis = {fn.api_name for fn in app.fns.values()}
    assert {"convert", "convert_batch"} <= apis

    with caplog.at_level(logging.WARNING, logger="webui"):
        assert load_tab("webui.tabs.not_written_yet") is None
    assert "not there yet" in caplog.text


def test_missing_assets_are_named_in_the_banner(tmp_path: Path) -> None:
    settings = empty_settings(tmp_path)
    missing = assets_tab.missing_files(settings)
    assert [a.key for a in missing] == ["hubert_base", "rmvpe", "pretrained_v2/f0G40k", "pretrained_v2/f0D40k"]
    app = build_ui(settings, UILanguage.create("en_US"))
    banner = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "assets-banner")
    note = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "assets-missing")
    assert banner.visible is True
    assert "Some model files are missing" in note.value
    assert str(tmp_path / "assets" / "hubert" / "hubert_base.pt") in note.value


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _serve(folder: Path):
    handler = lambda *a, **k: _Files(*a, directory=str(folder), **k)  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_download_button_fetches_missing_files_with_progress(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    fakes = []
    for name, size in (("a.bin", 300_000), ("b.bin", 100_000)):
        data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
        (remote / name).write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        fakes.append(Asset(f"test/{name}", f"test/{name}", name, size, digest, "test file"))
    monkeypatch.setattr(assets_tab, "select_assets", lambda names: list(fakes))
    settings = empty_settings(tmp_path / "install")
    server = _serve(remote)
    try:
        reports: list[tuple[float, str]] = []
        fetched = assets_tab.download_missing(
            settings,
            f"http://127.0.0.1:{server.server_port}/",
            lambda f, asset, done, total: reports.append((f, asset.key)),
        )
        assert [a.key for a in fetched] == ["test/a.bin", "test/b.bin"]
        assert assets_tab.missing_files(settings) == []
        fractions = [f for f, _ in reports]
        assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
        assert {key for _, key in reports} == {"test/a.bin", "test/b.bin"}

        (settings.assets_dir / "test" / "b.bin").unlink()
        (remote / "b.bin").write_bytes(b"tampered" * 100)  # wrong bytes: refused, nothing left at the path
        with pytest.raises(ChecksumError):
            assets_tab.download_missing(settings, f"http://127.0.0.1:{server.server_port}/", lambda *a: None)
        assert [a.key for a in assets_tab.missing_files(settings)] == ["test/b.bin"]
    finally:
        server.shutdown()


def test_the_banner_button_downloads_hides_the_banner_and_reports_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    remote = tmp_path / "remote"
    remote.mkdir()
    data = bytes(range(256)) * 1000
    (remote / "c.bin").write_bytes(data)
    fake = Asset("test/c.bin", "test/c.bin", "c.bin", len(data), hashlib.sha256(data).hexdigest(), "test file")
    monkeypatch.setattr(assets_tab, "select_assets", lambda names: [fake])
    server = _serve(remote)
    monkeypatch.setattr(assets_tab, "MIRROR_BASE_URL", f"http://127.0.0.1:{server.server_port}/")
    settings = empty_settings(tmp_path / "install")
    try:
        app = build_ui(settings, UILanguage.create(None))  # per-browser: server texts follow Accept-Language
        handler = next(f.fn for f in app.fns.values() if f.name == "download")

        class JapaneseRequest:
            headers = {"accept-language": "ja"}

        steps: list[tuple[float, str]] = []
        banner, note = handler(True, JapaneseRequest(), progress=lambda fraction, desc: steps.append((fraction, desc)))
        assert (settings.assets_dir / "test" / "c.bin").read_bytes() == data
        assert banner.visible is False and "c.bin" not in note
        assert steps and steps[-1][0] == pytest.approx(1.0)
        assert "c.bin" in steps[-1][1] and "ダウンロード" in steps[-1][1]
    finally:
        server.shutdown()


def test_failed_installation_checks_are_logged_at_start(tmp_path, caplog) -> None:
    blocker = tmp_path / "a file"
    blocker.write_text("not a folder")
    broken = Settings.from_env(
        root=tmp_path, assets_dir=tmp_path / "assets", weights_dir=blocker / "weights", logs_dir=tmp_path / "logs"
    )
    with caplog.at_level(logging.WARNING):
        assert launch.report_installation_problems(broken, logging.getLogger("test")) == 1
    assert "weights folder" in caplog.text and str(blocker) in caplog.text
    healthy = Settings.from_env(
        root=tmp_path, assets_dir=tmp_path / "assets", weights_dir=tmp_path / "weights", logs_dir=tmp_path / "logs"
    )
    assert launch.report_installation_problems(healthy, logging.getLogger("test")) == 0  # missing assets: banner only
