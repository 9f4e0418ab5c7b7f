"""Downloader tests against a local HTTP server on 127.0.0.1 (no other network use)."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import random
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from infer import assets
from infer.download import (
    ChecksumError,
    DownloadCancelled,
    DownloadError,
    OfflineError,
    download_assets,
    download_file,
    part_path,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
CLI_PATH = REPO_ROOT / "tools" / "download_models.py"
PROXY_VARS = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


def make_bytes(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FileServer(ThreadingHTTPServer):
    """Serves ``files`` (URL path -> bytes) with Range support and injectable faults."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), FileHandler)
        self.files: dict[str, bytes] = {}
        self.cut_at: dict[str, int] = {}  # close the connection once the body reaches this offset (once)
        self.ignore_range = False
        self.wrong_content = False
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class FileHandler(BaseHTTPRequestHandler):
    server: FileServer

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        server = self.server
        range_header = self.headers.get("Range")
        server.requests.append((self.path, range_header))
        data = server.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        if server.wrong_content:
            data = bytes(b ^ 0xFF for b in data)
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and not server.ignore_range:
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        cut = server.cut_at.pop(self.path, None)
        if cut is not None and cut > start:
            self.wfile.write(data[start:cut])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(data[start:])


@pytest.fixture
def server() -> Iterator[FileServer]:
    srv = FileServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every test off any proxy configured on the machine."""
    for name in PROXY_VARS:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def no_retry_allowed() -> object:
    """A cancel check that cancels as soon as a retry pause starts (the 2nd check)."""
    calls: list[int] = []
    return lambda: calls.append(1) or len(calls) > 1


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(server: FileServer, tmp_path: Path, data: bytes, **kwargs: object) -> Path:
    server.files["/model.pth"] = data
    kwargs.setdefault("chunk_size", 16 * 1024)
    kwargs.setdefault("backoff", 0.0)
    return download_file(server.base_url + "model.pth", tmp_path / "sub" / "model.pth", **kwargs)


def test_complete_download_with_monotonic_progress(server, tmp_path):
    data = make_bytes(200_000)
    calls: list[tuple[int, int | None]] = []
    path = fetch(
        server, tmp_path, data, sha256=sha(data), expected_size=len(data), progress=lambda d, t: calls.append((d, t))
    )
    assert path.read_bytes() == data
    assert not part_path(path).exists()
    done = [d for d, _ in calls]
    assert done == sorted(done) and len(calls) > 3
    assert calls[-1] == (len(data), len(data))
    assert server.requests == [("/model.pth", None)]


def test_resume_after_cut_connection(server, tmp_path):
    data = make_bytes(150_000, seed=1)
    server.cut_at["/model.pth"] = 60_000
    path = fetch(server, tmp_path, data, sha256=sha(data))
    assert path.read_bytes() == data
    assert server.requests == [("/model.pth", None), ("/model.pth", "bytes=60000-")]


def test_cut_connection_gives_up_after_retries(server, tmp_path):
    server.files["/model.pth"] = make_bytes(50_000, seed=2)
    server.cut_at["/model.pth"] = 10_000
    dest = tmp_path / "model.pth"
    with pytest.raises(OfflineError, match="cut after 10000 of 50000 bytes"):
        download_file(server.base_url + "model.pth", dest, retries=0, backoff=0.0)
    assert part_path(dest).stat().st_size == 10_000 and not dest.exists()
    assert len(server.requests) == 1


def test_existing_part_file_is_resumed(server, tmp_path):
    data = make_bytes(120_000, seed=3)
    dest = tmp_path / "sub" / "model.pth"
    dest.parent.mkdir()
    part_path(dest).write_bytes(data[:45_678])
    calls: list[int] = []
    fetch(server, tmp_path, data, sha256=sha(data), progress=lambda d, t: calls.append(d))
    assert dest.read_bytes() == data
    assert server.requests == [("/model.pth", "bytes=45678-")]
    assert calls[0] == 45_678


def test_complete_part_file_answered_with_416_is_finished(server, tmp_path):
    data = make_bytes(30_000, seed=4)
    dest = tmp_path / "sub" / "model.pth"
    dest.parent.mkdir()
    part_path(dest).write_bytes(data)
    fetch(server, tmp_path, data, sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.requests == [("/model.pth", "bytes=30000-")]


def test_oversized_part_file_answered_with_416_restarts(server, tmp_path):
    data = make_bytes(30_000, seed=5)
    dest = tmp_path / "sub" / "model.pth"
    dest.parent.mkdir()
    part_path(dest).write_bytes(make_bytes(40_000, seed=6))
    fetch(server, tmp_path, data, sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.requests == [("/model.pth", "bytes=40000-"), ("/model.pth", None)]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    data = make_bytes(80_000, seed=7)
    dest = tmp_path / "sub" / "model.pth"
    dest.parent.mkdir()
    part_path(dest).write_bytes(b"stale bytes from another file" * 100)
    server.ignore_range = True
    fetch(server, tmp_path, data, sha256=sha(data), expected_size=len(data))
    assert dest.read_bytes() == data
    assert server.requests == [("/model.pth", "bytes=2900-")]


def test_checksum_mismatch_is_refused(server, tmp_path):
    data = make_bytes(50_000, seed=8)
    server.wrong_content = True
    with pytest.raises(ChecksumError) as info:
        fetch(server, tmp_path, data, sha256=sha(data))
    message = str(info.value)
    assert "model.pth" in message and sha(data) in message
    assert sha(bytes(b ^ 0xFF for b in data)) in message
    dest = tmp_path / "sub" / "model.pth"
    assert not dest.exists() and not part_path(dest).exists()


def test_size_mismatch_is_refused(server, tmp_path):
    data = make_bytes(20_000, seed=9)
    with pytest.raises(ChecksumError, match="size mismatch.*20010 bytes.*20000 bytes"):
        fetch(server, tmp_path, data, expected_size=len(data) + 10)
    dest = tmp_path / "sub" / "model.pth"
    assert not dest.exists() and not part_path(dest).exists()


def test_unreachable_port_raises_offline_error(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}/hubert_base.pt"
    dest = tmp_path / "hubert" / "hubert_base.pt"
    with pytest.raises(OfflineError) as info:
        download_file(url, dest, timeout=5.0, backoff=60.0, cancel=no_retry_allowed())
    message = str(info.value)
    for expected in ("hubert_base.pt", url, "refused", "proxy", "https://hf-mirror.com/", str(dest)):
        assert expected in message
    assert not dest.exists()


def test_unresolvable_host_raises_offline_error(tmp_path):
    url = "http://nonexistent.invalid/rmvpe.pt"
    dest = tmp_path / "rmvpe.pt"
    with pytest.raises(OfflineError) as info:
        download_file(url, dest, timeout=5.0, backoff=60.0, cancel=no_retry_allowed())
    message = str(info.value)
    for expected in ("rmvpe.pt", url, "resolved", "--base-url", str(dest)):
        assert expected in message


def test_http_404_is_a_clear_error(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as info:
        download_file(server.base_url + "missing.pth", tmp_path / "missing.pth")
    assert not isinstance(info.value, OfflineError)
    assert str(tmp_path / "missing.pth") in str(info.value)


def test_cancel_keeps_part_file_and_next_call_resumes(server, tmp_path):
    data = make_bytes(200_000, seed=10)
    seen: list[int] = []
    with pytest.raises(DownloadCancelled):
        fetch(
            server,
            tmp_path,
            data,
            sha256=sha(data),
            progress=lambda d, t: seen.append(d),
            cancel=lambda: bool(seen) and seen[-1] >= 50_000,
        )
    dest = tmp_path / "sub" / "model.pth"
    kept = part_path(dest).stat().st_size
    assert 50_000 <= kept < len(data) and not dest.exists()
    fetch(server, tmp_path, data, sha256=sha(data))
    assert dest.read_bytes() == data
    assert server.requests[-1] == ("/model.pth", f"bytes={kept}-")


def test_existing_verified_file_is_not_downloaded_again(server, tmp_path):
    data = make_bytes(10_000, seed=11)
    dest = tmp_path / "sub" / "model.pth"
    dest.parent.mkdir()
    dest.write_bytes(data)
    fetch(server, tmp_path, data, sha256=sha(data), expected_size=len(data))
    assert server.requests == []
    dest.write_bytes(b"corrupted")  # a wrong file is replaced
    fetch(server, tmp_path, data, sha256=sha(data))
    assert dest.read_bytes() == data and len(server.requests) == 1


def test_dead_proxy_in_environment_is_not_used_for_localhost(server, tmp_path, monkeypatch):
    dead = f"http://127.0.0.1:{closed_port()}"
    for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.setenv(name, dead)
    data = make_bytes(5_000, seed=12)
    assert fetch(server, tmp_path, data, sha256=sha(data), retries=0).read_bytes() == data


def fake_registry(server: FileServer, monkeypatch: pytest.MonkeyPatch, keys: tuple[str, ...]) -> dict[str, bytes]:
    """Point registry entries at small generated files served by ``server``."""
    contents = {}
    for number, key in enumerate(keys):
        data = make_bytes(3_000 + number, seed=100 + number)
        asset = dataclasses.replace(assets.ASSETS[key], size=len(data), sha256=sha(data))
        monkeypatch.setitem(assets.ASSETS, key, asset)
        server.files["/" + asset.url_path] = data
        contents[asset.relative_path] = data
    return contents


def test_download_assets_places_files_under_root(server, tmp_path, monkeypatch):
    contents = fake_registry(server, monkeypatch, ("rmvpe", "pretrained/f0G48k"))
    seen: set[str] = set()
    paths = download_assets(
        assets.select_assets(["rmvpe", "pretrained/f0G48k"]),
        root=tmp_path,
        base_url=server.base_url,
        progress=lambda asset, done, total: seen.add(asset.key),
    )
    assert paths == [tmp_path / "rmvpe/rmvpe.pt", tmp_path / "pretrained/f0G48k.pth"]
    assert all((tmp_path / rel).read_bytes() == data for rel, data in contents.items())
    assert seen == {"rmvpe", "pretrained/f0G48k"}


def load_cli():
    spec = importlib.util.spec_from_file_location("download_models_cli", CLI_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_list_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [sys.executable, str(CLI_PATH), "--list", "--assets-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    listed = [line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")]
    assert listed == list(assets.ASSETS)
    assert "essential (4)" in result.stdout and "missing" in result.stdout


def test_cli_downloads_essential_group_from_base_url(server, tmp_path, monkeypatch, capsys):
    contents = fake_registry(server, monkeypatch, assets.GROUPS["essential"])
    cli = load_cli()
    assert cli.main(["--base-url", server.base_url, "--assets-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert all((tmp_path / rel).read_bytes() == data for rel, data in contents.items())
    assert "100%" in err and "hubert_base.pt" in err
    assert cli.main(["--base-url", server.base_url, "--assets-dir", str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out.count("already present") == 4 and "Nothing to download" in out
    before = len(server.requests)
    assert cli.main(["--force", "--base-url", server.base_url, "--assets-dir", str(tmp_path)]) == 0
    assert len(server.requests) == before + 4
    assert all((tmp_path / rel).read_bytes() == data for rel, data in contents.items())


def test_cli_reports_failure_with_exit_code(tmp_path, capsys):
    cli = load_cli()
    code = cli.main(
        ["--only", "rmvpe", "--base-url", f"http://127.0.0.1:{closed_port()}/", "--assets-dir", str(tmp_path)]
    )
    assert code == 1
    err = capsys.readouterr().err
    assert "rmvpe.pt" in err and "hf-mirror.com" in err and str(tmp_path / "rmvpe" / "rmvpe.pt") in err


def test_cli_rejects_unknown_names(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        load_cli().main(["--only", "nope", "--assets-dir", str(tmp_path)])
    assert info.value.code == 2
    assert "unknown asset or group 'nope'" in capsys.readouterr().err
